/**
 * Queries about this server's users and rooms: query/directory, query/profile, user/devices,
 * user/keys/query, user/keys/claim, publicRooms. Answers come from client-api's tables through
 * a read repository (client-data.reads.ts).
 */
import { Body, Controller, Get, HttpCode, Inject, Param, Post, Query, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { isValidRoomAlias, isValidUserId } from '@tessera/protocol';
import { DB, MatrixError } from '@tessera/http';
import { getCurrentStateEvents, getJoinedServers, getRoomMembers, type Db } from '@tessera/storage';
import {
  claimOneTimeKey, getAliasRoom, getCrossSigningKeys, getDeviceListStreamId, getDevicesWithKeys, getProfile, getPublishedRoomIds,
} from './client-data.reads.js';
import { FederationContext } from './federation-context.js';

function domainOf(id: string): string {
  return id.slice(id.indexOf(':') + 1);
}

function isObject(v: unknown): v is Record<string, any> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

@Controller('_matrix/federation/v1')
export class QueriesController {
  constructor(
    @Inject(FederationContext) private readonly ctx: FederationContext,
    @Inject(DB) private readonly db: Db,
  ) {}

  private localUser(userId: unknown): string {
    if (typeof userId !== 'string' || !isValidUserId(userId)) throw new MatrixError(400, 'M_INVALID_PARAM', 'user_id must be a user id');
    if (domainOf(userId) !== this.ctx.serverName) throw new MatrixError(400, 'M_INVALID_PARAM', `${userId} is not a user of this server`);
    return userId;
  }

  @Get('query/directory')
  async directory(@Req() req: FastifyRequest, @Query('room_alias') alias: unknown) {
    await this.ctx.authenticate(req);
    if (typeof alias !== 'string' || !isValidRoomAlias(alias)) throw new MatrixError(400, 'M_INVALID_PARAM', 'room_alias must be a room alias');
    const roomId = domainOf(alias) === this.ctx.serverName ? await getAliasRoom(this.db, alias) : null;
    if (!roomId) throw new MatrixError(404, 'M_NOT_FOUND', `room alias ${alias} is not known here`);
    const servers = await getJoinedServers(this.db, roomId);
    // This server first: it published the alias.
    return { room_id: roomId, servers: [this.ctx.serverName, ...servers.filter((s) => s !== this.ctx.serverName)] };
  }

  @Get('query/profile')
  async profile(@Req() req: FastifyRequest, @Query('user_id') userId: unknown, @Query('field') field: unknown) {
    await this.ctx.authenticate(req);
    const user = this.localUser(userId);
    const profile = await getProfile(this.db, user);
    if (!profile) throw new MatrixError(404, 'M_NOT_FOUND', `user ${user} does not exist`);
    if (field !== undefined) {
      if (typeof field !== 'string') throw new MatrixError(400, 'M_INVALID_PARAM', 'field must be a string');
      return profile[field] === undefined ? {} : { [field]: profile[field] };
    }
    return profile;
  }

  @Get('user/devices/:userId')
  async devices(@Req() req: FastifyRequest, @Param('userId') userId: string) {
    await this.ctx.authenticate(req);
    const user = this.localUser(userId);
    const [devices, cross, streamId] = await Promise.all([getDevicesWithKeys(this.db, user), getCrossSigningKeys(this.db, user), getDeviceListStreamId(this.db, user)]);
    const out: Record<string, unknown> = {
      user_id: user,
      stream_id: streamId,
      devices: devices.map((d) => ({
        device_id: d.deviceId,
        keys: d.keys ?? { user_id: user, device_id: d.deviceId, algorithms: [], keys: {}, signatures: {} },
        ...(d.displayName !== null ? { device_display_name: d.displayName } : {}),
      })),
    };
    if (cross.master) out.master_key = cross.master;
    if (cross.self_signing) out.self_signing_key = cross.self_signing;
    return out;
  }

  @Post('user/keys/query')
  @HttpCode(200)
  async keysQuery(@Req() req: FastifyRequest, @Body() body: unknown) {
    await this.ctx.authenticate(req);
    if (!isObject(body) || !isObject(body.device_keys)) throw new MatrixError(400, 'M_BAD_JSON', 'device_keys must be an object');
    const deviceKeys: Record<string, Record<string, unknown>> = {};
    const masterKeys: Record<string, unknown> = {};
    const selfSigningKeys: Record<string, unknown> = {};
    for (const [userId, wanted] of Object.entries(body.device_keys)) {
      if (!isValidUserId(userId) || domainOf(userId) !== this.ctx.serverName) continue;
      const only = Array.isArray(wanted) && wanted.length > 0 ? new Set(wanted) : undefined;
      const devices = await getDevicesWithKeys(this.db, userId);
      deviceKeys[userId] = {};
      for (const d of devices) {
        if (d.keys && (!only || only.has(d.deviceId))) {
          deviceKeys[userId]![d.deviceId] = { ...d.keys, ...(d.displayName !== null ? { unsigned: { device_display_name: d.displayName } } : {}) };
        }
      }
      const cross = await getCrossSigningKeys(this.db, userId);
      if (cross.master) masterKeys[userId] = cross.master;
      if (cross.self_signing) selfSigningKeys[userId] = cross.self_signing;
    }
    return { device_keys: deviceKeys, master_keys: masterKeys, self_signing_keys: selfSigningKeys };
  }

  @Post('user/keys/claim')
  @HttpCode(200)
  async keysClaim(@Req() req: FastifyRequest, @Body() body: unknown) {
    await this.ctx.authenticate(req);
    if (!isObject(body) || !isObject(body.one_time_keys)) throw new MatrixError(400, 'M_BAD_JSON', 'one_time_keys must be an object');
    const claimed: Record<string, Record<string, Record<string, unknown>>> = {};
    for (const [userId, devices] of Object.entries(body.one_time_keys)) {
      if (!isValidUserId(userId) || domainOf(userId) !== this.ctx.serverName || !isObject(devices)) continue;
      for (const [deviceId, algorithm] of Object.entries(devices)) {
        if (typeof algorithm !== 'string') continue;
        const key = await claimOneTimeKey(this.db, userId, deviceId, algorithm);
        if (key) ((claimed[userId] ??= {})[deviceId] = key);
      }
    }
    return { one_time_keys: claimed };
  }

  @Get('publicRooms')
  async publicRoomsGet(@Req() req: FastifyRequest, @Query('limit') limit: unknown, @Query('since') since: unknown) {
    await this.ctx.authenticate(req);
    return this.publicRooms(limit === undefined ? undefined : Number(limit), typeof since === 'string' ? since : undefined, undefined);
  }

  @Post('publicRooms')
  @HttpCode(200)
  async publicRoomsPost(@Req() req: FastifyRequest, @Body() body: unknown) {
    await this.ctx.authenticate(req);
    if (body !== undefined && !isObject(body)) throw new MatrixError(400, 'M_BAD_JSON', 'the body must be a JSON object');
    const b: Record<string, any> = body ?? {};
    // Each declared field, when present, of its declared type (spec: POST publicRooms).
    const wrong = (field: string, ok: (v: unknown) => boolean, what: string) => {
      if (b[field] !== undefined && !ok(b[field])) throw new MatrixError(400, 'M_BAD_JSON', `${field} must be ${what}`);
    };
    wrong('limit', (v) => Number.isSafeInteger(v), 'an integer');
    wrong('since', (v) => typeof v === 'string', 'a string');
    wrong('filter', isObject, 'an object');
    wrong('include_all_networks', (v) => typeof v === 'boolean', 'a boolean');
    wrong('third_party_instance_id', (v) => typeof v === 'string', 'a string');
    const term = b.filter?.generic_search_term;
    if (term !== undefined && term !== null && typeof term !== 'string') throw new MatrixError(400, 'M_BAD_JSON', 'filter.generic_search_term must be a string');
    return this.publicRooms(b.limit, b.since, typeof term === 'string' ? term.toLowerCase() : undefined);
  }

  private async publicRooms(limit: number | undefined, since: string | undefined, term: string | undefined) {
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 0)) throw new MatrixError(400, 'M_INVALID_PARAM', 'limit must be a non-negative integer');
    const start = since === undefined ? 0 : Number(since);
    if (!Number.isInteger(start) || start < 0) throw new MatrixError(400, 'M_INVALID_PARAM', 'since is not a token from this server');
    const chunk: Record<string, unknown>[] = [];
    for (const roomId of await getPublishedRoomIds(this.db)) {
      const state = await getCurrentStateEvents(this.db, roomId, ['m.room.name', 'm.room.topic', 'm.room.canonical_alias', 'm.room.avatar', 'm.room.join_rules', 'm.room.history_visibility', 'm.room.create', 'm.room.guest_access']);
      const c = (type: string) => state.find((s) => s.type === type)?.json.content ?? {};
      const entry: Record<string, unknown> = {
        room_id: roomId,
        num_joined_members: (await getRoomMembers(this.db, roomId)).length,
        world_readable: c('m.room.history_visibility').history_visibility === 'world_readable',
        guest_can_join: c('m.room.guest_access').guest_access === 'can_join',
        join_rule: typeof c('m.room.join_rules').join_rule === 'string' ? c('m.room.join_rules').join_rule : 'public',
      };
      if (typeof c('m.room.name').name === 'string') entry.name = c('m.room.name').name;
      if (typeof c('m.room.topic').topic === 'string') entry.topic = c('m.room.topic').topic;
      if (typeof c('m.room.canonical_alias').alias === 'string') entry.canonical_alias = c('m.room.canonical_alias').alias;
      if (typeof c('m.room.avatar').url === 'string') entry.avatar_url = c('m.room.avatar').url;
      if (typeof c('m.room.create').type === 'string') entry.room_type = c('m.room.create').type;
      if (term && ![entry.name, entry.topic, entry.canonical_alias].some((v) => typeof v === 'string' && v.toLowerCase().includes(term))) continue;
      chunk.push(entry);
    }
    const page = chunk.slice(start, limit === undefined ? undefined : start + limit);
    const out: Record<string, unknown> = { chunk: page, total_room_count_estimate: chunk.length };
    if (limit !== undefined && start + limit < chunk.length) out.next_batch = String(start + limit);
    if (start > 0) out.prev_batch = String(Math.max(0, start - (limit ?? start)));
    return out;
  }
}
