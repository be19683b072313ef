import { Controller, Get, Inject, Param, Query, UseGuards } from '@nestjs/common';
import type { Requester } from '../auth/access-tokens.service.js';
import { AccessTokenGuard, CurrentRequester } from '../auth/auth.guard.js';
import { RateLimitGuard } from '../auth/rate-limit.guard.js';
import { v1Paths } from '../http/paths.js';
import { queryInteger, requireRoomIdParam } from '../validation.js';
import { RelationsService, type RelationsRequest } from './relations.service.js';

/** An empty query parameter counts as absent (as /messages reads its tokens). */
const given = (value: string | undefined) => (value === '' ? undefined : value);
const optionalInteger = (value: string | undefined, name: string) => (given(value) === undefined ? undefined : queryInteger(value, name, 0));

interface RelationsQueryString {
  from?: string;
  to?: string;
  dir?: string;
  limit?: string;
  recurse?: string;
}

function relationsRequest(q: RelationsQueryString, relType?: string, eventType?: string): RelationsRequest {
  return {
    relType, eventType, from: given(q.from), to: given(q.to), dir: given(q.dir), limit: optionalInteger(q.limit, 'limit'), recurse: given(q.recurse),
  };
}

/** Event relationships: the children of an event, and the thread roots of a room (v1 endpoints). */
@Controller()
@UseGuards(AccessTokenGuard, RateLimitGuard)
export class RelationsController {
  constructor(@Inject(RelationsService) private readonly relations: RelationsService) {}

  @Get(v1Paths('rooms/:roomId/relations/:eventId'))
  all(@CurrentRequester() r: Requester, @Param('roomId') roomId: string, @Param('eventId') eventId: string, @Query() q: RelationsQueryString) {
    return this.relations.relations(r, requireRoomIdParam(roomId), eventId, relationsRequest(q));
  }

  @Get(v1Paths('rooms/:roomId/relations/:eventId/:relType'))
  byRelType(
    @CurrentRequester() r: Requester,
    @Param('roomId') roomId: string,
    @Param('eventId') eventId: string,
    @Param('relType') relType: string,
    @Query() q: RelationsQueryString,
  ) {
    return this.relations.relations(r, requireRoomIdParam(roomId), eventId, relationsRequest(q, relType));
  }

  @Get(v1Paths('rooms/:roomId/relations/:eventId/:relType/:eventType'))
  byRelTypeAndEventType(
    @CurrentRequester() r: Requester,
    @Param('roomId') roomId: string,
    @Param('eventId') eventId: string,
    @Param('relType') relType: string,
    @Param('eventType') eventType: string,
    @Query() q: RelationsQueryString,
  ) {
    return this.relations.relations(r, requireRoomIdParam(roomId), eventId, relationsRequest(q, relType, eventType));
  }

  @Get(v1Paths('rooms/:roomId/threads'))
  threads(
    @CurrentRequester() r: Requester,
    @Param('roomId') roomId: string,
    @Query('include') include?: string,
    @Query('from') from?: string,
    @Query('limit') limit?: string,
  ) {
    return this.relations.threadRoots(r, requireRoomIdParam(roomId), { include: given(include), from: given(from), limit: optionalInteger(limit, 'limit') });
  }
}
