/**
 * The decider: every event that enters a room passes here. Local events are built and
 * authorized against the current state (which is the state before them: they cite every
 * forward extremity); events from other servers are checked against their auth events, the
 * state before them (state resolution when prev_events fork) and, for soft failure, the current
 * state. Then persistence appends them, guarded by the room's sequence: a stale decision is
 * refused there and decided again here.
 *
 * One event in flight per room per replica (an in-process lock); across replicas correctness
 * rests on the sequence guard alone.
 */
import {
  AuthError, authorize, checkAuthEvents, checkEventFormat, computeEventId, EventFormatError, getRoomVersion,
  pduToRoomEvent, PowerContext, redactEvent, resolveState, splitStateKey, stateKey,
  type Pdu, type RoomEvent, type RoomVersion, type StateMap,
} from '@tessera/protocol';
import { appendFields } from './append-fields.js';
import {
  BUS_NO_RESPONDERS, BUS_TIMEOUT, BusError, DUPLICATE_TXN, fromWireError, PERSISTENCE_APPEND, PERSISTENCE_APPEND_MANY, STALE_SEQUENCE,
  type AppendEvent, type AppendManyReply, type AppendManyRequest, type AppendReply, type AppendRequest, type BusTransport, type InputPdusReply, type InputPdusRequest, type PduResult, type StateTriple,
} from '@tessera/bus';
import { findClientTxns, type StoredEvent } from '@tessera/storage';
import { buildLocalEvent, chooseAuthEvents, MAX_PREV_EVENTS, type LocalEventSpec, type PrevEvent, type Signer } from './event-builder.js';
import { RoomStore, type RoomView } from './room-view.js';

/** Attempts per operation when other replicas keep moving the room. */
const MAX_ATTEMPTS = 100;
/** Queued sends of one room decided and appended together. */
const MAX_BATCH = 50;
/** Rooms' appends sent to persistence in one message at most (persistence.append-many). */
const MAX_APPENDS_PER_MESSAGE = 32;
/** After persistence did not answer persistence.append-many (an older version during a rolling upgrade), appends go one by one this long. */
const APPEND_MANY_RETRY_MS = 60_000;
const APPEND_TIMEOUT_MS = 5_000;

interface PendingAppend {
  request: AppendRequest;
  resolve: (reply: AppendReply) => void;
  reject: (error: unknown) => void;
}

interface QueuedSend {
  spec: LocalEventSpec;
  options: LocalSendOptions;
  resolve: (r: LocalSendResult) => void;
  reject: (e: unknown) => void;
}

export interface LocalSendOptions {
  txn?: { userId: string; deviceId: string; txnId: string };
  /** Extra checks against the state before the event (e.g. unban needs a banned target). */
  precheck?: (lookup: (type: string, key: string) => RoomEvent | undefined, view: RoomView) => void;
  /** After authorization, before the append: may return the event with signatures added (a remote invitee's server signs invites). */
  beforeAppend?: (pdu: Pdu, roomVersion: RoomVersion) => Promise<Pdu>;
}

export interface LocalSendResult {
  eventId: string;
  streamPos: number | null;
}

export class RoomLocks {
  private tails = new Map<string, Promise<unknown>>();

  run<T>(roomId: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(roomId) ?? Promise.resolve();
    const result = previous.then(fn, fn);
    const tail = result.catch(() => undefined);
    this.tails.set(roomId, tail);
    void tail.then(() => {
      if (this.tails.get(roomId) === tail) this.tails.delete(roomId);
    });
    return result;
  }
}

export function forbidden(err: AuthError): BusError {
  return new BusError('M_FORBIDDEN', err.message, { rule: err.rule });
}

function diffStates(from: StateMap, to: StateMap): StateTriple[] {
  const changes: StateTriple[] = [];
  for (const [k, id] of to) {
    if (from.get(k) !== id) {
      const [t, sk] = splitStateKey(k);
      changes.push([t, sk, id]);
    }
  }
  return changes;
}

export class Decider {
  readonly locks = new RoomLocks();
  /** Appends asked for in this event-loop turn, sent together at its end (see append). */
  private pendingAppends: PendingAppend[] = [];
  private appendManyUnavailableUntil = 0;

  constructor(
    readonly store: RoomStore,
    private readonly bus: BusTransport,
    readonly signer: Signer,
    /**
     * Send the appends of one event-loop turn in one message (persistence.append-many). Worth
     * it over a network bus, where each message costs both ends and the broker; on the
     * in-process bus a message costs nothing and waiting for the turn's end only delays
     * (measured: embedded 1,000-room rate 933-1,028 events/s bundled, 1,102-1,360 not).
     */
    private readonly bundleAppends = false,
  ) {}

  /**
   * Appends one room's decided events. The appends asked for in one event-loop turn (this
   * replica deciding many rooms at once) go to persistence in one message: one bus round trip
   * instead of one per room, and they share a group commit there. Each is answered on its own.
   */
  append(request: AppendRequest): Promise<AppendReply> {
    return new Promise((resolve, reject) => {
      if (!this.bundleAppends) {
        this.appendOne({ request, resolve, reject });
        return;
      }
      this.pendingAppends.push({ request, resolve, reject });
      if (this.pendingAppends.length === 1) setImmediate(() => this.flushAppends());
    });
  }

  private flushAppends(): void {
    const all = this.pendingAppends;
    this.pendingAppends = [];
    for (let i = 0; i < all.length; i += MAX_APPENDS_PER_MESSAGE) {
      const chunk = all.slice(i, i + MAX_APPENDS_PER_MESSAGE);
      if (chunk.length === 1 || Date.now() < this.appendManyUnavailableUntil) chunk.forEach((p) => this.appendOne(p));
      else void this.appendMany(chunk);
    }
  }

  private appendOne(p: PendingAppend): void {
    this.bus.request<AppendRequest, AppendReply>(PERSISTENCE_APPEND, p.request, { timeoutMs: APPEND_TIMEOUT_MS }).then(p.resolve, p.reject);
  }

  private async appendMany(chunk: PendingAppend[]): Promise<void> {
    let reply: AppendManyReply;
    try {
      reply = await this.bus.request<AppendManyRequest, AppendManyReply>(PERSISTENCE_APPEND_MANY, { appends: chunk.map((p) => p.request) }, { timeoutMs: APPEND_TIMEOUT_MS });
    } catch (error) {
      // Nobody answers append_many (an older persistence), or the message could not be sent (too
      // large for the bus): persistence never saw it, so each append goes on its own.
      if (!(error instanceof BusError) || error.code === BUS_NO_RESPONDERS) {
        if (error instanceof BusError) this.appendManyUnavailableUntil = Date.now() + APPEND_MANY_RETRY_MS;
        chunk.forEach((p) => this.appendOne(p));
        return;
      }
      // A timeout or a failure of the whole message: each append fails as it would alone.
      chunk.forEach((p) => p.reject(error));
      return;
    }
    chunk.forEach((p, i) => {
      const outcome = reply.outcomes?.[i];
      if (!outcome) p.reject(new BusError(BUS_TIMEOUT, 'persistence.append-many answered fewer outcomes than appends'));
      else if (outcome.ok) p.resolve(outcome.reply);
      else p.reject(fromWireError(outcome.error));
    });
  }

  /** Caches an event this replica appended as it is now stored (not a duplicate: then the stored one stands). */
  cacheAppended(roomId: string, e: AppendEvent, event: RoomEvent, r: AppendReply['events'][number]): void {
    if (r.duplicate) return;
    this.store.cacheEvent(event, {
      eventNid: r.eventNid, eventId: e.eventId, roomId, type: e.type, stateKey: e.stateKey, sender: e.sender, depth: e.depth,
      originServerTs: e.originServerTs, streamPos: r.streamPos, outlier: e.outlier ?? false, softFailed: e.softFailed ?? false,
      rejectedReason: e.rejectedReason ?? null, stateBeforeNid: r.stateBeforeNid, stateAfterNid: r.stateAfterNid, redactedBy: null, json: e.json,
    });
  }

  /** Loads the events of some state keys of `state` for synchronous auth lookups. */
  async lookupFor(state: StateMap, keys: Array<[string, string]>, roomVersion: RoomVersion): Promise<(type: string, key: string) => RoomEvent | undefined> {
    const ids = keys.map(([t, k]) => state.get(stateKey(t, k))).filter((x): x is string => x !== undefined);
    const events = await this.store.getEvents(ids, roomVersion);
    return (type, key) => {
      const id = state.get(stateKey(type, key));
      return id === undefined ? undefined : events.get(id)?.event;
    };
  }

  /** The keys the auth rules may consult for an event (its auth selection plus the sender's and target's membership). */
  authKeys(event: { type: string; sender: string; state_key?: string; content: Record<string, any> }): Array<[string, string]> {
    const keys: Array<[string, string]> = [
      ['m.room.create', ''], ['m.room.power_levels', ''], ['m.room.join_rules', ''], ['m.room.member', event.sender],
    ];
    if (event.type === 'm.room.member' && typeof event.state_key === 'string') keys.push(['m.room.member', event.state_key]);
    const via = event.content?.join_authorised_via_users_server;
    if (typeof via === 'string') keys.push(['m.room.member', via]);
    const token = event.content?.third_party_invite?.signed?.token;
    if (typeof token === 'string') keys.push(['m.room.third_party_invite', token]);
    return keys;
  }

  /**
   * Builds, authorizes and appends a local user's event, retrying on a stale sequence.
   * Refusals: M_NOT_FOUND (no such room here), M_FORBIDDEN (auth rules).
   *
   * Sends that queue up behind a busy room are decided together: built as a chain (each
   * citing the one before), authorized one by one against the state the chain makes, and
   * appended in one request. A refused send is refused alone.
   */
  sendLocal(roomId: string, spec: LocalEventSpec, options: LocalSendOptions = {}): Promise<LocalSendResult> {
    return new Promise((resolve, reject) => {
      let queue = this.pending.get(roomId);
      if (!queue) {
        queue = [];
        this.pending.set(roomId, queue);
        void this.locks.run(roomId, () => this.drainRoom(roomId));
      }
      queue.push({ spec, options, resolve, reject });
    });
  }

  private readonly pending = new Map<string, QueuedSend[]>();

  private async drainRoom(roomId: string): Promise<void> {
    const queue = this.pending.get(roomId) ?? [];
    // Sends arriving from now on start a new queue, decided after this one (the room lock).
    this.pending.delete(roomId);
    for (let i = 0; i < queue.length; i += MAX_BATCH) {
      const items = queue.slice(i, i + MAX_BATCH);
      await this.sendBatch(roomId, items).catch((err) => items.forEach((it) => it.reject(err)));
    }
  }

  /** Resolves the sends whose client transaction already produced an event; returns the rest. */
  private async withoutDoneTxns(items: QueuedSend[]): Promise<QueuedSend[]> {
    const txns = items.flatMap((it) => (it.options.txn ? [it.options.txn] : []));
    const done = await findClientTxns(this.store.db, txns);
    if (done.size === 0) return items;
    return items.filter((it) => {
      const t = it.options.txn;
      const eventId = t ? done.get(JSON.stringify([t.userId, t.deviceId, t.txnId])) : undefined;
      if (eventId) it.resolve({ eventId, streamPos: null });
      return !eventId;
    });
  }

  private async sendBatch(roomId: string, items: QueuedSend[]): Promise<void> {
    // The first attempt trusts what this replica knows: rooms are routed to the replica that
    // owns them (room partitions), so its cached view is almost always current, and a repeated
    // client transaction is rare (a client retrying). Persistence refuses both anyway (stale
    // sequence, duplicate transaction, whose reply names the earlier event); only then is the
    // database read here. A refusal is never final on the cached view: it is decided again on
    // the stored room (the view may predate another replica's appends).
    let live = items;
    for (let attempt = 0; attempt < MAX_ATTEMPTS && live.length > 0; attempt++) {
      const view = attempt === 0 ? await this.store.view(roomId) : await this.store.reload(roomId);
      if (!view) {
        live.forEach((it) => it.reject(new BusError('M_NOT_FOUND', `room ${roomId} is not known to this server`)));
        return;
      }
      // An earlier attempt may have committed before its reply was lost.
      if (attempt > 0) live = await this.withoutDoneTxns(live);
      if (live.length === 0) return;
      try {
        const chain = await this.buildChain(view, live);
        if (chain.included.length > 0) {
          const reply = await this.append(chain.request);
          const cited = new Set(chain.citedExtremities);
          const last = chain.included[chain.included.length - 1]!;
          const lastAppended = reply.events[reply.events.length - 1]!;
          // The view moves with our own append: no reload for the next send.
          this.store.remember({
            ...view,
            sequence: reply.sequence,
            state: chain.state,
            extremities: [...view.extremities.filter((e) => !cited.has(e.eventId)), { eventId: last.eventId, depth: last.depth, stateAfterNid: lastAppended.stateAfterNid }],
          });
          // What we just built is what is stored: the next send needs no read of it.
          this.store.cacheSnapshot(lastAppended.stateAfterNid, chain.state);
          chain.request.events.forEach((e, i) => this.cacheAppended(view.roomId, e, chain.builtEvents[i]!, reply.events[i]!));
          chain.included.forEach((inc, i) => {
            if (inc.redacts) this.store.evictEvent(inc.redacts);
            inc.item.resolve({ eventId: inc.eventId, streamPos: reply.events[i]!.streamPos });
          });
          chain.aliases.forEach(({ item, eventId }) => item.resolve({ eventId, streamPos: null }));
        }
        if (attempt === 0 && chain.refused.length > 0) {
          // Refused against the cached view, which nothing checked: after the room's partition
          // moved between replicas it may predate another replica's appends (a join this one
          // never saw). Refusals are decided again on the stored room before they are final.
          live = chain.refused.map(({ item }) => item);
          continue;
        }
        chain.refused.forEach(({ item, error }) => item.reject(error));
        return;
      } catch (err) {
        if (err instanceof BusError && err.code === STALE_SEQUENCE) continue;
        if (err instanceof BusError && (err.code === BUS_TIMEOUT || err.code === BUS_NO_RESPONDERS)) {
          // persistence is restarting or slow: whether the append committed is unknown, so
          // decide again from the stored room (the sequence guard and txn ids keep it exact).
          await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
          continue;
        }
        if (err instanceof BusError && err.code === DUPLICATE_TXN && live.length > 1) {
          // Another replica applied one of these transactions meanwhile: decide them one by one.
          this.store.forget(roomId);
          for (const it of live) await this.sendBatch(roomId, [it]);
          return;
        }
        if (err instanceof BusError && err.code === DUPLICATE_TXN) {
          live[0]!.resolve({ eventId: (err.details as { eventId: string }).eventId, streamPos: null });
          return;
        }
        this.store.forget(roomId);
        live.forEach((it) => it.reject(err));
        return;
      }
    }
    live.forEach((it) => it.reject(new BusError('M_UNKNOWN', `room ${roomId} changed on every one of ${MAX_ATTEMPTS} attempts; try again`)));
  }

  /** Builds and authorizes queued sends as a chain on top of the view. */
  private async buildChain(view: RoomView, items: QueuedSend[]) {
    const rv = view.roomVersion;
    const prevExtremities = [...view.extremities].sort((a, b) => b.depth - a.depth).slice(0, MAX_PREV_EVENTS);
    const state = new Map(view.state);
    const built = new Map<string, { event: RoomEvent; depth: number }>();
    const included: Array<{ item: QueuedSend; eventId: string; depth: number; redacts?: string }> = [];
    const refused: Array<{ item: QueuedSend; error: unknown }> = [];
    const events: AppendEvent[] = [];
    const currentStateChanges = new Map<string, StateTriple>();
    const txns: NonNullable<AppendRequest['clientTxns']> = [];
    const base = prevExtremities[0];
    // Read while the first event's auth events load (it is needed only for that event's state delta).
    const baseStateLoad: Promise<StateMap> = base ? this.store.snapshot(base.stateAfterNid) : Promise.resolve(new Map());
    baseStateLoad.catch(() => undefined);

    const byTxn = new Map<string, string>();
    const aliases: Array<{ item: QueuedSend; eventId: string }> = [];
    for (const item of items) {
      const { spec, options } = item;
      // The same client transaction twice in one batch: one event answers both.
      const key = options.txn ? JSON.stringify([options.txn.userId, options.txn.deviceId, options.txn.txnId]) : undefined;
      if (key && byTxn.has(key)) {
        aliases.push({ item, eventId: byTxn.get(key)! });
        continue;
      }
      const previous = events[events.length - 1];
      const prevList: Array<{ eventId: string; depth: number }> = previous ? [{ eventId: previous.eventId, depth: previous.depth }] : prevExtremities;
      const authIds = chooseAuthEvents(spec, state, rv);
      // The events the auth rules will consult are read in the same query as prev and auth
      // events (one round trip, not two); the lookup below finds them in the cache.
      const ruleIds = this.authKeys({ type: spec.type, sender: spec.sender, state_key: spec.stateKey, content: spec.content })
        .map(([t, k]) => state.get(stateKey(t, k))).filter((id): id is string => id !== undefined);
      const loaded = await this.store.getEvents([...prevList.map((p) => p.eventId), ...authIds, ...ruleIds].filter((id) => !built.has(id)), rv);
      const eventOf = (id: string) => built.get(id)?.event ?? loaded.get(id)?.event;
      const edge = (id: string, depth: number): PrevEvent => ({ eventId: id, depth, sha256: eventOf(id)?.hashes?.sha256 });
      try {
        const b = buildLocalEvent(view.roomId, rv, spec, prevList.map((p) => edge(p.eventId, p.depth)),
          authIds.map((id) => edge(id, built.get(id)?.depth ?? loaded.get(id)?.stored.depth ?? 0)), this.signer);
        const keys = this.authKeys(b.event);
        const more = await this.store.getEvents(keys.map(([t, k]) => state.get(stateKey(t, k))).filter((id): id is string => !!id && !built.has(id)), rv);
        const lookup = (type: string, key: string) => {
          const id = state.get(stateKey(type, key));
          return id === undefined ? undefined : built.get(id)?.event ?? more.get(id)?.event ?? loaded.get(id)?.event;
        };
        options.precheck?.(lookup, view);
        try {
          authorize(b.event, lookup, rv);
        } catch (err) {
          if (err instanceof AuthError) throw forbidden(err);
          throw err;
        }
        let redaction: AppendEvent['redaction'] = null;
        if (spec.type === 'm.room.redaction' && spec.redacts) redaction = await this.redactionFor(view, spec.sender, spec.redacts, lookup, true);
        // Last, once the event is authorized: a hook may involve another server (a remote
        // invitee's server signs its invite). Its refusal refuses this send alone.
        const pdu = options.beforeAppend ? await runBeforeAppend(options.beforeAppend, b.pdu, rv) : b.pdu;
        events.push({
          eventId: b.eventId,
          json: pdu as Record<string, unknown>,
          type: spec.type,
          stateKey: spec.stateKey ?? null,
          sender: spec.sender,
          depth: b.pdu.depth,
          originServerTs: b.pdu.origin_server_ts,
          prevEvents: b.event.prev_events,
          authEvents: b.event.auth_events,
          local: true,
          // The state before the first is the current state, stored relative to the deepest
          // extremity's state; each next one builds on the state after the one before.
          stateBefore: previous
            ? { base: { afterEvent: previous.eventId }, changes: [] }
            : { base: base ? { snapshotNid: base.stateAfterNid } : null, changes: diffStates(await baseStateLoad, view.state) },
          redaction,
        });
        built.set(b.eventId, { event: b.event, depth: b.pdu.depth });
        if (spec.stateKey !== undefined) {
          state.set(stateKey(spec.type, spec.stateKey), b.eventId);
          currentStateChanges.set(stateKey(spec.type, spec.stateKey), [spec.type, spec.stateKey, b.eventId]);
        }
        if (options.txn) {
          txns.push({ ...options.txn, eventId: b.eventId });
          byTxn.set(key!, b.eventId);
        }
        included.push({ item, eventId: b.eventId, depth: b.pdu.depth, redacts: redaction?.targetEventId });
      } catch (error) {
        if (!(error instanceof BusError)) throw error;
        refused.push({ item, error });
      }
    }
    const request: AppendRequest = {
      roomId: view.roomId,
      roomVersion: rv.id,
      expectedSequence: view.sequence,
      events,
      currentStateChanges: [...currentStateChanges.values()],
      clientTxns: txns,
    };
    const builtEvents = events.map((e) => built.get(e.eventId)!.event);
    return { request, included, aliases, refused, state, builtEvents, citedExtremities: included.length > 0 ? prevExtremities.map((p) => p.eventId) : [] };
  }

  /**
   * Whether a redaction takes effect on its target now (the spec's rule for servers: the
   * redacter has the redact power level, or is the target's sender / on its server). When it
   * does, the target's stored JSON is replaced by its redacted form in the same append.
   * `strict`: refuse a local user who may not redact the target (as Synapse does).
   */
  async redactionFor(
    view: RoomView,
    sender: string,
    targetId: string,
    lookup: (type: string, key: string) => RoomEvent | undefined,
    strict: boolean,
  ): Promise<AppendEvent['redaction']> {
    const rv = view.roomVersion;
    const target = (await this.store.getEvents([targetId], rv)).get(targetId);
    // An event not held here may still be redacted: the redaction is sent to the room, where
    // servers that hold the event apply it (as Synapse does; Complement's
    // TestFederationRedactSendsWithoutEvent). One of another room is refused.
    if (!target) return null;
    if (target.stored.roomId !== view.roomId) {
      if (strict) throw new BusError('M_NOT_FOUND', `event ${targetId} is not in room ${view.roomId}`);
      return null;
    }
    const power = new PowerContext(lookup('m.room.power_levels', ''), lookup('m.room.create', ''), rv);
    const domain = (u: string) => u.slice(u.indexOf(':') + 1);
    const allowed = power.userLevel(sender) >= power.level('redact') || target.event.sender === sender ||
      (!strict && domain(target.event.sender) === domain(sender));
    if (!allowed) {
      if (strict) throw new BusError('M_FORBIDDEN', `${sender} may not redact ${targetId}: it is another user's event and the redact power level is ${power.level('redact')}`);
      return null;
    }
    if (target.stored.redactedBy) return null;
    return { targetEventId: targetId, redactedJson: redactEvent(target.stored.json, rv) as Record<string, unknown> };
  }

  // -------------------------------------------------------------------------------------------
  // Events from other servers

  inputPdus(req: InputPdusRequest): Promise<InputPdusReply> {
    return this.locks.run(req.roomId, async () => {
      const results: Record<string, PduResult> = {};
      let rv: RoomVersion;
      try {
        rv = getRoomVersion(req.roomVersion);
      } catch {
        throw new BusError('M_UNSUPPORTED_ROOM_VERSION', `room version ${JSON.stringify(req.roomVersion)} is not supported`);
      }
      for (const pdu of req.outliers ?? []) {
        const id = await this.inputOne(req, rv, pdu, true, undefined, results);
        void id;
      }
      // Which of the new PDUs are stored already, in one query for the whole list (found ones
      // are cached; the others need no second look under this room lock).
      const ids = req.pdus.map((p) => {
        try {
          return computeEventId(p, rv);
        } catch {
          return undefined;
        }
      }).filter((id): id is string => id !== undefined);
      const found = await this.store.getEvents(ids, rv);
      const absent = new Set(ids.filter((id) => !found.has(id)));
      let first = true;
      for (const pdu of req.pdus) {
        await this.inputOne(req, rv, pdu, false, first ? req.stateBeforeFirst : undefined, results, absent);
        first = false;
      }
      return { results };
    });
  }

  private async inputOne(
    req: InputPdusRequest,
    rv: RoomVersion,
    pdu: Pdu,
    outlier: boolean,
    stateBeforeIds: string[] | undefined,
    results: Record<string, PduResult>,
    absent?: Set<string>,
  ): Promise<void> {
    let event: RoomEvent;
    try {
      checkEventFormat(pdu as Record<string, any>, rv);
      event = { ...pduToRoomEvent(pdu, rv), event_id: computeEventId(pdu, rv) };
    } catch (err) {
      if (err instanceof AuthError || err instanceof EventFormatError) {
        const id = typeof pdu?.event_id === 'string' ? pdu.event_id : `(unidentified ${String(pdu?.type)})`;
        results[id] = { accepted: false, error: err.message };
        return;
      }
      throw err;
    }
    const id = event.event_id;
    if (event.room_id !== undefined && event.room_id !== req.roomId && event.type !== 'm.room.create') {
      results[id] = { accepted: false, error: `event is for room ${event.room_id}, not ${req.roomId}` };
      return;
    }
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      try {
        results[id] = await this.decideRemote(req.roomId, rv, pdu, event, outlier, stateBeforeIds, attempt > 0, attempt === 0 && absent?.has(id), req.sendOnBehalf === true);
        return;
      } catch (err) {
        if (err instanceof BusError && err.code === STALE_SEQUENCE) continue;
        this.store.forget(req.roomId);
        if (err instanceof BusError) {
          results[id] = { accepted: false, error: err.message };
          return;
        }
        throw err;
      }
    }
    results[id] = { accepted: false, error: 'the room kept changing; send the event again' };
  }

  private async decideRemote(
    roomId: string,
    rv: RoomVersion,
    pdu: Pdu,
    event: RoomEvent,
    outlier: boolean,
    stateBeforeIds: string[] | undefined,
    reload: boolean,
    knownAbsent = false,
    /** Sent on to the room's other servers when accepted (see InputPdusRequest.sendOnBehalf). */
    sendOnBehalf = false,
  ): Promise<PduResult> {
    const existing = knownAbsent ? undefined : (await this.store.getEvents([event.event_id], rv)).get(event.event_id);
    if (existing && (outlier || !existing.stored.outlier)) return resultOf(existing.stored);

    const view = reload ? await this.store.reload(roomId) : await this.store.view(roomId);
    const roomVersion = view?.roomVersion ?? rv;

    // 1. The event's own auth events. From room v12 the create event is never cited: the room id
    // names it (`!` + its reference hash), so it joins the auth state without being an auth event.
    const createId =
      roomVersion.roomIdIsCreateEventHash && event.type !== 'm.room.create' && typeof event.room_id === 'string'
        ? `$${event.room_id.slice(1)}`
        : undefined;
    const authIds = createId ? [...event.auth_events, createId] : event.auth_events;
    const authEvents = await this.store.getEvents(authIds, roomVersion);
    const missingAuth = authIds.filter((a) => !authEvents.has(a));
    if (missingAuth.length > 0) return { accepted: false, error: `auth events not known here: ${missingAuth.join(', ')}` };
    let rejectedReason: string | null = null;
    try {
      const cited = event.auth_events.map((a) => authEvents.get(a)!);
      checkAuthEvents(event, cited.map((a) => a.event), roomVersion, {
        isRejected: (a) => authEvents.get(a)?.stored.rejectedReason != null,
      });
      const byKey = new Map([...authEvents.values()].map((a) => [stateKey(a.event.type, a.event.state_key ?? ''), a.event]));
      authorize(event, (t, k) => byKey.get(stateKey(t, k)), roomVersion);
    } catch (err) {
      if (!(err instanceof AuthError)) throw err;
      rejectedReason = err.message;
    }

    const base: AppendEvent = { ...appendFields(pdu, event), rejectedReason };
    const expectedSequence = view?.sequence ?? 0;
    // After an append the cached view moves with the reply (no reload for the next PDU).
    const moveView = (sent: AppendEvent, reply: AppendReply, newState?: StateMap) => {
      const r = reply.events[0]!;
      this.cacheAppended(roomId, sent, event, r);
      if (!view || r.duplicate) {
        this.store.forget(roomId);
        return;
      }
      let extremities = view.extremities;
      if (r.streamPos !== null) {
        const cited = new Set(event.prev_events);
        extremities = extremities.filter((x) => !cited.has(x.eventId));
        if (r.extremity) extremities = [...extremities, { eventId: event.event_id, depth: sent.depth, stateAfterNid: r.stateAfterNid }];
      }
      this.store.remember({ ...view, sequence: reply.sequence, state: newState ?? view.state, extremities });
    };
    if (outlier) {
      const sent: AppendEvent = { ...base, outlier: true };
      moveView(sent, await this.append({ roomId, roomVersion: roomVersion.id, expectedSequence, events: [sent], currentStateChanges: [] }));
      return rejectedReason ? { accepted: false, error: rejectedReason } : { accepted: true };
    }

    // 2. The state before the event.
    let stateBefore: StateMap;
    let stateRef: AppendEvent['stateBefore'];
    const prevs = await this.store.getEvents(event.prev_events, roomVersion);
    const usablePrevs = event.prev_events.filter((p) => prevs.has(p) && !prevs.get(p)!.stored.outlier);
    if (stateBeforeIds) {
      const given = await this.store.getEvents(stateBeforeIds, roomVersion);
      const unknown = stateBeforeIds.filter((s) => !given.has(s));
      if (unknown.length > 0) return { accepted: false, error: `state events not known here: ${unknown.slice(0, 5).join(', ')}` };
      stateBefore = new Map([...given.values()].map((g) => [stateKey(g.event.type, g.event.state_key ?? ''), g.event.event_id]));
      stateRef = { base: null, changes: [...stateBefore].map(([k, v]) => [...splitStateKey(k), v] as StateTriple) };
    } else if (usablePrevs.length !== event.prev_events.length) {
      const missing = event.prev_events.filter((p) => !usablePrevs.includes(p));
      return { accepted: false, error: `prev_events not known here (fetch them with get_missing_events first): ${missing.join(', ')}` };
    } else {
      const prevStates = await Promise.all(usablePrevs.map((p) => this.store.snapshot(prevs.get(p)!.stored.stateAfterNid)));
      stateBefore = prevStates.length === 1 ? prevStates[0]! : await this.resolve(roomVersion, prevStates);
      const first = prevs.get(usablePrevs[0]!)!.stored;
      stateRef = { base: { snapshotNid: first.stateAfterNid }, changes: diffStates(prevStates[0]!, stateBefore) };
    }

    // 3. Authorized by the state before it?
    if (!rejectedReason) {
      try {
        authorize(event, await this.lookupFor(stateBefore, this.authKeys(event), roomVersion), roomVersion);
      } catch (err) {
        if (!(err instanceof AuthError)) throw err;
        rejectedReason = err.message;
      }
    }
    if (rejectedReason) {
      const sent: AppendEvent = { ...base, rejectedReason, stateBefore: stateRef };
      moveView(sent, await this.append({ roomId, roomVersion: roomVersion.id, expectedSequence, events: [sent], currentStateChanges: [] }));
      return { accepted: false, error: rejectedReason };
    }

    // 4. Soft failure: authorized by history, but not by the room's current state.
    const current = view?.state ?? new Map();
    let softFailed = false;
    if (view && event.type !== 'm.room.create') {
      try {
        authorize(event, await this.lookupFor(current, this.authKeys(event), roomVersion), roomVersion);
      } catch (err) {
        if (!(err instanceof AuthError)) throw err;
        softFailed = true;
      }
    }

    // 5. The room's new current state: the state after the event when it is the only
    // extremity, else the resolution of every extremity's state.
    let currentStateChanges: StateTriple[] = [];
    let newCurrent: StateMap | undefined;
    let redaction: AppendEvent['redaction'] = null;
    const stateAfter = new Map(stateBefore);
    if (event.state_key !== undefined) stateAfter.set(stateKey(event.type, event.state_key), event.event_id);
    if (!softFailed) {
      const cited = new Set(event.prev_events);
      const others = (view?.extremities ?? []).filter((e) => !cited.has(e.eventId));
      newCurrent = stateAfter;
      if (others.length > 0) {
        const otherStates = await Promise.all(others.map((o) => this.store.snapshot(o.stateAfterNid)));
        newCurrent = await this.resolve(roomVersion, [stateAfter, ...otherStates], [[event.event_id, event]]);
      }
      currentStateChanges = diffStates(current, newCurrent);
      if (event.type === 'm.room.redaction' && view) {
        const target = (event.redacts ?? event.content.redacts) as string | undefined;
        if (typeof target === 'string') {
          redaction = await this.redactionFor(view, event.sender, target, await this.lookupFor(current, this.authKeys(event), roomVersion), false);
        }
      }
    }
    const sent: AppendEvent = { ...base, softFailed, stateBefore: stateRef, redaction, ...(sendOnBehalf && !softFailed ? { local: true } : {}) };
    const reply = await this.append({ roomId, roomVersion: roomVersion.id, expectedSequence, events: [sent], currentStateChanges });
    // The stored current state: the old one with the changes applied (diffStates never removes a key).
    const storedCurrent = newCurrent ? new Map(current) : undefined;
    for (const [t, k, id] of currentStateChanges) storedCurrent?.set(stateKey(t, k), id);
    moveView(sent, reply, storedCurrent);
    if (!reply.events[0]!.duplicate) {
      this.store.cacheSnapshot(reply.events[0]!.stateBeforeNid, stateBefore);
      this.store.cacheSnapshot(reply.events[0]!.stateAfterNid, stateAfter);
    }
    if (redaction) this.store.evictEvent(redaction.targetEventId);
    return softFailed ? { accepted: true, softFailed: true } : { accepted: true };
  }

  /** State resolution over stored states: loads every event they name and their auth chains. */
  async resolve(rv: RoomVersion, states: StateMap[], extra: Array<[string, RoomEvent]> = []): Promise<StateMap> {
    const events = new Map<string, RoomEvent>(extra);
    const rejected = new Set<string>();
    let frontier = [...new Set(states.flatMap((s) => [...s.values()]))];
    while (frontier.length > 0) {
      const loaded = await this.store.getEvents(frontier.filter((id) => !events.has(id)), rv);
      const next: string[] = [];
      for (const [id, { event, stored }] of loaded) {
        events.set(id, event);
        if (stored.rejectedReason) rejected.add(id);
        for (const a of event.auth_events) if (!events.has(a)) next.push(a);
      }
      for (const [, e] of extra) for (const a of e.auth_events) if (!events.has(a)) next.push(a);
      frontier = [...new Set(next)].filter((id) => !events.has(id));
      if (loaded.size === 0) break;
    }
    return resolveState(rv, states, { get: (id) => events.get(id) }, { isRejected: (id) => rejected.has(id) });
  }
}

/** Runs a send's beforeAppend hook; any failure becomes a refusal of that send (M_UNKNOWN unless the hook says). */
async function runBeforeAppend(hook: NonNullable<LocalSendOptions['beforeAppend']>, pdu: Pdu, rv: RoomVersion): Promise<Pdu> {
  let out: Pdu;
  try {
    out = await hook(pdu, rv);
  } catch (err) {
    if (err instanceof BusError) throw err;
    throw new BusError('M_UNKNOWN', `the event could not be completed before sending: ${(err as Error)?.message ?? String(err)}`);
  }
  // The hook may add signatures only: the event (and so its id) must stay the one authorized.
  if (computeEventId(out, rv) !== computeEventId(pdu, rv)) throw new BusError('M_UNKNOWN', 'the event changed before sending');
  return out;
}

function resultOf(stored: StoredEvent): PduResult {
  if (stored.rejectedReason) return { accepted: false, error: stored.rejectedReason };
  return stored.softFailed ? { accepted: true, softFailed: true } : { accepted: true };
}
