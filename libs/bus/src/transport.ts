/**
 * The bus: one interface, two transports (NATS for the distributed mode, in-process for the
 * embedded default). Subjects are the catalog's names (see subjects.ts); a transport adds its
 * own prefix so that test runs and deployments never collide.
 *
 * Payloads are plain JSON values. Durability never rests on the bus (DESIGN): a lost
 * notification costs latency; consumers catch up from the event log.
 *
 * Delivery order: request handlers run concurrently (a room-server replica serves many rooms
 * at once); a subscribe() handler gets its messages one at a time, in publish order, so that a
 * consumer of stream.events sees positions in order without its own queue.
 */
export interface Subscription {
  unsubscribe(): Promise<void>;
}

export interface RequestOptions {
  /** How long to wait for a reply before failing with BusTimeoutError. Default 10 s. */
  timeoutMs?: number;
}

export interface HandlerOptions {
  /** Queue group: among handlers in one group, each request goes to exactly one. */
  queue?: string;
}

export interface DurableConsumerOptions {
  /**
   * The consumer's durable name: its position survives restarts, and every process consuming
   * with the same name shares the work (each message to one of them).
   */
  durableName: string;
  /**
   * Redeliver a message not acknowledged within this time (handler still running or process
   * gone). Default 30 s. Also the delay a message may see when a consumer of the same name
   * stopped or crashed just as the message was handed to it.
   */
  ackWaitMs?: number;
  /** Give up on a message after this many deliveries (it is then dropped with a log line). Default 10. */
  maxDeliver?: number;
  /** Delay before redelivering a message whose handler threw. Default 1 s. */
  retryDelayMs?: number;
}

export interface BusTransport {
  /** Request/reply: one handler (of a queue group) answers. A handler's thrown BusError reaches the caller. */
  request<Req, Res>(subject: string, payload: Req, options?: RequestOptions): Promise<Res>;
  handle<Req, Res>(subject: string, handler: (payload: Req) => Promise<Res>, options?: HandlerOptions): Promise<Subscription>;
  /** Fire-and-forget notification to every subscriber (or one per queue group). */
  publish<T>(subject: string, payload: T): Promise<void>;
  subscribe<T>(subject: string, handler: (payload: T) => void | Promise<void>, options?: HandlerOptions): Promise<Subscription>;
  /**
   * At-least-once messages that survive a restart of the consumer (JetStream on NATS; in the
   * in-process transport, for the life of the process). Resolves once the transport has
   * stored the message.
   */
  publishDurable<T>(subject: string, payload: T): Promise<void>;
  /**
   * Consumes a durable subject: a handler that resolves acknowledges the message, one that
   * throws has it redelivered after retryDelayMs. Handlers must be idempotent.
   */
  consumeDurable<T>(subject: string, handler: (payload: T) => Promise<void>, options: DurableConsumerOptions): Promise<Subscription>;
  /** Stops taking new messages, lets running handlers finish and their replies go out, then disconnects. */
  close(): Promise<void>;
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
