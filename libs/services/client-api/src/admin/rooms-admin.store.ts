import type { Queryable } from '@tessera/storage';

/** What Synapse's room admin API reports of a room (its room_stats_state / room_stats_current), from the event log's read models. */
export interface RoomStats {
  room_id: string;
  name: string | null;
  topic: string | null;
  avatar: string | null;
  canonical_alias: string | null;
  joined_members: number;
  joined_local_members: number;
  version: string;
  creator: string | null;
  encryption: string | null;
  federatable: boolean;
  public: boolean;
  join_rules: string | null;
  guest_access: string | null;
  history_visibility: string | null;
  state_events: number;
  room_type: string | null;
}

/** The state events (state key "") the statistics are read from. */
const STAT_TYPES = [
  'm.room.create', 'm.room.name', 'm.room.topic', 'm.room.avatar', 'm.room.canonical_alias', 'm.room.encryption',
  'm.room.join_rules', 'm.room.guest_access', 'm.room.history_visibility', 'm.room.tombstone',
];

interface Row {
  room_id: string;
  room_version: string;
  state_events: number | string;
  joined_members: number | string;
  joined_local_members: number | string;
  published: boolean;
  /** [type, event JSON] of the room's STAT_TYPES state events. */
  stats: Array<[string, string]> | string;
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

export interface RoomStatsWithState extends RoomStats {
  /** Content of the room's m.room.tombstone, when it has one. */
  tombstone: Record<string, unknown> | null;
}

/**
 * Statistics of the rooms this server holds a state for (every room of `rooms` with a current
 * state: not those known only from an invite), in one statement; all rooms, or those given.
 * Local members are those whose user id ends with ":" + serverName.
 */
export async function getRoomStats(db: Queryable, serverName: string, roomIds?: readonly string[]): Promise<RoomStatsWithState[]> {
  const { rows } = await db.query<Row>(
    `SELECT r.room_id, r.room_version,
       (SELECT COUNT(*) FROM current_state c WHERE c.room_nid = r.room_nid) AS state_events,
       (SELECT COUNT(*) FROM room_memberships m WHERE m.room_nid = r.room_nid AND m.membership = 'join') AS joined_members,
       (SELECT COUNT(*) FROM room_memberships m WHERE m.room_nid = r.room_nid AND m.membership = 'join'
           AND substr(m.user_id, strpos(m.user_id, ':') + 1) = $1) AS joined_local_members,
       EXISTS (SELECT 1 FROM room_directory d WHERE d.room_id = r.room_id) AS published,
       (SELECT COALESCE(json_agg(json_build_array(t.event_type, e.json)), '[]'::json)
          FROM current_state c
          JOIN event_types t ON t.type_nid = c.type_nid
          JOIN event_state_keys k ON k.state_key_nid = c.state_key_nid
          JOIN events e ON e.event_nid = c.event_nid
         WHERE c.room_nid = r.room_nid AND k.state_key = '' AND t.event_type = ANY($2::text[])) AS stats
     FROM rooms r
     WHERE EXISTS (SELECT 1 FROM current_state c WHERE c.room_nid = r.room_nid)
       AND ($3::text[] IS NULL OR r.room_id = ANY($3::text[]))`,
    [serverName, STAT_TYPES, roomIds ? [...roomIds] : null],
  );
  return rows.map((r) => {
    const stats = (typeof r.stats === 'string' ? JSON.parse(r.stats) : r.stats) as Array<[string, string]>;
    const events = new Map(stats.map(([type, json]) => [type, JSON.parse(json) as { sender?: string; content?: Record<string, unknown> }]));
    const content = (type: string): Record<string, unknown> => events.get(type)?.content ?? {};
    const create = events.get('m.room.create');
    return {
      room_id: r.room_id,
      name: str(content('m.room.name').name),
      topic: str(content('m.room.topic').topic),
      avatar: str(content('m.room.avatar').url),
      canonical_alias: str(content('m.room.canonical_alias').alias),
      joined_members: Number(r.joined_members),
      joined_local_members: Number(r.joined_local_members),
      version: r.room_version,
      // Room versions before 11 name the creator in the content; later ones by the sender.
      creator: str(create?.content?.creator) ?? str(create?.sender),
      encryption: str(content('m.room.encryption').algorithm),
      federatable: create?.content?.['m.federate'] !== false,
      public: r.published,
      join_rules: str(content('m.room.join_rules').join_rule),
      guest_access: str(content('m.room.guest_access').guest_access),
      history_visibility: str(content('m.room.history_visibility').history_visibility),
      state_events: Number(r.state_events),
      room_type: str(create?.content?.type),
      tombstone: events.has('m.room.tombstone') ? content('m.room.tombstone') : null,
    };
  });
}

/** A room's local members by current membership (join, invite, knock, ...). */
export async function getLocalMembers(db: Queryable, roomId: string, serverName: string): Promise<Array<{ userId: string; membership: string }>> {
  const { rows } = await db.query<{ user_id: string; membership: string }>(
    `SELECT m.user_id, m.membership FROM room_memberships m JOIN rooms r ON r.room_nid = m.room_nid
     WHERE r.room_id = $1 AND substr(m.user_id, strpos(m.user_id, ':') + 1) = $2 ORDER BY m.user_id`,
    [roomId, serverName],
  );
  return rows.map((r) => ({ userId: r.user_id, membership: r.membership }));
}

/** How many devices the given users have (Synapse's joined_local_devices). */
export async function countDevices(db: Queryable, userIds: readonly string[]): Promise<number> {
  if (userIds.length === 0) return 0;
  const { rows } = await db.query<{ n: number | string }>('SELECT COUNT(*) AS n FROM devices WHERE user_id = ANY($1::text[])', [[...userIds]]);
  return Number(rows[0]?.n ?? 0);
}
