/**
 * The writer of the event log: takes append requests, commits them in groups, then announces
 * the committed events on stream.events in position order.
 *
 * Group commit: while one transaction runs, new requests queue up and go together in the
 * next one. Stale or duplicate requests are refused alone (appendGroup checks them up front);
 * any other failure retries the group's requests one transaction each, so one bad request
 * never sinks the others. The global stream counter is locked first in every transaction, so writers never
 * deadlock on room rows and commit order is position order (a consumer reading
 * "position > cursor" never misses a later commit with a lower position).
 */
import {
  BusError, DUPLICATE_TXN, PERSISTENCE_APPEND, STALE_SEQUENCE, STREAM_EVENTS,
  type AppendReply, type AppendRequest, type BusTransport, type StreamEventNotification, type Subscription,
} from '@tessera/bus';
import {
  appendGroup, DuplicateClientTxnError, internBatchNames, lockStreamCounter, StaleSequenceError,
  type AppendBatchResult, type Db, type GroupOutcome,
} from '@tessera/storage';

export const PERSISTENCE_QUEUE = 'persistence';
/** Requests per transaction: large enough to amortize the commit, small enough to keep latency low. */
const MAX_GROUP = 100;

interface Pending {
  request: AppendRequest;
  resolve: (reply: AppendReply) => void;
  reject: (error: unknown) => void;
}

export interface EventWriterLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export class EventWriter {
  private queue: Pending[] = [];
  private running = false;
  private lastPublished = 0;
  private subscription: Subscription | undefined;
  private idle: Promise<void> = Promise.resolve();
  private markIdle: () => void = () => undefined;

  constructor(
    private readonly db: Db,
    private readonly bus: BusTransport,
    private readonly logger?: EventWriterLogger,
  ) {}

  /** Answers persistence.append (queue group: any number of persistence replicas). */
  async start(): Promise<void> {
    this.subscription = await this.bus.handle<AppendRequest, AppendReply>(PERSISTENCE_APPEND, (req) => this.appendForBus(req), {
      queue: PERSISTENCE_QUEUE,
    });
  }

  async stop(): Promise<void> {
    await this.subscription?.unsubscribe();
    this.subscription = undefined;
    await this.idle;
  }

  /** Appends and maps storage refusals to their bus error codes. */
  async appendForBus(request: AppendRequest): Promise<AppendReply> {
    validate(request);
    try {
      return await this.append(request);
    } catch (err) {
      if (err instanceof StaleSequenceError) throw new BusError(STALE_SEQUENCE, err.message, { actual: err.actual });
      if (err instanceof DuplicateClientTxnError) throw new BusError(DUPLICATE_TXN, err.message, { eventId: err.eventId });
      throw err;
    }
  }

  /** Appends one room's batch; resolves once committed (notifications are published right after). */
  append(request: AppendRequest): Promise<AppendReply> {
    return new Promise((resolve, reject) => {
      this.queue.push({ request, resolve, reject });
      if (!this.running) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    this.idle = new Promise((r) => (this.markIdle = r));
    try {
      while (this.queue.length > 0) {
        const group = this.queue.splice(0, MAX_GROUP);
        await this.commitGroup(group);
      }
    } finally {
      this.running = false;
      this.markIdle();
    }
  }

  private async commitGroup(group: Pending[]): Promise<void> {
    let outcomes: GroupOutcome[];
    let previous: number;
    try {
      // Names are interned outside the transaction: a rolled-back append never leaves a cached nid behind.
      for (const p of group) await internBatchNames(this.db, p.request, this.db);
      ({ outcomes, previous } = await this.db.transaction(async (tx) => {
        const start = await lockStreamCounter(tx);
        // The counter is saved by the group's last statement (nothing to save when nothing went in).
        const done = await appendGroup(tx, group.map((p) => p.request), start + 1, this.db, { saveStreamCounter: true });
        return { outcomes: done.outcomes, previous: start };
      }));
    } catch (error) {
      if (group.length > 1) {
        // One bad request must not sink the others: retry them one transaction each.
        for (const p of group) await this.commitGroup([p]);
      } else {
        group[0]!.reject(error);
      }
      return;
    }
    const published = this.notifications(group, outcomes, previous);
    group.forEach((p, i) => {
      const o = outcomes[i]!;
      if (o.ok) p.resolve({ sequence: o.result.sequence, events: o.result.events });
      else p.reject(o.error);
    });
    for (const n of published) {
      // The log is the truth: a lost notification costs a consumer latency, never data.
      await this.bus.publish(STREAM_EVENTS, n).catch((err) => this.logger?.warn({ err, position: n.position }, 'publishing stream.events failed'));
    }
  }

  private notifications(group: Pending[], outcomes: Array<{ ok: boolean; result?: AppendBatchResult }>, previousPosition: number): StreamEventNotification[] {
    const out: StreamEventNotification[] = [];
    let previous = Math.max(previousPosition, this.lastPublished === 0 ? previousPosition : this.lastPublished);
    group.forEach((p, i) => {
      const o = outcomes[i]!;
      if (!o.ok || !o.result) return;
      const req = p.request;
      const timeline = o.result.events.filter((e) => e.streamPos !== null && !e.duplicate);
      const batchIds = new Set(req.events.map((e) => e.eventId));
      const orphanState = req.currentStateChanges.filter((c) => !batchIds.has(c[2]));
      timeline.forEach((appended, j) => {
        const e = req.events.find((x) => x.eventId === appended.eventId)!;
        const adds = req.currentStateChanges.filter((c) => c[2] === e.eventId);
        if (j === timeline.length - 1) adds.push(...orphanState);
        const n: StreamEventNotification = {
          position: appended.streamPos!,
          previousPosition: previous,
          roomId: req.roomId,
          eventId: e.eventId,
          type: e.type,
          sender: e.sender,
          originServerTs: e.originServerTs,
          local: e.local ?? false,
          roomVersion: req.roomVersion,
          addsState: adds,
        };
        if (e.stateKey !== null) n.stateKey = e.stateKey;
        if (e.type === 'm.room.member' && e.stateKey !== null && adds.some((c) => c[2] === e.eventId)) {
          const content = (e.json.content ?? {}) as Record<string, unknown>;
          n.membership = { userId: e.stateKey, membership: String(content.membership ?? 'leave') };
        }
        const txn = [...(req.clientTxn ? [req.clientTxn] : []), ...(req.clientTxns ?? [])].find((t) => t.eventId === e.eventId);
        if (txn) n.transactionId = { userId: txn.userId, deviceId: txn.deviceId, txnId: txn.txnId };
        if (e.type === 'm.room.redaction') {
          const redacts = (e.json.redacts ?? (e.json.content as Record<string, unknown> | undefined)?.redacts) as string | undefined;
          if (typeof redacts === 'string') n.redacts = redacts;
        }
        out.push(n);
        previous = n.position;
      });
    });
    this.lastPublished = previous;
    return out;
  }
}

function validate(req: AppendRequest): void {
  const bad = (why: string) => new BusError('M_BAD_JSON', `persistence.append: ${why}`);
  if (!req || typeof req !== 'object') throw bad('the request is not an object');
  if (typeof req.roomId !== 'string' || typeof req.roomVersion !== 'string') throw bad('roomId and roomVersion must be strings');
  if (!Number.isSafeInteger(req.expectedSequence) || req.expectedSequence < 0) throw bad('expectedSequence must be a non-negative integer');
  if (!Array.isArray(req.events) || req.events.length === 0) throw bad('events must be a non-empty list');
  if (!Array.isArray(req.currentStateChanges)) throw bad('currentStateChanges must be a list');
  for (const e of req.events) {
    if (typeof e?.eventId !== 'string' || typeof e.type !== 'string' || typeof e.sender !== 'string' || typeof e.json !== 'object') {
      throw bad('each event needs eventId, type, sender and json');
    }
    if (!Array.isArray(e.prevEvents) || !Array.isArray(e.authEvents)) throw bad(`event ${e.eventId}: prevEvents and authEvents must be lists`);
  }
}
