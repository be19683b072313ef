/**
 * createRoom: the events of a new room in the order the spec (and Synapse) use: create,
 * the creator's join, power levels, canonical alias, join rules, history visibility, guest
 * access, initial_state, name, topic, invites. Built in memory, each authorized against the
 * state the previous ones make, and appended in one batch (sequence 0: the room is new).
 */
import { randomBytes } from 'node:crypto';
import {
  AuthError, authorize, DEFAULT_ROOM_VERSION, getRoomVersion, isKnownRoomVersion, isValidUserId, roomIdForCreateEvent, stateKey,
  type RoomEvent, type RoomVersion, type StateMap,
} from '@tessera/protocol';
import { BusError, type AppendEvent, type CreateRoomReply, type CreateRoomRequest, type StateTriple } from '@tessera/bus';
import { buildLocalEvent, chooseAuthEvents, type LocalEventSpec, type PrevEvent } from './event-builder.js';
import { forbidden, type Decider } from './decider.js';

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function badJson(message: string): BusError {
  return new BusError('M_BAD_JSON', message);
}

/**
 * Room version 12 (MSC4289): additional_creators must be user ids, and no creator may be given
 * a power level (creators are above every level). Both are the request's fault, 400 as Synapse
 * answers (Complement's v12 tests), where the auth rules would refuse the events with 403.
 */
function checkCreators(req: CreateRoomRequest): void {
  const additional = req.creation_content?.additional_creators;
  if (additional !== undefined && (!Array.isArray(additional) || !additional.every((u) => typeof u === 'string' && isValidUserId(u)))) {
    throw badJson('creation_content.additional_creators must be a list of user ids');
  }
  const users = req.power_level_content_override?.users;
  const creators = [req.sender, ...((additional as string[] | undefined) ?? [])];
  const named = isObject(users) ? creators.filter((c) => Object.hasOwn(users, c)) : [];
  if (named.length > 0) {
    throw badJson(`power_level_content_override may not give a room creator (${named.join(', ')}) a power level: in room version 12 creators are above every level`);
  }
}

export function planCreateRoom(req: CreateRoomRequest, rv: RoomVersion): LocalEventSpec[] {
  const sender = req.sender;
  const preset = req.preset ?? (req.visibility === 'public' ? 'public_chat' : 'private_chat');
  if (!['private_chat', 'public_chat', 'trusted_private_chat'].includes(preset)) {
    throw new BusError('M_INVALID_PARAM', `preset must be private_chat, public_chat or trusted_private_chat, not ${JSON.stringify(preset)}`);
  }
  const invites = req.invite ?? [];
  if (!Array.isArray(invites) || !invites.every((u) => typeof u === 'string' && isValidUserId(u))) {
    throw new BusError('M_INVALID_PARAM', 'invite must be a list of user ids');
  }
  if (req.creation_content !== undefined && !isObject(req.creation_content)) throw badJson('creation_content must be an object');
  if (req.power_level_content_override !== undefined && !isObject(req.power_level_content_override)) {
    throw badJson('power_level_content_override must be an object');
  }
  if (rv.privilegedCreators) checkCreators(req);
  const initial = req.initial_state ?? [];
  if (!Array.isArray(initial) || !initial.every((e) => isObject(e) && typeof e.type === 'string' && isObject(e.content) && (e.state_key === undefined || typeof e.state_key === 'string'))) {
    throw badJson('initial_state must be a list of {type, state_key, content}');
  }
  const initialKeys = new Set(initial.map((e) => stateKey(e.type, e.state_key ?? '')));
  const st = (type: string, content: Record<string, unknown>, key = ''): LocalEventSpec => ({ type, sender, stateKey: key, content });

  const createContent: Record<string, unknown> = { ...(req.creation_content ?? {}), room_version: rv.id };
  if (!rv.implicitRoomCreator) createContent.creator = sender;
  const specs: LocalEventSpec[] = [st('m.room.create', createContent)];
  const profile = req.creatorMemberContent ?? {};
  const creatorJoin: Record<string, unknown> = { membership: 'join' };
  if (typeof profile.displayname === 'string') creatorJoin.displayname = profile.displayname;
  if (typeof profile.avatar_url === 'string') creatorJoin.avatar_url = profile.avatar_url;
  specs.push(st('m.room.member', creatorJoin, sender));

  const users: Record<string, number> = rv.privilegedCreators ? {} : { [sender]: 100 };
  if (preset === 'trusted_private_chat') for (const u of invites) users[u] = 100;
  const powerLevels: Record<string, unknown> = {
    users,
    users_default: 0,
    events: {
      'm.room.name': 50, 'm.room.power_levels': 100, 'm.room.history_visibility': 100, 'm.room.canonical_alias': 50,
      'm.room.avatar': 50, 'm.room.tombstone': 100, 'm.room.server_acl': 100, 'm.room.encryption': 100,
    },
    events_default: 0,
    state_default: 50,
    ban: 50,
    kick: 50,
    redact: 50,
    invite: 0,
    ...(req.power_level_content_override ?? {}),
  };
  if (!initialKeys.has(stateKey('m.room.power_levels', ''))) specs.push(st('m.room.power_levels', powerLevels));
  if (req.canonicalAlias) specs.push(st('m.room.canonical_alias', { alias: req.canonicalAlias }));
  const presetState: Array<[string, Record<string, unknown>]> = [
    ['m.room.join_rules', { join_rule: preset === 'public_chat' ? 'public' : 'invite' }],
    ['m.room.history_visibility', { history_visibility: 'shared' }],
  ];
  if (preset !== 'public_chat') presetState.push(['m.room.guest_access', { guest_access: 'can_join' }]);
  for (const [type, content] of presetState) if (!initialKeys.has(stateKey(type, ''))) specs.push(st(type, content));
  for (const e of initial) specs.push(st(e.type, e.content as Record<string, unknown>, e.state_key ?? ''));
  if (req.name !== undefined) {
    if (typeof req.name !== 'string') throw badJson('name must be a string');
    specs.push(st('m.room.name', { name: req.name }));
  }
  if (req.topic !== undefined) {
    if (typeof req.topic !== 'string') throw badJson('topic must be a string');
    // With its rich form (spec v1.15 createRoom: "an m.room.topic event with a text/plain mimetype"), as Synapse.
    specs.push(st('m.room.topic', { topic: req.topic, 'm.topic': { 'm.text': [{ body: req.topic, mimetype: 'text/plain' }] } }));
  }
  for (const u of invites) {
    specs.push(st('m.room.member', { membership: 'invite', ...(req.is_direct ? { is_direct: true } : {}) }, u));
  }
  return specs;
}

export async function createRoom(decider: Decider, req: CreateRoomRequest, serverName: string): Promise<CreateRoomReply> {
  if (typeof req.sender !== 'string' || !isValidUserId(req.sender)) throw badJson('sender must be a user id');
  const versionId = req.room_version ?? DEFAULT_ROOM_VERSION;
  if (!isKnownRoomVersion(versionId)) {
    throw new BusError('M_UNSUPPORTED_ROOM_VERSION', `room version ${JSON.stringify(versionId)} is not supported; use one of 1 to 12`);
  }
  const rv = getRoomVersion(versionId);
  const specs = planCreateRoom(req, rv);

  let roomId = rv.roomIdIsCreateEventHash ? undefined : `!${randomBytes(12).toString('base64url')}:${serverName}`;
  const state: StateMap = new Map();
  const events = new Map<string, RoomEvent>();
  const depths = new Map<string, PrevEvent>();
  const appendEvents: AppendEvent[] = [];
  let prev: PrevEvent | undefined;
  for (const spec of specs) {
    const authIds = chooseAuthEvents(spec, state, rv);
    const built = buildLocalEvent(roomId, rv, spec, prev ? [prev] : [], authIds.map((id) => depths.get(id)!), decider.signer);
    if (spec.type === 'm.room.create' && rv.roomIdIsCreateEventHash) roomId = roomIdForCreateEvent(built.pdu, rv);
    // The v12 create event has no room_id: its hash is the room id.
    const event = spec.type === 'm.room.create' ? built.event : { ...built.event, room_id: built.event.room_id ?? roomId };
    try {
      authorize(event, (t, k) => {
        const id = state.get(stateKey(t, k));
        return id === undefined ? undefined : events.get(id);
      }, rv);
    } catch (err) {
      if (err instanceof AuthError) throw forbidden(err);
      throw err;
    }
    appendEvents.push({
      eventId: built.eventId,
      json: built.pdu as Record<string, unknown>,
      type: spec.type,
      stateKey: spec.stateKey ?? null,
      sender: spec.sender,
      depth: built.pdu.depth,
      originServerTs: built.pdu.origin_server_ts,
      prevEvents: built.event.prev_events,
      authEvents: built.event.auth_events,
      local: true,
      stateBefore: { base: prev ? { afterEvent: prev.eventId } : null, changes: [] },
    });
    events.set(built.eventId, event);
    state.set(stateKey(spec.type, spec.stateKey ?? ''), built.eventId);
    prev = { eventId: built.eventId, depth: built.pdu.depth, sha256: built.pdu.hashes?.sha256 };
    depths.set(built.eventId, prev);
  }
  const currentStateChanges: StateTriple[] = [...state].map(([k, id]) => {
    const i = k.indexOf('\u0000');
    return [k.slice(0, i), k.slice(i + 1), id];
  });
  const reply = await decider.locks.run(roomId!, () =>
    decider.append({ roomId: roomId!, roomVersion: rv.id, expectedSequence: 0, events: appendEvents, currentStateChanges }),
  );
  // The room as just stored, so that its first sends read nothing back.
  const last = appendEvents[appendEvents.length - 1]!;
  const lastStored = reply.events[reply.events.length - 1]!;
  appendEvents.forEach((e, i) => decider.cacheAppended(roomId!, e, events.get(e.eventId)!, reply.events[i]!));
  decider.store.cacheSnapshot(lastStored.stateAfterNid, state);
  decider.store.remember({
    roomId: roomId!, roomVersion: rv, sequence: reply.sequence, state,
    extremities: [{ eventId: last.eventId, depth: last.depth, stateAfterNid: lastStored.stateAfterNid }],
  });
  return { roomId: roomId!, roomVersion: rv.id, eventIds: appendEvents.map((e) => e.eventId) };
}
