/**
 * `persistence.append` (request/reply): room-server hands persistence one room's decided
 * events; persistence writes them in one transaction and answers with what it stored.
 *
 * The payload types are the event log's own (libs/storage/src/event-log/append.ts), repeated
 * here as plain JSON shapes so the bus does not depend on storage.
 */
export const PERSISTENCE_APPEND = 'persistence.append';
/**
 * `persistence.append-many` (request/reply): several rooms' appends in one message
 * (AppendManyRequest -> AppendManyReply). A room-server replica deciding many rooms at once
 * sends the appends of one event-loop turn together: one bus round trip instead of one per
 * room, and they land in the same group commit. Each append succeeds or fails on its own.
 */
export const PERSISTENCE_APPEND_MANY = 'persistence.append-many';

/** A state as [type, state_key, event_id] triples. */
export type StateTriple = [type: string, stateKey: string, eventId: string];

export interface StateRef {
  /**
   * What the state is built on: a stored snapshot (the decider knows it from an earlier reply
   * and saves persistence a lookup), the state after an event (earlier in this batch or
   * stored), or null for the empty state (before a create event).
   */
  base: { snapshotNid: number | null } | { afterEvent: string } | null;
  /** Entries that differ from the base (after state resolution of a fork; usually empty). */
  changes: StateTriple[];
}

export interface AppendEvent {
  eventId: string;
  /** The PDU as it is stored and served (with event_id for room versions 1 and 2). */
  json: Record<string, unknown>;
  type: string;
  stateKey: string | null;
  sender: string;
  depth: number;
  originServerTs: number;
  prevEvents: string[];
  authEvents: string[];
  /** Stored for its auth chain or as part of a state response: no state, no timeline. */
  outlier?: boolean;
  /** Passed its auth events and the state before it, but not the current state: kept out of the timeline and the extremities. */
  softFailed?: boolean;
  /** Why it was rejected: stored so the event is never fetched, cited or accepted again. */
  rejectedReason?: string | null;
  /** Built here for a local user (not received over federation): announced as `local` on stream.events and queued for the remote servers joined at it (event_destinations). */
  local?: boolean;
  /** The state before the event (absent for outliers). */
  stateBefore?: StateRef;
  /** For an accepted redaction whose target is stored: the target's redacted form, replacing its JSON. */
  redaction?: { targetEventId: string; redactedJson: Record<string, unknown> } | null;
}

export interface AppendRequest {
  roomId: string;
  roomVersion: string;
  /** The room sequence the decider decided against (0: the room is new). A stale one is refused with STALE_SEQUENCE. */
  expectedSequence: number;
  events: AppendEvent[];
  /** Changes to the room's current state after these events (the decider resolved forks). */
  currentStateChanges: StateTriple[];
  /** The client transaction this send answers: recorded with the event, refused with DUPLICATE_TXN if used before. */
  clientTxn?: { userId: string; deviceId: string; txnId: string; eventId: string } | null;
  /** Several client sends batched into one append (a busy room): each recorded with its event. */
  clientTxns?: { userId: string; deviceId: string; txnId: string; eventId: string }[] | null;
  /** For the sender's own /sync: echoed on stream.events as transactionId (clientTxn(s) are echoed too). */
  transactionId?: { userId: string; deviceId: string; txnId: string } | null;
  /**
   * A membership of a room this server does not hold (an invite received over federation, its
   * rejection, a knock): the event goes in this batch as an outlier, which has no place in the
   * room's state, so the user's membership read model records it at a stream position of its
   * own, announced on stream.events with `membership` so that the user's /sync sees it.
   */
  outOfBandMembership?: { userId: string; membership: string; eventId: string } | null;
}

export interface AppendedEventResult {
  eventId: string;
  eventNid: number;
  /** Global stream position; null for outliers, rejected and soft-failed events. */
  streamPos: number | null;
  /** Snapshot of the state before/after the event: the decider caches them for the next event's StateRef. */
  stateBeforeNid: number | null;
  stateAfterNid: number | null;
  /** Already stored before this request: nothing written for it. */
  duplicate: boolean;
  /**
   * Whether the event became one of the room's forward extremities. The decider moves its
   * cached room view with this instead of reloading the room after each append (an event
   * that arrived after events citing it does not become one).
   */
  extremity?: boolean;
}

export interface AppendReply {
  /** The room's sequence after this append: the decider's next expectedSequence. */
  sequence: number;
  events: AppendedEventResult[];
}

/** BusError codes of persistence.append besides the Matrix ones. */
export const STALE_SEQUENCE = 'STALE_SEQUENCE';
/** details: { eventId } of the event the transaction id produced first. */
export const DUPLICATE_TXN = 'DUPLICATE_TXN';

export interface AppendManyRequest {
  appends: AppendRequest[];
}

/** The outcome of each append of an AppendManyRequest, in its order: the reply, or the error persistence.append would have answered. */
export interface AppendManyReply {
  outcomes: Array<{ ok: true; reply: AppendReply } | { ok: false; error: { code: string; message: string; details?: unknown } }>;
}
