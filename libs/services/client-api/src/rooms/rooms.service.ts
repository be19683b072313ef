import { Inject, Injectable } from '@nestjs/common';
import type { CreateRoomRequest, InitialStateEvent } from '@tessera/bus';
import { DB } from '@tessera/http';
import { canonicalJson, isValidRoomAlias, isValidRoomId, isValidUserId } from '@tessera/protocol';
import { getCurrentStateEvent, getEvent, getRoom, getUserMembershipInRoom, isRoomHeld, type Db } from '@tessera/storage';
import { blockedRoomsStore } from '../admin/blocked-rooms.store.js';
import { DirectoryService } from '../directory/directory.service.js';
import { directoryStore } from '../directory/directory.store.js';
import { MatrixError, badJson, forbidden, invalidParam, notFound, notJson } from '../errors.js';
import { CLIENT_API_SETTINGS, type ClientApiSettings } from '../settings.js';
import { ProfileService } from '../user-data/profile.service.js';
import { isPlainObject, optionalBoolean, optionalObject, optionalString, optionalStringArray, requireString, serverNameOf, type JsonBody } from '../validation.js';
import { RemoteRooms } from './remote-rooms.service.js';
import { RoomInput } from './room-input.service.js';
import { scopedTxnId } from './txn-scope.js';
import { UpgradedRoomCarryOver } from './upgraded-room-carry-over.js';

/** Local part of an alias: no colon, no whitespace (the alias as a whole is checked too). */
const ALIAS_LOCALPART = /^[^:\s#]+$/;

/** Writes to rooms: every one goes to room-server as a roomserver.input request. */
@Injectable()
export class RoomsService {
  constructor(
    @Inject(DB) private readonly db: Db,
    @Inject(RoomInput) private readonly input: RoomInput,
    @Inject(RemoteRooms) private readonly remote: RemoteRooms,
    @Inject(DirectoryService) private readonly directory: DirectoryService,
    @Inject(ProfileService) private readonly profiles: ProfileService,
    @Inject(CLIENT_API_SETTINGS) private readonly settings: ClientApiSettings,
    @Inject(UpgradedRoomCarryOver) private readonly carryOver: UpgradedRoomCarryOver,
  ) {}

  /** POST /createRoom. Every field is checked before anything is created. */
  async createRoom(userId: string, body: JsonBody): Promise<{ room_id: string }> {
    const visibility = optionalString(body, 'visibility');
    if (visibility !== undefined && visibility !== 'public' && visibility !== 'private') throw badJson('"visibility" must be "public" or "private"');
    const preset = optionalString(body, 'preset');
    if (preset !== undefined && !['private_chat', 'public_chat', 'trusted_private_chat'].includes(preset)) {
      throw badJson('"preset" must be private_chat, public_chat or trusted_private_chat');
    }
    const invite = optionalStringArray(body, 'invite') ?? [];
    for (const u of invite) if (!isValidUserId(u)) throw invalidParam(`"${u}" in "invite" is not a user id`);
    const invite3pid = body.invite_3pid;
    if (invite3pid !== undefined && invite3pid !== null && (!Array.isArray(invite3pid) || invite3pid.length > 0)) {
      throw new MatrixError(400, 'M_UNRECOGNIZED', 'Inviting by third-party identifier (invite_3pid) is not supported by this server');
    }
    const roomVersion = body.room_version;
    if (roomVersion !== undefined && typeof roomVersion !== 'string') throw badJson('"room_version" must be a string');
    const initialState = body.initial_state;
    if (initialState !== undefined && (!Array.isArray(initialState) || !initialState.every(isInitialStateEvent))) {
      throw badJson('"initial_state" must be a list of {type, state_key, content}');
    }
    const name = optionalString(body, 'name');
    const topic = optionalString(body, 'topic');
    const creationContent = optionalObject(body, 'creation_content');
    const powerOverride = optionalObject(body, 'power_level_content_override');
    const isDirect = optionalBoolean(body, 'is_direct');

    let alias: string | undefined;
    const aliasName = optionalString(body, 'room_alias_name');
    if (aliasName !== undefined) {
      alias = `#${aliasName}:${this.settings.serverName}`;
      if (!ALIAS_LOCALPART.test(aliasName) || !isValidRoomAlias(alias)) throw invalidParam(`"room_alias_name" ${JSON.stringify(aliasName)} cannot make a valid alias`);
      if (!(await this.directory.isAliasFree(alias))) throw new MatrixError(400, 'M_ROOM_IN_USE', `Room alias ${alias} is already in use`);
    }
    // A canonical alias event in initial_state is checked as PUT /state checks it. The room does
    // not exist yet: the only alias that can point to it is room_alias_name's, made with it.
    for (const event of (initialState ?? []) as InitialStateEvent[]) {
      if (event.type !== 'm.room.canonical_alias') continue;
      for (const named of canonicalAliasList(event.content as JsonBody)) {
        if (typeof named !== 'string' || !isValidRoomAlias(named)) throw invalidParam(`${JSON.stringify(named)} in initial_state is not a room alias`);
        if (named !== alias) throw new MatrixError(400, 'M_BAD_ALIAS', `${named} does not point to the new room (only the alias of "room_alias_name" can)`);
      }
    }

    const request: Omit<CreateRoomRequest, 'op'> = { sender: userId, invite };
    if (preset !== undefined) request.preset = preset as CreateRoomRequest['preset'];
    if (visibility !== undefined) request.visibility = visibility;
    if (name !== undefined) request.name = name;
    if (topic !== undefined) request.topic = topic;
    if (initialState !== undefined) request.initial_state = initialState as InitialStateEvent[];
    if (powerOverride !== undefined) request.power_level_content_override = powerOverride;
    if (roomVersion !== undefined) request.room_version = roomVersion as string;
    if (creationContent !== undefined) request.creation_content = creationContent;
    if (isDirect !== undefined) request.is_direct = isDirect;
    if (alias !== undefined) request.canonicalAlias = alias;
    const profile = await this.profileContent(userId);
    if (Object.keys(profile).length > 0) request.creatorMemberContent = profile;
    const { roomId } = await this.input.createRoom(request);
    // A room made by hand to replace another (creation_content.predecessor): its creator's settings carry over.
    if (creationContent !== undefined && creationContent.predecessor !== undefined) await this.carryOver.joined(userId, roomId);
    // The alias was free a moment ago; a concurrent claim wins and this room keeps its canonical alias event only.
    if (alias !== undefined) await this.directory.addAliasForNewRoom(alias, roomId, userId);
    if (visibility === 'public') await this.directory.publish(roomId);
    return { room_id: roomId };
  }

  /** A room id, or the room an alias names (asking the alias's server for a remote alias). */
  async resolveRoom(roomIdOrAlias: string): Promise<string> {
    return (await this.resolveRoomAndServers(roomIdOrAlias)).roomId;
  }

  /**
   * The room, and the servers that may know it: for an alias, those its directory answer names;
   * for a room id, none here (the caller adds the client's hints).
   */
  private async resolveRoomAndServers(roomIdOrAlias: string): Promise<{ roomId: string; servers: string[] }> {
    if (roomIdOrAlias.startsWith('#')) {
      const { room_id: roomId, servers } = await this.directory.resolve(roomIdOrAlias);
      return { roomId, servers };
    }
    if (!isValidRoomId(roomIdOrAlias)) throw invalidParam(`"${roomIdOrAlias}" is neither a room id nor a room alias`);
    return { roomId: roomIdOrAlias, servers: [] };
  }

  /**
   * POST /join/{roomIdOrAlias} and /rooms/{roomId}/join. A room this server holds is joined
   * here; any other through the room-server's federation side (make_join/send_join), asking in
   * order: the alias's servers, the client's `via` (or legacy `server_name`) hints, the server
   * that invited the user, and the server named in the room id (room versions before 12).
   */
  async join(userId: string, roomIdOrAlias: string, body: JsonBody, via: string[] = []): Promise<{ room_id: string }> {
    const reason = optionalString(body, 'reason');
    if (body.third_party_signed !== undefined && body.third_party_signed !== null) {
      throw new MatrixError(400, 'M_UNRECOGNIZED', 'Joining with a third-party invite (third_party_signed) is not supported by this server');
    }
    const { roomId, servers } = await this.resolveRoomAndServers(roomIdOrAlias);
    await blockedRoomsStore.refuseBlocked(this.db, roomId);
    // Other keys of the body go into the member event's content, as Synapse does (Complement:
    // "POST /join/:room_id can join a room with custom content"); the profile and the keys the
    // server decides are not the client's to set.
    const { membership: _m, reason: _r, third_party_signed: _t, join_authorised_via_users_server: _j, ...custom } = body;
    const content = { ...custom, ...(await this.profileContent(userId)) };
    if (await isRoomHeld(this.db, roomId)) {
      const joinContent = { ...content, membership: 'join', ...(reason !== undefined ? { reason } : {}) };
      if (await this.unchangedState(roomId, userId, 'm.room.member', userId, joinContent)) return { room_id: roomId };
      await this.input.membership({ action: 'join', roomId, sender: userId, reason, content });
      await this.carryOver.joined(userId, roomId);
      return { room_id: roomId };
    }
    const candidates = await this.remoteCandidates(roomId, userId, [...servers, ...via]);
    await this.remote.join(roomId, userId, candidates, reason !== undefined ? { ...content, reason } : content);
    await this.carryOver.joined(userId, roomId);
    return { room_id: roomId };
  }

  /** POST /knock/{roomIdOrAlias}: held here, an ordinary knock; elsewhere, make_knock/send_knock through the hints. */
  async knock(userId: string, roomIdOrAlias: string, body: JsonBody, via: string[] = []): Promise<{ room_id: string }> {
    const reason = optionalString(body, 'reason');
    const { roomId, servers } = await this.resolveRoomAndServers(roomIdOrAlias);
    await blockedRoomsStore.refuseBlocked(this.db, roomId);
    if (await isRoomHeld(this.db, roomId)) {
      await this.input.membership({ action: 'knock', roomId, sender: userId, reason, content: await this.profileContent(userId) });
      return { room_id: roomId };
    }
    await this.remote.knock(roomId, userId, await this.remoteCandidates(roomId, userId, [...servers, ...via]), reason);
    return { room_id: roomId };
  }

  /**
   * POST /rooms/{roomId}/leave. For a room this server does not hold, the user can only be
   * invited or knocking: the invite is rejected (the knock retracted) with make_leave/send_leave
   * through the inviting server or the room's (the room-server finds them).
   */
  async leave(userId: string, roomId: string, body: JsonBody): Promise<void> {
    const reason = optionalString(body, 'reason');
    if (await isRoomHeld(this.db, roomId)) {
      await this.input.membership({ action: 'leave', roomId, sender: userId, reason });
      return;
    }
    const membership = await getUserMembershipInRoom(this.db, roomId, userId);
    if (!membership) throw notFound(`Room ${roomId} is not known to this server`);
    if (membership.membership === 'leave') return; // Already left (a rejected invite): nothing to do.
    if (membership.membership === 'ban') throw forbidden(`You are banned from ${roomId}`);
    await this.remote.leave(roomId, userId, [], reason);
  }

  /** invite, kick, ban, unban: {user_id, reason?}. */
  async actOn(userId: string, roomId: string, action: 'invite' | 'kick' | 'ban' | 'unban', body: JsonBody): Promise<void> {
    if (action === 'invite' && body.user_id === undefined && (body.id_server !== undefined || body.medium !== undefined)) {
      throw new MatrixError(400, 'M_UNRECOGNIZED', 'Inviting by third-party identifier is not supported by this server');
    }
    const target = requireString(body, 'user_id');
    if (!isValidUserId(target)) throw invalidParam(`"${target}" is not a user id`);
    const reason = optionalString(body, 'reason');
    await this.requireKnownRoom(roomId);
    if (action === 'invite') await blockedRoomsStore.refuseBlocked(this.db, roomId);
    await this.input.membership({ action, roomId, sender: userId, target, reason });
  }

  /** POST /rooms/{roomId}/forget: only once the user is no longer in (or invited to) the room. */
  async forget(userId: string, roomId: string): Promise<void> {
    const membership = await getUserMembershipInRoom(this.db, roomId, userId);
    if (!membership) throw notFound(`You have never been in ${roomId}`);
    if (membership.membership === 'join' || membership.membership === 'invite' || membership.membership === 'knock') {
      throw new MatrixError(400, 'M_UNKNOWN', `You are still in ${roomId} (membership ${membership.membership}): leave it first`);
    }
    await directoryStore.forget(this.db, userId, roomId, membership.streamPos);
  }

  /** PUT /rooms/{roomId}/send/{eventType}/{txnId}: the same txn id on the same device gives the same event. */
  async send(userId: string, deviceId: string, roomId: string, type: string, txnId: string, body: unknown): Promise<{ event_id: string }> {
    if (body === undefined) throw notJson('The event content is missing: send a JSON object');
    if (!isPlainObject(body)) throw badJson('The event content must be a JSON object');
    if (type === '') throw invalidParam('The event type must not be empty');
    const { eventId } = await this.input.sendEvent({ roomId, sender: userId, type, content: body, txn: { deviceId, txnId: scopedTxnId(['send', roomId, type], txnId) } });
    return { event_id: eventId };
  }

  /** PUT /rooms/{roomId}/state/{eventType}/{stateKey}. */
  async putState(userId: string, roomId: string, type: string, stateKey: string, body: unknown): Promise<{ event_id: string }> {
    if (body === undefined) throw notJson('The state content is missing: send a JSON object');
    if (!isPlainObject(body)) throw badJson('The state content must be a JSON object');
    if (type === 'm.room.canonical_alias') await this.checkCanonicalAlias(roomId, stateKey, body);
    if (type === 'm.room.member') {
      // Memberships go through the membership rules (and the profile join content), as Synapse does.
      if (!isValidUserId(stateKey)) throw invalidParam(`"${stateKey}" is not a user id`);
    }
    const unchanged = await this.unchangedState(roomId, userId, type, stateKey, body);
    if (unchanged) return { event_id: unchanged };
    const { eventId } = await this.input.sendEvent({ roomId, sender: userId, type, stateKey, content: body });
    return { event_id: eventId };
  }

  /**
   * As Synapse: a state event the same sender already set with the same content (a repeated
   * PUT /state, a join of a user already joined with the same member content) is not sent
   * again; the current event answers. Its id, or undefined when something would change.
   */
  private async unchangedState(roomId: string, userId: string, type: string, stateKey: string, content: JsonBody): Promise<string | undefined> {
    const current = await getCurrentStateEvent(this.db, roomId, type, stateKey);
    if (!current || current.sender !== userId) return undefined;
    try {
      return canonicalJson(current.json.content ?? {}) === canonicalJson(content) ? current.eventId : undefined;
    } catch {
      return undefined; // Content with no canonical form (a float): the room-server refuses it with its own error.
    }
  }

  /** PUT /rooms/{roomId}/redact/{eventId}/{txnId}. */
  async redact(userId: string, deviceId: string, roomId: string, eventId: string, txnId: string, body: JsonBody): Promise<{ event_id: string }> {
    const reason = optionalString(body, 'reason');
    if (!eventId.startsWith('$')) throw invalidParam(`"${eventId}" is not an event id`);
    const { eventId: redactionId } = await this.input.redact({ roomId, sender: userId, redacts: eventId, reason, txn: { deviceId, txnId: scopedTxnId(['redact', roomId, eventId], txnId) } });
    return { event_id: redactionId };
  }

  /**
   * The spec (PUT /state): the new aliases of an m.room.canonical_alias event must be valid
   * (M_INVALID_PARAM) and point to this room (M_BAD_ALIAS). Aliases removed, or already in the
   * room's current event (as alias or in alt_aliases), are not checked again: an alias deleted
   * from the directory since it was named does not block other edits of the event.
   */
  private async checkCanonicalAlias(roomId: string, stateKey: string, content: JsonBody): Promise<void> {
    const current = await getCurrentStateEvent(this.db, roomId, 'm.room.canonical_alias', stateKey);
    const present = new Set(current ? canonicalAliasesOf(current.json.content ?? {}) : []);
    for (const alias of canonicalAliasList(content)) {
      if (typeof alias === 'string' && present.has(alias)) continue;
      await this.checkAliasPointsTo(alias, roomId);
    }
  }

  /** One new alias: valid (M_INVALID_PARAM) and naming roomId (M_BAD_ALIAS). */
  private async checkAliasPointsTo(alias: unknown, roomId: string): Promise<void> {
    if (typeof alias !== 'string' || !isValidRoomAlias(alias)) throw invalidParam(`${JSON.stringify(alias)} is not a room alias`);
    if (serverNameOf(alias) !== this.settings.serverName) {
      // An alias of another server is asked of it (as Synapse does); unreachable, the error stands.
      const remote = await this.directory.resolve(alias).catch((err: unknown) => {
        if (err instanceof MatrixError && err.errcode === 'M_NOT_FOUND') return undefined;
        throw err;
      });
      if (remote?.room_id !== roomId) throw new MatrixError(400, 'M_BAD_ALIAS', `${alias} does not point to this room`);
      return;
    }
    const found = await directoryStore.aliasRoom(this.db, alias);
    if (!found || found.roomId !== roomId) throw new MatrixError(400, 'M_BAD_ALIAS', `${alias} does not point to this room`);
  }

  private async requireKnownRoom(roomId: string): Promise<void> {
    if (!(await getRoom(this.db, roomId))) throw notFound(`Room ${roomId} is not known to this server`);
  }

  /**
   * The servers to ask about a room not held here, in order, without repeats: the given hints,
   * the server of whoever invited the user (as Synapse), and the server in the room id.
   */
  private async remoteCandidates(roomId: string, userId: string, hints: string[]): Promise<string[]> {
    const servers = [...hints];
    const membership = await getUserMembershipInRoom(this.db, roomId, userId);
    if (membership?.membership === 'invite') {
      const invite = await getEvent(this.db, membership.eventId);
      if (invite) servers.push(serverNameOf(invite.sender));
    }
    if (roomId.includes(':')) servers.push(serverNameOf(roomId));
    return [...new Set(servers)].filter((s) => s !== this.settings.serverName);
  }

  /** displayname and avatar_url for a join, from the user's profile (as Synapse). */
  private async profileContent(userId: string): Promise<Record<string, unknown>> {
    try {
      const profile = await this.profiles.getProfile(userId);
      const content: Record<string, unknown> = {};
      if (typeof profile.displayname === 'string') content.displayname = profile.displayname;
      if (typeof profile.avatar_url === 'string') content.avatar_url = profile.avatar_url;
      return content;
    } catch {
      return {};
    }
  }
}

function isInitialStateEvent(value: unknown): boolean {
  return isPlainObject(value) && typeof value.type === 'string' && isPlainObject(value.content) && (value.state_key === undefined || typeof value.state_key === 'string');
}

/** alias and alt_aliases of an m.room.canonical_alias content, as sent (M_INVALID_PARAM when alt_aliases is not a list). */
function canonicalAliasList(content: JsonBody): unknown[] {
  const aliases: unknown[] = [];
  if (content.alias !== undefined && content.alias !== null) aliases.push(content.alias);
  if (content.alt_aliases !== undefined) {
    if (!Array.isArray(content.alt_aliases)) throw invalidParam('"alt_aliases" must be a list of room aliases');
    aliases.push(...content.alt_aliases);
  }
  return aliases;
}

/** The string aliases named by a stored m.room.canonical_alias content (whatever its shape). */
function canonicalAliasesOf(content: Record<string, unknown>): string[] {
  const named = [content.alias, ...(Array.isArray(content.alt_aliases) ? content.alt_aliases : [])];
  return named.filter((a): a is string => typeof a === 'string');
}
