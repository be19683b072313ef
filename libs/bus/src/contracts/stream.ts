/**
 * `stream.events` (publish): persistence announces each event after its transaction
 * commits, in stream order. It carries positions and what a consumer needs to decide whether
 * to act, never the only copy of data: a consumer that misses a message (or sees a gap in
 * `position`) reads the log from its cursor with getEventsSince() of @tessera/storage.
 *
 * Only timeline events are announced (accepted, not outliers, not soft-failed, not rejected).
 */
export const STREAM_EVENTS = 'stream.events';

export interface StreamEventNotification {
  /** Global stream position: sync tokens and consumer cursors are made of it. */
  position: number;
  /** Positions are allocated per transaction; the last position of the previous transaction
   *  this writer committed lets a consumer see that it missed one (then it reads the log). */
  previousPosition: number;
  roomId: string;
  eventId: string;
  type: string;
  /** Present for state events. */
  stateKey?: string;
  sender: string;
  originServerTs: number;
  /** Sent by a user of this server: fanout-sender sends only local events to other servers. */
  local: boolean;
  /**
   * For local events: whether the append queued the event for other servers (event_destinations
   * rows). fanout-sender reads the log only for events queued somewhere, so a room of this
   * server's users alone costs it nothing. Absent (an older writer): treat as true.
   */
  queuedForServers?: boolean;
  /** Room version, so consumers can apply version-specific rules (redaction, ids) without a lookup. */
  roomVersion: string;
  /**
   * Current-state entries this event's append changed, as [type, state_key, event_id]
   * (usually the event itself; more after a fork resolution). sync uses it to update its
   * view of the room state, fanout-sender to follow server membership.
   */
  addsState: [string, string, string][];
  /**
   * For m.room.member events that became current: whose membership changed, and to what.
   * sync wakes that user (invites, joins, leaves) besides the room's joined members.
   */
  membership?: { userId: string; membership: string };
  /** For the sender's device: the client transaction id, echoed in unsigned.transaction_id. */
  transactionId?: { userId: string; deviceId: string; txnId: string };
  /** For m.room.redaction: the redacted event (consumers drop cached copies). */
  redacts?: string;
}
