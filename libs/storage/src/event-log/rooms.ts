import type { Queryable } from '../db.js';

/** Rooms (table rooms): the room's version and its append sequence. */
export interface StoredRoom {
  roomNid: number;
  roomId: string;
  roomVersion: string;
  /** Incremented by every append; the optimistic-concurrency guard. */
  sequence: number;
}

export async function getRoom(db: Queryable, roomId: string): Promise<StoredRoom | null> {
  const { rows } = await db.query<{ room_nid: number; room_id: string; room_version: string; sequence: number }>(
    'SELECT room_nid, room_id, room_version, sequence FROM rooms WHERE room_id = $1',
    [roomId],
  );
  const r = rows[0];
  return r ? { roomNid: r.room_nid, roomId: r.room_id, roomVersion: r.room_version, sequence: r.sequence } : null;
}

export async function getRoomSequence(db: Queryable, roomId: string): Promise<number | null> {
  const { rows } = await db.query<{ sequence: number }>('SELECT sequence FROM rooms WHERE room_id = $1', [roomId]);
  return rows[0]?.sequence ?? null;
}
