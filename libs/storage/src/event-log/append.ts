import type { Queryable } from '../db.js';
import { internEventTypes, internStateKeys } from './names.js';
import { writeSnapshot, type StateEntryNids, type StateTriple } from './state-snapshots.js';
import { beginJoinedServersChange } from '../fanout/joined-servers.js';

/**
 * The append: one room's batch of decided events, written in one transaction (or one
 * savepoint of a group commit) together with its edges, state snapshots, forward extremities,
 * current state, memberships, client transaction id and stream positions.
 *
 * The caller (persistence) must have called lockStreamCounter() first in the same
 * transaction: taking the global counter lock before any room row lock keeps concurrent
 * writers from deadlocking and makes commit order equal position order.
 */

/** The state an event is built on: a stored snapshot, the state after an event, or empty. */
export interface StateRefInput {
  base: { snapshotNid: number | null } | { afterEvent: string } | null;
  /** Entries that differ from the base. */
  changes: StateTriple[];
}

export interface AppendEventInput {
  eventId: string;
  /** The event JSON as it is to be stored (the PDU, with event_id for v1/v2 rooms). */
  json: Record<string, unknown>;
  type: string;
  stateKey: string | null;
  sender: string;
  depth: number;
  originServerTs: number;
  prevEvents: string[];
  authEvents: string[];
  /** Known only through another event's auth chain or a state response: no state, no timeline. */
  outlier?: boolean;
  /** Authorized by its auth events and the state before it, but not by the current state. */
  softFailed?: boolean;
  /** Failed authorization; stored so it is never fetched or accepted again. */
  rejectedReason?: string | null;
  /** State before the event; absent for outliers. */
  stateBefore?: StateRefInput;
  /** For an accepted redaction whose target is stored: the target's redacted JSON to store. */
  redaction?: { targetEventId: string; redactedJson: Record<string, unknown> } | null;
  /** Built by this server for a local user: queued for the remote servers joined at it (event_destinations). */
  local?: boolean;
}

export interface AppendBatchInput {
  roomId: string;
  roomVersion: string;
  /** The room sequence the decider decided against; 0 for a room not yet stored. */
  expectedSequence: number;
  events: AppendEventInput[];
  /** Changes to the room's current state, applied after the events. */
  currentStateChanges: StateTriple[];
  /** Idempotent client send: recorded with the event in this transaction. */
  clientTxn?: { userId: string; deviceId: string; txnId: string; eventId: string } | null;
  /** The same for a batch of several client sends (the decider batches a busy room's sends). */
  clientTxns?: { userId: string; deviceId: string; txnId: string; eventId: string }[] | null;
}

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
}

export interface AppendBatchResult {
  roomNid: number;
  sequence: number;
  events: AppendedEvent[];
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

/**
 * Appends a group of room batches in one transaction (group commit). The room sequences and
 * client transaction ids of the whole group are checked up front, under the rooms' row locks
 * (and the stream counter lock the caller holds, which serializes every writer): a stale or
 * duplicate batch is refused alone, without touching the database, so no savepoints are
 * needed. Any other error aborts the group; the caller may then retry batches one by one.
 */
export async function appendGroup(
  tx: Queryable,
  batches: AppendBatchInput[],
  nextPosition: number,
  cacheKey: object,
): Promise<{ outcomes: GroupOutcome[]; nextPosition: number }> {
  const roomIds = [...new Set(batches.map((b) => b.roomId))];
  const { rows: roomRows } = await tx.query<{ room_nid: number; room_id: string; sequence: number }>(
    'SELECT room_nid, room_id, sequence FROM rooms WHERE room_id = ANY($1::text[]) ORDER BY room_nid FOR UPDATE',
    [roomIds],
  );
  const rooms = new Map(roomRows.map((r) => [r.room_id, { nid: r.room_nid, sequence: r.sequence, changed: false }]));
  const txns = batches.flatMap(txnsOf);
  const usedTxns = new Map<string, string>();
  const txnKey = (t: { userId: string; deviceId: string; txnId: string }) => JSON.stringify([t.userId, t.deviceId, t.txnId]);
  if (txns.length > 0) {
    const { rows } = await tx.query<{ user_id: string; device_id: string; txn_id: string; event_id: string }>(
      `SELECT c.user_id, c.device_id, c.txn_id, c.event_id FROM client_txns c
       JOIN unnest($1::text[], $2::text[], $3::text[]) AS u (user_id, device_id, txn_id)
         ON c.user_id = u.user_id AND c.device_id = u.device_id AND c.txn_id = u.txn_id`,
      [txns.map((t) => t.userId), txns.map((t) => t.deviceId), txns.map((t) => t.txnId)],
    );
    for (const r of rows) usedTxns.set(txnKey({ userId: r.user_id, deviceId: r.device_id, txnId: r.txn_id }), r.event_id);
  }
  const outcomes: GroupOutcome[] = [];
  const newTxns: NonNullable<AppendBatchInput['clientTxn']>[] = [];
  let position = nextPosition;
  for (const batch of batches) {
    let room = rooms.get(batch.roomId);
    if (batch.expectedSequence === 0 ? room !== undefined : room?.sequence !== batch.expectedSequence) {
      outcomes.push({ ok: false, error: new StaleSequenceError(batch.roomId, batch.expectedSequence, room?.sequence ?? null) });
      continue;
    }
    const batchTxns = txnsOf(batch);
    const used = batchTxns.find((t) => usedTxns.has(txnKey(t)));
    if (used) {
      outcomes.push({ ok: false, error: new DuplicateClientTxnError(usedTxns.get(txnKey(used))!) });
      continue;
    }
    if (!room) {
      const { rows } = await tx.query<{ room_nid: number }>(
        'INSERT INTO rooms (room_id, room_version, sequence) VALUES ($1, $2, 0) RETURNING room_nid',
        [batch.roomId, batch.roomVersion],
      );
      room = { nid: rows[0]!.room_nid, sequence: 0, changed: false };
      rooms.set(batch.roomId, room);
    }
    room.sequence += 1;
    room.changed = true;
    for (const t of batchTxns) {
      usedTxns.set(txnKey(t), t.eventId);
      newTxns.push(t);
    }
    const body = await appendRoomBody(tx, batch, room.nid, position, cacheKey);
    position = body.nextPosition;
    outcomes.push({ ok: true, result: { roomNid: room.nid, sequence: room.sequence, events: body.events } });
  }
  const changed = [...rooms.values()].filter((r) => r.changed);
  if (changed.length > 0) {
    await tx.query(
      'UPDATE rooms SET sequence = u.s FROM unnest($1::bigint[], $2::bigint[]) AS u (n, s) WHERE rooms.room_nid = u.n',
      [changed.map((r) => r.nid), changed.map((r) => r.sequence)],
    );
  }
  if (newTxns.length > 0) {
    await tx.query(
      `INSERT INTO client_txns (user_id, device_id, txn_id, event_id)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])`,
      [newTxns.map((t) => t.userId), newTxns.map((t) => t.deviceId), newTxns.map((t) => t.txnId), newTxns.map((t) => t.eventId)],
    );
  }
  return { outcomes, nextPosition: position };
}

async function appendRoomBody(
  tx: Queryable,
  batch: AppendBatchInput,
  roomNid: number,
  nextPosition: number,
  cacheKey: object,
): Promise<{ events: AppendedEvent[]; nextPosition: number }> {
  const typeNids = await cacheMaps(tx, batch, cacheKey);
  const appended: AppendedEvent[] = [];
  const inBatch = new Map<string, AppendedEvent>();
  const positionsByEvent = new Map<string, number>();
  let position = nextPosition;

  for (const e of batch.events) {
    const timeline = !e.outlier && !e.rejectedReason && !e.softFailed;
    const streamPos = timeline ? position++ : null;
    const typeNid = typeNids.types.get(e.type)!;
    const stateKeyNid = e.stateKey === null ? null : typeNids.keys.get(e.stateKey)!;

    const before = e.outlier || !e.stateBefore ? null : await resolveStateRef(tx, roomNid, e.stateBefore, inBatch, typeNids);
    const isState = stateKeyNid !== null && !e.rejectedReason && !e.outlier && e.stateBefore !== undefined;
    // One statement: the event, its edges and the forward extremities. A timeline event becomes
    // an extremity unless a stored event already cites it (it arrived late); the events it
    // cites stop being extremities.
    const inserted = await tx.query<{ event_nid: number }>(
      `WITH ev AS (
         INSERT INTO events (event_id, room_nid, type_nid, state_key_nid, sender, depth, origin_server_ts, stream_pos,
                             outlier, soft_failed, rejected_reason, state_before_nid, state_after_nid, json)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13)
         ON CONFLICT (event_id) DO NOTHING RETURNING event_nid
       ), prev AS (
         INSERT INTO event_prev_edges (event_nid, prev_event_id) SELECT ev.event_nid, p FROM ev, unnest($14::text[]) AS p ON CONFLICT DO NOTHING
       ), auth AS (
         INSERT INTO event_auth_edges (event_nid, auth_event_id) SELECT ev.event_nid, a FROM ev, unnest($15::text[]) AS a ON CONFLICT DO NOTHING
       ), gone AS (
         DELETE FROM forward_extremities f USING events p
         WHERE $16 AND EXISTS (SELECT 1 FROM ev) AND f.room_nid = $2 AND p.event_id = ANY($14::text[]) AND f.event_nid = p.event_nid
       ), ext AS (
         INSERT INTO forward_extremities (room_nid, event_nid)
         SELECT $2, ev.event_nid FROM ev WHERE $16 AND NOT EXISTS (SELECT 1 FROM event_prev_edges WHERE prev_event_id = $1)
       )
       SELECT event_nid FROM ev`,
      [e.eventId, roomNid, typeNid, stateKeyNid, e.sender, e.depth, e.originServerTs, streamPos,
       e.outlier ?? false, e.softFailed ?? false, e.rejectedReason ?? null, before, JSON.stringify(e.json),
       e.prevEvents, e.authEvents, timeline],
    );
    if (inserted.rows.length === 0) {
      const { rows } = await tx.query<{ event_nid: number; stream_pos: number | null; state_before_nid: number | null; state_after_nid: number | null }>(
        'SELECT event_nid, stream_pos, state_before_nid, state_after_nid FROM events WHERE event_id = $1',
        [e.eventId],
      );
      const r = rows[0]!;
      if (streamPos !== null) position--; // give back the position: nothing was appended
      const dup: AppendedEvent = { eventId: e.eventId, eventNid: r.event_nid, streamPos: r.stream_pos, stateBeforeNid: r.state_before_nid, stateAfterNid: r.state_after_nid, duplicate: true };
      appended.push(dup);
      inBatch.set(e.eventId, dup);
      continue;
    }
    const eventNid = inserted.rows[0]!.event_nid;
    let after = before;
    if (isState) {
      after = await writeSnapshot(tx, roomNid, before, [{ typeNid, stateKeyNid: stateKeyNid!, eventNid }]);
      await tx.query('UPDATE events SET state_after_nid = $2 WHERE event_nid = $1', [eventNid, after]);
    }
    if (timeline) positionsByEvent.set(e.eventId, streamPos!);
    if (e.redaction && timeline) {
      await tx.query('UPDATE events SET json = $2, redacted_by = $3 WHERE event_id = $1 AND room_nid = $4', [
        e.redaction.targetEventId,
        JSON.stringify(e.redaction.redactedJson),
        e.eventId,
        roomNid,
      ]);
    }
    const a: AppendedEvent = { eventId: e.eventId, eventNid, streamPos, stateBeforeNid: before, stateAfterNid: after, duplicate: false };
    appended.push(a);
    inBatch.set(e.eventId, a);
  }

  // Joined servers are computed here, once per event, for fanout-sender (libs/storage/src/fanout).
  const joinedServers = await beginJoinedServersChange(tx, roomNid, {
    memberUserIds: batch.currentStateChanges.filter((c) => c[0] === 'm.room.member').map((c) => c[1]),
    hasLocalEvents: batch.events.some((e) => e.local === true),
  });
  if (batch.currentStateChanges.length > 0) {
    await applyCurrentStateChanges(tx, roomNid, batch, inBatch, typeNids, position - 1);
  }
  await joinedServers.finish(batch.events.map((e, i) => ({ ...appended[i]!, local: e.local === true, sender: e.sender })));
  return { events: appended, nextPosition: position };
}

interface NameMaps {
  types: Map<string, number>;
  keys: Map<string, number>;
}

async function cacheMaps(tx: Queryable, batch: AppendBatchInput, cacheKey: object): Promise<NameMaps> {
  const types = new Set<string>();
  const keys = new Set<string>();
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
  // Names were interned before the transaction (internBatchNames); these are cache hits.
  const [t, k] = await Promise.all([internEventTypes(tx, types, cacheKey), internStateKeys(tx, keys, cacheKey)]);
  return { types: t, keys: k };
}

async function eventNidsFor(tx: Queryable, ids: string[], inBatch: Map<string, AppendedEvent>): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const missing: string[] = [];
  for (const id of ids) {
    const a = inBatch.get(id);
    if (a) out.set(id, a.eventNid);
    else missing.push(id);
  }
  if (missing.length > 0) {
    const { rows } = await tx.query<{ event_id: string; event_nid: number }>(
      'SELECT event_id, event_nid FROM events WHERE event_id = ANY($1::text[])',
      [missing],
    );
    for (const r of rows) out.set(r.event_id, r.event_nid);
  }
  const unknown = ids.filter((id) => !out.has(id));
  if (unknown.length > 0) throw new Error(`state refers to events that are not stored: ${unknown.slice(0, 5).join(', ')}`);
  return out;
}

async function triplesToNids(tx: Queryable, triples: StateTriple[], inBatch: Map<string, AppendedEvent>, names: NameMaps): Promise<StateEntryNids[]> {
  const nids = await eventNidsFor(tx, triples.map((t) => t[2]), inBatch);
  return triples.map(([type, key, id]) => ({ typeNid: names.types.get(type)!, stateKeyNid: names.keys.get(key)!, eventNid: nids.get(id)! }));
}

async function resolveStateRef(
  tx: Queryable,
  roomNid: number,
  ref: StateRefInput,
  inBatch: Map<string, AppendedEvent>,
  names: NameMaps,
): Promise<number | null> {
  let base: number | null = null;
  if (ref.base && 'snapshotNid' in ref.base) base = ref.base.snapshotNid;
  else if (ref.base && 'afterEvent' in ref.base) {
    const id = ref.base.afterEvent;
    const a = inBatch.get(id);
    if (a) base = a.stateAfterNid;
    else {
      const { rows } = await tx.query<{ state_after_nid: number | null; outlier: boolean }>(
        'SELECT state_after_nid, outlier FROM events WHERE event_id = $1',
        [id],
      );
      if (rows.length === 0 || rows[0]!.outlier) throw new Error(`state after ${id} is not known`);
      base = rows[0]!.state_after_nid;
    }
  }
  return writeSnapshot(tx, roomNid, base, await triplesToNids(tx, ref.changes, inBatch, names));
}

async function applyCurrentStateChanges(
  tx: Queryable,
  roomNid: number,
  batch: AppendBatchInput,
  inBatch: Map<string, AppendedEvent>,
  names: NameMaps,
  lastPosition: number,
): Promise<void> {
  const entries = await triplesToNids(tx, batch.currentStateChanges, inBatch, names);
  await tx.query(
    `INSERT INTO current_state (room_nid, type_nid, state_key_nid, event_nid)
     SELECT $1, t, k, e FROM unnest($2::bigint[], $3::bigint[], $4::bigint[]) AS u (t, k, e)
     ON CONFLICT (room_nid, type_nid, state_key_nid) DO UPDATE SET event_nid = EXCLUDED.event_nid`,
    [roomNid, entries.map((e) => e.typeNid), entries.map((e) => e.stateKeyNid), entries.map((e) => e.eventNid)],
  );
  const members = batch.currentStateChanges
    .map((t, i) => ({ t, nid: entries[i]!.eventNid }))
    .filter(({ t }) => t[0] === 'm.room.member');
  if (members.length === 0) return;
  // Membership from the stored event JSON (the batch's own events are stored by now); a
  // membership change takes the stream position of its event when it has one.
  await tx.query(
    `INSERT INTO room_memberships (room_nid, user_id, membership, event_nid, stream_pos)
     SELECT $1, u.user_id, COALESCE((e.json::jsonb -> 'content' ->> 'membership'), 'leave'), e.event_nid, COALESCE(e.stream_pos, $4)
     FROM unnest($2::text[], $3::bigint[]) AS u (user_id, event_nid) JOIN events e ON e.event_nid = u.event_nid
     ON CONFLICT (room_nid, user_id) DO UPDATE
       SET membership = EXCLUDED.membership, event_nid = EXCLUDED.event_nid, stream_pos = EXCLUDED.stream_pos`,
    [roomNid, members.map((m) => m.t[1]), members.map((m) => m.nid), lastPosition],
  );
}
