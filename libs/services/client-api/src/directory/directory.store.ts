import type { Queryable } from '@tessera/storage';

/** Local room aliases (table room_aliases) and the public room directory (table room_directory). */
export const directoryStore = {
  async aliasRoom(db: Queryable, alias: string): Promise<{ roomId: string; creator: string } | undefined> {
    const { rows } = await db.query<{ room_id: string; creator: string }>('SELECT room_id, creator FROM room_aliases WHERE alias = $1', [alias]);
    return rows[0] && { roomId: rows[0].room_id, creator: rows[0].creator };
  },

  /** Inserts the alias; false when it exists already. */
  async addAlias(db: Queryable, alias: string, roomId: string, creator: string): Promise<boolean> {
    const { rowCount } = await db.query(
      'INSERT INTO room_aliases (alias, room_id, creator, created_ts) VALUES ($1, $2, $3, $4) ON CONFLICT (alias) DO NOTHING',
      [alias, roomId, creator, Date.now()],
    );
    return rowCount > 0;
  },

  async deleteAlias(db: Queryable, alias: string): Promise<boolean> {
    const { rowCount } = await db.query('DELETE FROM room_aliases WHERE alias = $1', [alias]);
    return rowCount > 0;
  },

  async roomAliases(db: Queryable, roomId: string): Promise<string[]> {
    const { rows } = await db.query<{ alias: string }>('SELECT alias FROM room_aliases WHERE room_id = $1 ORDER BY alias', [roomId]);
    return rows.map((r) => r.alias);
  },

  /** A room upgrade: every local alias of the old room now names the new one (creators kept). */
  async moveAliases(db: Queryable, fromRoomId: string, toRoomId: string): Promise<void> {
    await db.query('UPDATE room_aliases SET room_id = $2 WHERE room_id = $1', [fromRoomId, toRoomId]);
  },

  async isPublished(db: Queryable, roomId: string): Promise<boolean> {
    const { rows } = await db.query('SELECT 1 FROM room_directory WHERE room_id = $1', [roomId]);
    return rows.length > 0;
  },

  async setPublished(db: Queryable, roomId: string, published: boolean): Promise<void> {
    if (published) {
      await db.query('INSERT INTO room_directory (room_id, published_ts) VALUES ($1, $2) ON CONFLICT (room_id) DO NOTHING', [roomId, Date.now()]);
    } else {
      await db.query('DELETE FROM room_directory WHERE room_id = $1', [roomId]);
    }
  },

  async publishedRooms(db: Queryable): Promise<string[]> {
    const { rows } = await db.query<{ room_id: string }>('SELECT room_id FROM room_directory ORDER BY published_ts, room_id');
    return rows.map((r) => r.room_id);
  },

  async forget(db: Queryable, userId: string, roomId: string, membershipStreamPos: number): Promise<void> {
    await db.query(
      `INSERT INTO forgotten_rooms (user_id, room_id, membership_stream_pos) VALUES ($1, $2, $3)
       ON CONFLICT (user_id, room_id) DO UPDATE SET membership_stream_pos = $3`,
      [userId, roomId, membershipStreamPos],
    );
  },

  /** Rooms the user forgot, with the membership position forgotten (a later membership un-forgets). */
  async forgotten(db: Queryable, userId: string): Promise<Map<string, number>> {
    const { rows } = await db.query<{ room_id: string; membership_stream_pos: number }>(
      'SELECT room_id, membership_stream_pos FROM forgotten_rooms WHERE user_id = $1',
      [userId],
    );
    return new Map(rows.map((r) => [r.room_id, r.membership_stream_pos]));
  },

  /** Whether the user forgot the room at this membership (their current one). */
  async isForgotten(db: Queryable, userId: string, roomId: string, membershipStreamPos: number): Promise<boolean> {
    const { rows } = await db.query('SELECT 1 FROM forgotten_rooms WHERE user_id = $1 AND room_id = $2 AND membership_stream_pos = $3', [userId, roomId, membershipStreamPos]);
    return rows.length > 0;
  },
};
