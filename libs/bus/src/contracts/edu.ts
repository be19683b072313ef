/**
 * Ephemeral data units (typing, receipts, presence, to-device, device lists): never stored in
 * the event log, carried by the bus between the edges. Losing one costs a stale typing
 * indicator, which is why plain publish is enough here.
 */
export const EDU_INBOUND = 'edu.inbound';
export const EDU_OUTBOUND = 'edu.outbound';

/**
 * `edu.inbound` (publish): federation-ingress received an EDU in a /send transaction and
 * publishes it after verifying the request's X-Matrix signature. client-api consumes it for
 * /sync; it must still check that users named in the content belong to `origin`, as the spec
 * requires (a server may speak only for its own users).
 */
export interface InboundEdu {
  /** The server that sent the transaction (the X-Matrix origin). */
  origin: string;
  /** The EDU type as on the wire: 'm.typing', 'm.receipt', 'm.presence', 'm.direct_to_device', 'm.device_list_update', 'm.signing_key_update', ... */
  eduType: string;
  /** The EDU's content, unchanged. */
  content: Record<string, unknown>;
  /** When ingress received it (ms since epoch): typing expires and presence ages from here. */
  receivedTs: number;
}

/**
 * `edu.outbound` (publish, queue group `fanout-sender`): client-api asks fanout-sender to deliver
 * an EDU, either to the servers joined to a room (typing, receipts: fanout-sender tracks who is
 * joined) or to named servers (to-device messages, presence, device list updates).
 */
export interface OutboundEdu {
  eduType: string;
  content: Record<string, unknown>;
  /** Every remote server joined to this room, or exactly these servers. */
  to: { roomId: string } | { destinations: string[] };
}
