/**
 * Backfill: history from before this server joined a room, fetched from another server in the
 * room (Server-Server API GET /backfill) when a client pages /messages past the start of what
 * is held here. client-api asks room-server (`roomserver.backfill`), which fetches, checks and
 * authorises the events and asks persistence (`persistence.backfill`) to store them.
 */
import type { AppendEvent } from './persistence.js';

/**
 * `roomserver.backfill` (request/reply, queue group `room-server`): fetch up to `limit` events
 * before the room's backward extremities (the prev_events of its earliest timeline events
 * that are not held here) from the joined servers, in turn, within a short deadline. Never
 * refused for a remote failure: the reply then says nothing was stored. One backfill per room
 * runs at a time in a replica; a request for a room already being backfilled waits for it.
 */
export const ROOMSERVER_BACKFILL = 'roomserver.backfill';

export interface BackfillRequest {
  roomId: string;
  /** Events wanted (at most 100 are asked for). */
  limit: number;
}

export interface BackfillReply {
  /** Events given a place in the room's timeline (below every position it had). 0: nothing more could be fetched. */
  stored: number;
}

/**
 * `persistence.backfill` (request/reply, queue group `persistence`): store checked events of a
 * /backfill answer OLDER than everything the room has. Unlike persistence.append it writes
 * only the events and their edges: accepted events get negative stream positions (the most
 * recent highest) and no state of their own (they are stored as outliers with a position:
 * nothing may build on their state), rejected ones and the fetched auth events no position.
 * It does not move the room's sequence, forward extremities, current state or memberships,
 * queues nothing for other servers and publishes nothing on stream.events: a backfill is not
 * news to /sync, push or federation. Events held already are skipped (idempotent); an outlier
 * held from the join's state is given its position in place.
 */
export const PERSISTENCE_BACKFILL = 'persistence.backfill';

export interface PersistBackfillRequest {
  roomId: string;
  /** The checked events of the answer (rejectedReason set on those that failed authorisation). */
  events: AppendEvent[];
  /** Auth events fetched to authorise them (GET /event_auth): stored as plain outliers. */
  outliers: AppendEvent[];
}

export interface PersistBackfillReply {
  /** Events placed in the timeline by this request, most recent first, with their (negative) positions. */
  stored: Array<{ eventId: string; streamPos: number }>;
  /** Events stored without a position (rejected, auth events). */
  withoutPosition: number;
  /** Events that were held already. */
  skipped: number;
}
