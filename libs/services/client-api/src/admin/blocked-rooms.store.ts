import type { Queryable } from '@tessera/storage';
import { forbidden } from '../errors.js';

/**
 * Rooms a server admin blocked (table blocked_rooms; Synapse's admin API: DELETE
 * /_synapse/admin/v2/rooms with block, PUT /_synapse/admin/v1/rooms/{roomId}/block). Local
 * users may not join, knock on or be invited to them.
 */
export const blockedRoomsStore = {
  async block(db: Queryable, roomId: string, userId: string): Promise<void> {
    await db.query(
      'INSERT INTO blocked_rooms (room_id, user_id, blocked_ts) VALUES ($1, $2, $3) ON CONFLICT (room_id) DO NOTHING',
      [roomId, userId, Date.now()],
    );
  },

  async unblock(db: Queryable, roomId: string): Promise<void> {
    await db.query('DELETE FROM blocked_rooms WHERE room_id = $1', [roomId]);
  },

  /** Who blocked the room, or undefined when it is not blocked. */
  async blockedBy(db: Queryable, roomId: string): Promise<string | undefined> {
    const { rows } = await db.query<{ user_id: string }>('SELECT user_id FROM blocked_rooms WHERE room_id = $1', [roomId]);
    return rows[0]?.user_id;
  },

  /** 403 M_FORBIDDEN for a blocked room (Synapse's words). */
  async refuseBlocked(db: Queryable, roomId: string): Promise<void> {
    if ((await this.blockedBy(db, roomId)) !== undefined) throw forbidden('This room has been blocked on this server');
  },
};
