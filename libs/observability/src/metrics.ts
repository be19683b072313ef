/**
 * The Prometheus metrics of one process: one registry, created once by the process's runtime
 * and handed to every part that records (injected as METRICS in Nest modules). Each service
 * serves it on GET /metrics of its HTTP listener.
 *
 * The metric objects are public so that the code doing the work records into them:
 *   - HTTP edge (http.ts): http request latency by route;
 *   - instrumented bus (bus.ts): request latency by subject and outcome, handler latency;
 *   - persistence: `eventsPersisted.inc(n)` after each committed append;
 *   - room-server: `stateResolutionSeconds` around each state resolution;
 *   - fanout-sender: `federationQueueDepth.set({ shard }, n)` for each owned destination shard
 *     and `federationTransactions.inc({ shard, result })` per transaction sent.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Injection token of the process's TesseraMetrics. */
export const METRICS = Symbol('tessera:metrics');

/** Outcomes of a federation transaction, as fanout-sender records them. */
export type FederationTransactionResult = 'success' | 'failure' | 'timeout' | 'backoff';

export interface MetricsOptions {
  /** Added as the label `service` to every series, so that one Prometheus job can scrape all services. */
  service: string;
  /** Process CPU, memory, event-loop lag, GC (prom-client's defaults). Default true. */
  processMetrics?: boolean;
}

// Latency buckets in seconds: HTTP and bus calls range from sub-millisecond (health, cached
// reads) to tens of seconds (/sync long-polls, remote joins).
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const STATE_RES_BUCKETS = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60];

export class TesseraMetrics {
  readonly registry = new Registry();

  readonly httpRequestSeconds = new Histogram({
    name: 'tessera_http_request_duration_seconds',
    help: 'HTTP request latency by method, route pattern and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly busRequestSeconds = new Histogram({
    name: 'tessera_bus_request_duration_seconds',
    help: 'Bus request/reply latency seen by the caller, by subject and outcome (ok or the error code).',
    labelNames: ['subject', 'outcome'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly busHandlerSeconds = new Histogram({
    name: 'tessera_bus_handler_duration_seconds',
    help: 'Time spent handling bus messages in this process, by subject, kind (request, notification, durable) and outcome.',
    labelNames: ['subject', 'kind', 'outcome'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly busHandlersInFlight = new Gauge({
    name: 'tessera_bus_handlers_in_flight',
    help: 'Bus messages being handled in this process right now (graceful shutdown waits for them).',
    labelNames: ['subject'] as const,
    registers: [this.registry],
  });

  readonly eventsPersisted = new Counter({
    name: 'tessera_events_persisted_total',
    help: 'Room events committed to the event log by this process.',
    registers: [this.registry],
  });

  readonly stateResolutionSeconds = new Histogram({
    name: 'tessera_state_resolution_duration_seconds',
    help: 'Time to resolve the state of a room, by room version.',
    labelNames: ['room_version'] as const,
    buckets: STATE_RES_BUCKETS,
    registers: [this.registry],
  });

  readonly federationQueueDepth = new Gauge({
    name: 'tessera_federation_queue_depth',
    help: 'PDUs and EDUs waiting to be sent to remote servers, by destination shard owned by this process.',
    labelNames: ['shard'] as const,
    registers: [this.registry],
  });

  readonly federationTransactions = new Counter({
    name: 'tessera_federation_transactions_total',
    help: 'Federation transactions sent, by destination shard and result.',
    labelNames: ['shard', 'result'] as const,
    registers: [this.registry],
  });

  constructor(options: MetricsOptions) {
    this.registry.setDefaultLabels({ service: options.service });
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** The exposition text of every metric of this process (GET /metrics). */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Times fn into stateResolutionSeconds; the resolution's result (or error) passes through. */
  async timeStateResolution<T>(roomVersion: string, fn: () => T | Promise<T>): Promise<T> {
    const end = this.stateResolutionSeconds.startTimer({ room_version: roomVersion });
    try {
      return await fn();
    } finally {
      end();
    }
  }

  /** Drops the gauge of a shard this process no longer owns (its lease moved to another replica). */
  releaseFederationShard(shard: string | number): void {
    this.federationQueueDepth.remove({ shard: String(shard) });
  }
}

export function createMetrics(options: MetricsOptions): TesseraMetrics {
  return new TesseraMetrics(options);
}
