import type { Db } from '../db.js';
import { lockStreamCounter, saveStreamCounter } from '../event-log/append.js';

/**
 * Out-of-band memberships: an invite (or the rejection of one, or a knock) for a room this
 * server does not hold is stored as an outlier, which has no place in the room's state. So
 * that the user's /sync still sees it, the membership read model (room_memberships) records it
 * at a fresh stream position, allocated under the same counter lock as every append.
 *
 * A room held locally never takes this path: its memberships follow its current state.
 * Returns the stream position, or null when the event or the room is not stored.
 */
export async function recordOutOfBandMembership(
  db: Db,
  input: { roomId: string; userId: string; membership: string; eventId: string },
): Promise<number | null> {
  return db.transaction(async (tx) => {
    const position = (await lockStreamCounter(tx)) + 1;
    const { rows } = await tx.query<{ room_nid: number; event_nid: number }>(
      `SELECT r.room_nid, e.event_nid FROM rooms r JOIN events e ON e.room_nid = r.room_nid
       WHERE r.room_id = $1 AND e.event_id = $2`,
      [input.roomId, input.eventId],
    );
    if (rows.length === 0) return null;
    await tx.query(
      `INSERT INTO room_memberships (room_nid, user_id, membership, event_nid, stream_pos) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (room_nid, user_id) DO UPDATE
         SET membership = EXCLUDED.membership, event_nid = EXCLUDED.event_nid, stream_pos = EXCLUDED.stream_pos`,
      [rows[0]!.room_nid, input.userId, input.membership, rows[0]!.event_nid, position],
    );
    await saveStreamCounter(tx, position);
    return position;
  });
}
