/** Building PDUs in tests as a remote server would: on a room's current extremities, signed with its key. */
import {
  authTypesForEvent, computeEventId, getRoomVersion, hashAndSignEvent, stateKey, type Pdu, type SigningKey,
} from '@tessera/protocol';
import { getCurrentState, getEvents, getForwardExtremities, getRoom, type Queryable } from '@tessera/storage';

export interface PduSpec {
  type: string;
  sender: string;
  stateKey?: string;
  content: Record<string, unknown>;
  /** Cite these instead of the room's extremities. */
  prevEvents?: string[];
}

/** A PDU built against the room as `db` holds it, signed by `serverName`. */
export async function buildRemotePdu(db: Queryable, roomId: string, spec: PduSpec, serverName: string, key: SigningKey, ts = Date.now()): Promise<{ pdu: Pdu; eventId: string }> {
  const room = (await getRoom(db, roomId))!;
  const rv = getRoomVersion(room.roomVersion);
  const state = new Map((await getCurrentState(db, roomId)).map(([t, k, id]) => [stateKey(t, k), id]));
  const extremities = await getForwardExtremities(db, roomId);
  const prevIds = spec.prevEvents ?? extremities.map((e) => e.eventId);
  const prevs = await getEvents(db, prevIds);
  const authIds = authTypesForEvent({ type: spec.type, sender: spec.sender, state_key: spec.stateKey, content: spec.content }, rv)
    .map(([t, k]) => state.get(stateKey(t, k)))
    .filter((id): id is string => id !== undefined);
  const pdu: Pdu = {
    room_id: roomId,
    sender: spec.sender,
    type: spec.type,
    content: spec.content,
    depth: Math.max(0, ...[...prevs.values()].map((p) => p.depth)) + 1,
    prev_events: prevIds,
    auth_events: authIds,
    origin_server_ts: ts,
  };
  if (spec.stateKey !== undefined) pdu.state_key = spec.stateKey;
  if (!rv.redaction.v11Rules) pdu.origin = serverName;
  const signed = hashAndSignEvent(pdu, serverName, key, rv);
  return { pdu: signed, eventId: computeEventId(signed, rv) };
}
