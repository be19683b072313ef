import { Controller, Get, Inject, Param, Query, UseGuards } from '@nestjs/common';
import type { Requester } from '../auth/access-tokens.service.js';
import { AccessTokenGuard, CurrentRequester } from '../auth/auth.guard.js';
import { invalidParam } from '../errors.js';
import { clientPaths } from '../http/paths.js';
import { queryInteger, requireRoomIdParam } from '../validation.js';
import { EventStreamService } from './event-stream.service.js';
import { InitialSyncService } from './initial-sync.service.js';

/** As Synapse: /events waits 30 s when no timeout is given; longer waits are cut to /sync's longest. */
const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_TIMEOUT_MS = 300_000;
/** Events per /events answer and per room of /initialSync (Synapse's pagination default and cap). */
const DEFAULT_LIMIT = 10;
const MAX_LIMIT = 1000;

function limitOf(value: string | undefined): number {
  const limit = queryInteger(value, 'limit', DEFAULT_LIMIT);
  if (limit < 0) throw invalidParam('"limit" must be a non-negative integer');
  return Math.min(limit, MAX_LIMIT);
}

function booleanOf(value: string | undefined, name: string): boolean {
  if (value === undefined || value === '') return false;
  if (value !== 'true' && value !== 'false') throw invalidParam(`"${name}" must be true or false`);
  return value === 'true';
}

/**
 * The deprecated (r0) event stream and snapshot endpoints that older clients and bridges still
 * call: GET /events, /events/{eventId}, /initialSync and /rooms/{roomId}/initialSync.
 */
@Controller()
@UseGuards(AccessTokenGuard)
export class LegacySyncController {
  constructor(
    @Inject(EventStreamService) private readonly stream: EventStreamService,
    @Inject(InitialSyncService) private readonly snapshots: InitialSyncService,
  ) {}

  @Get(clientPaths('events'))
  events(@CurrentRequester() r: Requester, @Query('from') from?: string, @Query('timeout') timeout?: string, @Query('limit') limit?: string) {
    const timeoutMs = Math.min(Math.max(0, queryInteger(timeout, 'timeout', DEFAULT_TIMEOUT_MS)), MAX_TIMEOUT_MS);
    // A zero limit would never move the stream on.
    return this.stream.stream({ viewer: r, from, timeoutMs, limit: Math.max(1, limitOf(limit)) });
  }

  @Get(clientPaths('events/:eventId'))
  event(@CurrentRequester() r: Requester, @Param('eventId') eventId: string) {
    return this.stream.event(r, eventId);
  }

  @Get(clientPaths('initialSync'))
  initialSync(@CurrentRequester() r: Requester, @Query('limit') limit?: string, @Query('archived') archived?: string) {
    return this.snapshots.snapshotAll(r, { limit: limitOf(limit), archived: booleanOf(archived, 'archived') });
  }

  @Get(clientPaths('rooms/:roomId/initialSync'))
  roomInitialSync(@CurrentRequester() r: Requester, @Param('roomId') roomId: string, @Query('limit') limit?: string) {
    return this.snapshots.snapshotRoom(r, requireRoomIdParam(roomId), { limit: limitOf(limit) });
  }
}
