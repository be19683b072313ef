/**
 * Reads the Server-Server API answers from (federation-ingress) and the room-server's
 * federation side uses: auth chains, backfill, missing events, state at an event.
 * They walk the DAG through the edge tables; unknown or outlier ends are simply not followed.
 */
import type { Queryable } from '../db.js';
import { getEvents, type StoredEvent } from './events.js';

/**
 * The auth chain of some events: every event reachable through auth_events, the events
 * themselves excluded (unless reachable from another one). Only stored events are returned.
 */
export async function getAuthChainIds(db: Queryable, eventIds: readonly string[]): Promise<string[]> {
  if (eventIds.length === 0) return [];
  const { rows } = await db.query<{ event_id: string }>(
    `WITH RECURSIVE chain (event_id) AS (
       SELECT a.auth_event_id FROM events e JOIN event_auth_edges a ON a.event_nid = e.event_nid
       WHERE e.event_id = ANY($1::text[])
       UNION
       SELECT a.auth_event_id FROM chain c JOIN events e ON e.event_id = c.event_id
       JOIN event_auth_edges a ON a.event_nid = e.event_nid
     )
     SELECT c.event_id FROM chain c JOIN events e ON e.event_id = c.event_id`,
    [[...new Set(eventIds)]],
  );
  return rows.map((r) => r.event_id);
}

/** Whether the room holds a state of its own here (not only outliers, e.g. a received invite). */
export async function isRoomHeld(db: Queryable, roomId: string): Promise<boolean> {
  const { rows } = await db.query(
    `SELECT 1 FROM forward_extremities f JOIN rooms r ON r.room_nid = f.room_nid WHERE r.room_id = $1 LIMIT 1`,
    [roomId],
  );
  return rows.length > 0;
}

/**
 * Walks prev_events backwards from `fromIds`, nearest first by depth, up to `limit` events:
 * the /backfill answer (the starting events included, as the spec's examples and Synapse do).
 * Rejected events and outliers are not returned nor followed.
 */
export async function walkBackwards(
  db: Queryable,
  roomId: string,
  fromIds: readonly string[],
  limit: number,
  options: { includeStart: boolean; stopAt?: ReadonlySet<string>; minDepth?: number } = { includeStart: true },
): Promise<StoredEvent[]> {
  const seen = new Set<string>();
  const out: StoredEvent[] = [];
  // A frontier ordered by depth: always expand the deepest event first.
  const frontier: StoredEvent[] = [];
  const start = await getEvents(db, fromIds);
  for (const id of fromIds) {
    const e = start.get(id);
    if (!e || e.roomId !== roomId || seen.has(id)) continue;
    seen.add(id);
    if (options.includeStart) {
      if (!e.outlier && !e.rejectedReason) frontier.push(e);
    } else {
      frontier.push(e);
    }
  }
  const taken = new Set<string>();
  while (frontier.length > 0 && out.length < limit) {
    frontier.sort((a, b) => b.depth - a.depth);
    const e = frontier.shift()!;
    const isStart = fromIds.includes(e.eventId);
    if (!isStart || options.includeStart) {
      if (!taken.has(e.eventId)) {
        out.push(e);
        taken.add(e.eventId);
      }
    }
    const prevIds = prevEventIds(e).filter((p) => !seen.has(p) && !options.stopAt?.has(p));
    prevIds.forEach((p) => seen.add(p));
    if (prevIds.length === 0) continue;
    const prevs = await getEvents(db, prevIds);
    for (const p of prevs.values()) {
      if (p.roomId !== roomId || p.outlier || p.rejectedReason) continue;
      if (options.minDepth !== undefined && p.depth < options.minDepth) continue;
      frontier.push(p);
    }
  }
  return out;
}

function prevEventIds(e: StoredEvent): string[] {
  const prevs = e.json.prev_events;
  if (!Array.isArray(prevs)) return [];
  return prevs.map((p: unknown) => (Array.isArray(p) ? p[0] : p)).filter((p: unknown): p is string => typeof p === 'string');
}

/**
 * POST /get_missing_events: the events before `latest` back to (not including) `earliest`,
 * at most `limit`, not below `minDepth`, returned oldest first (as the spec's answer lists them).
 */
export async function getMissingEventsBetween(
  db: Queryable,
  roomId: string,
  earliest: readonly string[],
  latest: readonly string[],
  limit: number,
  minDepth: number,
): Promise<StoredEvent[]> {
  const found = await walkBackwards(db, roomId, latest, limit, { includeStart: false, stopAt: new Set(earliest), minDepth });
  return found.sort((a, b) => a.depth - b.depth || a.eventNid - b.eventNid);
}
