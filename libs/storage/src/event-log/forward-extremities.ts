import type { Queryable } from '../db.js';

/** Forward extremities (table forward_extremities): the room's latest events, cited as prev_events by the next one. */
export interface Extremity {
  eventId: string;
  depth: number;
  /** State after the extremity (a snapshot nid; null only for an empty state). */
  stateAfterNid: number | null;
}

export async function getForwardExtremities(db: Queryable, roomId: string): Promise<Extremity[]> {
  const { rows } = await db.query<{ event_id: string; depth: number; state_after_nid: number | null }>(
    `SELECT e.event_id, e.depth, e.state_after_nid FROM forward_extremities f
     JOIN rooms r ON r.room_nid = f.room_nid JOIN events e ON e.event_nid = f.event_nid
     WHERE r.room_id = $1 ORDER BY e.depth DESC, e.event_nid DESC`,
    [roomId],
  );
  return rows.map((r) => ({ eventId: r.event_id, depth: r.depth, stateAfterNid: r.state_after_nid }));
}
