import { Body, Controller, Get, HttpCode, Inject, Param, Post, Put, Query, UseGuards } from '@nestjs/common';
import { isValidServerName } from '@tessera/protocol';
import type { Requester } from '../auth/access-tokens.service.js';
import { AccessTokenGuard, CurrentRequester } from '../auth/auth.guard.js';
import { RateLimited, RateLimitGuard } from '../auth/rate-limit.guard.js';
import { MatrixError, badJson, invalidParam } from '../errors.js';
import { clientPaths } from '../http/paths.js';
import { validateFilter } from '../user-data/filter-validation.js';
import { objectBody, queryInteger, requireRoomIdParam } from '../validation.js';
import type { RoomEventFilter } from './event-filter.js';
import { RoomHistoryService } from './room-history.service.js';
import { RoomsService } from './rooms.service.js';

/** A RoomEventFilter given as JSON in the query string (/messages, /context). */
function queryFilter(value: string | undefined): RoomEventFilter | undefined {
  if (value === undefined || value === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw badJson('"filter" must be a JSON RoomEventFilter');
  }
  // The room part of a full filter validates a RoomEventFilter's fields.
  validateFilter({ room: { timeline: parsed } });
  return parsed as RoomEventFilter;
}

/**
 * The servers a client names to join or knock through: `via` (spec v1.12+), else the older
 * `server_name` that Synapse still reads when `via` is absent. Each may be repeated.
 */
function serverHints(via: string | string[] | undefined, serverName: string | string[] | undefined): string[] {
  const given = via ?? serverName;
  const hints = given === undefined ? [] : Array.isArray(given) ? given : [given];
  for (const hint of hints) {
    if (typeof hint !== 'string' || !isValidServerName(hint)) throw invalidParam(`${JSON.stringify(hint)} in "via" is not a server name`);
  }
  return hints;
}

/** `{type}`, `{type}/` or `{type}/{stateKey}` from a /state/* wildcard (each part percent-decoded). */
function statePath(rest: string): { type: string; stateKey: string } {
  const raw = rest ?? '';
  const slash = raw.indexOf('/');
  const typePart = slash === -1 ? raw : raw.slice(0, slash);
  const keyPart = slash === -1 ? '' : raw.slice(slash + 1);
  let type: string;
  let stateKey: string;
  try {
    type = decodeURIComponent(typePart);
    stateKey = decodeURIComponent(keyPart);
  } catch {
    throw new MatrixError(400, 'M_INVALID_PARAM', 'The state path is not valid percent-encoding');
  }
  if (type === '') throw new MatrixError(404, 'M_UNRECOGNIZED', 'Unrecognized request: use /state/{eventType}/{stateKey}');
  return { type, stateKey };
}

/** Room writes: create, memberships, send, state, redact. */
@Controller()
@UseGuards(AccessTokenGuard, RateLimitGuard)
export class RoomsController {
  constructor(@Inject(RoomsService) private readonly rooms: RoomsService) {}

  @Post(clientPaths('createRoom'))
  @HttpCode(200)
  @RateLimited()
  createRoom(@CurrentRequester() r: Requester, @Body() body: unknown) {
    return this.rooms.createRoom(r.userId, objectBody(body));
  }

  @Post(clientPaths('join/:roomIdOrAlias'))
  @HttpCode(200)
  @RateLimited()
  join(
    @CurrentRequester() r: Requester,
    @Param('roomIdOrAlias') roomIdOrAlias: string,
    @Body() body: unknown,
    @Query('via') via?: string | string[],
    @Query('server_name') serverName?: string | string[],
  ) {
    return this.rooms.join(r.userId, roomIdOrAlias, objectBody(body), serverHints(via, serverName));
  }

  @Post(clientPaths('rooms/:roomId/join'))
  @HttpCode(200)
  @RateLimited()
  joinById(
    @CurrentRequester() r: Requester,
    @Param('roomId') roomId: string,
    @Body() body: unknown,
    @Query('via') via?: string | string[],
    @Query('server_name') serverName?: string | string[],
  ) {
    return this.rooms.join(r.userId, requireRoomIdParam(roomId), objectBody(body), serverHints(via, serverName));
  }

  @Post(clientPaths('knock/:roomIdOrAlias'))
  @HttpCode(200)
  @RateLimited()
  knock(
    @CurrentRequester() r: Requester,
    @Param('roomIdOrAlias') roomIdOrAlias: string,
    @Body() body: unknown,
    @Query('via') via?: string | string[],
    @Query('server_name') serverName?: string | string[],
  ) {
    return this.rooms.knock(r.userId, roomIdOrAlias, objectBody(body), serverHints(via, serverName));
  }

  @Post(clientPaths('rooms/:roomId/leave'))
  @HttpCode(200)
  @RateLimited()
  async leave(@CurrentRequester() r: Requester, @Param('roomId') roomId: string, @Body() body: unknown) {
    await this.rooms.leave(r.userId, requireRoomIdParam(roomId), objectBody(body));
    return {};
  }

  @Post(clientPaths('rooms/:roomId/forget'))
  @HttpCode(200)
  @RateLimited()
  async forget(@CurrentRequester() r: Requester, @Param('roomId') roomId: string) {
    await this.rooms.forget(r.userId, requireRoomIdParam(roomId));
    return {};
  }

  @Post(clientPaths('rooms/:roomId/invite'))
  @HttpCode(200)
  @RateLimited()
  async invite(@CurrentRequester() r: Requester, @Param('roomId') roomId: string, @Body() body: unknown) {
    await this.rooms.actOn(r.userId, requireRoomIdParam(roomId), 'invite', objectBody(body, false));
    return {};
  }

  @Post(clientPaths('rooms/:roomId/kick'))
  @HttpCode(200)
  async kick(@CurrentRequester() r: Requester, @Param('roomId') roomId: string, @Body() body: unknown) {
    await this.rooms.actOn(r.userId, requireRoomIdParam(roomId), 'kick', objectBody(body, false));
    return {};
  }

  @Post(clientPaths('rooms/:roomId/ban'))
  @HttpCode(200)
  async ban(@CurrentRequester() r: Requester, @Param('roomId') roomId: string, @Body() body: unknown) {
    await this.rooms.actOn(r.userId, requireRoomIdParam(roomId), 'ban', objectBody(body, false));
    return {};
  }

  @Post(clientPaths('rooms/:roomId/unban'))
  @HttpCode(200)
  async unban(@CurrentRequester() r: Requester, @Param('roomId') roomId: string, @Body() body: unknown) {
    await this.rooms.actOn(r.userId, requireRoomIdParam(roomId), 'unban', objectBody(body, false));
    return {};
  }

  @Put(clientPaths('rooms/:roomId/send/:eventType/:txnId'))
  @RateLimited()
  send(@CurrentRequester() r: Requester, @Param('roomId') roomId: string, @Param('eventType') type: string, @Param('txnId') txnId: string, @Body() body: unknown) {
    return this.rooms.send(r.userId, r.deviceId, requireRoomIdParam(roomId), type, txnId, body);
  }

  /**
   * /state/{eventType}/{stateKey}, where the state key may be empty (clients then send
   * /state/{type}/ with the slash). Nest strips a trailing slash from route paths and
   * Fastify's router does not fall back from a parameter route to a wildcard, so one
   * wildcard route serves every form.
   */
  @Put(clientPaths('rooms/:roomId/state/*'))
  @RateLimited()
  putState(@CurrentRequester() r: Requester, @Param('roomId') roomId: string, @Param('*') rest: string, @Body() body: unknown) {
    const { type, stateKey } = statePath(rest);
    return this.rooms.putState(r.userId, requireRoomIdParam(roomId), type, stateKey, body);
  }

  @Put(clientPaths('rooms/:roomId/redact/:eventId/:txnId'))
  @RateLimited()
  redact(@CurrentRequester() r: Requester, @Param('roomId') roomId: string, @Param('eventId') eventId: string, @Param('txnId') txnId: string, @Body() body: unknown) {
    return this.rooms.redact(r.userId, r.deviceId, requireRoomIdParam(roomId), eventId, txnId, objectBody(body));
  }
}

/** Room reads: state, events, members, history. */
@Controller()
@UseGuards(AccessTokenGuard, RateLimitGuard)
export class RoomReadsController {
  constructor(@Inject(RoomHistoryService) private readonly history: RoomHistoryService) {}

  @Get(clientPaths('joined_rooms'))
  joinedRooms(@CurrentRequester() r: Requester) {
    return this.history.joinedRooms(r.userId);
  }

  @Get(clientPaths('rooms/:roomId/state'))
  state(@CurrentRequester() r: Requester, @Param('roomId') roomId: string) {
    return this.history.state(r, requireRoomIdParam(roomId));
  }

  @Get(clientPaths('rooms/:roomId/state/*'))
  stateEvent(@CurrentRequester() r: Requester, @Param('roomId') roomId: string, @Param('*') rest: string, @Query('format') format?: string) {
    const { type, stateKey } = statePath(rest);
    return this.history.stateEvent(r, requireRoomIdParam(roomId), type, stateKey, format);
  }

  @Get(clientPaths('rooms/:roomId/event/:eventId'))
  event(@CurrentRequester() r: Requester, @Param('roomId') roomId: string, @Param('eventId') eventId: string) {
    return this.history.event(r, requireRoomIdParam(roomId), eventId);
  }

  @Get(clientPaths('rooms/:roomId/members'))
  members(
    @CurrentRequester() r: Requester,
    @Param('roomId') roomId: string,
    @Query('at') at?: string,
    @Query('membership') membership?: string,
    @Query('not_membership') notMembership?: string,
  ) {
    return this.history.members(r, requireRoomIdParam(roomId), { at, membership, notMembership });
  }

  @Get(clientPaths('rooms/:roomId/joined_members'))
  joinedMembers(@CurrentRequester() r: Requester, @Param('roomId') roomId: string) {
    return this.history.joinedMembers(r.userId, requireRoomIdParam(roomId));
  }

  @Get(clientPaths('rooms/:roomId/messages'))
  messages(
    @CurrentRequester() r: Requester,
    @Param('roomId') roomId: string,
    @Query('from') from?: string,
    @Query('to') to?: string,
    @Query('dir') dir?: string,
    @Query('limit') limit?: string,
    @Query('filter') filter?: string,
  ) {
    return this.history.messages(r, requireRoomIdParam(roomId), {
      from: from === '' ? undefined : from,
      to: to === '' ? undefined : to,
      dir,
      limit: limit === undefined ? undefined : queryInteger(limit, 'limit', 10),
      filter: queryFilter(filter),
    });
  }

  @Get(clientPaths('rooms/:roomId/context/:eventId'))
  context(@CurrentRequester() r: Requester, @Param('roomId') roomId: string, @Param('eventId') eventId: string, @Query('limit') limit?: string, @Query('filter') filter?: string) {
    return this.history.context(r, requireRoomIdParam(roomId), eventId, { limit: queryInteger(limit, 'limit', 10), filter: queryFilter(filter) });
  }
}
