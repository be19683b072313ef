import type { JsonObject, Pdu } from '@tessera/protocol';
import type { ClientTransaction } from './common.js';

/**
 * roomserver.input (request/reply, queue group 'room-server'): every event that would enter a
 * room goes through the room-server, the only decider. Two kinds of input:
 *
 * - 'build': a local user's action (client-api). The room-server builds the event (prev_events
 *   from the forward extremities, auth_events, depth, hashes, signature), authorizes it and
 *   appends it. If the user may not do it, the request fails with BusError('M_FORBIDDEN', reason)
 *   and nothing is stored; client-api maps the error code to its HTTP status.
 * - 'pdu': an event from another server (federation-ingress), signatures and hashes already
 *   verified. Outcome 'rejected' or 'soft_failed' is an answer, not an error: the event is
 *   stored with the reason, as the spec requires, and the transaction's PDU result reports it.
 */
export type RoomServerInputRequest = BuildEventInput | RemotePduInput;

export interface BuildEventInput {
  kind: 'build';
  room_id: string;
  /** The local user acting; client-api has checked the access token. */
  sender: string;
  type: string;
  /** Present for state events (the empty string is a valid state key). */
  state_key?: string;
  content: JsonObject;
  /** m.room.redaction in room versions before 11 carries redacts at the top level. */
  redacts?: string;
  /**
   * The client's transaction id: a repeated send with the same id returns the first event's
   * id instead of creating a second event (idempotent retries after a timeout).
   */
  transaction?: ClientTransaction;
}

export interface RemotePduInput {
  kind: 'pdu';
  /** The server the PDU came from (the X-Matrix origin), for fetching missing events from it. */
  origin: string;
  /** Needed to compute the event id, apply the right auth rules and redaction algorithm. */
  room_version: string;
  /** The event id computed by federation-ingress when it verified the PDU. */
  event_id: string;
  pdu: Pdu;
  /**
   * An outlier (auth chain or state fetched during a join or backfill): stored and authorized
   * against its own auth_events only, never added to the timeline or the forward extremities.
   */
  outlier?: boolean;
}

export type InputOutcome = 'accepted' | 'soft_failed' | 'rejected';

export interface RoomServerInputResponse {
  event_id: string;
  /** 'build' inputs that succeed are always 'accepted'. */
  outcome: InputOutcome;
  /** Why the event was rejected or soft-failed (logged, returned to federation). */
  reason?: string;
  /** The global stream position of the event once persisted (absent for outliers and rejections). */
  stream_position?: number;
  /** True when a 'build' with a known client transaction returned the earlier event instead. */
  deduplicated?: boolean;
}
