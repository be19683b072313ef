/**
 * Deliveries to push gateways: one queue per gateway (scheme://host:port of data.url), each
 * with its own limit of POSTs in flight, so a slow or dead gateway holds up only its own
 * notifications. A failed POST is tried again after an exponential backoff with jitter (spec
 * Push Gateway API: "the homeserver SHOULD retry for a reasonable amount of time using
 * exponential backoff"); after maxAttempts it is dropped and logged. Everything here is in
 * memory: a notification still waiting when the process stops is lost (a missed push, never
 * data; the events stay in the log and in /sync).
 */
import type { Logger } from 'pino';
import { GatewayError, type GatewayAnswer, type GatewayClient } from './gateway-client.js';
import type { PushSenderSettings } from './push-sender-settings.js';

export interface Delivery {
  /** data.url of the pusher. */
  url: string;
  body: unknown;
  /** For logs: whose pusher and which event. */
  label: Record<string, unknown>;
  /** Called with the gateway's answer once it accepted the notification. */
  onAnswer: (answer: GatewayAnswer) => Promise<void>;
}

interface Pending {
  delivery: Delivery;
  attempt: number;
}

interface Gateway {
  queue: Pending[];
  active: number;
}

type Settings = Pick<PushSenderSettings, 'retryBaseMs' | 'retryMaxMs' | 'maxAttempts' | 'concurrencyPerGateway' | 'maxQueuedPerGateway'>;

export class GatewayQueues {
  private readonly gateways = new Map<string, Gateway>();
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  /** Deliveries not finished yet (queued, in flight or waiting for a retry). */
  private outstanding = 0;
  private idleWaiters: Array<() => void> = [];
  private stopped = false;

  constructor(
    private readonly client: GatewayClient,
    private readonly settings: Settings,
    private readonly logger: Logger,
  ) {}

  enqueue(delivery: Delivery): void {
    if (this.stopped) return;
    this.outstanding++;
    this.push({ delivery, attempt: 1 });
  }

  /** Resolves once every delivery so far has been delivered or dropped (tests, clean stops). */
  idle(): Promise<void> {
    if (this.outstanding === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Drops what waits; POSTs in flight end on their own (the client's agents are closed by the owner). */
  stop(): void {
    this.stopped = true;
    for (const t of this.retryTimers) clearTimeout(t);
    this.retryTimers.clear();
    for (const g of this.gateways.values()) g.queue.length = 0;
    this.gateways.clear();
    this.outstanding = 0;
    this.settleIdle();
  }

  private push(pending: Pending): void {
    const key = gatewayKey(pending.delivery.url);
    let gateway = this.gateways.get(key);
    if (!gateway) this.gateways.set(key, (gateway = { queue: [], active: 0 }));
    gateway.queue.push(pending);
    if (gateway.queue.length > this.settings.maxQueuedPerGateway) {
      const dropped = gateway.queue.shift()!;
      this.logger.warn({ gateway: key, ...dropped.delivery.label }, 'push: gateway queue full, oldest notification dropped');
      this.finish();
    }
    this.drain(key, gateway);
  }

  private drain(key: string, gateway: Gateway): void {
    while (!this.stopped && gateway.active < this.settings.concurrencyPerGateway && gateway.queue.length > 0) {
      const pending = gateway.queue.shift()!;
      gateway.active++;
      void this.attempt(pending).finally(() => {
        gateway.active--;
        if (gateway.active === 0 && gateway.queue.length === 0 && this.gateways.get(key) === gateway) this.gateways.delete(key);
        else this.drain(key, gateway);
      });
    }
  }

  private async attempt(pending: Pending): Promise<void> {
    const { delivery, attempt } = pending;
    let answer: GatewayAnswer;
    try {
      answer = await this.client.notify(delivery.url, delivery.body);
    } catch (err) {
      if (this.stopped) return;
      const retryable = !(err instanceof GatewayError) || err.retryable;
      if (retryable && attempt < this.settings.maxAttempts) {
        const delay = this.backoff(attempt);
        this.logger.debug({ err, ...delivery.label, attempt, retryInMs: delay }, 'push: gateway failed, will retry');
        const timer = setTimeout(() => {
          this.retryTimers.delete(timer);
          if (!this.stopped) this.push({ delivery, attempt: attempt + 1 });
        }, delay);
        this.retryTimers.add(timer);
        return;
      }
      this.logger.warn({ err, ...delivery.label, attempt }, retryable ? 'push: gateway kept failing, notification dropped' : 'push: gateway refused, notification dropped');
      this.finish();
      return;
    }
    try {
      await delivery.onAnswer(answer);
    } catch (err) {
      this.logger.warn({ err, ...delivery.label }, 'push: handling the gateway answer failed');
    }
    this.finish();
  }

  /** retryBaseMs doubled per attempt, capped, with up to 20% jitter so retries of many pushers spread out. */
  private backoff(attempt: number): number {
    const raw = Math.min(this.settings.retryMaxMs, this.settings.retryBaseMs * 2 ** (attempt - 1));
    return Math.round(raw * (0.8 + Math.random() * 0.2));
  }

  private finish(): void {
    if (this.stopped) return;
    this.outstanding--;
    if (this.outstanding === 0) this.settleIdle();
  }

  private settleIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}

/** The queue a URL belongs to: its origin (scheme, host, port). */
function gatewayKey(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}
