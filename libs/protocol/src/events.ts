/**
 * Event hashing, ids, redaction and signatures (spec: server-server API "Signing events",
 * "Calculating the reference hash for an event", room version pages "Redactions" and
 * "Event IDs").
 *
 * Everything that differs per room version is read from the RoomVersion record.
 */
import { createHash } from 'node:crypto';
import { encodeUnpaddedBase64, encodeUnpaddedBase64Url } from './base64.js';
import { canonicalJson, canonicalJsonBytes } from './canonical-json.js';
import type { Pdu, RoomEvent } from './event-types.js';
import type { RoomVersion } from './room-versions.js';
import { addSignature, getSignature, signBytes, type SigningKey, verifyBytes } from './signing.js';

export class EventFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EventFormatError';
  }
}

function sha256(data: string | Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

// ---------------------------------------------------------------------------------------------
// Content hash

/** The event without `unsigned`, `signatures` and `hashes`: what the content hash covers. */
function contentHashedPart(pdu: object): Record<string, unknown> {
  const { unsigned: _u, signatures: _s, hashes: _h, ...rest } = pdu as Record<string, unknown>;
  return rest;
}

/** Unpadded base64 of sha256 over the canonical JSON of the event minus unsigned, signatures, hashes. */
export function computeContentHash(pdu: object): string {
  return encodeUnpaddedBase64(sha256(canonicalJson(contentHashedPart(pdu))));
}

/** True if `hashes.sha256` matches the event; false if absent, malformed or different. */
export function checkContentHash(pdu: object): boolean {
  const hashes = (pdu as { hashes?: unknown }).hashes;
  const expected = hashes && typeof hashes === 'object' ? (hashes as Record<string, unknown>).sha256 : undefined;
  if (typeof expected !== 'string') return false;
  try {
    return computeContentHash(pdu) === expected.replace(/=+$/, '');
  } catch {
    return false; // no canonical JSON form
  }
}

// ---------------------------------------------------------------------------------------------
// Redaction

const TOP_LEVEL_KEYS_V1 = new Set([
  'event_id', 'type', 'room_id', 'sender', 'state_key', 'content', 'hashes', 'signatures', 'depth',
  'prev_events', 'prev_state', 'auth_events', 'origin', 'origin_server_ts', 'membership',
]);
// v11 (MSC2176) drops origin, membership and prev_state.
const TOP_LEVEL_KEYS_V11 = new Set([
  'event_id', 'type', 'room_id', 'sender', 'state_key', 'content', 'hashes', 'signatures', 'depth',
  'prev_events', 'auth_events', 'origin_server_ts',
]);

const POWER_LEVELS_KEYS = ['ban', 'events', 'events_default', 'kick', 'redact', 'state_default', 'users', 'users_default'];

function pick(content: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (Object.prototype.hasOwnProperty.call(content, k)) out[k] = content[k];
  return out;
}

/** The content keys that survive redaction, by event type, under the version's rules. */
function redactContent(type: unknown, content: Record<string, unknown>, roomVersion: RoomVersion): Record<string, unknown> {
  const rules = roomVersion.redaction;
  switch (type) {
    case 'm.room.member': {
      const kept = pick(content, rules.keepJoinAuthorisedVia ? ['membership', 'join_authorised_via_users_server'] : ['membership']);
      const invite = content.third_party_invite;
      if (rules.v11Rules && invite && typeof invite === 'object' && !Array.isArray(invite) && 'signed' in invite) {
        kept.third_party_invite = { signed: (invite as Record<string, unknown>).signed };
      }
      return kept;
    }
    case 'm.room.create':
      return rules.v11Rules ? { ...content } : pick(content, ['creator']);
    case 'm.room.join_rules':
      return pick(content, rules.keepJoinRulesAllow ? ['join_rule', 'allow'] : ['join_rule']);
    case 'm.room.power_levels':
      return pick(content, rules.v11Rules ? [...POWER_LEVELS_KEYS, 'invite'] : POWER_LEVELS_KEYS);
    case 'm.room.aliases':
      return rules.keepAliasesContent ? pick(content, ['aliases']) : {};
    case 'm.room.history_visibility':
      return pick(content, ['history_visibility']);
    case 'm.room.redaction':
      return rules.v11Rules ? pick(content, ['redacts']) : {};
    default:
      return {};
  }
}

/**
 * The redaction algorithm of the room version: a copy of the event with only the top-level
 * keys and content keys the rules keep. `unsigned` is dropped like any other key.
 */
export function redactEvent<T extends object>(pdu: T, roomVersion: RoomVersion): T {
  const keep = roomVersion.redaction.v11Rules ? TOP_LEVEL_KEYS_V11 : TOP_LEVEL_KEYS_V1;
  const source = pdu as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(source)) {
    if (keep.has(key)) out[key] = source[key];
  }
  const content = source.content;
  out.content = content && typeof content === 'object' && !Array.isArray(content)
    ? redactContent(source.type, content as Record<string, unknown>, roomVersion)
    : {};
  return out as T;
}

// ---------------------------------------------------------------------------------------------
// Reference hash and event ids

/** Canonical JSON bytes of the redacted event without signatures and unsigned (nor age_ts). */
function redactedSignableBytes(pdu: object, roomVersion: RoomVersion): Buffer {
  const { signatures: _s, unsigned: _u, age_ts: _a, ...rest } = redactEvent(pdu, roomVersion) as Record<string, unknown>;
  return canonicalJsonBytes(rest);
}

/** sha256 of the redacted event, minus signatures and unsigned, in canonical JSON. */
export function computeReferenceHash(pdu: object, roomVersion: RoomVersion): Buffer {
  return sha256(redactedSignableBytes(pdu, roomVersion));
}

function eventIdFromReferenceHash(hash: Buffer, roomVersion: RoomVersion): string {
  return roomVersion.eventIdFormat === 'v2' ? `$${encodeUnpaddedBase64(hash)}` : `$${encodeUnpaddedBase64Url(hash)}`;
}

/**
 * The event's id: in room versions 1-2 the `event_id` field the event carries; from v3 on `$`
 * and the reference hash (standard base64 in v3, URL-safe from v4).
 */
export function computeEventId(pdu: object, roomVersion: RoomVersion): string {
  if (roomVersion.eventIdFormat === 'v1') {
    const id = (pdu as { event_id?: unknown }).event_id;
    if (typeof id !== 'string') {
      throw new EventFormatError(`room version ${roomVersion.id} events carry their own event_id; this one has none`);
    }
    return id;
  }
  return eventIdFromReferenceHash(computeReferenceHash(pdu, roomVersion), roomVersion);
}

/** Room version 12: the room id is `!` and the create event's reference hash, URL-safe. */
export function roomIdForCreateEvent(pdu: object, roomVersion: RoomVersion): string {
  if (!roomVersion.roomIdIsCreateEventHash) {
    throw new EventFormatError(`room version ${roomVersion.id} does not derive room ids from the create event`);
  }
  if ((pdu as { type?: unknown }).type !== 'm.room.create') {
    throw new EventFormatError(`only an m.room.create event defines a room id, not ${JSON.stringify((pdu as { type?: unknown }).type)}`);
  }
  return `!${encodeUnpaddedBase64Url(computeReferenceHash(pdu, roomVersion))}`;
}

// ---------------------------------------------------------------------------------------------
// Signing and verification

/**
 * Sets `hashes.sha256`, signs the redacted form and puts the signature on the full event.
 * Existing signatures are kept. The input is not changed.
 */
export function hashAndSignEvent(pdu: Pdu, serverName: string, key: SigningKey, roomVersion: RoomVersion): Pdu {
  const hashed: Pdu = { ...pdu, hashes: { sha256: computeContentHash(pdu) } };
  const signature = encodeUnpaddedBase64(signBytes(redactedSignableBytes(hashed, roomVersion), key));
  return addSignature(hashed, serverName, key.keyId, signature);
}

/**
 * hashAndSignEvent and, from room version 3 on, the event id, with the redacted form encoded
 * once: the signature covers the canonical JSON of the redacted event without signatures and
 * unsigned, and the reference hash is the sha256 of those same bytes (the signatures that the
 * signing adds are left out of it). Room versions 1 and 2 carry their own event_id.
 */
export function hashSignAndIdEvent(pdu: Pdu, serverName: string, key: SigningKey, roomVersion: RoomVersion): { pdu: Pdu; eventId: string } {
  const hashed: Pdu = { ...pdu, hashes: { sha256: computeContentHash(pdu) } };
  const bytes = redactedSignableBytes(hashed, roomVersion);
  const signed = addSignature(hashed, serverName, key.keyId, encodeUnpaddedBase64(signBytes(bytes, key)));
  const eventId = roomVersion.eventIdFormat === 'v1' ? computeEventId(signed, roomVersion) : eventIdFromReferenceHash(sha256(bytes), roomVersion);
  return { pdu: signed, eventId };
}

/** True if the event carries a valid signature of `serverName` under `keyId` (over its redacted form). */
export function verifyEventSignature(
  pdu: object,
  serverName: string,
  keyId: string,
  publicKey: Uint8Array,
  roomVersion: RoomVersion,
): boolean {
  const signature = getSignature(pdu, serverName, keyId);
  if (!signature) return false;
  let bytes: Buffer;
  try {
    bytes = redactedSignableBytes(pdu, roomVersion);
  } catch {
    return false;
  }
  return verifyBytes(bytes, signature, publicKey);
}

export interface EventSigner {
  serverName: string;
  keyId: string;
  publicKey: Uint8Array;
}

export interface EventCheck {
  /** The event id (computed from v3 on), or undefined if the event has no canonical JSON form. */
  eventId: string | undefined;
  contentHashValid: boolean;
  /** One entry per signer asked about, in order. */
  signaturesValid: boolean[];
}

/**
 * The whole check of a received event in one pass: content hash, event id and signatures.
 * The redacted canonical form is encoded once and serves both the reference hash and the
 * signatures, which cover the same bytes.
 */
export function checkEvent(pdu: object, roomVersion: RoomVersion, signers: readonly EventSigner[]): EventCheck {
  const contentHashValid = checkContentHash(pdu);
  let bytes: Buffer;
  try {
    bytes = redactedSignableBytes(pdu, roomVersion);
  } catch {
    return { eventId: undefined, contentHashValid, signaturesValid: signers.map(() => false) };
  }
  let eventId: string | undefined;
  if (roomVersion.eventIdFormat === 'v1') {
    const id = (pdu as { event_id?: unknown }).event_id;
    eventId = typeof id === 'string' ? id : undefined;
  } else {
    eventId = eventIdFromReferenceHash(sha256(bytes), roomVersion);
  }
  const signaturesValid = signers.map((s) => {
    const signature = getSignature(pdu, s.serverName, s.keyId);
    return signature !== undefined && verifyBytes(bytes, signature, s.publicKey);
  });
  return { eventId, contentHashValid, signaturesValid };
}

// ---------------------------------------------------------------------------------------------
// PDU -> RoomEvent

function edgeIds(edges: unknown, field: string): string[] {
  if (!Array.isArray(edges)) throw new EventFormatError(`${field} must be a list, got ${typeof edges}`);
  return edges.map((edge, i) => {
    if (typeof edge === 'string') return edge;
    // Room versions 1-2 list edges as [event_id, {sha256: ...}].
    if (Array.isArray(edge) && typeof edge[0] === 'string') return edge[0];
    throw new EventFormatError(`${field}[${i}] must be an event id or an [event_id, hashes] pair`);
  });
}

/** The event as room algorithms see it: its id known, edges as lists of event ids. */
export function pduToRoomEvent(pdu: Pdu, roomVersion: RoomVersion): RoomEvent {
  return {
    ...pdu,
    event_id: computeEventId(pdu, roomVersion),
    prev_events: edgeIds(pdu.prev_events, 'prev_events'),
    auth_events: edgeIds(pdu.auth_events, 'auth_events'),
  };
}

/** An event of stripped state (invite_room_state, knock_room_state, /sync's invite_state). */
export interface StrippedState {
  type: string;
  state_key: string;
  sender: string;
  content: Record<string, unknown>;
  [field: string]: unknown;
}

/**
 * The stripped form of a state event (spec: "Stripped state"): type, state_key, sender,
 * content; but the m.room.create event in full, less `unsigned`, so that the invitee or
 * knocker can check it (MSC4311, in the spec since v1.16; Synapse does so; Complement's
 * TestMSC4311FullCreateEventOnStrippedState looks for its origin_server_ts).
 */
export function strippedStateOf(pdu: Record<string, unknown>): StrippedState {
  const base = {
    type: String(pdu.type),
    state_key: typeof pdu.state_key === 'string' ? pdu.state_key : '',
    sender: String(pdu.sender),
    content: (pdu.content !== null && typeof pdu.content === 'object' ? pdu.content : {}) as Record<string, unknown>,
  };
  if (pdu.type !== 'm.room.create') return base;
  const { unsigned: _unsigned, ...full } = pdu;
  return { ...full, ...base };
}
