import { strippedStateOf } from '@tessera/protocol';
import type { StoredEvent } from '@tessera/storage';
import { clientTxnIdOf } from './txn-scope.js';

/** The spec's ClientEvent: what clients receive of a room event (sync, messages, event, context). */
export interface ClientEvent {
  content: Record<string, unknown>;
  event_id: string;
  origin_server_ts: number;
  room_id: string;
  sender: string;
  state_key?: string;
  type: string;
  unsigned?: Record<string, unknown>;
  /** Only in the redaction event of room versions before 11 (top-level redacts). */
  redacts?: string;
}

/** Stripped state (invite_state, knock_state): type, state_key, content, sender only; the create event in full (MSC4311). */
export interface StrippedStateEvent {
  type: string;
  state_key: string;
  content: Record<string, unknown>;
  sender: string;
  [field: string]: unknown;
}

export interface FormatOptions {
  /** The requesting device's transaction ids: event id -> txn id (unsigned.transaction_id). */
  txnIds?: Map<string, string>;
  /** Redaction events that redacted some of these events, by id (unsigned.redacted_because). */
  redactions?: Map<string, StoredEvent>;
  /** State events by id: the state event each replaced (unsigned.prev_content, prev_sender, replaces_state). */
  replaced?: Map<string, StoredEvent>;
  /** The requester's membership at each event, by id (unsigned.membership, spec v1.11). */
  membership?: Map<string, string>;
  now?: number;
}

/** A stored PDU as a ClientEvent: the federation-only keys (auth_events, hashes, signatures, depth, ...) left out. */
export function toClientEvent(event: StoredEvent, options: FormatOptions = {}): ClientEvent {
  const json = event.json;
  const now = options.now ?? Date.now();
  const out: ClientEvent = {
    content: (json.content ?? {}) as Record<string, unknown>,
    event_id: event.eventId,
    origin_server_ts: event.originServerTs,
    room_id: event.roomId,
    sender: event.sender,
    type: event.type,
  };
  if (event.stateKey !== null) out.state_key = event.stateKey;
  if (typeof json.redacts === 'string') out.redacts = json.redacts;
  const unsigned: Record<string, unknown> = { age: Math.max(0, now - event.originServerTs) };
  const membership = options.membership?.get(event.eventId);
  if (membership !== undefined) unsigned.membership = membership;
  const txnId = options.txnIds?.get(event.eventId);
  if (txnId !== undefined) unsigned.transaction_id = clientTxnIdOf(txnId);
  const previous = options.replaced?.get(event.eventId);
  if (previous) {
    unsigned.prev_content = previous.json.content ?? {};
    unsigned.prev_sender = previous.sender;
    unsigned.replaces_state = previous.eventId;
  }
  if (event.redactedBy) {
    const redaction = options.redactions?.get(event.redactedBy);
    if (redaction) unsigned.redacted_because = toClientEvent(redaction, { now });
  }
  out.unsigned = unsigned;
  return out;
}

/** Stripped state of a stored event: the create event in full (strippedStateOf, MSC4311). */
export function toStrippedState(event: StoredEvent): StrippedStateEvent {
  return { ...strippedStateOf(event.json), type: event.type, state_key: event.stateKey ?? '', content: (event.json.content ?? {}) as Record<string, unknown>, sender: event.sender };
}
