import type { Queryable } from '@tessera/storage';
import type { PusherTarget } from './notify-request.js';

interface TargetRow {
  /** The room the pusher's owner is joined to (null: the row is for an invitee). */
  room_id?: string | null;
  user_id: string;
  app_id: string;
  pushkey: string;
  data: Record<string, unknown> | string;
  created_ts: string | number;
}

/** Whether any http pusher exists: when none does, the stream has nothing to push and is passed over unread. */
export async function anyHttpPusher(db: Queryable): Promise<boolean> {
  const { rows } = await db.query<{ any: boolean }>("SELECT EXISTS (SELECT 1 FROM pushers WHERE kind = 'http') AS any");
  return rows[0]?.any === true;
}

/**
 * The http pushers for a batch of events in one query: by room, those of the room's joined
 * members; by user, those of the invited users. The caller leaves out each event's sender.
 */
export async function pushTargetsForBatch(
  db: Queryable,
  roomIds: readonly string[],
  invitees: readonly string[],
): Promise<{ byRoom: Map<string, PusherTarget[]>; byInvitee: Map<string, PusherTarget[]> }> {
  const { rows } = await db.query<TargetRow>(
    `SELECT r.room_id, p.user_id, p.app_id, p.pushkey, p.data, p.created_ts FROM pushers p
       JOIN room_memberships m ON m.user_id = p.user_id AND m.membership = 'join'
       JOIN rooms r ON r.room_nid = m.room_nid
      WHERE p.kind = 'http' AND r.room_id = ANY($1::text[])
     UNION ALL
     SELECT NULL, p.user_id, p.app_id, p.pushkey, p.data, p.created_ts FROM pushers p
      WHERE p.kind = 'http' AND p.user_id = ANY($2::text[])
     ORDER BY 2, 6, 3, 4`,
    [[...new Set(roomIds)], [...new Set(invitees)]],
  );
  const byRoom = new Map<string, PusherTarget[]>();
  const byInvitee = new Map<string, PusherTarget[]>();
  for (const r of rows) {
    const target: PusherTarget = {
      userId: r.user_id,
      appId: r.app_id,
      pushkey: r.pushkey,
      data: typeof r.data === 'string' ? (JSON.parse(r.data) as Record<string, unknown>) : r.data,
      createdTs: Number(r.created_ts),
    };
    const [index, key] = r.room_id ? [byRoom, r.room_id] : [byInvitee, r.user_id];
    index.set(key, [...(index.get(key) ?? []), target]);
  }
  return { byRoom, byInvitee };
}
