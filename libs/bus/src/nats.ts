import { createRequire } from 'node:module';
import type {
  JetStreamClient,
  JetStreamManager,
  Msg,
  NatsConnection,
  Subscription as NatsSubscription,
} from 'nats';

type NatsLibrary = typeof import('nats');
let natsLibrary: NatsLibrary | undefined;
/** The NATS client, loaded on first use: the embedded default (in-process bus) never pays for its code. */
function nats(): NatsLibrary {
  natsLibrary ??= createRequire(import.meta.url)('nats') as NatsLibrary;
  return natsLibrary;
}
import { BUS_CLOSED, BusError, BusNoRespondersError, BusTimeoutError, fromWireError, toWireError, type WireError } from './errors.js';
import { assertSubject, decodeJson, encodeJson } from './json.js';
import {
  DEFAULT_REQUEST_TIMEOUT_MS,
  type BusTransport,
  type DurableConsumerOptions,
  type HandlerOptions,
  type RequestOptions,
  type Subscription,
} from './transport.js';

export interface NatsBusOptions {
  /** nats://host:port (a comma-separated list for a cluster). */
  url: string;
  /** Put before every subject (`<prefix>.<subject>`), so that deployments and test runs never collide. */
  prefix: string;
  /** Connection name, shown by the NATS server's monitoring (e.g. 'room-server-1'). */
  name: string;
  /** Where failures of subscribe/consume handlers are reported (they have no caller). Default console.error. */
  onHandlerError?: (error: unknown, subject: string) => void;
  /** How long JetStream keeps durable messages nobody consumed. Default 7 days. */
  durableMaxAgeMs?: number;
}

/** What a request handler sends back: the result, or the error a caller will rethrow. */
type Reply = { ok: true; result: unknown } | { ok: false; error: WireError };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

class NatsBus implements BusTransport {
  private readonly subscriptions = new Set<{ stop(): Promise<void> }>();
  private readonly running = new Set<Promise<unknown>>();
  private closed = false;
  private closing?: Promise<void>;
  private jsm?: Promise<JetStreamManager>;
  private js?: JetStreamClient;
  private readonly streamsReady = new Map<string, Promise<string>>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly prefix: string,
    private readonly onHandlerError: (error: unknown, subject: string) => void,
    private readonly durableMaxAgeMs: number,
  ) {}

  private full(subject: string): string {
    assertSubject(subject);
    if (this.closed) throw new BusError(BUS_CLOSED, 'the bus is closed');
    return `${this.prefix}.${subject}`;
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.running.add(promise);
    void promise.then(
      () => this.running.delete(promise),
      () => this.running.delete(promise),
    );
    return promise;
  }

  private remember(stop: () => Promise<void>): Subscription {
    const entry = { stop };
    this.subscriptions.add(entry);
    return {
      unsubscribe: async () => {
        if (!this.subscriptions.delete(entry)) return;
        await stop();
      },
    };
  }

  private natsSubscription(sub: NatsSubscription): Subscription {
    return this.remember(async () => {
      if (!sub.isClosed()) await sub.drain().catch(() => undefined);
    });
  }

  async request<Req, Res>(subject: string, payload: Req, options: RequestOptions = {}): Promise<Res> {
    const full = this.full(subject);
    const timeoutMs = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    let msg: Msg;
    try {
      msg = await this.nc.request(full, encoder.encode(encodeJson(payload, subject)), { timeout: timeoutMs });
    } catch (error) {
      if (error instanceof nats().NatsError && error.code === nats().ErrorCode.Timeout) throw new BusTimeoutError(subject, timeoutMs);
      if (error instanceof nats().NatsError && error.code === nats().ErrorCode.NoResponders) throw new BusNoRespondersError(subject);
      throw error;
    }
    const reply = decodeJson(decoder.decode(msg.data), subject) as Reply;
    if (!reply.ok) throw fromWireError(reply.error);
    return reply.result as Res;
  }

  async handle<Req, Res>(subject: string, handler: (payload: Req) => Promise<Res>, options: HandlerOptions = {}): Promise<Subscription> {
    const full = this.full(subject);
    if (options.queue !== undefined) assertSubject(options.queue, 'queue group');
    const sub = this.nc.subscribe(full, {
      queue: options.queue,
      // Callback style: requests are served concurrently, not one after another.
      callback: (err, msg) => {
        if (err) return this.onHandlerError(err, subject);
        this.track(this.serve(subject, msg, handler as (p: unknown) => Promise<unknown>));
      },
    });
    // Registered on the server before we say so: a request sent right after must find us.
    await this.nc.flush();
    return this.natsSubscription(sub);
  }

  private async serve(subject: string, msg: Msg, handler: (payload: unknown) => Promise<unknown>): Promise<void> {
    let reply: Reply;
    try {
      const result = await handler(decodeJson(decoder.decode(msg.data), subject));
      reply = { ok: true, result: result === undefined ? null : result };
    } catch (error) {
      reply = { ok: false, error: toWireError(error, subject) };
    }
    let body: string;
    try {
      body = encodeJson(reply, subject);
    } catch (error) {
      body = encodeJson({ ok: false, error: toWireError(error, subject) }, subject);
    }
    if (msg.reply && !this.nc.isClosed()) msg.respond(encoder.encode(body));
  }

  async publish<T>(subject: string, payload: T): Promise<void> {
    this.nc.publish(this.full(subject), encoder.encode(encodeJson(payload, subject)));
  }

  async subscribe<T>(subject: string, handler: (payload: T) => void | Promise<void>, options: HandlerOptions = {}): Promise<Subscription> {
    const full = this.full(subject);
    if (options.queue !== undefined) assertSubject(options.queue, 'queue group');
    const sub = this.nc.subscribe(full, { queue: options.queue });
    // One message at a time, in order (see transport.ts).
    this.track(
      (async () => {
        for await (const msg of sub) {
          try {
            await handler(decodeJson(decoder.decode(msg.data), subject) as T);
          } catch (error) {
            this.onHandlerError(error, subject);
          }
        }
      })(),
    );
    await this.nc.flush();
    return this.natsSubscription(sub);
  }

  private manager(): Promise<JetStreamManager> {
    this.jsm ??= this.nc.jetstreamManager();
    return this.jsm;
  }

  /** One stream per durable subject, created on first use; its name is derived from prefix and subject. */
  private ensureStream(subject: string, full: string): Promise<string> {
    let ready = this.streamsReady.get(full);
    if (!ready) {
      ready = (async () => {
        const name = full.replace(/[^A-Za-z0-9_-]/g, '_');
        const jsm = await this.manager();
        // Adding a stream that exists with the same config is a no-op, so racing processes are fine.
        await jsm.streams.add({ name, subjects: [full], storage: nats().StorageType.File, max_age: nats().nanos(this.durableMaxAgeMs) });
        return name;
      })();
      ready.catch(() => this.streamsReady.delete(full));
      this.streamsReady.set(full, ready);
    }
    return ready;
  }

  async publishDurable<T>(subject: string, payload: T): Promise<void> {
    const full = this.full(subject);
    const data = encoder.encode(encodeJson(payload, subject));
    await this.ensureStream(subject, full);
    this.js ??= this.nc.jetstream();
    await this.js.publish(full, data);
  }

  async consumeDurable<T>(subject: string, handler: (payload: T) => Promise<void>, options: DurableConsumerOptions): Promise<Subscription> {
    const full = this.full(subject);
    assertSubject(options.durableName, 'durable name');
    const stream = await this.ensureStream(subject, full);
    const jsm = await this.manager();
    const config = {
      durable_name: options.durableName,
      ack_policy: nats().AckPolicy.Explicit,
      ack_wait: nats().nanos(options.ackWaitMs ?? 30_000),
      max_deliver: options.maxDeliver ?? 10,
      filter_subject: full,
    };
    try {
      await jsm.consumers.add(stream, config);
    } catch {
      // It exists with other settings (an older deployment): bring it to these.
      await jsm.consumers.update(stream, options.durableName, config);
    }
    this.js ??= this.nc.jetstream();
    const consumer = await this.js.consumers.get(stream, options.durableName);
    // One message at a time: the handler runs messages one after another, and a larger pull
    // would start the ack_wait clock of buffered messages early and cause needless redelivery.
    // Short-lived pull requests: one left on the server by a stopped consumer can still be
    // given a message, which then waits for ack_wait before redelivery; keep that window small.
    const messages = await consumer.consume({ max_messages: 1, expires: 5000 });
    const retryDelayMs = options.retryDelayMs ?? 1000;
    const loop = this.track(
      (async () => {
        for await (const m of messages) {
          let payload: T;
          try {
            payload = decodeJson(decoder.decode(m.data), subject) as T;
          } catch (error) {
            // Never parseable: redelivering would not help.
            this.onHandlerError(error, subject);
            m.term();
            continue;
          }
          try {
            await handler(payload);
            m.ack();
          } catch (error) {
            this.onHandlerError(error, subject);
            m.nak(retryDelayMs);
          }
        }
      })(),
    );
    return this.remember(async () => {
      messages.stop();
      await loop.catch(() => undefined);
    });
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      // Stop taking messages, let running handlers finish and reply, then flush and disconnect.
      await Promise.allSettled([...this.subscriptions].map((s) => s.stop()));
      this.subscriptions.clear();
      // New work is refused only once they are done: a running handler may still need the bus
      // (a room-server's append to persistence), and a refusal would fail its request.
      while (this.running.size > 0) await Promise.allSettled([...this.running]);
      this.closed = true;
      if (!this.nc.isClosed()) await this.nc.drain();
    })();
    return this.closing;
  }
}

/** The distributed mode's bus: NATS core for request/reply and notifications, JetStream for durable subjects. */
export async function createNatsBus(options: NatsBusOptions): Promise<BusTransport> {
  assertSubject(options.prefix, 'prefix');
  const nc = await nats().connect({ servers: options.url.split(','), name: options.name, maxReconnectAttempts: -1 });
  return new NatsBus(
    nc,
    options.prefix,
    options.onHandlerError ?? ((error, subject) => console.error(`bus: handler for ${subject} failed`, error)),
    options.durableMaxAgeMs ?? 7 * 24 * 3600 * 1000,
  );
}
