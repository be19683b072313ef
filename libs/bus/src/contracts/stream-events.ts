import type { ClientTransaction, StateChange } from './common.js';

/**
 * stream.events (publish/subscribe): published by persistence after the append committed, for
 * every event that entered a room's timeline (accepted; never rejected, soft-failed or outlier
 * events). A wake-up, never the only copy: a consumer that missed messages reads the log from
 * its own cursor (kept in PostgreSQL), so a lost message costs latency, not data.
 *
 * Consumers: client-api wakes the /sync long-polls of the room's members and updates room
 * lists on membership changes; fanout-sender queues the event for remote servers.
 */
export interface StreamEventNotification {
  /**
   * The global stream position (strictly increasing per writer). Consumers keep the highest
   * one they processed as their cursor; a jump larger than expected means messages were
   * missed and the log must be read from the cursor.
   */
  position: number;
  room_id: string;
  /**
   * The room's sequence after this event. One more than the last one seen for the room means
   * nothing was missed there; anything else means read the room's log.
   */
  room_sequence: number;
  event_id: string;
  /** Type, state key and sender let a consumer filter without loading the event. */
  type: string;
  /** Present for state events. */
  state_key?: string;
  sender: string;
  origin_server_ts: number;
  /**
   * True when a local user sent it: fanout-sender sends only local events to other servers
   * (remote events came from there).
   */
  local: boolean;
  /**
   * How the room's current state changed with this event: for a state event usually its own
   * key (with the event it replaced); after a fork merge, possibly more keys. Empty for
   * message events, and for state events that lost state resolution.
   */
  current_state_changes: StateChange[];
  /**
   * For a local event, the remote servers joined to the room at this event, computed once when
   * the event was decided (as Synapse learned) rather than by every fanout-sender replica.
   */
  destinations?: string[];
  /** The sender's client transaction, so that sync can echo transaction_id to that device only. */
  transaction?: ClientTransaction;
}
