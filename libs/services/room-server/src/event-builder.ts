/**
 * Builds a local event: prev_events from the forward extremities (at most 20, deepest first),
 * auth_events by the auth events selection from the state before it, depth = deepest prev +
 * 1, content hash, signature with the server key, event id by the room version.
 */
import { randomBytes } from 'node:crypto';
import {
  authTypesForEvent, CanonicalJsonError, canonicalJsonBytes, hashSignAndIdEvent, MAX_PDU_BYTES, pduToRoomEvent, stateKey,
  type Pdu, type RoomEvent, type RoomVersion, type SigningKey, type StateMap,
} from '@tessera/protocol';
import { BusError } from '@tessera/bus';

export const MAX_PREV_EVENTS = 20;
/** Depth is capped at the largest integer canonical JSON allows. */
const MAX_DEPTH = Number.MAX_SAFE_INTEGER;

export interface PrevEvent {
  eventId: string;
  depth: number;
  /** Room versions 1-2 cite edges with the event's sha256 hash. */
  sha256?: string;
}

export interface LocalEventSpec {
  type: string;
  sender: string;
  stateKey?: string;
  content: Record<string, unknown>;
  redacts?: string;
}

export interface Signer {
  serverName: string;
  key: SigningKey;
}

export function chooseAuthEvents(spec: LocalEventSpec, state: StateMap, roomVersion: RoomVersion): string[] {
  const selectable = { type: spec.type, sender: spec.sender, state_key: spec.stateKey, content: spec.content };
  return authTypesForEvent(selectable, roomVersion)
    .map(([t, k]) => state.get(stateKey(t, k)))
    .filter((id): id is string => id !== undefined);
}

export function buildLocalEvent(
  roomId: string | undefined,
  roomVersion: RoomVersion,
  spec: LocalEventSpec,
  prevs: PrevEvent[],
  authEvents: PrevEvent[],
  signer: Signer,
  now = Date.now(),
): { pdu: Pdu; event: RoomEvent; eventId: string } {
  const edge = (p: PrevEvent) => (roomVersion.eventIdFormat === 'v1' ? ([p.eventId, { sha256: p.sha256 ?? '' }] as [string, Record<string, string>]) : p.eventId);
  const depth = prevs.length === 0 ? 1 : Math.min(MAX_DEPTH, Math.max(...prevs.map((p) => p.depth)) + 1);
  const pdu: Pdu = {
    sender: spec.sender,
    type: spec.type,
    content: spec.content,
    prev_events: prevs.map(edge) as Pdu['prev_events'],
    auth_events: authEvents.map(edge) as Pdu['auth_events'],
    depth,
    origin_server_ts: now,
  };
  if (roomId !== undefined) pdu.room_id = roomId;
  if (spec.stateKey !== undefined) pdu.state_key = spec.stateKey;
  // Before v11 redacts is a top-level key; from v11 it lives in content (set by the caller).
  if (spec.redacts !== undefined && !roomVersion.redaction.v11Rules) pdu.redacts = spec.redacts;
  if (!roomVersion.redaction.v11Rules) pdu.origin = signer.serverName;
  if (roomVersion.eventIdFormat === 'v1') pdu.event_id = `$${randomBytes(12).toString('base64url')}:${signer.serverName}`;
  let hashed: ReturnType<typeof hashSignAndIdEvent>;
  try {
    hashed = hashSignAndIdEvent(pdu, signer.serverName, signer.key, roomVersion);
  } catch (err) {
    // Content with no canonical form (a float, an integer beyond 2^53) is the client's error, as Synapse's M_BAD_JSON.
    if (err instanceof CanonicalJsonError) throw new BusError('M_BAD_JSON', `the event has no canonical JSON form: ${err.message}`);
    throw err;
  }
  const { pdu: signed, eventId } = hashed;
  const size = canonicalJsonBytes(signed).length;
  if (size > MAX_PDU_BYTES) {
    throw new BusError('M_TOO_LARGE', `the event would be ${size} bytes; events may be at most ${MAX_PDU_BYTES} bytes`);
  }
  return { pdu: signed, event: { ...pduToRoomEvent(signed, roomVersion), event_id: eventId }, eventId };
}
