import type { AppendEvent, AppendRequest, StateRef } from '@tessera/bus';
import type { Queryable } from '../db.js';
import { internEventTypes, internStateKeys } from './names.js';
import { writeSnapshot, type StateEntryNids, type StateTriple } from './state-snapshots.js';
import { beginJoinedServersChange, recordDestinations, type JoinedServersChange } from '../fanout/joined-servers.js';

/**
 * The append: one room's batch of decided events, written in one transaction (or one
 * savepoint of a group commit) together with its edges, state snapshots, forward extremities,
 * current state, memberships, client transaction id and stream positions.
 *
 * The caller (persistence) must have called lockStreamCounter() first in the same
 * transaction: taking the global counter lock before any room row lock keeps concurrent
 * writers from deadlocking and makes commit order equal position order.
 */

/**
 * What is written is what the decider sends on persistence.append: the wire contract, documented
 * field by field in libs/bus/src/contracts/persistence.ts, is the one definition of these shapes.
 */
export type StateRefInput = StateRef;
export type AppendEventInput = AppendEvent;
export type AppendBatchInput = Omit<AppendRequest, 'transactionId'>;

function txnsOf(batch: AppendBatchInput): NonNullable<AppendBatchInput['clientTxn']>[] {
  return [...(batch.clientTxn ? [batch.clientTxn] : []), ...(batch.clientTxns ?? [])];
}

export interface AppendedEvent {
  eventId: string;
  eventNid: number;
  /** Global stream position; null for outliers, rejected and soft-failed events. */
  streamPos: number | null;
  stateBeforeNid: number | null;
  stateAfterNid: number | null;
  /** The event was already stored; nothing was written for it. */
  duplicate: boolean;
  /** It became a forward extremity of its room. */
  extremity?: boolean;
  /** A local event queued for at least one other server (event_destinations rows written). */
  queuedForServers?: boolean;
}

export interface AppendBatchResult {
  roomNid: number;
  sequence: number;
  events: AppendedEvent[];
  /** The stream position of the batch's out-of-band membership, when it had one. */
  outOfBandPosition?: number;
}

/** The room moved on since the decider read it: reload and decide again. */
export class StaleSequenceError extends Error {
  override readonly name = 'StaleSequenceError';
  constructor(readonly roomId: string, readonly expected: number, readonly actual: number | null) {
    super(`room ${roomId} is at sequence ${actual ?? 'none'}, the append expected ${expected}: reload the room and decide again`);
  }
}

/** The client transaction id was already used: the earlier event stands. */
export class DuplicateClientTxnError extends Error {
  override readonly name = 'DuplicateClientTxnError';
  constructor(readonly eventId: string) {
    super(`client transaction already applied as ${eventId}`);
  }
}

/** Takes the global stream counter's lock for this transaction and returns its position. */
export async function lockStreamCounter(tx: Queryable): Promise<number> {
  const { rows } = await tx.query<{ position: number }>('SELECT position FROM stream_counter WHERE id = 1 FOR UPDATE');
  return rows[0]!.position;
}

export async function saveStreamCounter(tx: Queryable, position: number): Promise<void> {
  await tx.query('UPDATE stream_counter SET position = $1 WHERE id = 1', [position]);
}

/** The last stream position given out (committed, or reserved by a committed append and left unused). */
export async function readStreamCounter(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ position: number }>('SELECT position FROM stream_counter WHERE id = 1');
  return rows[0]!.position;
}

/**
 * For a writer that reserved the positions (expected, end] before its transaction (persistence's
 * pipelined group commit): moves the counter to `end` if it is still at `expected`, and holds its
 * row lock until commit. False when another writer moved it: the transaction must roll back.
 * Issued after the previous transaction's claim, it waits for that transaction to end, so
 * transactions commit in the order of their positions.
 */
export async function claimStreamRange(tx: Queryable, expected: number, end: number): Promise<boolean> {
  const { rows } = await tx.query<{ position: number }>(
    'UPDATE stream_counter SET position = $2 WHERE id = 1 AND position = $1 RETURNING position',
    [expected, end],
  );
  return rows.length === 1;
}

/** Interns the names a batch uses; run outside the transaction (names are never rolled back). */
export async function internBatchNames(db: Queryable, batch: AppendBatchInput, cacheKey: object = db): Promise<void> {
  const types = new Set<string>();
  const keys = new Set<string>();
  const add = (t: StateTriple) => {
    types.add(t[0]);
    keys.add(t[1]);
  };
  for (const e of batch.events) {
    types.add(e.type);
    if (e.stateKey !== null) keys.add(e.stateKey);
    e.stateBefore?.changes.forEach(add);
  }
  batch.currentStateChanges.forEach(add);
  await Promise.all([internEventTypes(db, types, cacheKey), internStateKeys(db, keys, cacheKey)]);
}

/**
 * Appends one room's batch. `nextPosition` is the first free stream position (from
 * lockStreamCounter); returns the result and the next free position.
 */
export async function appendRoomBatch(
  tx: Queryable,
  batch: AppendBatchInput,
  nextPosition: number,
  cacheKey: object,
): Promise<{ result: AppendBatchResult; nextPosition: number }> {
  const group = await appendGroup(tx, [batch], nextPosition, cacheKey);
  const outcome = group.outcomes[0]!;
  if (!outcome.ok) throw outcome.error;
  return { result: outcome.result, nextPosition: group.nextPosition };
}

export type GroupOutcome = { ok: true; result: AppendBatchResult } | { ok: false; error: StaleSequenceError | DuplicateClientTxnError };

interface AcceptedBatch {
  batch: AppendBatchInput;
  index: number;
  room: { nid: number; sequence: number };
}

/**
 * Appends a group of room batches in one transaction (group commit), with a few set-based
 * statements for the whole group rather than a few per event. The room sequences and client
 * transaction ids of the whole group are checked up front, under the rooms' row locks (and
 * the stream counter lock the caller holds, which serializes every writer): a stale or
 * duplicate batch is refused alone, without touching the database, so no savepoints are
 * needed. Any other error aborts the group; the caller may then retry batches one by one.
 *
 * Positions are given in batch order, event order: commit order stays position order.
 */
export async function appendGroup(
  tx: Queryable,
  batches: AppendBatchInput[],
  /**
   * The first free stream position, or a function giving it: called once the group's batches
   * are checked (its room rows locked), right before positions are given out, so that a
   * pipelined writer can read and check this group while the previous one is still being written.
   */
  firstPosition: number | (() => Promise<number>),
  cacheKey: object,
  /** Also store the new stream counter (what saveStreamCounter does) in the group's last statement: one round trip less. */
  options: { saveStreamCounter?: boolean } = {},
): Promise<{ outcomes: GroupOutcome[]; nextPosition: number }> {
  const roomIds = [...new Set(batches.map((b) => b.roomId))];
  const { rows: roomRows } = await tx.query<{ room_nid: number; room_id: string; sequence: number }>(
    'SELECT room_nid, room_id, sequence FROM rooms WHERE room_id = ANY($1::text[]) ORDER BY room_nid FOR UPDATE',
    [roomIds],
  );
  const rooms = new Map<string, { nid: number; sequence: number; isNew: boolean; version: string }>(
    roomRows.map((r) => [r.room_id, { nid: 0, sequence: r.sequence, isNew: false, version: '' }]),
  );
  for (const r of roomRows) rooms.get(r.room_id)!.nid = r.room_nid;
  const txnKey = (t: { userId: string; deviceId: string; txnId: string }) => JSON.stringify([t.userId, t.deviceId, t.txnId]);
  const usedTxns = await findUsedTxns(tx, batches.flatMap(txnsOf), txnKey);

  // Which batches go in: checked in order against the sequences the group itself moves.
  const outcomes: Array<GroupOutcome | undefined> = [];
  const accepted: Array<{ batch: AppendBatchInput; index: number; roomId: string; sequence: number }> = [];
  const newTxns: NonNullable<AppendBatchInput['clientTxn']>[] = [];
  batches.forEach((batch, index) => {
    const room = rooms.get(batch.roomId);
    if (batch.expectedSequence === 0 ? room !== undefined : room?.sequence !== batch.expectedSequence) {
      outcomes[index] = { ok: false, error: new StaleSequenceError(batch.roomId, batch.expectedSequence, room?.sequence ?? null) };
      return;
    }
    const batchTxns = txnsOf(batch);
    const used = batchTxns.find((t) => usedTxns.has(txnKey(t)));
    if (used) {
      outcomes[index] = { ok: false, error: new DuplicateClientTxnError(usedTxns.get(txnKey(used))!) };
      return;
    }
    const r = room ?? { nid: 0, sequence: 0, isNew: true, version: batch.roomVersion };
    rooms.set(batch.roomId, r);
    r.sequence += 1;
    for (const t of batchTxns) {
      usedTxns.set(txnKey(t), t.eventId);
      newTxns.push(t);
    }
    accepted.push({ batch, index, roomId: batch.roomId, sequence: r.sequence });
  });
  const nextPosition = typeof firstPosition === 'number' ? firstPosition : await firstPosition();
  if (accepted.length === 0) return { outcomes: outcomes as GroupOutcome[], nextPosition };

  const created = [...rooms].filter(([, r]) => r.isNew);
  if (created.length > 0) {
    const { rows } = await tx.query<{ room_nid: number; room_id: string }>(
      `INSERT INTO rooms (room_id, room_version, sequence) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) RETURNING room_nid, room_id`,
      [created.map(([id]) => id), created.map(([, r]) => r.version), created.map(([, r]) => r.sequence)],
    );
    for (const r of rows) rooms.get(r.room_id)!.nid = r.room_nid;
  }

  // Waves of batches in distinct rooms: the membership bookkeeping of a wave reads each room
  // before and after the wave's changes, so a room appears at most once per wave.
  let position = nextPosition;
  const appended = new Map<string, AppendedEvent>();
  for (let i = 0; i < accepted.length;) {
    const seen = new Set<string>();
    const wave: AcceptedBatch[] = [];
    while (i < accepted.length && !seen.has(accepted[i]!.roomId)) {
      const a = accepted[i++]!;
      seen.add(a.roomId);
      wave.push({ batch: a.batch, index: a.index, room: { nid: rooms.get(a.roomId)!.nid, sequence: a.sequence } });
    }
    const results = await appendWave(tx, wave, position, appended, cacheKey);
    position = results.nextPosition;
    wave.forEach((w, j) => {
      outcomes[w.index] = { ok: true, result: { roomNid: w.room.nid, sequence: w.room.sequence, events: results.events[j]! } };
    });
  }

  // Out-of-band memberships take positions after the group's events (see AppendRequest).
  const outOfBand = accepted.filter((a) => a.batch.outOfBandMembership);
  if (outOfBand.length > 0) {
    const rows = outOfBand.map((a) => {
      const m = a.batch.outOfBandMembership!;
      const event = appended.get(m.eventId);
      if (!event) throw new Error(`out-of-band membership: event ${m.eventId} is not in its batch`);
      const result = outcomes[a.index] as { ok: true; result: AppendBatchResult };
      result.result.outOfBandPosition = position++;
      return { room: result.result.roomNid, user: m.userId, membership: m.membership, nid: event.eventNid, pos: result.result.outOfBandPosition };
    });
    // One row may not be updated twice by one statement: the last membership of a user in a room wins.
    const last = [...new Map(rows.map((r) => [`${r.room} ${r.user}`, r])).values()];
    await tx.query(
      `INSERT INTO room_memberships (room_nid, user_id, membership, event_nid, stream_pos)
       SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])
       ON CONFLICT (room_nid, user_id) DO UPDATE
         SET membership = EXCLUDED.membership, event_nid = EXCLUDED.event_nid, stream_pos = EXCLUDED.stream_pos`,
      [last.map((r) => r.room), last.map((r) => r.user), last.map((r) => r.membership), last.map((r) => r.nid), last.map((r) => r.pos)],
    );
  }

  // The rooms' new sequences and the client transaction ids, in one statement.
  const movedIds = new Set(accepted.map((a) => a.roomId));
  const moved = [...rooms].filter(([id, r]) => !r.isNew && movedIds.has(id)).map(([, r]) => r);
  await tx.query(
    `WITH seq AS (
       UPDATE rooms SET sequence = u.s FROM unnest($1::bigint[], $2::bigint[]) AS u (n, s) WHERE rooms.room_nid = u.n
     ), counter AS (
       UPDATE stream_counter SET position = $7::bigint WHERE id = 1 AND $7::bigint IS NOT NULL
     )
     INSERT INTO client_txns (user_id, device_id, txn_id, event_id)
     SELECT * FROM unnest($3::text[], $4::text[], $5::text[], $6::text[])`,
    [moved.map((r) => r.nid), moved.map((r) => r.sequence),
     newTxns.map((t) => t.userId), newTxns.map((t) => t.deviceId), newTxns.map((t) => t.txnId), newTxns.map((t) => t.eventId),
     options.saveStreamCounter ? position - 1 : null],
  );
  return { outcomes: outcomes as GroupOutcome[], nextPosition: position };
}

async function findUsedTxns(
  tx: Queryable,
  txns: NonNullable<AppendBatchInput['clientTxn']>[],
  key: (t: { userId: string; deviceId: string; txnId: string }) => string,
): Promise<Map<string, string>> {
  const used = new Map<string, string>();
  if (txns.length === 0) return used;
  const { rows } = await tx.query<{ user_id: string; device_id: string; txn_id: string; event_id: string }>(
    `SELECT c.user_id, c.device_id, c.txn_id, c.event_id FROM client_txns c
     JOIN unnest($1::text[], $2::text[], $3::text[]) AS u (user_id, device_id, txn_id)
       ON c.user_id = u.user_id AND c.device_id = u.device_id AND c.txn_id = u.txn_id`,
    [txns.map((t) => t.userId), txns.map((t) => t.deviceId), txns.map((t) => t.txnId)],
  );
  for (const r of rows) used.set(key({ userId: r.user_id, deviceId: r.device_id, txnId: r.txn_id }), r.event_id);
  return used;
}

interface StoredRef {
  eventNid: number;
  streamPos: number | null;
  stateBeforeNid: number | null;
  stateAfterNid: number | null;
  outlier: boolean;
}

/** Stored events the wave names (its own ids, to find duplicates, and those its state cites). */
async function storedRefs(tx: Queryable, ids: Set<string>): Promise<Map<string, StoredRef>> {
  if (ids.size === 0) return new Map();
  const { rows } = await tx.query<{ event_id: string; event_nid: number; stream_pos: number | null; state_before_nid: number | null; state_after_nid: number | null; outlier: boolean }>(
    'SELECT event_id, event_nid, stream_pos, state_before_nid, state_after_nid, outlier FROM events WHERE event_id = ANY($1::text[])',
    [[...ids]],
  );
  return new Map(rows.map((r) => [r.event_id, {
    eventNid: r.event_nid, streamPos: r.stream_pos, stateBeforeNid: r.state_before_nid, stateAfterNid: r.state_after_nid, outlier: r.outlier,
  }]));
}

/** One new event of the wave, as it goes into the events table. */
interface Row {
  e: AppendEventInput;
  roomNid: number;
  typeNid: number;
  stateKeyNid: number | null;
  timeline: boolean;
  isState: boolean;
  streamPos: number | null;
  out: AppendedEvent;
  /** State nids known before the insert (no snapshot to write). */
  known: boolean;
}

/**
 * Appends a wave (batches of distinct rooms): one statement inserts every event with its edges
 * and moves the forward extremities; state snapshots are written only for state events and
 * for explicit state changes; then one statement each for the events' state nids, current
 * state, memberships and the fanout destinations.
 */
async function appendWave(
  tx: Queryable,
  wave: AcceptedBatch[],
  nextPosition: number,
  appended: Map<string, AppendedEvent>,
  cacheKey: object,
): Promise<{ events: AppendedEvent[][]; nextPosition: number }> {
  const names = await cacheMaps(tx, wave.map((w) => w.batch), cacheKey);

  // Stored events the wave cites by id, in one query.
  const wanted = new Set<string>();
  for (const { batch } of wave) {
    for (const e of batch.events) {
      if (!appended.has(e.eventId)) wanted.add(e.eventId);
      const base = e.stateBefore?.base;
      if (base && 'afterEvent' in base) wanted.add(base.afterEvent);
      e.stateBefore?.changes.forEach((c) => wanted.add(c[2]));
    }
    batch.currentStateChanges.forEach((c) => wanted.add(c[2]));
  }
  for (const id of wanted) if (appended.has(id)) wanted.delete(id);
  const stored = await storedRefs(tx, wanted);

  // Positions, duplicates and the state nids that need no snapshot, in order.
  let position = nextPosition;
  const rows: Row[] = [];
  const results: AppendedEvent[][] = [];
  const inWave = new Map<string, Row>();
  // The last position given up to each batch: a membership change without a position of its own takes it.
  const lastPositions = new Map<AcceptedBatch, number>();
  for (const w of wave) {
    const { batch, room } = w;
    const out: AppendedEvent[] = [];
    for (const e of batch.events) {
      const earlier = appended.get(e.eventId) ?? stored.get(e.eventId);
      if (earlier) {
        const dup: AppendedEvent = {
          eventId: e.eventId, eventNid: earlier.eventNid, streamPos: earlier.streamPos,
          stateBeforeNid: earlier.stateBeforeNid, stateAfterNid: earlier.stateAfterNid, duplicate: true,
        };
        out.push(dup);
        if (!appended.has(e.eventId)) appended.set(e.eventId, dup);
        continue;
      }
      const timeline = !e.outlier && !e.rejectedReason && !e.softFailed;
      const stateKeyNid = e.stateKey === null ? null : names.keys.get(e.stateKey)!;
      const a: AppendedEvent = { eventId: e.eventId, eventNid: 0, streamPos: timeline ? position++ : null, stateBeforeNid: null, stateAfterNid: null, duplicate: false };
      const row: Row = {
        e, roomNid: room.nid, typeNid: names.types.get(e.type)!, stateKeyNid, timeline,
        isState: stateKeyNid !== null && !e.rejectedReason && !e.outlier && e.stateBefore !== undefined,
        streamPos: a.streamPos, out: a, known: true,
      };
      if (!e.outlier && e.stateBefore) {
        const before = knownStateRef(e.stateBefore, inWave, appended, stored);
        if (before === undefined || row.isState) row.known = false;
        else a.stateBeforeNid = a.stateAfterNid = before;
      }
      rows.push(row);
      inWave.set(e.eventId, row);
      appended.set(e.eventId, a);
      out.push(a);
    }
    results.push(out);
    lastPositions.set(w, position - 1);
  }

  if (rows.length > 0) await insertEvents(tx, rows, inWave);

  // Snapshots, in order (an event's state may build on the one before it).
  const stateUpdates: Row[] = [];
  const nidOf = (id: string): number | undefined => appended.get(id)?.eventNid ?? stored.get(id)?.eventNid;
  for (const row of rows) {
    if (row.known) continue;
    const e = row.e;
    const before = await writeStateRef(tx, row.roomNid, e.stateBefore!, appended, stored, names, nidOf, cacheKey);
    let after = before;
    if (row.isState) after = await writeSnapshot(tx, row.roomNid, before, [{ typeNid: row.typeNid, stateKeyNid: row.stateKeyNid!, eventNid: row.out.eventNid }], cacheKey);
    row.out.stateBeforeNid = before;
    row.out.stateAfterNid = after;
    stateUpdates.push(row);
  }
  const redactions = rows.filter((r) => r.e.redaction && r.timeline);
  if (stateUpdates.length > 0 || redactions.length > 0) {
    await tx.query(
      `WITH st AS (
         UPDATE events SET state_before_nid = u.b, state_after_nid = u.a
         FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS u (n, b, a) WHERE events.event_nid = u.n
       )
       UPDATE events SET json = u.j, redacted_by = u.by
       FROM unnest($4::text[], $5::text[], $6::text[], $7::bigint[]) AS u (id, j, by, r)
       WHERE events.event_id = u.id AND events.room_nid = u.r`,
      [stateUpdates.map((r) => r.out.eventNid), stateUpdates.map((r) => r.out.stateBeforeNid), stateUpdates.map((r) => r.out.stateAfterNid),
       redactions.map((r) => r.e.redaction!.targetEventId), redactions.map((r) => JSON.stringify(r.e.redaction!.redactedJson)),
       redactions.map((r) => r.e.eventId), redactions.map((r) => r.roomNid)],
    );
  }

  // Joined servers for fanout-sender: rooms whose membership changes are read before and
  // after the change (libs/storage/src/fanout); the others need one set-based insert.
  const memberUsers = (b: AppendBatchInput) => b.currentStateChanges.filter((c) => c[0] === 'm.room.member').map((c) => c[1]);
  const changing = wave.filter((w) => memberUsers(w.batch).length > 0);
  const joinedChanges: JoinedServersChange[] = [];
  for (const w of changing) {
    joinedChanges.push(await beginJoinedServersChange(tx, w.room.nid, { memberUserIds: memberUsers(w.batch), hasLocalEvents: w.batch.events.some((e) => e.local === true) }));
  }
  await applyCurrentStateChanges(tx, wave, nidOf, names, lastPositions);
  const queued = new Set<number>();
  for (let j = 0; j < changing.length; j++) {
    const w = changing[j]!;
    const events = results[wave.indexOf(w)]!;
    for (const p of await joinedChanges[j]!.finish(w.batch.events.map((e, k) => ({ ...events[k]!, local: e.local === true, sender: e.sender, membershipTarget: membershipTarget(e) })))) queued.add(p);
  }
  const outbound = wave
    .filter((w) => memberUsers(w.batch).length === 0)
    .flatMap((w) => {
      const events = results[wave.indexOf(w)]!;
      return w.batch.events.flatMap((e, k) => (e.local === true && events[k]!.streamPos !== null && !events[k]!.duplicate
        ? [{ roomNid: w.room.nid, streamPos: events[k]!.streamPos!, sender: e.sender }] : []));
    });
  for (const p of await recordDestinations(tx, outbound)) queued.add(p);
  if (queued.size > 0) {
    for (const events of results) for (const e of events) if (e.streamPos !== null && queued.has(e.streamPos)) e.queuedForServers = true;
  }
  return { events: results, nextPosition: position };
}

/**
 * The user of another user's leave (a rescinded invite, a refused knock, a kick): their server
 * is told too (see AppendedForFanout). A leave needs a membership to end, so this reaches only
 * servers the room dealt with; a ban may name anyone, and is left to the joined servers.
 */
function membershipTarget(e: AppendBatchInput['events'][number]): string | undefined {
  if (e.type !== 'm.room.member' || e.stateKey === null || e.stateKey === e.sender) return undefined;
  const membership = (e.json.content as { membership?: unknown } | undefined)?.membership;
  return membership === 'leave' ? e.stateKey : undefined;
}

/** The state nid an event's state ref names when nothing needs writing; undefined when a snapshot must be written. */
function knownStateRef(
  ref: StateRefInput,
  inWave: Map<string, Row>,
  appended: Map<string, AppendedEvent>,
  stored: Map<string, StoredRef>,
): number | null | undefined {
  if (ref.changes.length > 0) return undefined;
  if (!ref.base) return null;
  if ('snapshotNid' in ref.base) return ref.base.snapshotNid;
  const id = ref.base.afterEvent;
  const row = inWave.get(id);
  if (row) return row.known ? row.out.stateAfterNid : undefined;
  // Appended by an earlier wave of the group: complete.
  const earlier = appended.get(id);
  if (earlier) return earlier.stateAfterNid;
  const s = stored.get(id);
  if (!s || s.outlier) throw new Error(`state after ${id} is not known`);
  return s.stateAfterNid;
}

async function writeStateRef(
  tx: Queryable,
  roomNid: number,
  ref: StateRefInput,
  appended: Map<string, AppendedEvent>,
  stored: Map<string, StoredRef>,
  names: NameMaps,
  nidOf: (id: string) => number | undefined,
  cacheKey: object,
): Promise<number | null> {
  let base: number | null = null;
  if (ref.base && 'snapshotNid' in ref.base) base = ref.base.snapshotNid;
  else if (ref.base && 'afterEvent' in ref.base) {
    const id = ref.base.afterEvent;
    const a = appended.get(id);
    const s = stored.get(id);
    if (a) base = a.stateAfterNid;
    else if (s && !s.outlier) base = s.stateAfterNid;
    else throw new Error(`state after ${id} is not known`);
  }
  return writeSnapshot(tx, roomNid, base, triplesToNids(ref.changes, names, nidOf), cacheKey);
}

/** One statement: the wave's events, their edges, and the forward extremities they move. */
async function insertEvents(tx: Queryable, rows: Row[], inWave: Map<string, Row>): Promise<void> {
  // A timeline event becomes an extremity unless an event already stored cites it (it
  // arrived late: checked in SQL), an earlier event of the wave cites it, or a later timeline
  // event of the wave does; the stored extremities its new timeline events cite stop being ones.
  const citedEarlier = new Set<string>();
  const candidate = new Set<string>();
  for (const r of rows) {
    if (r.timeline && !citedEarlier.has(r.e.eventId)) candidate.add(r.e.eventId);
    for (const p of r.e.prevEvents) {
      citedEarlier.add(p);
      if (r.timeline) candidate.delete(p);
    }
  }
  const edges = (pick: (e: AppendEventInput) => string[]) => {
    const ids: string[] = [];
    const to: string[] = [];
    for (const r of rows) {
      for (const p of new Set(pick(r.e))) {
        ids.push(r.e.eventId);
        to.push(p);
      }
    }
    return [ids, to];
  };
  const [prevIds, prevTo] = edges((e) => e.prevEvents);
  const [authIds, authTo] = edges((e) => e.authEvents);
  const goneRooms: number[] = [];
  const goneIds: string[] = [];
  for (const r of rows) {
    if (!r.timeline) continue;
    for (const p of r.e.prevEvents) {
      if (inWave.has(p)) continue;
      goneRooms.push(r.roomNid);
      goneIds.push(p);
    }
  }
  const { rows: inserted } = await tx.query<{ event_id: string; event_nid: number; extremity: boolean }>(
    `WITH input AS (
       SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[],
                            $9::boolean[], $10::boolean[], $11::text[], $12::bigint[], $13::bigint[], $14::text[])
         WITH ORDINALITY AS i (event_id, room_nid, type_nid, state_key_nid, sender, depth, origin_server_ts, stream_pos,
                               outlier, soft_failed, rejected_reason, state_before_nid, state_after_nid, json, ord)
     ), ev AS (
       INSERT INTO events (event_id, room_nid, type_nid, state_key_nid, sender, depth, origin_server_ts, stream_pos,
                           outlier, soft_failed, rejected_reason, state_before_nid, state_after_nid, json)
       SELECT event_id, room_nid, type_nid, state_key_nid, sender, depth, origin_server_ts, stream_pos,
              outlier, soft_failed, rejected_reason, state_before_nid, state_after_nid, json
       FROM input ORDER BY ord
       ON CONFLICT (event_id) DO NOTHING RETURNING event_id, event_nid, room_nid
     ), prev AS (
       INSERT INTO event_prev_edges (event_nid, prev_event_id)
       SELECT ev.event_nid, u.p FROM unnest($15::text[], $16::text[]) AS u (id, p) JOIN ev ON ev.event_id = u.id ON CONFLICT DO NOTHING
     ), auth AS (
       INSERT INTO event_auth_edges (event_nid, auth_event_id)
       SELECT ev.event_nid, u.a FROM unnest($17::text[], $18::text[]) AS u (id, a) JOIN ev ON ev.event_id = u.id ON CONFLICT DO NOTHING
     ), gone AS (
       DELETE FROM forward_extremities f USING events p, unnest($19::bigint[], $20::text[]) AS g (room_nid, prev_id)
       WHERE f.room_nid = g.room_nid AND p.event_id = g.prev_id AND f.event_nid = p.event_nid
     ), ext AS (
       INSERT INTO forward_extremities (room_nid, event_nid)
       SELECT ev.room_nid, ev.event_nid FROM ev
       WHERE ev.event_id = ANY($21::text[]) AND NOT EXISTS (SELECT 1 FROM event_prev_edges WHERE prev_event_id = ev.event_id)
       RETURNING event_nid
     )
     SELECT ev.event_id, ev.event_nid, EXISTS (SELECT 1 FROM ext WHERE ext.event_nid = ev.event_nid) AS extremity FROM ev`,
    [
      rows.map((r) => r.e.eventId), rows.map((r) => r.roomNid), rows.map((r) => r.typeNid), rows.map((r) => r.stateKeyNid),
      rows.map((r) => r.e.sender), rows.map((r) => r.e.depth), rows.map((r) => r.e.originServerTs), rows.map((r) => r.streamPos),
      rows.map((r) => r.e.outlier ?? false), rows.map((r) => r.e.softFailed ?? false), rows.map((r) => r.e.rejectedReason ?? null),
      rows.map((r) => (r.known ? r.out.stateBeforeNid : null)), rows.map((r) => (r.known ? r.out.stateAfterNid : null)),
      rows.map((r) => JSON.stringify(r.e.json)),
      prevIds, prevTo, authIds, authTo, goneRooms, goneIds, [...candidate],
    ],
  );
  const nids = new Map(inserted.map((r) => [r.event_id, r.event_nid]));
  const extremities = new Set(inserted.filter((r) => r.extremity).map((r) => r.event_id));
  for (const r of rows) {
    const nid = nids.get(r.e.eventId);
    r.out.extremity = extremities.has(r.e.eventId);
    // The duplicates were found under the stream counter lock: a conflict here means another
    // writer ignored that lock. Abort rather than guess.
    if (nid === undefined) throw new Error(`event ${r.e.eventId} was stored by another writer during the append`);
    r.out.eventNid = nid;
  }
}

interface NameMaps {
  types: Map<string, number>;
  keys: Map<string, number>;
}

async function cacheMaps(tx: Queryable, batches: AppendBatchInput[], cacheKey: object): Promise<NameMaps> {
  const types = new Set<string>();
  const keys = new Set<string>();
  for (const batch of batches) {
    for (const e of batch.events) {
      types.add(e.type);
      if (e.stateKey !== null) keys.add(e.stateKey);
      for (const c of e.stateBefore?.changes ?? []) {
        types.add(c[0]);
        keys.add(c[1]);
      }
    }
    for (const c of batch.currentStateChanges) {
      types.add(c[0]);
      keys.add(c[1]);
    }
  }
  // Names were interned before the transaction (internBatchNames); these are cache hits.
  const [t, k] = await Promise.all([internEventTypes(tx, types, cacheKey), internStateKeys(tx, keys, cacheKey)]);
  return { types: t, keys: k };
}

function triplesToNids(triples: StateTriple[], names: NameMaps, nidOf: (id: string) => number | undefined): StateEntryNids[] {
  const unknown = triples.filter((t) => nidOf(t[2]) === undefined);
  if (unknown.length > 0) throw new Error(`state refers to events that are not stored: ${unknown.slice(0, 5).map((t) => t[2]).join(', ')}`);
  return triples.map(([type, key, id]) => ({ typeNid: names.types.get(type)!, stateKeyNid: names.keys.get(key)!, eventNid: nidOf(id)! }));
}

/** Current state and memberships of the whole wave, one statement each. */
async function applyCurrentStateChanges(
  tx: Queryable,
  wave: AcceptedBatch[],
  nidOf: (id: string) => number | undefined,
  names: NameMaps,
  lastPositions: Map<AcceptedBatch, number>,
): Promise<void> {
  // Last change wins for a key changed twice (one row may not be updated twice by one statement).
  const entries = new Map<string, { room: number; e: StateEntryNids }>();
  const members = new Map<string, { room: number; user: string; nid: number; pos: number }>();
  for (const w of wave) {
    const nids = triplesToNids(w.batch.currentStateChanges, names, nidOf);
    w.batch.currentStateChanges.forEach((t, i) => {
      const e = nids[i]!;
      entries.set(`${w.room.nid}:${e.typeNid}:${e.stateKeyNid}`, { room: w.room.nid, e });
      // Membership comes from the stored event JSON; a membership change takes the stream
      // position of its event when it has one, else the batch's last.
      if (t[0] === 'm.room.member') members.set(`${w.room.nid}:${t[1]}`, { room: w.room.nid, user: t[1], nid: e.eventNid, pos: lastPositions.get(w)! });
    });
  }
  if (entries.size === 0) return;
  const list = [...entries.values()];
  const m = [...members.values()];
  await tx.query(
    `WITH cs AS (
       INSERT INTO current_state (room_nid, type_nid, state_key_nid, event_nid)
       SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[])
       ON CONFLICT (room_nid, type_nid, state_key_nid) DO UPDATE SET event_nid = EXCLUDED.event_nid
     )
     INSERT INTO room_memberships (room_nid, user_id, membership, event_nid, stream_pos)
     SELECT u.room_nid, u.user_id, COALESCE((e.json::jsonb -> 'content' ->> 'membership'), 'leave'), e.event_nid, COALESCE(e.stream_pos, u.pos)
     FROM unnest($5::bigint[], $6::text[], $7::bigint[], $8::bigint[]) AS u (room_nid, user_id, event_nid, pos) JOIN events e ON e.event_nid = u.event_nid
     ON CONFLICT (room_nid, user_id) DO UPDATE
       SET membership = EXCLUDED.membership, event_nid = EXCLUDED.event_nid, stream_pos = EXCLUDED.stream_pos`,
    [list.map((x) => x.room), list.map((x) => x.e.typeNid), list.map((x) => x.e.stateKeyNid), list.map((x) => x.e.eventNid),
     m.map((x) => x.room), m.map((x) => x.user), m.map((x) => x.nid), m.map((x) => x.pos)],
  );
}
