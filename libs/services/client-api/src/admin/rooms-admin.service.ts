import { Inject, Injectable } from '@nestjs/common';
import { DB, LOGGER } from '@tessera/http';
import { getCurrentStateEvents, getRoom, getRoomMembers, getUserMembershipInRoom, type Db } from '@tessera/storage';
import type { Logger } from 'pino';
import { randomToken } from '../auth/token-hash.js';
import { directoryStore } from '../directory/directory.store.js';
import { badJson, invalidParam, notFound } from '../errors.js';
import { RoomInput } from '../rooms/room-input.service.js';
import { RoomsService } from '../rooms/rooms.service.js';
import { toClientEvent, type ClientEvent } from '../rooms/client-event.js';
import { CLIENT_API_SETTINGS, type ClientApiSettings } from '../settings.js';
import { isRoomId, isUserId, optionalBoolean, optionalString, serverNameOf, type JsonBody } from '../validation.js';
import { queryBoolean, queryEnum, queryOffset, queryString } from './admin-query.js';
import { blockedRoomsStore } from './blocked-rooms.store.js';
import { countDevices, getLocalMembers, getRoomStats, type RoomStats, type RoomStatsWithState } from './rooms-admin.store.js';

const ORDER_BY = [
  'name', 'alphabetical', 'size', 'canonical_alias', 'joined_members', 'joined_local_members', 'version', 'creator',
  'encryption', 'federatable', 'public', 'join_rules', 'guest_access', 'history_visibility', 'state_events',
] as const;
type RoomOrder = (typeof ORDER_BY)[number];

/** Each order's field and whether "f" is ascending (Synapse: sizes and versions largest first). */
const ORDER: Record<RoomOrder, { field: keyof RoomStats; ascending: boolean }> = {
  name: { field: 'name', ascending: true },
  alphabetical: { field: 'name', ascending: true },
  size: { field: 'joined_members', ascending: false },
  canonical_alias: { field: 'canonical_alias', ascending: true },
  joined_members: { field: 'joined_members', ascending: false },
  joined_local_members: { field: 'joined_local_members', ascending: false },
  version: { field: 'version', ascending: false },
  creator: { field: 'creator', ascending: true },
  encryption: { field: 'encryption', ascending: true },
  federatable: { field: 'federatable', ascending: true },
  public: { field: 'public', ascending: true },
  join_rules: { field: 'join_rules', ascending: true },
  guest_access: { field: 'guest_access', ascending: true },
  history_visibility: { field: 'history_visibility', ascending: true },
  state_events: { field: 'state_events', ascending: false },
};

export interface ListRoomsQuery {
  from?: unknown;
  limit?: unknown;
  order_by?: unknown;
  dir?: unknown;
  search_term?: unknown;
  public_rooms?: unknown;
  empty_rooms?: unknown;
}

/** Synapse's ShutdownRoomResponse. */
export interface ShutdownResult {
  kicked_users: string[];
  failed_to_kick_users: string[];
  local_aliases: string[];
  new_room_id: string | null;
}

interface DeleteParams {
  requester: string;
  block: boolean;
  purge: boolean;
  newRoomUserId?: string;
  roomName: string;
  message: string;
}

interface TaskRow {
  delete_id: string;
  room_id: string;
  status: string;
  error: string | null;
  result: ShutdownResult | string;
}

const DEFAULT_ROOM_NAME = 'Content Violation Notification';
const DEFAULT_MESSAGE = 'Sharing illegal content on this server is not permitted and rooms in violation will be blocked.';
const TASK_LIFETIME_MS = 24 * 60 * 60 * 1000;

/** Compares as PostgreSQL's ORDER BY does: NULLs after everything ascending, before everything descending. */
function compare(a: unknown, b: unknown): number {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1;
  if (b === null || b === undefined) return -1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'boolean' && typeof b === 'boolean') return Number(a) - Number(b);
  return String(a) < String(b) ? -1 : 1;
}

/**
 * Synapse's room admin API (docs/admin_api/rooms.md). Reads come from the event log's read
 * models; every change to a room goes through the room pipeline as the Client-Server API's own
 * do (members leave with RoomsService.leave, a replacement room is made with RoomInput).
 *
 * Deleting a room: blocked when asked, every local member (joined, invited, knocking) leaves it
 * and forgets it, it leaves the public directory, and with purge (the default) its local aliases
 * are deleted. The room's events stay in the event log: persistence, its only writer, has no
 * purge, so a "purged" room keeps its history (and still shows in GET /rooms, with no members).
 */
@Injectable()
export class RoomsAdminService {
  constructor(
    @Inject(DB) private readonly db: Db,
    @Inject(CLIENT_API_SETTINGS) private readonly settings: ClientApiSettings,
    @Inject(RoomsService) private readonly rooms: RoomsService,
    @Inject(RoomInput) private readonly input: RoomInput,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** GET /_synapse/admin/v1/rooms. */
  async list(query: ListRoomsQuery): Promise<Record<string, unknown>> {
    const from = queryOffset(query.from, 'from', 0);
    const limit = queryOffset(query.limit, 'limit', 100);
    const orderBy = queryEnum(query.order_by, 'order_by', ORDER_BY, 'name');
    const dir = queryEnum(query.dir, 'dir', ['f', 'b'] as const, 'f');
    const searchTerm = queryString(query.search_term, 'search_term');
    if (searchTerm === '') throw invalidParam('search_term cannot be an empty string');
    const publicRooms = queryBoolean(query.public_rooms, 'public_rooms');
    const emptyRooms = queryBoolean(query.empty_rooms, 'empty_rooms');

    let rooms: RoomStats[] = (await getRoomStats(this.db, this.settings.serverName)).map(withoutTombstone);
    if (searchTerm !== undefined) {
      // As Synapse: the name, or the canonical alias's localpart, contains it (case-insensitive); or it is the room id.
      const term = searchTerm.toLowerCase();
      rooms = rooms.filter((r) =>
        r.name?.toLowerCase().includes(term) ||
        (r.canonical_alias !== null && r.canonical_alias.slice(1, r.canonical_alias.indexOf(':')).toLowerCase().includes(term)) ||
        r.room_id === searchTerm);
    }
    if (publicRooms !== undefined) rooms = rooms.filter((r) => r.public === publicRooms);
    if (emptyRooms !== undefined) rooms = rooms.filter((r) => (r.joined_members === 0) === emptyRooms);
    const { field, ascending } = ORDER[orderBy];
    const sign = ascending === (dir === 'f') ? 1 : -1;
    rooms.sort((a, b) => sign * (compare(a[field], b[field]) || compare(a.room_id, b.room_id)));

    const total = rooms.length;
    const response: Record<string, unknown> = { rooms: rooms.slice(from, from + limit), offset: from, total_rooms: total };
    if (from + limit < total) response.next_batch = from + limit;
    if (from > 0) response.prev_batch = from > limit ? from - limit : 0;
    return response;
  }

  /** GET /_synapse/admin/v1/rooms/{roomId}. */
  async details(roomId: string): Promise<Record<string, unknown>> {
    const [stats] = await getRoomStats(this.db, this.settings.serverName, [this.requireRoomId(roomId)]);
    if (!stats) throw notFound('Room not found');
    const { tombstone, ...room } = stats;
    const members = await getRoomMembers(this.db, roomId, 'join');
    const local = members.filter((u) => serverNameOf(u) === this.settings.serverName);
    const localMembers = await getLocalMembers(this.db, roomId, this.settings.serverName);
    const forgotten = await this.allLocalUsersForgot(roomId, localMembers.map((m) => m.userId));
    return {
      ...room,
      joined_local_devices: await countDevices(this.db, local),
      forgotten,
      tombstoned: tombstone !== null,
      replacement_room: typeof tombstone?.replacement_room === 'string' ? tombstone.replacement_room : null,
    };
  }

  /** GET /_synapse/admin/v1/rooms/{roomId}/members. */
  async members(roomId: string): Promise<{ members: string[]; total: number }> {
    await this.requireRoom(roomId);
    const members = await getRoomMembers(this.db, roomId, 'join');
    return { members, total: members.length };
  }

  /** GET /_synapse/admin/v1/rooms/{roomId}/state[?type=]. */
  async state(roomId: string, type: unknown): Promise<{ state: ClientEvent[] }> {
    await this.requireRoom(roomId);
    const onlyType = queryString(type, 'type');
    const events = await getCurrentStateEvents(this.db, roomId, onlyType ? [onlyType] : undefined);
    return { state: events.map((e) => toClientEvent(e)) };
  }

  /** GET /_synapse/admin/v1/rooms/{roomId}/block. */
  async blockStatus(roomId: string): Promise<{ block: boolean; user_id?: string }> {
    const by = await blockedRoomsStore.blockedBy(this.db, this.requireRoomId(roomId));
    return by !== undefined ? { block: true, user_id: by } : { block: false };
  }

  /** PUT /_synapse/admin/v1/rooms/{roomId}/block: {block}. */
  async setBlock(requester: string, roomId: string, body: JsonBody): Promise<{ block: boolean }> {
    this.requireRoomId(roomId);
    const block = body.block;
    if (typeof block !== 'boolean') throw badJson('Param "block" must be a boolean');
    if (block) await blockedRoomsStore.block(this.db, roomId, requester);
    else await blockedRoomsStore.unblock(this.db, roomId);
    return { block };
  }

  /** The body of DELETE /v1 and /v2 rooms/{roomId}, checked before anything changes. */
  async deleteParams(requester: string, roomId: string, body: JsonBody): Promise<DeleteParams> {
    this.requireRoomId(roomId);
    for (const key of ['block', 'purge', 'force_purge']) {
      if (body[key] !== undefined && typeof body[key] !== 'boolean') throw badJson(`Param '${key}' must be a boolean, if given`);
    }
    const newRoomUserId = optionalString(body, 'new_room_user_id');
    if (newRoomUserId !== undefined && (!isUserId(newRoomUserId) || serverNameOf(newRoomUserId) !== this.settings.serverName)) {
      throw invalidParam(`User must be our own: ${newRoomUserId}`);
    }
    const params: DeleteParams = {
      requester,
      block: body.block === true,
      purge: optionalBoolean(body, 'purge') ?? true,
      roomName: optionalString(body, 'room_name') || DEFAULT_ROOM_NAME,
      message: optionalString(body, 'message') || DEFAULT_MESSAGE,
      ...(newRoomUserId !== undefined ? { newRoomUserId } : {}),
    };
    // An unknown room can only be blocked (Synapse: purging it fails unless it is blocked).
    if (!params.block && !(await getRoom(this.db, roomId))) throw notFound(`Unknown room id ${roomId}`);
    return params;
  }

  /** DELETE /_synapse/admin/v1/rooms/{roomId}: the whole deletion, then its result. */
  deleteNow(roomId: string, params: DeleteParams): Promise<ShutdownResult> {
    return this.shutdown(roomId, params, async () => {});
  }

  /** DELETE /_synapse/admin/v2/rooms/{roomId}: starts the deletion and answers its delete_id at once. */
  async startDelete(roomId: string, params: DeleteParams): Promise<{ delete_id: string }> {
    const { rows } = await this.db.query("SELECT 1 FROM room_delete_tasks WHERE room_id = $1 AND status IN ('scheduled', 'active')", [roomId]);
    if (rows.length > 0) throw invalidParam(`Purge already in progress for ${roomId}`);
    await this.db.query('DELETE FROM room_delete_tasks WHERE updated_ts < $1 AND status NOT IN ($2, $3)', [Date.now() - TASK_LIFETIME_MS, 'scheduled', 'active']);
    const deleteId = randomToken(12);
    const empty: ShutdownResult = { kicked_users: [], failed_to_kick_users: [], local_aliases: [], new_room_id: null };
    await this.db.query('INSERT INTO room_delete_tasks (delete_id, room_id, status, result, updated_ts) VALUES ($1, $2, $3, $4, $5)', [deleteId, roomId, 'active', JSON.stringify(empty), Date.now()]);
    const save = async (result: ShutdownResult, status = 'active', error: string | null = null) => {
      await this.db.query('UPDATE room_delete_tasks SET status = $2, error = $3, result = $4, updated_ts = $5 WHERE delete_id = $1', [deleteId, status, error, JSON.stringify(result), Date.now()]);
    };
    let last = empty;
    void this.shutdown(roomId, params, async (result) => {
      last = result;
      await save(result);
    }).then(
      (result) => save(result, 'complete'),
      (err: unknown) => {
        this.logger.warn({ err, roomId, deleteId }, 'room deletion failed');
        return save(last, 'failed', (err as Error).message ?? String(err));
      },
    ).catch((err: unknown) => this.logger.error({ err, roomId, deleteId }, 'room deletion status not saved'));
    return { delete_id: deleteId };
  }

  /** GET /_synapse/admin/v2/rooms/{roomId}/delete_status. */
  async deleteStatusOfRoom(roomId: string): Promise<{ results: Record<string, unknown>[] }> {
    this.requireRoomId(roomId);
    const { rows } = await this.db.query<TaskRow>('SELECT delete_id, room_id, status, error, result FROM room_delete_tasks WHERE room_id = $1 AND updated_ts >= $2 ORDER BY updated_ts', [roomId, Date.now() - TASK_LIFETIME_MS]);
    if (rows.length === 0) throw notFound(`No delete task for room_id '${roomId}' found`);
    return { results: rows.map(taskView) };
  }

  /** GET /_synapse/admin/v2/rooms/delete_status/{deleteId}. */
  async deleteStatus(deleteId: string): Promise<Record<string, unknown>> {
    const { rows } = await this.db.query<TaskRow>('SELECT delete_id, room_id, status, error, result FROM room_delete_tasks WHERE delete_id = $1 AND updated_ts >= $2', [deleteId, Date.now() - TASK_LIFETIME_MS]);
    if (!rows[0]) throw notFound(`delete id '${deleteId}' not found`);
    return taskView(rows[0]);
  }

  /** Synapse's RoomShutdownHandler.shutdown_room, step by step; `progress` sees the result grow. */
  private async shutdown(roomId: string, params: DeleteParams, progress: (result: ShutdownResult) => Promise<void>): Promise<ShutdownResult> {
    const result: ShutdownResult = { kicked_users: [], failed_to_kick_users: [], local_aliases: [], new_room_id: null };
    // The block first, even for a room not known here.
    if (params.block) await blockedRoomsStore.block(this.db, roomId, params.requester);
    if (!(await getRoom(this.db, roomId))) return result;

    if (params.newRoomUserId !== undefined) {
      const { roomId: newRoomId } = await this.input.createRoom({
        sender: params.newRoomUserId,
        invite: [],
        preset: 'public_chat',
        name: params.roomName,
        power_level_content_override: { users_default: -10 },
      });
      result.new_room_id = newRoomId;
      await progress(result);
    }

    for (const { userId, membership } of await getLocalMembers(this.db, roomId, this.settings.serverName)) {
      if (membership !== 'join' && membership !== 'invite' && membership !== 'knock') continue;
      try {
        // The member leaves (rejects the invite, retracts the knock) as themselves, through the room pipeline.
        await this.rooms.leave(userId, roomId, {});
        const left = await getUserMembershipInRoom(this.db, roomId, userId);
        if (left) await directoryStore.forget(this.db, userId, roomId, left.streamPos);
        if (result.new_room_id !== null && membership === 'join') await this.rooms.join(userId, result.new_room_id, {});
        result.kicked_users.push(userId);
      } catch (err) {
        this.logger.warn({ err, roomId, userId }, 'room deletion: a local member could not be removed');
        result.failed_to_kick_users.push(userId);
      }
      await progress(result);
    }

    await directoryStore.setPublished(this.db, roomId, false);
    if (params.newRoomUserId !== undefined && result.new_room_id !== null) {
      await this.input.sendEvent({ roomId: result.new_room_id, sender: params.newRoomUserId, type: 'm.room.message', content: { body: params.message, msgtype: 'm.text' } });
      result.local_aliases = await directoryStore.roomAliases(this.db, roomId);
      await directoryStore.moveAliases(this.db, roomId, result.new_room_id);
    } else if (params.purge) {
      // What purging can remove here: the room's local aliases (its events stay, see above).
      for (const alias of await directoryStore.roomAliases(this.db, roomId)) await directoryStore.deleteAlias(this.db, alias);
    }
    return result;
  }

  /** Synapse's `forgotten`: every local user that was ever in the room has forgotten it. */
  private async allLocalUsersForgot(roomId: string, localUsers: string[]): Promise<boolean> {
    if (localUsers.length === 0) return false;
    const { rows } = await this.db.query<{ n: number | string }>('SELECT COUNT(*) AS n FROM forgotten_rooms WHERE room_id = $1 AND user_id = ANY($2::text[])', [roomId, localUsers]);
    return Number(rows[0]?.n ?? 0) === localUsers.length;
  }

  private requireRoomId(roomId: string): string {
    if (!isRoomId(roomId)) throw invalidParam(`${roomId} is not a legal room ID`);
    return roomId;
  }

  private async requireRoom(roomId: string): Promise<void> {
    if (!(await getRoom(this.db, this.requireRoomId(roomId)))) throw notFound('Room not found');
  }
}

function withoutTombstone(stats: RoomStatsWithState): RoomStats {
  const { tombstone: _t, topic: _topic, avatar: _avatar, ...room } = stats;
  return room as RoomStats;
}

function taskView(row: TaskRow): Record<string, unknown> {
  return {
    delete_id: row.delete_id,
    room_id: row.room_id,
    status: row.status,
    ...(row.error !== null ? { error: row.error } : {}),
    shutdown_room: typeof row.result === 'string' ? JSON.parse(row.result) : row.result,
  };
}
