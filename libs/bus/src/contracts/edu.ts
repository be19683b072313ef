import type { JsonObject } from '@tessera/protocol';

/**
 * Ephemeral data units (typing, receipts, presence, to-device, device lists): never stored in
 * the event log, carried by the bus between the edges. Losing one costs a stale typing
 * indicator, which is why plain publish is enough here.
 */

/**
 * edu.inbound (publish/subscribe): federation-ingress received an EDU in a /send transaction
 * from `origin` and publishes it after verifying the request signature. client-api consumes it
 * for /sync (it must still check that the EDU's user belongs to origin, as the spec requires).
 */
export interface InboundEdu {
  /** The server that sent the transaction: a user in the content must belong to it. */
  origin: string;
  /** The EDU type as on the wire: 'm.typing', 'm.receipt', 'm.presence', 'm.direct_to_device', 'm.device_list_update', 'm.signing_key_update', ... */
  edu_type: string;
  content: JsonObject;
  /** When ingress received it (ms since epoch), for expiring typing and ordering presence. */
  received_ts: number;
}

/**
 * edu.outbound (publish/subscribe, queue group 'fanout-sender'): client-api asks fanout-sender
 * to deliver an EDU. Either to the servers in a room (typing, receipts: fanout-sender knows who
 * is joined) or to named servers (to-device messages, presence to those who share a room).
 */
export interface OutboundEdu {
  edu_type: string;
  content: JsonObject;
  /** Send to every remote server joined to this room, or to these servers. */
  to: { room_id: string } | { destinations: string[] };
}
