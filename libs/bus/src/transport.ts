/**
 * The bus: one interface, two transports (NATS for the distributed mode, in-process for the
 * embedded default). Subjects are the catalog's names (see subjects.ts); a transport adds its
 * own prefix so that test runs and deployments never collide.
 *
 * Payloads are plain JSON values. Durability never rests on the bus (DESIGN): a lost
 * notification costs latency; consumers catch up from the event log.
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

export interface BusTransport {
  /** Request/reply: one handler (of a queue group) answers. A handler's thrown BusError reaches the caller. */
  request<Req, Res>(subject: string, payload: Req, options?: RequestOptions): Promise<Res>;
  handle<Req, Res>(subject: string, handler: (payload: Req) => Promise<Res>, options?: HandlerOptions): Promise<Subscription>;
  /** Fire-and-forget notification to every subscriber (or one per queue group). */
  publish<T>(subject: string, payload: T): Promise<void>;
  subscribe<T>(subject: string, handler: (payload: T) => void | Promise<void>, options?: HandlerOptions): Promise<Subscription>;
  close(): Promise<void>;
}
