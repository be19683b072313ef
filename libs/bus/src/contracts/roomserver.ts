/**
 * `roomserver.input` (request/reply, queue group `room-server`): every change to a room goes
 * through here, from client-api (local users' operations) and federation-ingress (PDUs from
 * other servers). One subject, one request union tagged by `op`.
 *
 * Refusals reject with a BusError whose code is the Matrix errcode, so client-api maps them to
 * HTTP as they are: M_FORBIDDEN (the auth rule's reason in the message), M_NOT_FOUND (unknown
 * room or event), M_BAD_JSON (malformed request or event), M_TOO_LARGE (event over 65,536
 * bytes), M_UNSUPPORTED_ROOM_VERSION, M_INVALID_PARAM, M_ROOM_IN_USE.
 */
import type { Pdu } from '@tessera/protocol';

export const ROOMSERVER_INPUT = 'roomserver.input';
export const ROOMSERVER_QUEUE = 'room-server';

/** A state event for createRoom's initial_state. */
export interface InitialStateEvent {
  type: string;
  state_key?: string;
  content: Record<string, unknown>;
}

/** POST /createRoom, field by field as the spec names them (snake_case kept where the client sent it). */
export interface CreateRoomRequest {
  op: 'createRoom';
  /** The creating user (local). */
  sender: string;
  preset?: 'private_chat' | 'public_chat' | 'trusted_private_chat';
  /** 'public' or 'private' (default): decides the preset when none is given. */
  visibility?: 'public' | 'private';
  name?: string;
  topic?: string;
  /** Users to invite after the room is set up. */
  invite?: string[];
  initial_state?: InitialStateEvent[];
  power_level_content_override?: Record<string, unknown>;
  room_version?: string;
  creation_content?: Record<string, unknown>;
  is_direct?: boolean;
  /** The full alias (#name:server), already reserved by client-api: sent as m.room.canonical_alias. */
  canonicalAlias?: string;
  /** The creator's displayname and avatar_url for their join event (from their profile, as Synapse). */
  creatorMemberContent?: { displayname?: string; avatar_url?: string };
}

export interface CreateRoomReply {
  roomId: string;
  roomVersion: string;
  /** The events created, in order. */
  eventIds: string[];
}

export type MembershipAction = 'join' | 'leave' | 'invite' | 'kick' | 'ban' | 'unban' | 'knock';

/** join/leave/knock act on the sender; invite/kick/ban/unban on `target`. */
export interface MembershipRequest {
  op: 'membership';
  action: MembershipAction;
  roomId: string;
  sender: string;
  target?: string;
  reason?: string;
  /** Extra member content (displayname, avatar_url, is_direct for invites). */
  content?: Record<string, unknown>;
}

/** A message or state event from a local user. With stateKey it is a state event. */
export interface SendEventRequest {
  op: 'sendEvent';
  roomId: string;
  sender: string;
  type: string;
  stateKey?: string;
  content: Record<string, unknown>;
  /** PUT /send/{type}/{txnId}: the same (sender, deviceId, txnId) returns the first event id. */
  txn?: { deviceId: string; txnId: string };
}

export interface RedactRequest {
  op: 'redact';
  roomId: string;
  sender: string;
  redacts: string;
  reason?: string;
  txn?: { deviceId: string; txnId: string };
}

export interface EventIdReply {
  eventId: string;
}

/**
 * PDUs from other servers (already checked for hashes and signatures by federation-ingress).
 * `outliers` are stored without state (auth chains, state from send_join); `pdus` are
 * new events of the room, in topological order.
 */
export interface InputPdusRequest {
  op: 'inputPdus';
  roomId: string;
  roomVersion: string;
  /** The sending server, for logs. */
  origin?: string;
  outliers?: Pdu[];
  pdus: Pdu[];
  /**
   * The state before the first PDU when its prev_events are not stored (a join through
   * send_join): event ids among `outliers` or stored events.
   */
  stateBeforeFirst?: string[];
  /**
   * The PDUs came through send_join, send_knock or send_leave: this server, resident in the room,
   * sends them on to the other servers in it (the sending server cannot, not being in it yet),
   * as Synapse does with send_on_behalf_of. Accepted ones are appended as `local`, so fanout
   * queues them for every joined server but the sender's.
   */
  sendOnBehalf?: boolean;
}

export interface PduResult {
  /** Accepted into the room (possibly soft-failed). */
  accepted: boolean;
  softFailed?: boolean;
  /** Why it was rejected (the auth rule and reason), or why it could not be processed. */
  error?: string;
}

export interface InputPdusReply {
  /** Per event id, as /send's `pdus` result map needs. */
  results: Record<string, PduResult>;
}

export type RoomServerRequest = CreateRoomRequest | MembershipRequest | SendEventRequest | RedactRequest | InputPdusRequest;
export type RoomServerReply = CreateRoomReply | EventIdReply | InputPdusReply;
