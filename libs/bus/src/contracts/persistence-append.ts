import type { Pdu } from '@tessera/protocol';
import type { ClientTransaction, StateChange } from './common.js';
import type { InputOutcome } from './roomserver-input.js';

/**
 * persistence.append (request/reply, queue group 'persistence'): the room-server hands a
 * decided event to the only writer of the event log. Everything is written in one PostgreSQL
 * transaction: the event, its edges, the state delta, the new forward extremities and current
 * state, a new global stream position, and the client transaction id.
 *
 * The room's sequence number is the optimistic-concurrency guard: the decider says which
 * sequence it decided against; if another append got there first the request fails with
 * BusError(STALE_ROOM_SEQUENCE, ..., { current_sequence }), nothing is written, and the
 * decider reloads the room and decides again. Correctness never rests on which room-server
 * replica handled the room.
 */
export interface AppendRequest {
  room_id: string;
  room_version: string;
  /** The room's sequence the decision was made against (0 for a room's create event). */
  expected_sequence: number;
  event: AppendedEvent;
  /** The room's forward extremities after this event (for accepted, non-outlier events). */
  forward_extremities: string[];
  /** How the room's current state changes; empty for message events and rejected ones. */
  current_state_changes: StateChange[];
  /** Recorded with the event so that a repeated client send finds it (local 'build' inputs). */
  transaction?: ClientTransaction & { user_id: string };
}

export interface AppendedEvent {
  event_id: string;
  /** The event as signed and sent over federation: stored once, served as is. */
  pdu: Pdu;
  outcome: InputOutcome;
  /** Why it was rejected or soft-failed. */
  reason?: string;
  outlier?: boolean;
  /**
   * The state before the event, as changes relative to the state after another event
   * (usually its single prev_event): storing deltas over shared snapshots, never a copy.
   * Absent for outliers, whose state is not known.
   */
  state_before?: { relative_to: string | null; changes: StateChange[] };
}

export interface AppendResponse {
  /** The global stream position given to the event. */
  stream_position: number;
  /** The room's sequence after the append (expected_sequence + 1). */
  room_sequence: number;
}

/** Error code of the optimistic-concurrency refusal; details: { current_sequence: number }. */
export const STALE_ROOM_SEQUENCE = 'STALE_ROOM_SEQUENCE';
