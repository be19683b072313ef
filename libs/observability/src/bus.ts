/**
 * A BusTransport decorator that measures the bus and carries the request id across it,
 * without touching the transports themselves (libs/bus).
 *
 * Request id on the wire: when the payload is a plain JSON object and a request id is current,
 * the sent payload gets one more member, REQUEST_ID_FIELD. On the receiving side the decorator
 * removes that member before the handler sees the payload and runs the handler with the id as
 * the current one. Payloads that are not objects travel unchanged (and carry no id). A
 * receiver without the decorator sees one extra member it can ignore, so mixed deployments
 * keep working.
 */
import type {
  BusTransport,
  DurableConsumerOptions,
  HandlerOptions,
  RequestOptions,
  Subscription,
} from '@tessera/bus';
import type { TesseraMetrics } from './metrics.js';
import { currentRequestId, isAcceptableRequestId, runWithRequestId } from './request-context.js';

/** The member a sent payload carries the request id in. `$` marks it as transport metadata. */
export const REQUEST_ID_FIELD = '$request_id';

export interface InstrumentBusOptions {
  metrics: TesseraMetrics;
}

export interface InstrumentedBusTransport extends BusTransport {
  /**
   * The first step of a graceful shutdown: unsubscribes every handler registered through this
   * bus (their queue-group peers get the new messages) while the connection stays open, so that
   * handlers still running can finish and reply, and requests of in-flight HTTP calls still get
   * answers. Idempotent: every call returns the same promise. close() still does the rest.
   */
  stopTakingMessages(): Promise<void>;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** The payload to send: with the current request id added when there is one and the payload is an object. */
export function withRequestId<T>(payload: T): T {
  const requestId = currentRequestId();
  if (requestId === undefined || !isPlainObject(payload)) return payload;
  return { ...payload, [REQUEST_ID_FIELD]: requestId } as T;
}

/** Splits a received payload into the handler's payload and the request id it carried, if any. */
export function takeRequestId<T>(payload: T): { payload: T; requestId?: string } {
  if (!isPlainObject(payload) || !(REQUEST_ID_FIELD in payload)) return { payload };
  const { [REQUEST_ID_FIELD]: requestId, ...rest } = payload;
  return { payload: rest as T, requestId: isAcceptableRequestId(requestId) ? requestId : undefined };
}

/** The outcome label of a failed call: the bus error code when there is one. */
function outcomeOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[A-Z0-9_]{1,64}$/.test(code) ? code : 'error';
}

type Kind = 'request' | 'notification' | 'durable';

class InstrumentedBus implements InstrumentedBusTransport {
  private readonly subscriptions = new Set<Subscription>();
  private stopping?: Promise<void>;

  constructor(
    private readonly inner: BusTransport,
    private readonly metrics: TesseraMetrics,
  ) {}

  async request<Req, Res>(subject: string, payload: Req, options?: RequestOptions): Promise<Res> {
    const end = this.metrics.busRequestSeconds.startTimer({ subject });
    try {
      const result = await this.inner.request<Req, Res>(subject, withRequestId(payload), options);
      end({ outcome: 'ok' });
      return result;
    } catch (error) {
      end({ outcome: outcomeOf(error) });
      throw error;
    }
  }

  handle<Req, Res>(subject: string, handler: (payload: Req) => Promise<Res>, options?: HandlerOptions): Promise<Subscription> {
    return this.remember(this.inner.handle<Req, Res>(subject, (payload) => this.run(subject, 'request', payload, handler), options));
  }

  publish<T>(subject: string, payload: T): Promise<void> {
    return this.inner.publish(subject, withRequestId(payload));
  }

  subscribe<T>(subject: string, handler: (payload: T) => void | Promise<void>, options?: HandlerOptions): Promise<Subscription> {
    return this.remember(
      this.inner.subscribe<T>(subject, (payload) => this.run(subject, 'notification', payload, async (p: T) => handler(p)), options),
    );
  }

  publishDurable<T>(subject: string, payload: T): Promise<void> {
    return this.inner.publishDurable(subject, withRequestId(payload));
  }

  consumeDurable<T>(subject: string, handler: (payload: T) => Promise<void>, options: DurableConsumerOptions): Promise<Subscription> {
    return this.remember(this.inner.consumeDurable<T>(subject, (payload) => this.run(subject, 'durable', payload, handler), options));
  }

  stopTakingMessages(): Promise<void> {
    this.stopping ??= (async () => {
      const all = [...this.subscriptions];
      this.subscriptions.clear();
      await Promise.allSettled(all.map((s) => s.unsubscribe()));
    })();
    return this.stopping;
  }

  async close(): Promise<void> {
    await this.stopTakingMessages();
    await this.inner.close();
  }

  /** Keeps a subscription for stopTakingMessages(); one the caller ends itself is forgotten. */
  private async remember(subscribing: Promise<Subscription>): Promise<Subscription> {
    const sub = await subscribing;
    if (this.stopping) {
      // Subscribed while shutting down: take nothing.
      await sub.unsubscribe();
      return sub;
    }
    this.subscriptions.add(sub);
    return {
      unsubscribe: async () => {
        this.subscriptions.delete(sub);
        await sub.unsubscribe();
      },
    };
  }

  /** Runs one handler call: in the sender's request context, timed, counted while in flight. */
  private async run<P, R>(subject: string, kind: Kind, received: P, handler: (payload: P) => Promise<R>): Promise<R> {
    const { payload, requestId } = takeRequestId(received);
    const inFlight = this.metrics.busHandlersInFlight.labels({ subject });
    inFlight.inc();
    const end = this.metrics.busHandlerSeconds.startTimer({ subject, kind });
    const call = () => handler(payload);
    try {
      const result = await (requestId === undefined ? call() : runWithRequestId(requestId, call));
      end({ outcome: 'ok' });
      return result;
    } catch (error) {
      end({ outcome: outcomeOf(error) });
      throw error;
    } finally {
      inFlight.dec();
    }
  }
}

/** Wraps a transport: same behaviour, plus metrics and the request id carried across. */
export function instrumentBus(bus: BusTransport, options: InstrumentBusOptions): InstrumentedBusTransport {
  return new InstrumentedBus(bus, options.metrics);
}
