/**
 * The writer of the event log: takes append requests, commits them in groups, then announces
 * the committed events on stream.events in position order.
 *
 * Group commit: while transactions run, new requests queue up and go together in the next
 * one. Stale or duplicate requests are refused alone (appendGroup checks them up front); any
 * other failure retries the group's requests one transaction each, so one bad request never
 * sinks the others.
 *
 * Pipelined: up to PIPELINE_DEPTH group transactions run at once on their own connections, so
 * the next group is written while the one before waits for its commit (the WAL flush, several
 * ms on this kind of disk). Each group reserves its stream positions up front, one per event
 * it carries (positions of events refused or found duplicate stay unused: gaps are harmless,
 * readers only ever ask for "position > cursor"). Its last statement claims its range on the
 * stream counter row (claimStreamRange), issued only after the previous group's claim: that
 * row's lock makes a group wait for the previous one's commit, so commit order is position
 * order (a consumer reading "position > cursor" never misses a later commit with a lower
 * position). A claim finding the counter elsewhere (the previous group failed, or another
 * writer appended: a second persistence replica, an out-of-band membership) rolls the group
 * back; once the pipeline is empty its requests are retried one transaction each, with the
 * counter locked first as every writer did before pipelining, so they always get their turn.
 * (Two busy persistence replicas thus often fall back to that serial path: they add
 * availability, not throughput.)
 */
import {
  BusError, DUPLICATE_TXN, PERSISTENCE_APPEND, PERSISTENCE_APPEND_MANY, STALE_SEQUENCE, STREAM_EVENTS, toWireError,
  type AppendManyReply, type AppendManyRequest, type AppendReply, type AppendRequest, type BusTransport, type StreamEventNotification, type Subscription,
} from '@tessera/bus';
import {
  appendGroup, claimStreamRange, DuplicateClientTxnError, internBatchNames, lockStreamCounter, readStreamCounter, StaleSequenceError,
  type AppendBatchResult, type Db, type GroupOutcome,
} from '@tessera/storage';

export const PERSISTENCE_QUEUE = 'persistence';
/** Requests per transaction: large enough to amortize the commit, small enough to keep latency low. */
const MAX_GROUP = 100;
/** Group transactions in flight at once: two overlap one group's commit with the next one's writes. */
const PIPELINE_DEPTH = 2;

/** The stream counter was not where this group expected it: roll back, retry from the stored counter. */
class CounterMovedError extends Error {
  override readonly name = 'CounterMovedError';
}

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
  private readonly subscriptions: Subscription[] = [];
  private idle: Promise<void> = Promise.resolve();
  private markIdle: () => void = () => undefined;
  /**
   * The last stream position used by the latest started group once it has given out its
   * positions (its append is written); the stored counter when nothing is in flight. The next
   * group numbers its events from there, so positions have no gaps.
   */
  private lastEnd: Promise<number> | undefined;
  /** Settles when the latest started group has issued its claim on the counter (or ended). */
  private lastClaim: Promise<void> = Promise.resolve();
  /** Settles when the latest started group's notifications are out: groups publish in position order. */
  private lastPublish: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Db,
    private readonly bus: BusTransport,
    private readonly logger?: EventWriterLogger,
  ) {}

  /** Answers persistence.append and persistence.append-many (queue group: any number of persistence replicas). */
  async start(): Promise<void> {
    this.subscriptions.push(
      await this.bus.handle<AppendRequest, AppendReply>(PERSISTENCE_APPEND, (req) => this.appendForBus(req), { queue: PERSISTENCE_QUEUE }),
      await this.bus.handle<AppendManyRequest, AppendManyReply>(PERSISTENCE_APPEND_MANY, (req) => this.appendManyForBus(req), { queue: PERSISTENCE_QUEUE }),
    );
  }

  async stop(): Promise<void> {
    const subscriptions = this.subscriptions.splice(0);
    for (const s of subscriptions) await s.unsubscribe();
    await this.idle;
  }

  /**
   * Several rooms' appends: queued together (so they share a group commit), each answered as
   * persistence.append would answer it. A malformed message is refused whole.
   */
  async appendManyForBus(request: AppendManyRequest): Promise<AppendManyReply> {
    if (!request || typeof request !== 'object' || !Array.isArray(request.appends)) {
      throw new BusError('M_BAD_JSON', 'persistence.append-many needs { appends: AppendRequest[] }');
    }
    const settled = await Promise.allSettled(request.appends.map((a) => this.appendForBus(a)));
    return {
      outcomes: settled.map((s) => (s.status === 'fulfilled' ? { ok: true as const, reply: s.value } : { ok: false as const, error: toWireError(s.reason, PERSISTENCE_APPEND) })),
    };
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
    const inFlight = new Set<Promise<void>>();
    let failed: Pending[] = [];
    try {
      while (this.queue.length > 0 || inFlight.size > 0) {
        while (this.queue.length > 0 && inFlight.size < PIPELINE_DEPTH && failed.length === 0) {
          const group = this.queue.splice(0, MAX_GROUP);
          const run: Promise<void> = this.runGroup(group)
            .then((outcome) => {
              // Retried alone once the pipeline is empty (the failure may be a later group's
              // consequence of an earlier one's: retried, not refused).
              if (outcome !== true) failed.push(...group);
            })
            .finally(() => inFlight.delete(run));
          inFlight.add(run);
        }
        if (inFlight.size > 0) await Promise.race(inFlight);
        if (failed.length > 0 && inFlight.size === 0) {
          // Nothing in flight: the counter as stored is the truth again. Retry one request per
          // transaction, so one bad request never sinks the others.
          const retry = failed;
          failed = [];
          this.lastEnd = undefined;
          for (const p of retry) await this.commitAlone(p);
        }
      }
    } finally {
      this.running = false;
      this.markIdle();
    }
  }

  /**
   * One request in its own transaction, after a group failed: the counter is locked first (so
   * another writer cannot move it meanwhile: this always gets its turn), positions follow it.
   */
  private async commitAlone(p: Pending): Promise<void> {
    let outcome: GroupOutcome;
    let previous: number;
    try {
      await internBatchNames(this.db, p.request, this.db);
      ({ outcome, previous } = await this.db.transaction(async (tx) => {
        const start = await lockStreamCounter(tx);
        const done = await appendGroup(tx, [p.request], start + 1, this.db, { saveStreamCounter: true });
        return { outcome: done.outcomes[0]!, previous: start };
      }));
    } catch (error) {
      p.reject(error);
      return;
    }
    await this.publish(this.settle([p], [outcome], previous));
  }

  /** Answers each request of a committed group; returns the notifications to publish. */
  private settle(group: Pending[], outcomes: GroupOutcome[], previousPosition: number): StreamEventNotification[] {
    const notifications = this.notifications(group, outcomes, previousPosition);
    group.forEach((p, i) => {
      const o = outcomes[i]!;
      if (o.ok) p.resolve({ sequence: o.result.sequence, events: o.result.events });
      else p.reject(o.error);
    });
    return notifications;
  }

  private async publish(notifications: StreamEventNotification[]): Promise<void> {
    for (const n of notifications) {
      // The log is the truth: a lost notification costs a consumer latency, never data.
      await this.bus.publish(STREAM_EVENTS, n).catch((err) => this.logger?.warn({ err, position: n.position }, 'publishing stream.events failed'));
    }
  }

  /** Runs one group transaction: true when committed (each request answered), else the error. */
  private async runGroup(group: Pending[]): Promise<true | unknown> {
    // Names are interned outside the transaction: a rolled-back append never leaves a cached nid behind.
    try {
      for (const p of group) await internBatchNames(this.db, p.request, this.db);
    } catch (error) {
      return error;
    }
    // Chained in start order: positions follow the previous group's, the claim follows its claim.
    const startAfter = this.lastEnd ?? readStreamCounter(this.db);
    startAfter.catch(() => undefined);
    let ended: (position: number) => void = () => undefined;
    const end = new Promise<number>((r) => (ended = r));
    this.lastEnd = end;
    const previousClaim = this.lastClaim;
    let claimed: () => void = () => undefined;
    this.lastClaim = new Promise((r) => (claimed = r));
    const previousPublish = this.lastPublish;
    let published: () => void = () => undefined;
    this.lastPublish = new Promise((r) => (published = r));
    let outcomes: GroupOutcome[];
    let expected = 0;
    try {
      expected = await startAfter;
      outcomes = await this.db.transaction(async (tx) => {
        const done = await appendGroup(tx, group.map((p) => p.request), async () => expected + 1, this.db);
        // The next group may now number its events and write them while this one commits.
        ended(done.nextPosition - 1);
        await previousClaim;
        const ok = await claimStreamRange(tx, expected, done.nextPosition - 1);
        claimed();
        if (!ok) throw new CounterMovedError(`the stream counter is not at ${expected}: another append went first`);
        return done.outcomes;
      });
    } catch (error) {
      // Nothing of this group is stored. A later group that numbered its events after ours
      // fails its claim and is retried from the stored counter.
      ended(expected);
      claimed();
      published();
      return error;
    }
    const notifications = this.settle(group, outcomes, expected);
    await previousPublish;
    await this.publish(notifications);
    published();
    return true;
  }

  private notifications(group: Pending[], outcomes: Array<{ ok: boolean; result?: AppendBatchResult }>, previousPosition: number): StreamEventNotification[] {
    const out: StreamEventNotification[] = [];
    // Exact: every position up to previousPosition is committed (the claim checked it).
    let previous = previousPosition;
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
        if (n.local) n.queuedForServers = appended.queuedForServers === true;
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
    // Out-of-band memberships were given positions after all of the group's events.
    const outOfBand: StreamEventNotification[] = [];
    group.forEach((p, i) => {
      const o = outcomes[i]!;
      const m = p.request.outOfBandMembership;
      if (!o.ok || !o.result || o.result.outOfBandPosition === undefined || !m) return;
      const e = p.request.events.find((x) => x.eventId === m.eventId)!;
      outOfBand.push({
        position: o.result.outOfBandPosition,
        previousPosition: 0,
        roomId: p.request.roomId,
        eventId: e.eventId,
        type: e.type,
        ...(e.stateKey !== null ? { stateKey: e.stateKey } : {}),
        sender: e.sender,
        originServerTs: e.originServerTs,
        local: e.local ?? false,
        roomVersion: p.request.roomVersion,
        addsState: [],
        membership: { userId: m.userId, membership: m.membership },
      });
    });
    for (const n of outOfBand.sort((a, b) => a.position - b.position)) {
      n.previousPosition = previous;
      out.push(n);
      previous = n.position;
    }
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
  const m = req.outOfBandMembership;
  if (m !== undefined && m !== null) {
    if (typeof m.userId !== 'string' || typeof m.membership !== 'string' || typeof m.eventId !== 'string') throw bad('outOfBandMembership needs userId, membership and eventId');
    if (!req.events.some((e) => e.eventId === m.eventId)) throw bad(`outOfBandMembership: event ${m.eventId} is not in the batch`);
  }
}
