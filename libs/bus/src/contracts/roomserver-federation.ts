/**
 * `roomserver.federation` (request/reply, queue group `room-server`): the room-server's
 * operations that involve other servers, handled by libs/services/room-server/src/federation.
 * Refusals reject with a BusError whose code is the Matrix errcode (M_FORBIDDEN, M_NOT_FOUND,
 * M_BAD_JSON, M_UNSUPPORTED_ROOM_VERSION, M_UNKNOWN when no remote server would help).
 */
import type { Pdu } from '@tessera/protocol';
import type { InputPdusReply } from './roomserver.js';

export const ROOMSERVER_FEDERATION = 'roomserver.federation';

/**
 * A local user joins a room, through other servers when this one does not hold the room:
 * make_join, sign, send_join, validate the returned state and auth chain, persist. For a room
 * held here it is an ordinary local join. client-api sends this for /join with server_name
 * hints (and the alias's server, for an alias).
 */
export interface JoinRemoteRequest {
  op: 'joinRemote';
  roomId: string;
  userId: string;
  /** Servers to ask, in order (the `via` / server_name hints). */
  serverNames: string[];
  /** Extra member content (displayname, avatar_url, reason). */
  content?: Record<string, unknown>;
}

/**
 * A local user leaves a room this server does not hold (rejects a remote invite, retracts a
 * knock): make_leave and send_leave through the server that sent the invite (or `serverNames`).
 */
export interface LeaveRemoteRequest {
  op: 'leaveRemote';
  roomId: string;
  userId: string;
  serverNames?: string[];
  reason?: string;
}

/** A local user knocks on a room held elsewhere: make_knock, sign, send_knock. */
export interface KnockRemoteRequest {
  op: 'knockRemote';
  roomId: string;
  userId: string;
  serverNames: string[];
  reason?: string;
}

/**
 * federation-ingress received PUT /invite for a local user: the event, already checked and
 * signed by this server, is stored (an outlier when the room is not held here) and the
 * invite reaches the invitee's /sync through the memberships read model.
 */
export interface ReceiveInviteRequest {
  op: 'receiveInvite';
  roomVersion: string;
  /** The invite event with this server's signature added. */
  pdu: Pdu;
  /** Stripped state the inviting server sent (kept in unsigned.invite_room_state). */
  inviteRoomState?: unknown[];
}

/**
 * PDUs of one room from a /send transaction, verified by federation-ingress (format, hashes,
 * signatures). Unlike roomserver.input's inputPdus, missing prev_events are fetched from
 * `origin` first (get_missing_events, then state_ids/state when a gap remains).
 */
export interface InputFederatedPdusRequest {
  op: 'inputFederatedPdus';
  roomId: string;
  roomVersion: string;
  origin: string;
  pdus: Pdu[];
  /**
   * The PDUs came through send_join, send_knock or send_leave: this server, resident in the room,
   * sends them on to the other servers in it (the sending server cannot, not being in it yet),
   * as Synapse does with send_on_behalf_of. Accepted ones are appended as `local`, so fanout
   * queues them for every joined server but the sender's.
   */
  sendOnBehalf?: boolean;
}

export interface RemoteMembershipReply {
  roomId: string;
  eventId: string;
}

export type RoomServerFederationRequest =
  | JoinRemoteRequest | LeaveRemoteRequest | KnockRemoteRequest | ReceiveInviteRequest | InputFederatedPdusRequest;
export type RoomServerFederationReply = RemoteMembershipReply | InputPdusReply | Record<string, never>;
