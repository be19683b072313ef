/**
 * Reading a room's history and state over federation: /event, /state, /state_ids,
 * /event_auth, /backfill, /get_missing_events, /timestamp_to_event. Each is authenticated, checked against the
 * room's server ACL, and answered only to a server with a member joined to the room.
 */
import { Body, Controller, Get, HttpCode, Inject, Param, Post, Query, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { DB, MatrixError } from '@tessera/http';
import {
  findClosestTimelineEvent, getAuthChainIds, getEvent, getEvents, getMissingEventsBetween, getStateBeforeEvent, walkBackwards, type Db, type StoredEvent,
} from '@tessera/storage';
import { FederationContext } from './federation-context.js';
import { checkParticipant } from './room-access.js';
import { pdusAsSeenByServer } from './server-visibility.js';

/** The PDU as served: the stored JSON (with event_id for room versions 1 and 2). */
export function servedPdu(e: StoredEvent): Record<string, unknown> {
  return e.json;
}

function limitOf(raw: unknown, dflt: number, max: number): number {
  if (raw === undefined) return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new MatrixError(400, 'M_INVALID_PARAM', 'limit must be a non-negative integer');
  return Math.min(n, max);
}

function stringList(v: unknown, field: string): string[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new MatrixError(400, 'M_BAD_JSON', `${field} must be a list of event ids`);
  return v as string[];
}

@Controller('_matrix/federation/v1')
export class RoomHistoryController {
  constructor(
    @Inject(FederationContext) private readonly ctx: FederationContext,
    @Inject(DB) private readonly db: Db,
  ) {}

  private async timelineEvent(roomId: string | undefined, eventId: string): Promise<StoredEvent> {
    const e = await getEvent(this.db, eventId);
    if (!e || (roomId !== undefined && e.roomId !== roomId) || e.rejectedReason !== null) {
      throw new MatrixError(404, 'M_NOT_FOUND', `event ${eventId} is not known${roomId ? ` in room ${roomId}` : ''}`);
    }
    return e;
  }

  @Get('event/:eventId')
  async event(@Req() req: FastifyRequest, @Param('eventId') eventId: string) {
    const origin = await this.ctx.authenticate(req);
    const e = await this.timelineEvent(undefined, eventId);
    await checkParticipant(this.db, e.roomId, origin);
    return { origin: this.ctx.serverName, origin_server_ts: Date.now(), pdus: [servedPdu(e)] };
  }

  /** The state before the event and the auth chain of that state. */
  private async stateAt(roomId: string, eventId: string) {
    const e = await this.timelineEvent(roomId, eventId);
    const state = e.outlier ? null : await getStateBeforeEvent(this.db, eventId);
    if (!state) throw new MatrixError(404, 'M_NOT_FOUND', `the state at ${eventId} is not known here`);
    const stateIds = state.map((t) => t[2]);
    const authIds = await getAuthChainIds(this.db, stateIds);
    return { stateIds, authIds };
  }

  @Get('state_ids/:roomId')
  async stateIds(@Req() req: FastifyRequest, @Param('roomId') roomId: string, @Query('event_id') eventId: unknown) {
    const origin = await this.ctx.authenticate(req);
    await checkParticipant(this.db, roomId, origin);
    if (typeof eventId !== 'string') throw new MatrixError(400, 'M_MISSING_PARAM', 'event_id is required');
    const { stateIds, authIds } = await this.stateAt(roomId, eventId);
    return { pdu_ids: stateIds, auth_chain_ids: authIds };
  }

  @Get('state/:roomId')
  async state(@Req() req: FastifyRequest, @Param('roomId') roomId: string, @Query('event_id') eventId: unknown) {
    const origin = await this.ctx.authenticate(req);
    await checkParticipant(this.db, roomId, origin);
    if (typeof eventId !== 'string') throw new MatrixError(400, 'M_MISSING_PARAM', 'event_id is required');
    const { stateIds, authIds } = await this.stateAt(roomId, eventId);
    const events = await getEvents(this.db, [...stateIds, ...authIds]);
    const pick = (ids: string[]) => ids.map((id) => events.get(id)).filter((e): e is StoredEvent => e !== undefined).map(servedPdu);
    return { pdus: pick(stateIds), auth_chain: pick(authIds) };
  }

  @Get('event_auth/:roomId/:eventId')
  async eventAuth(@Req() req: FastifyRequest, @Param('roomId') roomId: string, @Param('eventId') eventId: string) {
    const origin = await this.ctx.authenticate(req);
    await checkParticipant(this.db, roomId, origin);
    await this.timelineEvent(roomId, eventId);
    const ids = await getAuthChainIds(this.db, [eventId]);
    const events = await getEvents(this.db, ids);
    return { auth_chain: ids.map((id) => events.get(id)).filter((e): e is StoredEvent => e !== undefined).map(servedPdu) };
  }

  @Get('backfill/:roomId')
  async backfill(@Req() req: FastifyRequest, @Param('roomId') roomId: string, @Query('v') v: unknown, @Query('limit') limit: unknown) {
    const origin = await this.ctx.authenticate(req);
    const room = await checkParticipant(this.db, roomId, origin);
    const from = v === undefined ? [] : Array.isArray(v) ? v : [v];
    if (from.length === 0 || from.some((x) => typeof x !== 'string')) throw new MatrixError(400, 'M_MISSING_PARAM', 'v (the event ids to backfill from) is required');
    const n = limitOf(limit, 10, 100);
    const events = await walkBackwards(this.db, roomId, from as string[], n);
    return { origin: this.ctx.serverName, origin_server_ts: Date.now(), pdus: await pdusAsSeenByServer(this.db, room.roomVersion, events, origin) };
  }

  @Post('get_missing_events/:roomId')
  @HttpCode(200)
  async getMissingEvents(@Req() req: FastifyRequest, @Param('roomId') roomId: string, @Body() body: unknown) {
    const origin = await this.ctx.authenticate(req);
    const room = await checkParticipant(this.db, roomId, origin);
    if (body === undefined) throw new MatrixError(400, 'M_NOT_JSON', 'the body must be a JSON object');
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw new MatrixError(400, 'M_BAD_JSON', 'the body must be a JSON object');
    const b = body as Record<string, unknown>;
    const earliest = stringList(b.earliest_events, 'earliest_events');
    const latest = stringList(b.latest_events, 'latest_events');
    // JSON integers, not anything Number() turns into one ("12", [1], true, null).
    if (b.limit !== undefined && !Number.isSafeInteger(b.limit)) throw new MatrixError(400, 'M_BAD_JSON', 'limit must be an integer');
    if (b.min_depth !== undefined && !Number.isSafeInteger(b.min_depth)) throw new MatrixError(400, 'M_BAD_JSON', 'min_depth must be an integer');
    const n = limitOf(b.limit, 10, 100);
    const minDepth = (b.min_depth as number | undefined) ?? 0;
    const events = await getMissingEventsBetween(this.db, roomId, earliest, latest, n, minDepth);
    return { events: await pdusAsSeenByServer(this.db, room.roomVersion, events, origin) };
  }

  /** The event closest to a time, as the client API's timestamp_to_event answers it for this server's copy of the room. */
  @Get('timestamp_to_event/:roomId')
  async timestampToEvent(@Req() req: FastifyRequest, @Param('roomId') roomId: string, @Query('ts') ts: unknown, @Query('dir') dir: unknown) {
    const origin = await this.ctx.authenticate(req);
    await checkParticipant(this.db, roomId, origin);
    if (ts === undefined) throw new MatrixError(400, 'M_MISSING_PARAM', 'query parameter "ts" is required');
    if (typeof ts !== 'string' || !/^\d+$/.test(ts) || !Number.isSafeInteger(Number(ts))) throw new MatrixError(400, 'M_INVALID_PARAM', '"ts" must be a timestamp in milliseconds');
    if (dir === undefined) throw new MatrixError(400, 'M_MISSING_PARAM', 'query parameter "dir" is required');
    if (dir !== 'f' && dir !== 'b') throw new MatrixError(400, 'M_INVALID_PARAM', '"dir" must be "f" or "b"');
    const found = await findClosestTimelineEvent(this.db, roomId, Number(ts), dir);
    if (!found) throw new MatrixError(404, 'M_NOT_FOUND', `no event found ${dir === 'f' ? 'after' : 'before'} ${ts} in ${roomId}`);
    return { event_id: found.eventId, origin_server_ts: found.originServerTs };
  }
}
