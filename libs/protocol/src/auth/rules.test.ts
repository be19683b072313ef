/**
 * The authorization rules, table-driven: for every rule a case that passes and a case that
 * fails, run on every room version the rule applies to (and its opposite where versions
 * differ). A failing case names the rule it expects to refuse.
 */
import { describe, expect, it } from 'vitest';
import { generateSigningKey, signJson } from '../signing.js';
import { stateKey, type RoomEvent } from '../event-types.js';
import { getRoomVersion, ROOM_VERSIONS, type RoomVersion } from '../room-versions.js';
import { AuthError } from './auth-error.js';
import { authorize } from './rules.js';

const ALICE = '@alice:a.example'; // the creator
const BOB = '@bob:a.example'; // moderator, 50
const CAROL = '@carol:a.example'; // member, 0
const DAVE = '@dave:a.example'; // never in the room
const EVE = '@eve:a.example'; // banned
const INVITED = '@ivan:a.example'; // invited
const KNOCKER = '@kim:a.example'; // knocking
const ZED = '@zed:z.example'; // another server, joined

const ALL = [...ROOM_VERSIONS.keys()];
const range = (from: number, to = 12) => ALL.filter((v) => Number(v) >= from && Number(v) <= to);

interface RoomSetup {
  joinRule?: string | null;
  createContent?: Record<string, any>;
  powerLevels?: Record<string, any> | null;
  extraState?: RoomEvent[];
}

let counter = 0;
function roomIdFor(version: RoomVersion): string {
  return version.roomIdIsCreateEventHash ? '!create' : '!room:a.example';
}

function makeEvent(version: RoomVersion, fields: Partial<RoomEvent> & { type: string; sender: string }): RoomEvent {
  return {
    event_id: `$e${++counter}${version.eventIdFormat === 'v1' ? ':a.example' : ''}`,
    room_id: roomIdFor(version),
    content: {},
    prev_events: ['$prev'],
    auth_events: [],
    origin_server_ts: counter,
    depth: 10,
    ...fields,
  };
}

function member(version: RoomVersion, user: string, membership: string, sender = user): RoomEvent {
  return makeEvent(version, { type: 'm.room.member', sender, state_key: user, content: { membership } });
}

/** The auth state of a room: alice created it, bob 50, carol 0, zed joined, eve banned... */
function room(version: RoomVersion, setup: RoomSetup = {}): Map<string, RoomEvent> {
  const create: RoomEvent = {
    event_id: version.roomIdIsCreateEventHash ? '$create' : '$create:a.example',
    room_id: version.roomIdIsCreateEventHash ? undefined : '!room:a.example',
    sender: ALICE,
    type: 'm.room.create',
    state_key: '',
    content: { room_version: version.id, ...(version.implicitRoomCreator ? {} : { creator: ALICE }), ...setup.createContent },
    prev_events: [],
    auth_events: [],
    origin_server_ts: 0,
    depth: 1,
  };
  if (create.room_id === undefined) delete create.room_id;
  const users: Record<string, number> = { [BOB]: 50, [CAROL]: 0, [ZED]: 0 };
  if (!version.privilegedCreators) users[ALICE] = 100;
  const events = [create];
  if (setup.powerLevels !== null) {
    events.push(makeEvent(version, { type: 'm.room.power_levels', sender: ALICE, state_key: '', content: setup.powerLevels ?? { users } }));
  }
  if (setup.joinRule !== null) {
    events.push(makeEvent(version, { type: 'm.room.join_rules', sender: ALICE, state_key: '', content: { join_rule: setup.joinRule ?? 'public' } }));
  }
  events.push(
    member(version, ALICE, 'join'),
    member(version, BOB, 'join'),
    member(version, CAROL, 'join'),
    member(version, ZED, 'join'),
    member(version, EVE, 'ban', ALICE),
    member(version, INVITED, 'invite', ALICE),
    member(version, KNOCKER, 'knock'),
    ...(setup.extraState ?? []),
  );
  return new Map(events.map((e) => [stateKey(e.type, e.state_key!), e]));
}

type Outcome = 'allow' | { refusedBy: string };
interface Case {
  name: string;
  versions: string[];
  setup?: RoomSetup | ((v: RoomVersion) => RoomSetup);
  event: (v: RoomVersion, state: Map<string, RoomEvent>) => RoomEvent;
  expect: Outcome;
}

const refused = (rule: string): Outcome => ({ refusedBy: rule });
const ev = makeEvent;
const memberEvent = (v: RoomVersion, sender: string, target: string, content: Record<string, any>, extra: Partial<RoomEvent> = {}) =>
  ev(v, { type: 'm.room.member', sender, state_key: target, content, ...extra });
const pl = (v: RoomVersion, sender: string, content: Record<string, any>) => ev(v, { type: 'm.room.power_levels', sender, state_key: '', content });
/** The room's power levels with changes, as the sender would send them. */
const plUsers = (v: RoomVersion, users: Record<string, number>) => ({
  users: { [BOB]: 50, [CAROL]: 0, [ZED]: 0, ...(v.privilegedCreators ? {} : { [ALICE]: 100 }), ...users },
});

// Third-party invites: a real Ed25519 key signs `signed`.
const identityKey = generateSigningKey('0');
const thirdPartyInviteEvent = (v: RoomVersion, sender = BOB) =>
  ev(v, { type: 'm.room.third_party_invite', sender, state_key: 'tok', content: { display_name: 'd', key_validity_url: 'https://id', public_key: identityKey.publicKeyBase64 } });
const signedFor = (mxid: string, token = 'tok') => signJson({ mxid, token, sender: BOB }, 'id.example', identityKey);

const createEvent = (v: RoomVersion, content: Record<string, any> = {}, extra: Partial<RoomEvent> = {}): RoomEvent => {
  const e: RoomEvent = {
    event_id: '$newcreate',
    sender: ALICE,
    type: 'm.room.create',
    state_key: '',
    content: { room_version: v.id, ...(v.implicitRoomCreator ? {} : { creator: ALICE }), ...content },
    prev_events: [],
    auth_events: [],
    origin_server_ts: 0,
    ...(v.roomIdIsCreateEventHash ? {} : { room_id: '!new:a.example' }),
    ...extra,
  };
  return e;
};

const cases: Case[] = [
  // m.room.create
  { name: 'create: a valid create event', versions: ALL, event: (v) => createEvent(v), expect: 'allow' },
  { name: 'create: with prev_events', versions: ALL, event: (v) => createEvent(v, {}, { prev_events: ['$x'] }), expect: refused('m.room.create') },
  { name: "create: room id on another server than the sender's", versions: range(1, 11), event: (v) => createEvent(v, {}, { room_id: '!new:b.example' }), expect: refused('m.room.create') },
  { name: 'create: v12 create with a room_id', versions: range(12), event: (v) => createEvent(v, {}, { room_id: '!new:a.example' }), expect: refused('m.room.create') },
  { name: 'create: unknown room_version', versions: ALL, event: (v) => createEvent(v, { room_version: '99' }), expect: refused('m.room.create') },
  { name: 'create: no creator before v11', versions: range(1, 10), event: (v) => ({ ...createEvent(v), content: { room_version: v.id } }), expect: refused('m.room.create') },
  { name: 'create: no creator from v11', versions: range(11), event: (v) => ({ ...createEvent(v), content: { room_version: v.id } }), expect: 'allow' },
  { name: 'create: additional_creators as user ids', versions: range(12), event: (v) => createEvent(v, { additional_creators: [BOB] }), expect: 'allow' },
  { name: 'create: additional_creators not user ids', versions: range(12), event: (v) => createEvent(v, { additional_creators: ['bob'] }), expect: refused('m.room.create') },

  // Room id and create event
  { name: 'room id: v12 room id naming another create event', versions: range(12), event: (v) => ev(v, { type: 'm.room.message', sender: CAROL, room_id: '!other' }), expect: refused('room id') },
  { name: 'room id: v12 room id naming the create event', versions: range(12), event: (v) => ev(v, { type: 'm.room.message', sender: CAROL }), expect: 'allow' },

  // m.federate
  { name: 'm.federate false: sender on another server', versions: ALL, setup: { createContent: { 'm.federate': false } }, event: (v) => ev(v, { type: 'm.room.message', sender: ZED }), expect: refused('m.federate') },
  { name: "m.federate false: sender on the creator's server", versions: ALL, setup: { createContent: { 'm.federate': false } }, event: (v) => ev(v, { type: 'm.room.message', sender: CAROL }), expect: 'allow' },

  // m.room.aliases, v1-5
  { name: "aliases: state_key is the sender's server, even when not joined", versions: range(1, 5), event: (v) => ev(v, { type: 'm.room.aliases', sender: DAVE, state_key: 'a.example', content: { aliases: [] } }), expect: 'allow' },
  { name: "aliases: state_key is another server", versions: range(1, 5), event: (v) => ev(v, { type: 'm.room.aliases', sender: CAROL, state_key: 'b.example', content: { aliases: [] } }), expect: refused('m.room.aliases') },
  { name: 'aliases: from v6 an ordinary state event (sender must be joined)', versions: range(6), event: (v) => ev(v, { type: 'm.room.aliases', sender: DAVE, state_key: 'a.example', content: {} }), expect: refused('sender membership') },

  // m.room.member: shape
  { name: 'member: no membership', versions: ALL, event: (v) => memberEvent(v, DAVE, DAVE, {}), expect: refused('m.room.member') },
  { name: 'member: unknown membership', versions: ALL, event: (v) => memberEvent(v, DAVE, DAVE, { membership: 'dance' }), expect: refused('m.room.member') },

  // join
  { name: "join: the creator's first join right after the create event", versions: ALL, setup: { powerLevels: null, joinRule: null }, event: (v, s) => memberEvent(v, ALICE, ALICE, { membership: 'join' }, { prev_events: [s.get(stateKey('m.room.create', ''))!.event_id] }), expect: 'allow' },
  { name: 'join: somebody else right after the create event (no join rules: invite only)', versions: ALL, setup: { powerLevels: null, joinRule: null }, event: (v, s) => memberEvent(v, DAVE, DAVE, { membership: 'join' }, { prev_events: [s.get(stateKey('m.room.create', ''))!.event_id] }), expect: refused('m.room.member join') },
  { name: 'join: public room', versions: ALL, event: (v) => memberEvent(v, DAVE, DAVE, { membership: 'join' }), expect: 'allow' },
  { name: 'join: for somebody else', versions: ALL, event: (v) => memberEvent(v, CAROL, DAVE, { membership: 'join' }), expect: refused('m.room.member join') },
  { name: 'join: banned sender', versions: ALL, event: (v) => memberEvent(v, EVE, EVE, { membership: 'join' }), expect: refused('m.room.member join') },
  { name: 'join: invite-only, not invited', versions: ALL, setup: { joinRule: 'invite' }, event: (v) => memberEvent(v, DAVE, DAVE, { membership: 'join' }), expect: refused('m.room.member join') },
  { name: 'join: invite-only, invited', versions: ALL, setup: { joinRule: 'invite' }, event: (v) => memberEvent(v, INVITED, INVITED, { membership: 'join' }), expect: 'allow' },
  { name: 'join: knock rule, invited (v7+)', versions: range(7), setup: { joinRule: 'knock' }, event: (v) => memberEvent(v, INVITED, INVITED, { membership: 'join' }), expect: 'allow' },
  { name: 'join: knock rule is unknown before v7', versions: range(1, 6), setup: { joinRule: 'knock' }, event: (v) => memberEvent(v, INVITED, INVITED, { membership: 'join' }), expect: refused('m.room.member join') },
  { name: 'join: private (unknown) join rule', versions: ALL, setup: { joinRule: 'private' }, event: (v) => memberEvent(v, DAVE, DAVE, { membership: 'join' }), expect: refused('m.room.member join') },

  // restricted joins (v8+), knock_restricted (v10+)
  ...(['restricted', 'knock_restricted'] as const).flatMap((rule): Case[] => {
    const from = rule === 'restricted' ? 8 : 10;
    const signedJoin = (v: RoomVersion, authoriser: string) =>
      memberEvent(v, DAVE, DAVE, { membership: 'join', join_authorised_via_users_server: authoriser }, { signatures: { 'a.example': { 'ed25519:1': 'sig' } } });
    return [
      { name: `${rule} join: authorised by a joined user who may invite`, versions: range(from), setup: { joinRule: rule }, event: (v) => signedJoin(v, BOB), expect: 'allow' },
      { name: `${rule} join: invited user needs no authoriser`, versions: range(from), setup: { joinRule: rule }, event: (v) => memberEvent(v, INVITED, INVITED, { membership: 'join' }), expect: 'allow' },
      { name: `${rule} join: authoriser not joined`, versions: range(from), setup: { joinRule: rule }, event: (v) => signedJoin(v, INVITED), expect: refused('m.room.member join') },
      { name: `${rule} join: authoriser below the invite level`, versions: range(from), setup: (v) => ({ joinRule: rule, powerLevels: { ...plUsers(v, {}), invite: 10 } }), event: (v) => signedJoin(v, CAROL), expect: refused('m.room.member join') },
      { name: `${rule} join: no authoriser`, versions: range(from), setup: { joinRule: rule }, event: (v) => memberEvent(v, DAVE, DAVE, { membership: 'join' }), expect: refused('m.room.member join') },
      { name: `${rule} join: not signed by the authoriser's server`, versions: range(from), setup: { joinRule: rule }, event: (v) => memberEvent(v, DAVE, DAVE, { membership: 'join', join_authorised_via_users_server: BOB }), expect: refused('m.room.member join_authorised_via_users_server') },
      { name: `${rule} join rule unknown before v${from}`, versions: range(1, from - 1), setup: { joinRule: rule }, event: (v) => signedJoin(v, BOB), expect: refused('m.room.member join') },
    ];
  }),

  // invite
  { name: 'invite: by a joined member at the invite level', versions: ALL, event: (v) => memberEvent(v, CAROL, DAVE, { membership: 'invite' }), expect: 'allow' },
  { name: 'invite: sender not joined', versions: ALL, event: (v) => memberEvent(v, INVITED, DAVE, { membership: 'invite' }), expect: refused('m.room.member invite') },
  { name: 'invite: target already joined', versions: ALL, event: (v) => memberEvent(v, CAROL, BOB, { membership: 'invite' }), expect: refused('m.room.member invite') },
  { name: 'invite: target banned', versions: ALL, event: (v) => memberEvent(v, CAROL, EVE, { membership: 'invite' }), expect: refused('m.room.member invite') },
  { name: 'invite: sender below the invite level', versions: ALL, setup: (v) => ({ powerLevels: { ...plUsers(v, {}), invite: 50 } }), event: (v) => memberEvent(v, CAROL, DAVE, { membership: 'invite' }), expect: refused('m.room.member invite') },

  // third-party invites
  { name: 'third-party invite: signed by the key of the invite', versions: ALL, setup: (v) => ({ extraState: [thirdPartyInviteEvent(v)] }), event: (v) => memberEvent(v, BOB, DAVE, { membership: 'invite', third_party_invite: { display_name: 'd', signed: signedFor(DAVE) } }), expect: 'allow' },
  { name: 'third-party invite: signature does not verify', versions: ALL, setup: (v) => ({ extraState: [thirdPartyInviteEvent(v)] }), event: (v) => memberEvent(v, BOB, DAVE, { membership: 'invite', third_party_invite: { signed: { ...signedFor(DAVE), token: 'tok', mxid: DAVE, extra: 1 } } }), expect: refused('m.room.member invite (third party)') },
  { name: 'third-party invite: mxid is not the state_key', versions: ALL, setup: (v) => ({ extraState: [thirdPartyInviteEvent(v)] }), event: (v) => memberEvent(v, BOB, DAVE, { membership: 'invite', third_party_invite: { signed: signedFor(CAROL) } }), expect: refused('m.room.member invite (third party)') },
  { name: 'third-party invite: no m.room.third_party_invite for the token', versions: ALL, event: (v) => memberEvent(v, BOB, DAVE, { membership: 'invite', third_party_invite: { signed: signedFor(DAVE) } }), expect: refused('m.room.member invite (third party)') },
  { name: 'third-party invite: sender did not send the invite', versions: ALL, setup: (v) => ({ extraState: [thirdPartyInviteEvent(v, CAROL)] }), event: (v) => memberEvent(v, BOB, DAVE, { membership: 'invite', third_party_invite: { signed: signedFor(DAVE) } }), expect: refused('m.room.member invite (third party)') },
  { name: 'third-party invite: target banned', versions: ALL, setup: (v) => ({ extraState: [thirdPartyInviteEvent(v)] }), event: (v) => memberEvent(v, BOB, EVE, { membership: 'invite', third_party_invite: { signed: signedFor(EVE) } }), expect: refused('m.room.member invite (third party)') },
  { name: 'third-party invite: no signed', versions: ALL, setup: (v) => ({ extraState: [thirdPartyInviteEvent(v)] }), event: (v) => memberEvent(v, BOB, DAVE, { membership: 'invite', third_party_invite: {} }), expect: refused('m.room.member invite (third party)') },

  // leave
  { name: 'leave: a member leaves', versions: ALL, event: (v) => memberEvent(v, CAROL, CAROL, { membership: 'leave' }), expect: 'allow' },
  { name: 'leave: an invited user rejects', versions: ALL, event: (v) => memberEvent(v, INVITED, INVITED, { membership: 'leave' }), expect: 'allow' },
  { name: 'leave: a knocking user rescinds (v7+)', versions: range(7), event: (v) => memberEvent(v, KNOCKER, KNOCKER, { membership: 'leave' }), expect: 'allow' },
  { name: 'leave: a banned user cannot leave', versions: ALL, event: (v) => memberEvent(v, EVE, EVE, { membership: 'leave' }), expect: refused('m.room.member leave') },
  { name: 'leave: kick by a moderator', versions: ALL, event: (v) => memberEvent(v, BOB, CAROL, { membership: 'leave' }), expect: 'allow' },
  { name: 'leave: kick by someone below the kick level', versions: ALL, event: (v) => memberEvent(v, CAROL, ZED, { membership: 'leave' }), expect: refused('m.room.member leave') },
  { name: 'leave: kick of a higher user', versions: ALL, event: (v) => memberEvent(v, BOB, ALICE, { membership: 'leave' }), expect: refused('m.room.member leave') },
  { name: 'leave: kick by a sender not joined', versions: ALL, event: (v) => memberEvent(v, INVITED, CAROL, { membership: 'leave' }), expect: refused('m.room.member leave') },
  { name: 'leave: unban by a moderator at the ban level', versions: ALL, event: (v) => memberEvent(v, BOB, EVE, { membership: 'leave' }), expect: 'allow' },
  { name: 'leave: unban below the ban level', versions: ALL, setup: (v) => ({ powerLevels: { ...plUsers(v, {}), kick: 0, ban: 60 } }), event: (v) => memberEvent(v, BOB, EVE, { membership: 'leave' }), expect: refused('m.room.member leave') },

  // ban
  { name: 'ban: by a moderator', versions: ALL, event: (v) => memberEvent(v, BOB, CAROL, { membership: 'ban' }), expect: 'allow' },
  { name: 'ban: below the ban level', versions: ALL, event: (v) => memberEvent(v, CAROL, ZED, { membership: 'ban' }), expect: refused('m.room.member ban') },
  { name: 'ban: of an equal', versions: ALL, setup: (v) => ({ powerLevels: plUsers(v, { [CAROL]: 50 }) }), event: (v) => memberEvent(v, BOB, CAROL, { membership: 'ban' }), expect: refused('m.room.member ban') },
  { name: 'ban: sender not joined', versions: ALL, setup: (v) => ({ powerLevels: plUsers(v, { [INVITED]: 100 }) }), event: (v) => memberEvent(v, INVITED, CAROL, { membership: 'ban' }), expect: refused('m.room.member ban') },
  { name: 'ban: v12 a creator cannot be banned even by 100', versions: range(12), setup: (v) => ({ powerLevels: plUsers(v, { [BOB]: 100 }) }), event: (v) => memberEvent(v, BOB, ALICE, { membership: 'ban' }), expect: refused('m.room.member ban') },
  { name: 'ban: v12 a creator bans a user at 100', versions: range(12), setup: (v) => ({ powerLevels: plUsers(v, { [BOB]: 100 }) }), event: (v) => memberEvent(v, ALICE, BOB, { membership: 'ban' }), expect: 'allow' },
  { name: 'ban: v12 an additional creator is infinitely powerful', versions: range(12), setup: { createContent: { additional_creators: [CAROL] } }, event: (v) => memberEvent(v, CAROL, BOB, { membership: 'ban' }), expect: 'allow' },

  // knock
  { name: 'knock: knock join rule (v7+)', versions: range(7), setup: { joinRule: 'knock' }, event: (v) => memberEvent(v, DAVE, DAVE, { membership: 'knock' }), expect: 'allow' },
  { name: 'knock: knock_restricted join rule (v10+)', versions: range(10), setup: { joinRule: 'knock_restricted' }, event: (v) => memberEvent(v, DAVE, DAVE, { membership: 'knock' }), expect: 'allow' },
  { name: 'knock: knock_restricted before v10', versions: range(7, 9), setup: { joinRule: 'knock_restricted' }, event: (v) => memberEvent(v, DAVE, DAVE, { membership: 'knock' }), expect: refused('m.room.member knock') },
  { name: 'knock: public room', versions: range(7), event: (v) => memberEvent(v, DAVE, DAVE, { membership: 'knock' }), expect: refused('m.room.member knock') },
  { name: 'knock: for somebody else', versions: range(7), setup: { joinRule: 'knock' }, event: (v) => memberEvent(v, CAROL, DAVE, { membership: 'knock' }), expect: refused('m.room.member knock') },
  { name: 'knock: already joined', versions: range(7), setup: { joinRule: 'knock' }, event: (v) => memberEvent(v, CAROL, CAROL, { membership: 'knock' }), expect: refused('m.room.member knock') },
  { name: 'knock: unknown membership before v7', versions: range(1, 6), setup: { joinRule: 'knock' }, event: (v) => memberEvent(v, DAVE, DAVE, { membership: 'knock' }), expect: refused('m.room.member') },

  // sender membership, third_party_invite events, required power level, user state keys
  { name: 'message: by a member', versions: ALL, event: (v) => ev(v, { type: 'm.room.message', sender: CAROL }), expect: 'allow' },
  { name: 'message: by a non-member', versions: ALL, event: (v) => ev(v, { type: 'm.room.message', sender: INVITED }), expect: refused('sender membership') },
  { name: 'third_party_invite event: at the invite level', versions: ALL, event: (v) => thirdPartyInviteEvent(v, CAROL), expect: 'allow' },
  { name: 'third_party_invite event: below the invite level', versions: ALL, setup: (v) => ({ powerLevels: { ...plUsers(v, {}), invite: 50 } }), event: (v) => thirdPartyInviteEvent(v, CAROL), expect: refused('m.room.third_party_invite') },
  { name: 'state event: below state_default', versions: ALL, event: (v) => ev(v, { type: 'm.room.topic', sender: CAROL, state_key: '' }), expect: refused('event power level') },
  { name: 'state event: at state_default', versions: ALL, event: (v) => ev(v, { type: 'm.room.topic', sender: BOB, state_key: '' }), expect: 'allow' },
  { name: 'state event: no power levels, state_default is 0', versions: ALL, setup: { powerLevels: null }, event: (v) => ev(v, { type: 'm.room.topic', sender: CAROL, state_key: '' }), expect: 'allow' },
  { name: 'message: events level of its type', versions: ALL, setup: (v) => ({ powerLevels: { ...plUsers(v, {}), events: { 'm.room.message': 10 } } }), event: (v) => ev(v, { type: 'm.room.message', sender: CAROL }), expect: refused('event power level') },
  { name: "state key: another user's id", versions: ALL, event: (v) => ev(v, { type: 'm.custom', sender: BOB, state_key: CAROL }), expect: refused('user state key') },
  { name: "state key: the sender's own id", versions: ALL, event: (v) => ev(v, { type: 'm.custom', sender: BOB, state_key: BOB }), expect: 'allow' },

  // m.room.power_levels
  { name: 'power levels: the first power levels event', versions: ALL, setup: { powerLevels: null }, event: (v) => pl(v, ALICE, { users: v.privilegedCreators ? { [BOB]: 100 } : { [ALICE]: 100 } }), expect: 'allow' },
  { name: 'power levels: string levels from v10', versions: range(10), event: (v) => pl(v, ALICE, { ...plUsers(v, {}), ban: '50' }), expect: refused('m.room.power_levels') },
  { name: 'power levels: string levels before v10', versions: range(1, 9), event: (v) => pl(v, ALICE, { ...plUsers(v, { [CAROL]: '10' as any }), ban: '50' }), expect: 'allow' },
  { name: 'power levels: events values not integers from v10', versions: range(10), event: (v) => pl(v, ALICE, { ...plUsers(v, {}), events: { 'm.room.name': '50' } }), expect: refused('m.room.power_levels') },
  { name: 'power levels: users key not a user id', versions: ALL, event: (v) => pl(v, ALICE, { users: { ...plUsers(v, {}).users, carol: 1 } }), expect: refused('m.room.power_levels') },
  { name: 'power levels: users value not a number', versions: ALL, event: (v) => pl(v, ALICE, { users: { ...plUsers(v, {}).users, [CAROL]: 'high' } }), expect: refused('m.room.power_levels') },
  { name: 'power levels: v12 users lists the creator', versions: range(12), event: (v) => pl(v, ALICE, plUsers(v, { [ALICE]: 100 })), expect: refused('m.room.power_levels') },
  { name: 'power levels: v12 users lists an additional creator', versions: range(12), setup: { createContent: { additional_creators: [DAVE] } }, event: (v) => pl(v, ALICE, plUsers(v, { [DAVE]: 100 })), expect: refused('m.room.power_levels') },
  { name: 'power levels: moderator promotes a member to its own level', versions: ALL, event: (v) => pl(v, BOB, plUsers(v, { [CAROL]: 50 })), expect: 'allow' },
  { name: 'power levels: moderator promotes above its own level', versions: ALL, event: (v) => pl(v, BOB, plUsers(v, { [CAROL]: 51 })), expect: refused('m.room.power_levels') },
  { name: 'power levels: moderator demotes itself', versions: ALL, event: (v) => pl(v, BOB, plUsers(v, { [BOB]: 10 })), expect: 'allow' },
  { name: 'power levels: moderator changes an equal', versions: ALL, setup: (v) => ({ powerLevels: plUsers(v, { [CAROL]: 50 }) }), event: (v) => pl(v, BOB, plUsers(v, { [CAROL]: 0 })), expect: refused('m.room.power_levels') },
  { name: 'power levels: moderator raises ban above itself', versions: ALL, event: (v) => pl(v, BOB, { ...plUsers(v, {}), ban: 60 }), expect: refused('m.room.power_levels') },
  { name: 'power levels: moderator lowers a level above itself', versions: ALL, setup: (v) => ({ powerLevels: { ...plUsers(v, {}), kick: 75 } }), event: (v) => pl(v, BOB, { ...plUsers(v, {}), kick: 10 }), expect: refused('m.room.power_levels') },
  { name: 'power levels: moderator sets an events level at its own', versions: ALL, event: (v) => pl(v, BOB, { ...plUsers(v, {}), events: { 'm.room.name': 50 } }), expect: 'allow' },
  { name: 'power levels: moderator sets an events level above itself', versions: ALL, event: (v) => pl(v, BOB, { ...plUsers(v, {}), events: { 'm.room.name': 75 } }), expect: refused('m.room.power_levels') },
  { name: 'power levels: moderator changes an events level above itself', versions: ALL, setup: (v) => ({ powerLevels: { ...plUsers(v, {}), events: { 'm.room.name': 75 } } }), event: (v) => pl(v, BOB, { ...plUsers(v, {}), events: { 'm.room.name': 0 } }), expect: refused('m.room.power_levels') },
  { name: 'power levels: notifications above the sender (v6+)', versions: range(6), setup: (v) => ({ powerLevels: { ...plUsers(v, {}), notifications: { room: 100 } } }), event: (v) => pl(v, BOB, { ...plUsers(v, {}), notifications: { room: 0 } }), expect: refused('m.room.power_levels') },
  { name: 'power levels: notifications not covered before v6', versions: range(1, 5), setup: (v) => ({ powerLevels: { ...plUsers(v, {}), notifications: { room: 100 } } }), event: (v) => pl(v, BOB, { ...plUsers(v, {}), notifications: { room: 0 } }), expect: 'allow' },

  // m.room.redaction
  { name: 'redaction: below the redact level, same server (v1-2)', versions: range(1, 2), event: (v) => ev(v, { type: 'm.room.redaction', sender: CAROL, redacts: '$other:a.example' }), expect: 'allow' },
  { name: 'redaction: below the redact level, other server (v1-2)', versions: range(1, 2), event: (v) => ev(v, { type: 'm.room.redaction', sender: CAROL, redacts: '$other:b.example' }), expect: refused('m.room.redaction') },
  { name: 'redaction: at the redact level, other server (v1-2)', versions: range(1, 2), event: (v) => ev(v, { type: 'm.room.redaction', sender: BOB, redacts: '$other:b.example' }), expect: 'allow' },
  { name: 'redaction: from v3 the default rule (checked when shown)', versions: range(3), event: (v) => ev(v, { type: 'm.room.redaction', sender: CAROL, redacts: '$other', content: { redacts: '$other' } }), expect: 'allow' },
  { name: 'redaction: from v3 still needs the events level', versions: range(3), setup: (v) => ({ powerLevels: { ...plUsers(v, {}), events: { 'm.room.redaction': 50 } } }), event: (v) => ev(v, { type: 'm.room.redaction', sender: CAROL, redacts: '$other' }), expect: refused('event power level') },

  // Missing create event
  { name: 'no create event in the auth state', versions: ALL, setup: {}, event: (v) => ev(v, { type: 'm.room.message', sender: CAROL, content: { noCreate: true } }), expect: refused('auth events') },
];

describe('authorization rules', () => {
  for (const c of cases) {
    describe(c.name, () => {
      for (const id of c.versions) {
        it(`room version ${id}`, () => {
          const version = getRoomVersion(id);
          const setup = typeof c.setup === 'function' ? c.setup(version) : (c.setup ?? {});
          const state = room(version, setup);
          const event = c.event(version, state);
          if (event.content.noCreate) state.delete(stateKey('m.room.create', ''));
          const run = () => authorize(event, (t, k) => state.get(stateKey(t, k)), version);
          if (c.expect === 'allow') {
            expect(run).not.toThrow();
          } else {
            let error: unknown;
            try {
              run();
            } catch (e) {
              error = e;
            }
            expect(error).toBeInstanceOf(AuthError);
            expect((error as AuthError).rule).toBe(c.expect.refusedBy);
            expect((error as AuthError).message.startsWith(`${c.expect.refusedBy}: `)).toBe(true);
          }
        });
      }
    });
  }

  it('every room version has cases', () => {
    for (const id of ALL) expect(cases.filter((c) => c.versions.includes(id)).length).toBeGreaterThan(60);
  });

  it('uses the isSignedByServer hook for join_authorised_via_users_server', () => {
    const v = getRoomVersion('10');
    const state = room(v, { joinRule: 'restricted' });
    const event = memberEvent(v, DAVE, DAVE, { membership: 'join', join_authorised_via_users_server: BOB }, { signatures: { 'a.example': { 'ed25519:1': 'x' } } });
    const lookup = (t: string, k: string) => state.get(stateKey(t, k));
    expect(() => authorize(event, lookup, v, { isSignedByServer: () => false })).toThrow(/not signed by a\.example/);
    expect(() => authorize(event, lookup, v, { isSignedByServer: (_e, server) => server === 'a.example' })).not.toThrow();
  });
});

describe('malformed input is refused, not a crash', () => {
  const v = getRoomVersion('10');
  it.each([
    ['content null', { content: null }],
    ['no prev_events', { prev_events: undefined }],
    ['sender not a string', { sender: 5 }],
  ])('%s', (_label, patch) => {
    const state = room(v);
    const event = { ...makeEvent(v, { type: 'm.room.message', sender: CAROL }), ...patch } as unknown as RoomEvent;
    expect(() => authorize(event, (t, k) => state.get(stateKey(t, k)), v)).toThrow(AuthError);
  });
  it('a state event without content counts as absent', () => {
    const state = room(v);
    const create = state.get(stateKey('m.room.create', ''))!;
    state.set(stateKey('m.room.create', ''), { ...create, content: null as any });
    expect(() => authorize(makeEvent(v, { type: 'm.room.message', sender: CAROL }), (t, k) => state.get(stateKey(t, k)), v)).toThrow(/no m.room.create/);
  });
});
