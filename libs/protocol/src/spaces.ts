/**
 * Spaces (spec v1.16 "Spaces"): a room's summary as the hierarchy and room summary APIs give
 * it, its m.space.child children in the spec's order, and who may see a room there. Pure: the
 * caller reads the room's current state and the requester's memberships.
 */
import { getRoomVersion, isKnownRoomVersion } from './room-versions.js';

type Json = Record<string, unknown>;

/** A current state event as these functions need it. */
export interface SpaceStateEvent {
  type: string;
  state_key: string;
  sender: string;
  content: Json;
  origin_server_ts: number;
}

/** The RoomSummary fields of the spec (PublishedRoomsChunk plus allowed_room_ids, encryption, room_version). */
export interface RoomSummaryChunk {
  room_id: string;
  num_joined_members: number;
  world_readable: boolean;
  guest_can_join: boolean;
  name?: string;
  topic?: string;
  canonical_alias?: string;
  avatar_url?: string;
  join_rule?: string;
  room_type?: string;
  allowed_room_ids?: string[];
  encryption?: string;
  room_version?: string;
}

/** A child of a space: a stripped m.space.child event with origin_server_ts (SpaceHierarchyRoomsChunk.children_state). */
export interface SpaceChildEvent {
  type: 'm.space.child';
  state_key: string;
  sender: string;
  content: Json;
  origin_server_ts: number;
}

const nonEmptyString = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

function stateContent(state: readonly SpaceStateEvent[], type: string): Json {
  return state.find((e) => e.type === type && e.state_key === '')?.content ?? {};
}

/** The plain-text topic: m.room.topic's `topic`, or its text/plain m.topic representation (v1.15). */
function plainTopic(content: Json): string | undefined {
  const rich = content['m.topic'];
  if (rich && typeof rich === 'object' && !Array.isArray(rich)) {
    const parts = (rich as Json)['m.text'];
    if (Array.isArray(parts)) {
      const plain = parts.find((p) => p && typeof p === 'object' && ((p as Json).mimetype === undefined || (p as Json).mimetype === 'text/plain'));
      const body = nonEmptyString((plain as Json | undefined)?.body);
      if (body) return body;
    }
  }
  return nonEmptyString(content.topic);
}

/** The room ids a restricted (or knock_restricted) join rule allows membership of. */
export function allowedRoomIds(joinRules: Json): string[] {
  const allow = Array.isArray(joinRules.allow) ? joinRules.allow : [];
  const ids: string[] = [];
  for (const a of allow) {
    if (a && typeof a === 'object' && (a as Json).type === 'm.room_membership' && typeof (a as Json).room_id === 'string') ids.push((a as Json).room_id as string);
  }
  return ids;
}

/** The summary of a room from its current state and joined member count. */
export function roomSummaryFromState(roomId: string, roomVersion: string, state: readonly SpaceStateEvent[], joinedMembers: number): RoomSummaryChunk {
  const chunk: RoomSummaryChunk = {
    room_id: roomId,
    num_joined_members: joinedMembers,
    world_readable: stateContent(state, 'm.room.history_visibility').history_visibility === 'world_readable',
    guest_can_join: stateContent(state, 'm.room.guest_access').guest_access === 'can_join',
  };
  const name = nonEmptyString(stateContent(state, 'm.room.name').name);
  if (name) chunk.name = name;
  const topic = plainTopic(stateContent(state, 'm.room.topic'));
  if (topic) chunk.topic = topic;
  const alias = nonEmptyString(stateContent(state, 'm.room.canonical_alias').alias);
  if (alias) chunk.canonical_alias = alias;
  const avatar = nonEmptyString(stateContent(state, 'm.room.avatar').url);
  if (avatar) chunk.avatar_url = avatar;
  const joinRules = stateContent(state, 'm.room.join_rules');
  const joinRule = nonEmptyString(joinRules.join_rule);
  if (joinRule) chunk.join_rule = joinRule;
  if (joinRule === 'restricted' || joinRule === 'knock_restricted') chunk.allowed_room_ids = allowedRoomIds(joinRules);
  const roomType = nonEmptyString(stateContent(state, 'm.room.create').type);
  if (roomType) chunk.room_type = roomType;
  const encryption = stateContent(state, 'm.room.encryption').algorithm;
  if (encryption === 'm.megolm.v1.aes-sha2') chunk.encryption = encryption;
  chunk.room_version = roomVersion;
  return chunk;
}

/**
 * The room's children: m.space.child events whose content has a non-empty `via` list of
 * strings (others are not children), optionally only the suggested ones, in the spec's order:
 * by `order` (when valid: printable ASCII, at most 50 characters; rooms with an order first),
 * then the event's origin_server_ts, then the room id.
 */
export function spaceChildren(state: readonly SpaceStateEvent[], suggestedOnly = false): SpaceChildEvent[] {
  const children: SpaceChildEvent[] = [];
  for (const e of state) {
    if (e.type !== 'm.space.child') continue;
    const via = e.content.via;
    if (!Array.isArray(via) || via.length === 0 || !via.every((v) => typeof v === 'string')) continue;
    if (suggestedOnly && e.content.suggested !== true) continue;
    children.push({ type: 'm.space.child', state_key: e.state_key, sender: e.sender, content: e.content, origin_server_ts: e.origin_server_ts });
  }
  const orderOf = (c: SpaceChildEvent): string | undefined => {
    const o = c.content.order;
    return typeof o === 'string' && o.length <= 50 && /^[\x20-\x7E]*$/.test(o) ? o : undefined;
  };
  const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return children.sort((a, b) => {
    const oa = orderOf(a);
    const ob = orderOf(b);
    if (oa !== undefined && ob === undefined) return -1;
    if (oa === undefined && ob !== undefined) return 1;
    if (oa !== undefined && ob !== undefined && oa !== ob) return compare(oa, ob);
    if (a.origin_server_ts !== b.origin_server_ts) return a.origin_server_ts - b.origin_server_ts;
    return compare(a.state_key, b.state_key);
  });
}

/** What is known of the requester for roomVisibleTo. */
export interface SpaceViewer {
  /** Their membership in the room (undefined: none, or not known here). */
  membership?: string;
  /** Rooms they are joined to (for restricted join rules). */
  joinedRooms: ReadonlySet<string>;
}

/**
 * Whether the hierarchy may show the room to this user (spec, GET /hierarchy `rooms`): they
 * are joined or invited; or the room is public, knockable (knock, knock_restricted in a room
 * version with them), restricted with one of its allowed rooms joined, or world readable.
 */
export function roomVisibleTo(summary: RoomSummaryChunk, viewer: SpaceViewer): boolean {
  if (viewer.membership === 'join' || viewer.membership === 'invite') return true;
  if (viewer.membership === 'ban') return false;
  if (summary.world_readable) return true;
  return joinRuleOpens(summary, (allowed) => allowed.some((r) => viewer.joinedRooms.has(r)));
}

/**
 * Whether another server may be told about the room in the federation hierarchy API: it could
 * peek or join it (world readable; public or knockable; restricted when it has members in one
 * of the allowed rooms, as far as this server knows (`serverInAllowedRoom`), its own users
 * then being checked against allowed_room_ids by that server), or it already has members in
 * it. Synapse decides the same; Complement's restricted-hierarchy federation test expects a
 * restricted room hidden from a server this one does not know to be in the allowed room.
 */
export function roomVisibleToServer(summary: RoomSummaryChunk, serverHasMembers: boolean, serverInAllowedRoom: (roomId: string) => boolean): boolean {
  if (serverHasMembers || summary.world_readable) return true;
  return joinRuleOpens(summary, (allowed) => allowed.some(serverInAllowedRoom));
}

/**
 * Whether the room's join rule lets someone outside see it: public, knockable (in a room
 * version with that rule), or restricted when `restrictedAllows` says so of its allowed rooms.
 */
function joinRuleOpens(summary: RoomSummaryChunk, restrictedAllows: (allowedRoomIds: string[]) => boolean): boolean {
  const version = summary.room_version && isKnownRoomVersion(summary.room_version) ? getRoomVersion(summary.room_version) : undefined;
  switch (summary.join_rule ?? 'public') {
    case 'public':
      return true;
    case 'knock':
      return version?.knockJoinRule ?? false;
    case 'knock_restricted':
      return version?.knockRestrictedJoinRule ?? false;
    case 'restricted':
      return (version?.restrictedJoinRule ?? false) && restrictedAllows(summary.allowed_room_ids ?? []);
    default:
      return false;
  }
}
