import { Inject, Injectable } from '@nestjs/common';
import { DB } from '@tessera/http';
import { getRoomVersion, isKnownRoomVersion, isValidRoomAlias, isValidServerName, roomSummaryFromState, type RoomSummaryChunk } from '@tessera/protocol';
import { getCurrentStateEvent, getCurrentStateEvents, getJoinedServers, getRoom, getSpaceRoomState, type Db } from '@tessera/storage';
import { MatrixError, badJson, forbidden, invalidParam, notFound } from '../errors.js';
import { RemoteQueries } from '../federation/remote-queries.js';
import { maySendState } from '../rooms/power.js';
import { RoomInput } from '../rooms/room-input.service.js';
import { RoomReads } from '../rooms/room-reads.js';
import { CLIENT_API_SETTINGS, type ClientApiSettings } from '../settings.js';
import { isPlainObject, serverNameOf, type JsonBody } from '../validation.js';
import { directoryStore } from './directory.store.js';

const DEFAULT_PUBLIC_ROOMS_LIMIT = 100;

/** A room of the directory (PublishedRoomsChunk): a room summary without the fields the hierarchy API adds. */
export type PublicRoomsChunk = Omit<RoomSummaryChunk, 'allowed_room_ids' | 'encryption' | 'room_version'>;

/** Room aliases and the public room directory (spec "Room aliases", "Listing rooms"). */
@Injectable()
export class DirectoryService {
  constructor(
    @Inject(DB) private readonly db: Db,
    @Inject(CLIENT_API_SETTINGS) private readonly settings: ClientApiSettings,
    @Inject(RoomReads) private readonly reads: RoomReads,
    @Inject(RemoteQueries) private readonly remote: RemoteQueries,
    @Inject(RoomInput) private readonly input: RoomInput,
  ) {}

  /** An alias of this server, checked; M_INVALID_PARAM otherwise. */
  localAlias(alias: string): string {
    if (!isValidRoomAlias(alias)) throw invalidParam(`"${alias}" is not a room alias (#localpart:server)`);
    if (serverNameOf(alias) !== this.settings.serverName) throw invalidParam(`"${alias}" is not an alias of this server (${this.settings.serverName})`);
    return alias;
  }

  /**
   * The room an alias names and servers that know it (GET /directory/room/{alias}, and /join by
   * alias). An alias of another server is looked up there (query/directory); 404 M_NOT_FOUND
   * when no room has it.
   */
  async resolve(alias: string): Promise<{ room_id: string; servers: string[] }> {
    if (!isValidRoomAlias(alias)) throw invalidParam(`"${alias}" is not a room alias (#localpart:server)`);
    const server = serverNameOf(alias);
    if (server !== this.settings.serverName) return this.remote.roomAlias(alias, server);
    const found = await directoryStore.aliasRoom(this.db, alias);
    if (!found) throw notFound(`Room alias ${alias} not found`);
    // This server first (it holds the alias), then every other server with members in the room.
    const joined = await getJoinedServers(this.db, found.roomId);
    return { room_id: found.roomId, servers: [this.settings.serverName, ...joined.filter((s) => s !== this.settings.serverName)] };
  }

  async isAliasFree(alias: string): Promise<boolean> {
    return !(await directoryStore.aliasRoom(this.db, alias));
  }

  /** PUT /directory/room/{alias}: 409 M_UNKNOWN when the alias exists (the spec's status). */
  async createAlias(userId: string, alias: string, body: JsonBody): Promise<void> {
    this.localAlias(alias);
    const roomId = body.room_id;
    if (roomId === undefined) throw new MatrixError(400, 'M_MISSING_PARAM', 'missing "room_id"');
    if (typeof roomId !== 'string') throw badJson('"room_id" must be a room id');
    if (!(await getRoom(this.db, roomId))) throw notFound(`Room ${roomId} is not known to this server`);
    if (!(await directoryStore.addAlias(this.db, alias, roomId, userId))) throw new MatrixError(409, 'M_UNKNOWN', `Room alias ${alias} already exists`);
  }

  /**
   * DELETE /directory/room/{alias}: the alias's creator, or a member allowed to change the
   * room's canonical alias (as Synapse).
   */
  async deleteAlias(userId: string, alias: string): Promise<void> {
    this.localAlias(alias);
    const found = await directoryStore.aliasRoom(this.db, alias);
    if (!found) throw notFound(`Room alias ${alias} not found`);
    if (found.creator !== userId && !(await this.mayChangeCanonicalAlias(found.roomId, userId))) {
      throw forbidden('Only the creator of the alias or a room moderator may delete it');
    }
    await directoryStore.deleteAlias(this.db, alias);
    await this.dropFromCanonicalAlias(userId, found.roomId, alias);
  }

  /**
   * A deleted alias also leaves the room's m.room.canonical_alias event (as Synapse does), so that
   * clients do not show an alias that leads nowhere. Sent as the deleting user; when they may not
   * send it (the alias's creator without power in the room, or no longer a member), the event
   * stays as it is.
   */
  private async dropFromCanonicalAlias(userId: string, roomId: string, alias: string): Promise<void> {
    const current = await getCurrentStateEvent(this.db, roomId, 'm.room.canonical_alias', '');
    const content = current?.json.content as Record<string, unknown> | undefined;
    if (!content) return;
    const alt = Array.isArray(content.alt_aliases) ? content.alt_aliases : undefined;
    if (content.alias !== alias && !alt?.includes(alias)) return;
    const next: Record<string, unknown> = { ...content };
    if (next.alias === alias) delete next.alias;
    // An emptied alt_aliases goes with it, as on Synapse (the content of a room without aliases is {}).
    if (alt) {
      const rest = alt.filter((a) => a !== alias);
      if (rest.length > 0) next.alt_aliases = rest;
      else delete next.alt_aliases;
    }
    if (!(await this.mayChangeCanonicalAlias(roomId, userId))) return;
    try {
      await this.input.sendEvent({ roomId, sender: userId, type: 'm.room.canonical_alias', stateKey: '', content: next });
    } catch (err) {
      // Refused (say, the user has power but left the room): the alias is gone all the same, as on Synapse.
      if (!(err instanceof MatrixError && err.status < 500)) throw err;
    }
  }

  /** GET /rooms/{roomId}/aliases: members (or anyone when the room is world_readable). */
  async roomAliases(userId: string, roomId: string): Promise<{ aliases: string[] }> {
    if (!(await getRoom(this.db, roomId))) throw notFound(`Room ${roomId} is not known to this server`);
    if (!(await this.reads.isJoined(roomId, userId)) && !(await this.isWorldReadable(roomId))) {
      throw forbidden('You are not a member of this room');
    }
    return { aliases: await directoryStore.roomAliases(this.db, roomId) };
  }

  async visibility(roomId: string): Promise<{ visibility: 'public' | 'private' }> {
    if (!(await getRoom(this.db, roomId))) throw notFound(`Room ${roomId} is not known to this server`);
    return { visibility: (await directoryStore.isPublished(this.db, roomId)) ? 'public' : 'private' };
  }

  async setVisibility(userId: string, roomId: string, body: JsonBody): Promise<void> {
    const visibility = body.visibility ?? 'public';
    if (visibility !== 'public' && visibility !== 'private') throw badJson('"visibility" must be "public" or "private"');
    if (!(await getRoom(this.db, roomId))) throw notFound(`Room ${roomId} is not known to this server`);
    if (!(await this.reads.isJoined(roomId, userId)) || !(await this.mayChangeCanonicalAlias(roomId, userId))) {
      throw forbidden('You need to be a room member with power to change the canonical alias to change its directory visibility');
    }
    await directoryStore.setPublished(this.db, roomId, visibility === 'public');
  }

  /** Publishing at createRoom: the creator has just made the room, no check needed. */
  async publish(roomId: string): Promise<void> {
    await directoryStore.setPublished(this.db, roomId, true);
  }

  async addAliasForNewRoom(alias: string, roomId: string, creator: string): Promise<boolean> {
    return directoryStore.addAlias(this.db, alias, roomId, creator);
  }

  /**
   * GET/POST /publicRooms: published rooms, largest first, filtered by a case-insensitive
   * search of name, topic and canonical alias. `since` is an offset token ("o<n>").
   */
  async publicRooms(query: { limit?: number; since?: string; searchTerm?: string; server?: string }): Promise<Record<string, unknown>> {
    if (query.server !== undefined && query.server !== '' && query.server !== this.settings.serverName) {
      if (!isValidServerName(query.server)) throw invalidParam(`"server" ${JSON.stringify(query.server)} is not a server name`);
      if (query.limit !== undefined && (!Number.isInteger(query.limit) || query.limit < 0)) throw invalidParam('"limit" must be a non-negative integer');
      return this.remote.publicRooms(query.server, { limit: query.limit, since: query.since, searchTerm: query.searchTerm });
    }
    const limit = query.limit === undefined ? DEFAULT_PUBLIC_ROOMS_LIMIT : query.limit;
    if (!Number.isInteger(limit) || limit < 0) throw invalidParam('"limit" must be a non-negative integer');
    let offset = 0;
    if (query.since !== undefined) {
      const match = /^o(\d{1,9})$/.exec(query.since);
      if (!match) throw invalidParam(`"since" ${JSON.stringify(query.since)} is not a token from an earlier answer`);
      offset = Number(match[1]);
    }
    const all: PublicRoomsChunk[] = [];
    for (const roomId of await directoryStore.publishedRooms(this.db)) {
      const chunk = await this.describe(roomId);
      if (chunk) all.push(chunk);
    }
    const term = query.searchTerm?.toLowerCase();
    const matching = term
      ? all.filter((r) => [r.name, r.topic, r.canonical_alias].some((v) => typeof v === 'string' && v.toLowerCase().includes(term)))
      : all;
    matching.sort((a, b) => b.num_joined_members - a.num_joined_members || a.room_id.localeCompare(b.room_id));
    const chunk = matching.slice(offset, offset + limit);
    const result: Record<string, unknown> = { chunk, total_room_count_estimate: matching.length };
    if (offset + limit < matching.length) result.next_batch = `o${offset + limit}`;
    if (offset > 0) result.prev_batch = `o${Math.max(0, offset - limit)}`;
    return result;
  }

  private async describe(roomId: string): Promise<PublicRoomsChunk | undefined> {
    const held = await getSpaceRoomState(this.db, roomId);
    if (!held) return undefined;
    const { allowed_room_ids: _allowed, encryption: _encryption, room_version: _version, ...chunk } = roomSummaryFromState(roomId, held.roomVersion, held.state, held.joinedMembers);
    return chunk;
  }

  private async isWorldReadable(roomId: string): Promise<boolean> {
    const [hv] = await getCurrentStateEvents(this.db, roomId, ['m.room.history_visibility']);
    return hv?.json.content?.history_visibility === 'world_readable';
  }

  private async mayChangeCanonicalAlias(roomId: string, userId: string): Promise<boolean> {
    const state = await getCurrentStateEvents(this.db, roomId, ['m.room.create', 'm.room.power_levels']);
    const create = state.find((e) => e.type === 'm.room.create');
    const power = state.find((e) => e.type === 'm.room.power_levels')?.json.content as Record<string, unknown> | undefined;
    if (!create) return false;
    const room = await getRoom(this.db, roomId);
    const privileged =
      room && isKnownRoomVersion(room.roomVersion) && getRoomVersion(room.roomVersion).privilegedCreators
        ? [create.sender, ...(Array.isArray(create.json.content?.additional_creators) ? (create.json.content.additional_creators as string[]) : [])]
        : [];
    return maySendState(power, userId, 'm.room.canonical_alias', create.sender, privileged);
  }
}

export function searchTermOf(body: JsonBody): string | undefined {
  const filter = body.filter;
  if (filter === undefined || filter === null) return undefined;
  if (!isPlainObject(filter)) throw badJson('"filter" must be a JSON object');
  // room_types is not used for the search, but a value of the wrong type is still refused.
  const roomTypes = filter.room_types;
  if (roomTypes !== undefined && roomTypes !== null && (!Array.isArray(roomTypes) || !roomTypes.every((t) => t === null || typeof t === 'string'))) {
    throw badJson('"filter.room_types" must be a list of room types (strings or null)');
  }
  const term = filter.generic_search_term;
  if (term === undefined || term === null) return undefined;
  if (typeof term !== 'string') throw badJson('"filter.generic_search_term" must be a string');
  return term;
}
