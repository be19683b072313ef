import type { AppendEvent } from '@tessera/bus';
import type { Pdu, RoomEvent } from '@tessera/protocol';

/** The append fields every stored event has, from its PDU and its room-algorithm view. */
export function appendFields(pdu: Pdu, event: RoomEvent): AppendEvent {
  return {
    eventId: event.event_id,
    json: pdu as Record<string, unknown>,
    type: event.type,
    stateKey: event.state_key ?? null,
    sender: event.sender,
    depth: typeof pdu.depth === 'number' ? pdu.depth : 0,
    originServerTs: event.origin_server_ts,
    prevEvents: event.prev_events,
    authEvents: event.auth_events,
  };
}
