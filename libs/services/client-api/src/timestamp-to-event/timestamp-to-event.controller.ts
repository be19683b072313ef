import { Controller, Get, Inject, Param, Query, UseGuards } from '@nestjs/common';
import { DB } from '@tessera/http';
import { findClosestTimelineEvent, getCurrentStateEvent, type Db } from '@tessera/storage';
import type { Requester } from '../auth/access-tokens.service.js';
import { AccessTokenGuard, CurrentRequester } from '../auth/auth.guard.js';
import { RateLimited, RateLimitGuard } from '../auth/rate-limit.guard.js';
import { forbidden, invalidParam, missingParam, notFound } from '../errors.js';
import { v1Paths } from '../http/paths.js';
import { RoomReads } from '../rooms/room-reads.js';
import { requireRoomIdParam } from '../validation.js';

/**
 * GET /v1/rooms/{roomId}/timestamp_to_event ("jump to date"): the event closest to a time in
 * one direction, by origin_server_ts. Only events this server holds in the room's timeline
 * (accepted, not outliers); it does not ask other servers over federation for older history.
 * As Synapse, the requester must be joined or the room world_readable (403 otherwise).
 */
@Controller()
@UseGuards(AccessTokenGuard, RateLimitGuard)
export class TimestampToEventController {
  constructor(
    @Inject(DB) private readonly db: Db,
    @Inject(RoomReads) private readonly reads: RoomReads,
  ) {}

  @Get(v1Paths('rooms/:roomId/timestamp_to_event'))
  @RateLimited()
  async find(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Query('ts') ts: unknown, @Query('dir') dir: unknown) {
    requireRoomIdParam(roomId);
    if (ts === undefined) throw missingParam('query parameter "ts" is required');
    if (typeof ts !== 'string' || !/^\d+$/.test(ts) || !Number.isSafeInteger(Number(ts))) throw invalidParam('"ts" must be a timestamp in milliseconds');
    if (dir === undefined) throw missingParam('query parameter "dir" is required');
    if (dir !== 'f' && dir !== 'b') throw invalidParam('"dir" must be "f" or "b"');
    if (!(await this.reads.isJoined(roomId, requester.userId))) {
      const visibility = await getCurrentStateEvent(this.db, roomId, 'm.room.history_visibility', '');
      if (visibility?.json.content?.history_visibility !== 'world_readable') throw forbidden(`You are not joined to ${roomId}`);
    }
    const found = await findClosestTimelineEvent(this.db, roomId, Number(ts), dir);
    if (!found) throw notFound(`No event found ${dir === 'f' ? 'after' : 'before'} ${ts} in ${roomId}`);
    return { event_id: found.eventId, origin_server_ts: found.originServerTs };
  }
}
