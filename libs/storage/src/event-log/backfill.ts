import type { AppendEvent } from '@tessera/bus';
import type { Db, Queryable } from '../db.js';
import { internEventTypes, internStateKeys } from './names.js';

/**
 * Backfill (Server-Server API "Backfilling and retrieving missing events"): history from before
 * this server joined a room, fetched with /backfill, stored OLDER than everything the room has.
 *
 * A backfilled event is stored with a negative stream position (a descending sequence, as
 * Synapse does: the most recent backfilled event highest, each later backfill below every
 * position given before) and outlier = true: we hold no state of our own at it, so no reader
 * may build on its state (the decider treats it as it treats any outlier: a federated event
 * citing it fills the gap with the state from the remote server; /state_ids at it is 404), but
 * the room's timeline reads (`stream_pos IS NOT NULL`) see it. Nothing else is written: no
 * forward extremity, no current state, no membership, no room sequence, no fanout destination,
 * no stream.events notification. Consumers follow positions above their cursor (>= 0), so a
 * negative position never reaches them.
 *
 * An event held already as a state-less outlier (the room state received with the join) is
 * given its negative position in place; events held otherwise are skipped.
 */

/** The advisory lock that serializes the handing out of negative positions across rooms. */
const BACKFILL_POSITION_LOCK = 0x7e55_bacf;

export interface BackfillInput {
  roomId: string;
  /** Accepted (or rejected, with rejectedReason) events of the room from a /backfill answer. */
  events: AppendEvent[];
  /** Auth events fetched to check them: stored as plain outliers (no position). */
  outliers: AppendEvent[];
}

export interface BackfillResult {
  /** Events given a (negative) stream position by this call, most recent first. */
  stored: Array<{ eventId: string; streamPos: number }>;
  /** Events stored without a position (outliers, rejected events). */
  withoutPosition: number;
  /** Events skipped because they were held already. */
  skipped: number;
}

/**
 * The events to ask /backfill from: the prev_events of the room's earliest timeline events
 * (lowest stream positions first) that are not held here, or held only as plain outliers.
 * `earliest` is in stream order; `held` the ids stored as anything but a position-less outlier.
 */
export function chooseBackwardExtremities(
  earliest: ReadonlyArray<{ eventId: string; prevEvents: readonly string[] }>,
  held: ReadonlySet<string>,
  max = 20,
): string[] {
  const inPage = new Set(earliest.map((e) => e.eventId));
  const out: string[] = [];
  for (const e of earliest) {
    for (const p of e.prevEvents) {
      if (held.has(p) || inPage.has(p) || out.includes(p)) continue;
      out.push(p);
      if (out.length >= max) return out;
    }
  }
  return out;
}

/** How many of the room's earliest timeline events are looked at for backward extremities. */
const EARLIEST_LOOKED_AT = 20;

/** The room's backward extremities (see chooseBackwardExtremities); empty when its history is complete here. */
export async function getBackwardExtremities(db: Queryable, roomId: string, max = 20): Promise<string[]> {
  const { rows } = await db.query<{ event_id: string; stream_pos: number; prev: string[] | null }>(
    `SELECT e.event_id, e.stream_pos,
            (SELECT array_agg(p.prev_event_id ORDER BY p.prev_event_id) FROM event_prev_edges p WHERE p.event_nid = e.event_nid) AS prev
     FROM (SELECT e.event_nid, e.event_id, e.stream_pos FROM events e JOIN rooms r ON r.room_nid = e.room_nid
           WHERE r.room_id = $1 AND e.stream_pos IS NOT NULL ORDER BY e.stream_pos ASC LIMIT $2) e
     ORDER BY e.stream_pos ASC`,
    [roomId, EARLIEST_LOOKED_AT],
  );
  const earliest = rows.map((r) => ({ eventId: r.event_id, prevEvents: r.prev ?? [] }));
  const prevIds = [...new Set(earliest.flatMap((e) => e.prevEvents))];
  if (prevIds.length === 0) return [];
  // Held: stored with a position, or rejected / soft-failed (known, never fetched again).
  const { rows: heldRows } = await db.query<{ event_id: string }>(
    'SELECT event_id FROM events WHERE event_id = ANY($1::text[]) AND (stream_pos IS NOT NULL OR NOT outlier OR rejected_reason IS NOT NULL)',
    [prevIds],
  );
  return chooseBackwardExtremities(earliest, new Set(heldRows.map((r) => r.event_id)), max);
}

/**
 * The state snapshot before the room's earliest event whose state is held here (the first
 * timeline event that is not a backfilled one): backfilled events have no state of their own,
 * and history visibility judges them by this one. null when there is none.
 */
export async function getEarliestHeldStateNid(db: Queryable, roomId: string): Promise<number | null> {
  const { rows } = await db.query<{ state_before_nid: number | null }>(
    `SELECT e.state_before_nid FROM events e JOIN rooms r ON r.room_nid = e.room_nid
     WHERE r.room_id = $1 AND e.stream_pos IS NOT NULL AND NOT e.outlier ORDER BY e.stream_pos ASC LIMIT 1`,
    [roomId],
  );
  return rows[0]?.state_before_nid ?? null;
}

/** Most recent first: by depth, then origin_server_ts, then event id (a stable total order). */
function newestFirst(a: AppendEvent, b: AppendEvent): number {
  return b.depth - a.depth || b.originServerTs - a.originServerTs || (a.eventId < b.eventId ? 1 : a.eventId > b.eventId ? -1 : 0);
}

/**
 * Stores a backfill in one transaction. The room's row lock serializes it with the room's
 * appends and with another backfill of the room (which then finds these events held and skips
 * them); an advisory lock serializes the negative positions of backfills of different rooms.
 * Neither waits for the stream counter, so a backfill never blocks the other rooms' appends.
 */
export async function appendBackfill(db: Db, input: BackfillInput): Promise<BackfillResult> {
  const all = [...input.events, ...input.outliers];
  const types = new Map<string, number>();
  const keys = new Map<string, number>();
  // Names are interned outside the transaction (never rolled back), as for the append.
  for (const [k, v] of await internEventTypes(db, all.map((e) => e.type), db)) types.set(k, v);
  for (const [k, v] of await internStateKeys(db, all.flatMap((e) => (e.stateKey === null ? [] : [e.stateKey])), db)) keys.set(k, v);

  return db.transaction(async (tx) => {
    const { rows: roomRows } = await tx.query<{ room_nid: number }>('SELECT room_nid FROM rooms WHERE room_id = $1 FOR UPDATE', [input.roomId]);
    const roomNid = roomRows[0]?.room_nid;
    if (roomNid === undefined) throw new Error(`room ${input.roomId} is not held here: nothing to backfill into`);
    const { rows: existing } = await tx.query<{ event_id: string; event_nid: number; outlier: boolean; stream_pos: number | null; rejected_reason: string | null }>(
      'SELECT event_id, event_nid, outlier, stream_pos, rejected_reason FROM events WHERE event_id = ANY($1::text[])',
      [[...new Set(all.map((e) => e.eventId))]],
    );
    const held = new Map(existing.map((r) => [r.event_id, r]));

    const result: BackfillResult = { stored: [], withoutPosition: 0, skipped: 0 };
    const inserts: Array<{ e: AppendEvent; pos: number | null; outlier: boolean }> = [];
    const promote: Array<{ nid: number; pos: number }> = [];
    const seen = new Set<string>();
    const accepted = input.events.filter((e) => !e.rejectedReason).sort(newestFirst);
    let next: number | undefined;
    if (accepted.length > 0) {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [BACKFILL_POSITION_LOCK]);
      const { rows } = await tx.query<{ lowest: number | null }>('SELECT MIN(stream_pos) AS lowest FROM events');
      next = Math.min(Number(rows[0]?.lowest ?? 0), 0) - 1;
    }
    for (const e of accepted) {
      if (seen.has(e.eventId)) continue;
      seen.add(e.eventId);
      const h = held.get(e.eventId);
      if (h && !(h.outlier && h.stream_pos === null && h.rejected_reason === null)) {
        result.skipped++;
        continue;
      }
      const pos = next!--;
      if (h) promote.push({ nid: h.event_nid, pos });
      else inserts.push({ e, pos, outlier: true });
      result.stored.push({ eventId: e.eventId, streamPos: pos });
    }
    // Rejected events and fetched auth events: stored without a position, so they are never fetched again.
    for (const e of [...input.events.filter((x) => x.rejectedReason), ...input.outliers]) {
      if (seen.has(e.eventId)) continue;
      seen.add(e.eventId);
      if (held.has(e.eventId)) {
        result.skipped++;
        continue;
      }
      inserts.push({ e, pos: null, outlier: true });
      result.withoutPosition++;
    }

    if (promote.length > 0) {
      await tx.query(
        `UPDATE events SET stream_pos = u.pos FROM unnest($1::bigint[], $2::bigint[]) AS u (nid, pos)
         WHERE events.event_nid = u.nid AND events.stream_pos IS NULL AND events.outlier`,
        [promote.map((p) => p.nid), promote.map((p) => p.pos)],
      );
    }
    if (inserts.length > 0) {
      const edges = (pick: (e: AppendEvent) => string[]) => {
        const ids: string[] = [];
        const to: string[] = [];
        for (const { e } of inserts) for (const p of new Set(pick(e))) {
          ids.push(e.eventId);
          to.push(p);
        }
        return [ids, to] as const;
      };
      const [prevIds, prevTo] = edges((e) => e.prevEvents);
      const [authIds, authTo] = edges((e) => e.authEvents);
      await tx.query(
        `WITH ev AS (
           INSERT INTO events (event_id, room_nid, type_nid, state_key_nid, sender, depth, origin_server_ts, stream_pos, outlier, rejected_reason, json)
           SELECT u.id, $2::bigint, u.t, u.k, u.s, u.d, u.ts, u.pos, u.o, u.rej, u.j
           FROM unnest($1::text[], $3::bigint[], $4::bigint[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::boolean[], $10::text[], $11::text[])
             AS u (id, t, k, s, d, ts, pos, o, rej, j)
           ON CONFLICT (event_id) DO NOTHING RETURNING event_id, event_nid
         ), prev AS (
           INSERT INTO event_prev_edges (event_nid, prev_event_id)
           SELECT ev.event_nid, u.p FROM unnest($12::text[], $13::text[]) AS u (id, p) JOIN ev ON ev.event_id = u.id ON CONFLICT DO NOTHING
         )
         INSERT INTO event_auth_edges (event_nid, auth_event_id)
         SELECT ev.event_nid, u.a FROM unnest($14::text[], $15::text[]) AS u (id, a) JOIN ev ON ev.event_id = u.id ON CONFLICT DO NOTHING`,
        [
          inserts.map((i) => i.e.eventId), roomNid, inserts.map((i) => types.get(i.e.type)!),
          inserts.map((i) => (i.e.stateKey === null ? null : keys.get(i.e.stateKey)!)), inserts.map((i) => i.e.sender),
          inserts.map((i) => i.e.depth), inserts.map((i) => i.e.originServerTs), inserts.map((i) => i.pos), inserts.map((i) => i.outlier),
          inserts.map((i) => i.e.rejectedReason ?? null), inserts.map((i) => JSON.stringify(i.e.json)),
          prevIds, prevTo, authIds, authTo,
        ],
      );
    }
    return result;
  });
}
