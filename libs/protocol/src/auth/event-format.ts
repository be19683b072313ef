/**
 * The PDU format checks that come before any auth rule (server-server spec, "Checks performed
 * on receipt of a PDU" and the room versions' event format): size, field lengths, edge counts,
 * depth, and the room id rules of the create event. Each refusal names its rule.
 */
import { canonicalJsonBytes, CanonicalJsonError } from '../canonical-json.js';
import type { RoomVersion } from '../room-versions.js';
import { AuthError, check } from './auth-error.js';

export const MAX_PDU_BYTES = 65_536;
export const MAX_ID_BYTES = 255;
export const MAX_PREV_EVENTS = 20;
export const MAX_AUTH_EVENTS = 10;
/** 2^63 - 1 as the spec states it; JSON numbers past 2^53 cannot be told apart, see below. */
export const MAX_DEPTH = 2n ** 63n - 1n;

/** v12 room ids: `!` + the create event's reference hash, URL-safe unpadded base64 (43 chars). */
const HASH_ROOM_ID = /^![A-Za-z0-9_-]{43}$/;

function isEdgeList(value: unknown, roomVersion: RoomVersion): boolean {
  if (!Array.isArray(value)) return false;
  return value.every(
    (e) =>
      typeof e === 'string' ||
      // Room versions 1 and 2 list edges as [event_id, {sha256: ...}].
      (roomVersion.eventIdFormat === 'v1' && Array.isArray(e) && typeof e[0] === 'string' && e.length === 2),
  );
}

export function checkEventFormat(event: Record<string, any>, roomVersion: RoomVersion): void {
  const rule = 'event format';
  check(event !== null && typeof event === 'object' && !Array.isArray(event), rule, 'the event is not a JSON object');
  check(typeof event.type === 'string', rule, 'type is missing or not a string');
  check(typeof event.sender === 'string', rule, 'sender is missing or not a string');
  check(event.content !== null && typeof event.content === 'object' && !Array.isArray(event.content), rule, 'content is not an object');
  check(Number.isInteger(event.origin_server_ts), rule, 'origin_server_ts is not an integer');
  check(event.state_key === undefined || typeof event.state_key === 'string', rule, 'state_key is not a string');
  check(isEdgeList(event.prev_events, roomVersion), rule, 'prev_events is not a list of event ids');
  check(isEdgeList(event.auth_events, roomVersion), rule, 'auth_events is not a list of event ids');
  check(event.prev_events.length <= MAX_PREV_EVENTS, 'event format: prev_events', `more than ${MAX_PREV_EVENTS} prev_events`);
  check(event.auth_events.length <= MAX_AUTH_EVENTS, 'event format: auth_events', `more than ${MAX_AUTH_EVENTS} auth_events`);

  for (const field of ['type', 'state_key', 'sender', 'room_id', 'event_id'] as const) {
    const value = event[field];
    if (typeof value === 'string') {
      const size = roomVersion.strictEventByteLimits ? Buffer.byteLength(value, 'utf8') : [...value].length;
      check(size <= MAX_ID_BYTES, `event format: ${field}`, `longer than ${MAX_ID_BYTES} ${roomVersion.strictEventByteLimits ? 'bytes' : 'codepoints'}`);
    }
  }

  const depth = event.depth;
  check(typeof depth === 'number' && Number.isInteger(depth), 'event format: depth', 'depth is missing or not an integer');
  // Numbers past 2^53 lose precision in JSON.parse, so 2^63-1 is checked on the parsed value;
  // room v6+ forbid such integers altogether (strict canonical JSON, checked below).
  check(depth >= 0 && BigInt(depth) <= MAX_DEPTH, 'event format: depth', `depth ${depth} is out of 0..2^63-1`);

  if (event.type === 'm.room.create' && roomVersion.roomIdIsCreateEventHash) {
    check(event.room_id === undefined, 'event format: room_id', 'the create event of this room version has no room_id');
  } else if (roomVersion.roomIdIsCreateEventHash) {
    check(typeof event.room_id === 'string' && HASH_ROOM_ID.test(event.room_id), 'event format: room_id', 'room_id is not ! + the create event hash');
  } else {
    check(typeof event.room_id === 'string' && /^![^:]+:.+$/.test(event.room_id), 'event format: room_id', 'room_id is not !opaque:server');
  }
  if (roomVersion.eventIdFormat === 'v1') {
    check(typeof event.event_id === 'string' && /^\$[^:]+:.+$/.test(event.event_id), 'event format: event_id', 'event_id is not $opaque:server');
  }

  // The size is that of the PDU as sent: from room v3 on the event id is not part of it.
  const pdu = asSent(event, roomVersion);
  let size: number;
  try {
    size = canonicalJsonBytes(pdu).length;
  } catch (e) {
    if (!(e instanceof CanonicalJsonError)) throw e;
    check(!roomVersion.strictCanonicalJson, 'event format: canonical JSON', e.message);
    // v1-5 tolerate floats and big integers; measure the plain JSON then.
    size = Buffer.byteLength(JSON.stringify(pdu), 'utf8');
  }
  if (size > MAX_PDU_BYTES) throw new AuthError('event format: size', `the PDU is ${size} bytes of canonical JSON, over ${MAX_PDU_BYTES}`);
}

/** The PDU as JSON would carry it: no event id (v3+), no top-level fields left undefined. */
function asSent(event: Record<string, any>, roomVersion: RoomVersion): Record<string, any> {
  const sent: Record<string, any> = {};
  for (const [key, value] of Object.entries(event)) {
    if (value === undefined || (key === 'event_id' && roomVersion.eventIdFormat !== 'v1')) continue;
    sent[key] = value;
  }
  return sent;
}
