/**
 * The authorization rules of room versions 1-12 (spec: rooms/v1 ... v12, "Authorization
 * rules"), driven by the room version registry. `authorize` checks an event against the state
 * before it (or its auth events) and throws an AuthError naming the rule that refused.
 *
 * What is not checked here: the PDU format (checkEventFormat), whether the cited auth_events
 * are the right ones (checkAuthEvents), hashes and the sender's signature (the signing module).
 */
import type { RoomEvent } from '../event-types.js';
import { isKnownRoomVersion, type RoomVersion } from '../room-versions.js';
import { AuthError, check } from './auth-error.js';
import { LEVEL_KEYS, parseLevel, PowerContext, type LevelKey } from './power-levels.js';
import { signedMatchesAnyKey, thirdPartyInvitePublicKeys } from './third-party-invite.js';
import { eventIdServerName, isValidUserId, userServerName } from './user-ids.js';

/** Looks up the auth state: the state before the event, or the event's auth events by key. */
export type AuthStateLookup = (type: string, stateKey: string) => RoomEvent | undefined;

export interface AuthorizeOptions {
  /**
   * Rule "m.room.member: join_authorised_via_users_server": is the event validly signed by this
   * server? Signature verification needs the server's keys, which the caller holds; without
   * this hook the rule only requires a signature entry by that server to be present.
   */
  isSignedByServer?: (event: RoomEvent, serverName: string) => boolean;
}

type Membership = 'join' | 'invite' | 'leave' | 'ban' | 'knock' | undefined;

function membershipOf(event: RoomEvent | undefined): Membership {
  const m = event?.content?.membership;
  return typeof m === 'string' ? (m as Membership) : undefined;
}

export function authorize(
  event: RoomEvent,
  lookupAuthState: AuthStateLookup,
  roomVersion: RoomVersion,
  options: AuthorizeOptions = {},
): void {
  // Malformed input is refused, never a crash: the event's own shape first, and state events
  // without object content count as absent (no such event could have been accepted).
  check(
    isObject(event) && typeof event.type === 'string' && typeof event.sender === 'string' && isObject(event.content) && Array.isArray(event.prev_events),
    'event format',
    'the event lacks type, sender, content or prev_events',
  );
  const authState: AuthStateLookup = (type, key) => {
    const found = lookupAuthState(type, key);
    return found && isObject(found.content) ? found : undefined;
  };
  if (event.type === 'm.room.create') return authorizeCreate(event, roomVersion);

  const create = authState('m.room.create', '');
  check(create, 'auth events', 'no m.room.create event in the auth state');
  if (roomVersion.roomIdIsCreateEventHash) {
    check(
      event.room_id === `!${create.event_id.slice(1)}`,
      'room id',
      `room_id ${JSON.stringify(event.room_id)} does not name the create event ${create.event_id}`,
    );
  } else if (typeof create.room_id === 'string' && typeof event.room_id === 'string') {
    check(create.room_id === event.room_id, 'auth events', 'the m.room.create event belongs to another room');
  }

  if (create.content['m.federate'] === false) {
    check(
      userServerName(event.sender) === userServerName(create.sender),
      'm.federate',
      'the room is not federated and the sender is on another server than the creator',
    );
  }

  if (event.type === 'm.room.aliases' && roomVersion.specialCaseAliasesAuth) {
    check(typeof event.state_key === 'string', 'm.room.aliases', 'event has no state_key');
    check(userServerName(event.sender) === event.state_key, 'm.room.aliases', "state_key is not the sender's server");
    return;
  }

  const power = new PowerContext(authState('m.room.power_levels', ''), create, roomVersion);

  if (event.type === 'm.room.member') return authorizeMember(event, authState, roomVersion, create, power, options);

  const senderMembership = membershipOf(authState('m.room.member', event.sender));
  check(senderMembership === 'join', 'sender membership', `sender is not joined (membership ${senderMembership ?? 'none'})`);

  const senderLevel = power.userLevel(event.sender);
  if (event.type === 'm.room.third_party_invite') {
    check(senderLevel >= power.level('invite'), 'm.room.third_party_invite', 'sender power level is below the invite level');
    return;
  }

  const isState = typeof event.state_key === 'string';
  const required = power.eventLevel(event.type, isState);
  check(senderLevel >= required, 'event power level', `sender power level ${senderLevel} is below ${required} needed for ${event.type}`);

  if (isState && event.state_key!.startsWith('@')) {
    check(event.state_key === event.sender, 'user state key', 'state_key starting with @ is not the sender');
  }

  if (event.type === 'm.room.power_levels') {
    return authorizePowerLevels(event, authState('m.room.power_levels', ''), roomVersion, create, senderLevel);
  }

  if (event.type === 'm.room.redaction' && roomVersion.redactionAuthRule) {
    if (senderLevel >= power.level('redact')) return;
    const redacts = typeof event.redacts === 'string' ? event.redacts : undefined;
    check(
      redacts !== undefined && eventIdServerName(redacts) === eventIdServerName(event.event_id),
      'm.room.redaction',
      'sender is below the redact level and the redacted event is from another server',
    );
  }
}

function authorizeCreate(event: RoomEvent, roomVersion: RoomVersion): void {
  const rule = 'm.room.create';
  check(event.prev_events.length === 0, rule, 'the create event has prev_events');
  if (roomVersion.roomIdIsCreateEventHash) {
    check(event.room_id === undefined, rule, 'the create event has a room_id');
  } else {
    const roomId = typeof event.room_id === 'string' ? event.room_id : '';
    const colon = roomId.indexOf(':');
    check(
      colon > 0 && roomId.slice(colon + 1) === userServerName(event.sender),
      rule,
      "the room_id's server is not the sender's server",
    );
  }
  const version = event.content.room_version;
  check(version === undefined || isKnownRoomVersion(version), rule, `unknown room_version ${JSON.stringify(version)}`);
  if (!roomVersion.implicitRoomCreator) {
    check(typeof event.content.creator === 'string', rule, 'content has no creator');
  }
  if (roomVersion.privilegedCreators && event.content.additional_creators !== undefined) {
    const extra = event.content.additional_creators;
    check(
      Array.isArray(extra) && extra.every(isValidUserId),
      rule,
      'additional_creators is not an array of user ids',
    );
  }
}

function authorizeMember(
  event: RoomEvent,
  authState: AuthStateLookup,
  roomVersion: RoomVersion,
  create: RoomEvent,
  power: PowerContext,
  options: AuthorizeOptions,
): void {
  const target = event.state_key;
  const membership = event.content?.membership;
  check(typeof target === 'string', 'm.room.member', 'event has no state_key');
  check(typeof membership === 'string', 'm.room.member', 'content has no membership');

  const authoriser = event.content.join_authorised_via_users_server;
  if (authoriser !== undefined && roomVersion.restrictedJoinRule) {
    const server = typeof authoriser === 'string' ? userServerName(authoriser) : undefined;
    check(server, 'm.room.member join_authorised_via_users_server', 'not a user id');
    const signed = options.isSignedByServer
      ? options.isSignedByServer(event, server)
      : Object.keys(event.signatures?.[server] ?? {}).length > 0;
    check(signed, 'm.room.member join_authorised_via_users_server', `event is not signed by ${server}`);
  }

  const senderMembership = membershipOf(authState('m.room.member', event.sender));
  const targetMembership = membershipOf(authState('m.room.member', target));
  const joinRule = joinRuleOf(authState('m.room.join_rules', ''));
  const senderLevel = power.userLevel(event.sender);

  switch (membership) {
    case 'join': {
      const rule = 'm.room.member join';
      const creator = roomVersion.implicitRoomCreator ? create.sender : create.content.creator;
      if (event.prev_events.length === 1 && event.prev_events[0] === create.event_id && target === creator) return;
      check(event.sender === target, rule, 'sender is not the state_key');
      check(senderMembership !== 'ban', rule, 'sender is banned');
      if (joinRule === 'invite' || (joinRule === 'knock' && roomVersion.knockJoinRule)) {
        check(senderMembership === 'invite' || senderMembership === 'join', rule, `join rule is ${joinRule} and sender is not invited`);
        return;
      }
      if (
        (joinRule === 'restricted' && roomVersion.restrictedJoinRule) ||
        (joinRule === 'knock_restricted' && roomVersion.knockRestrictedJoinRule)
      ) {
        if (senderMembership === 'join' || senderMembership === 'invite') return;
        check(typeof authoriser === 'string', rule, `join rule is ${joinRule} and no join_authorised_via_users_server`);
        check(
          membershipOf(authState('m.room.member', authoriser)) === 'join' && power.userLevel(authoriser) >= power.level('invite'),
          rule,
          'join_authorised_via_users_server is not a joined user able to invite',
        );
        return;
      }
      check(joinRule === 'public', rule, `join rule ${joinRule} does not allow joining`);
      return;
    }
    case 'invite': {
      const tpi = event.content.third_party_invite;
      if (tpi !== undefined) {
        const rule = 'm.room.member invite (third party)';
        check(targetMembership !== 'ban', rule, 'target is banned');
        const signed = tpi?.signed;
        check(signed && typeof signed === 'object', rule, 'third_party_invite has no signed');
        check(typeof signed.mxid === 'string' && typeof signed.token === 'string', rule, 'signed has no mxid or token');
        check(signed.mxid === target, rule, 'signed mxid is not the state_key');
        const inviteEvent = authState('m.room.third_party_invite', signed.token);
        check(inviteEvent, rule, 'no m.room.third_party_invite event for the token');
        check(inviteEvent.sender === event.sender, rule, 'sender did not send the m.room.third_party_invite');
        check(signedMatchesAnyKey(signed, thirdPartyInvitePublicKeys(inviteEvent.content)), rule, 'no signature of signed matches a public key');
        return;
      }
      const rule = 'm.room.member invite';
      check(senderMembership === 'join', rule, 'sender is not joined');
      check(targetMembership !== 'join' && targetMembership !== 'ban', rule, `target is already ${targetMembership}`);
      check(senderLevel >= power.level('invite'), rule, 'sender power level is below the invite level');
      return;
    }
    case 'leave': {
      const rule = 'm.room.member leave';
      if (event.sender === target) {
        const allowed =
          senderMembership === 'invite' || senderMembership === 'join' || (senderMembership === 'knock' && roomVersion.knockJoinRule);
        check(allowed, rule, `sender cannot leave from membership ${senderMembership ?? 'none'}`);
        return;
      }
      check(senderMembership === 'join', rule, 'sender is not joined');
      check(!(targetMembership === 'ban' && senderLevel < power.level('ban')), rule, 'target is banned and sender is below the ban level');
      check(
        senderLevel >= power.level('kick') && power.userLevel(target) < senderLevel,
        rule,
        'sender is below the kick level or not above the target',
      );
      return;
    }
    case 'ban': {
      const rule = 'm.room.member ban';
      check(senderMembership === 'join', rule, 'sender is not joined');
      check(
        senderLevel >= power.level('ban') && power.userLevel(target) < senderLevel,
        rule,
        'sender is below the ban level or not above the target',
      );
      return;
    }
    case 'knock': {
      const rule = 'm.room.member knock';
      check(roomVersion.knockJoinRule, 'm.room.member', 'membership knock is unknown in this room version');
      check(
        joinRule === 'knock' || (joinRule === 'knock_restricted' && roomVersion.knockRestrictedJoinRule),
        rule,
        `join rule ${joinRule} does not allow knocking`,
      );
      check(event.sender === target, rule, 'sender is not the state_key');
      check(
        senderMembership !== 'ban' && senderMembership !== 'invite' && senderMembership !== 'join',
        rule,
        `sender is already ${senderMembership}`,
      );
      return;
    }
    default:
      throw new AuthError('m.room.member', `unknown membership ${JSON.stringify(membership)}`);
  }
}

function joinRuleOf(event: RoomEvent | undefined): string {
  // No join rules event: the room is invite-only.
  const rule = event?.content?.join_rule;
  return typeof rule === 'string' ? rule : event ? 'none' : 'invite';
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function authorizePowerLevels(
  event: RoomEvent,
  previous: RoomEvent | undefined,
  roomVersion: RoomVersion,
  create: RoomEvent,
  senderLevel: number,
): void {
  const rule = 'm.room.power_levels';
  const content = event.content;
  if (roomVersion.integerPowerLevels) {
    for (const key of LEVEL_KEYS) {
      check(content[key] === undefined || Number.isInteger(content[key]), rule, `${key} is not an integer`);
    }
    for (const key of ['events', 'notifications']) {
      const value = content[key];
      check(
        value === undefined || (isObject(value) && Object.values(value).every((v) => Number.isInteger(v))),
        rule,
        `${key} is not an object of integers`,
      );
    }
  }
  const users = content.users;
  check(users === undefined || isObject(users), rule, 'users is not an object');
  for (const [userId, level] of Object.entries(users ?? {})) {
    check(isValidUserId(userId), rule, `users key ${JSON.stringify(userId)} is not a user id`);
    check(parseLevel(level, roomVersion) !== undefined, rule, `users level of ${userId} is not an integer`);
  }
  if (roomVersion.privilegedCreators && users) {
    for (const creator of [create.sender, ...(Array.isArray(create.content.additional_creators) ? create.content.additional_creators : [])]) {
      check(!Object.hasOwn(users, creator), rule, `users lists the room creator ${creator}`);
    }
  }
  if (!previous) return;

  const level = (c: Record<string, any>, key: string) => parseLevel(c[key], roomVersion);
  for (const key of LEVEL_KEYS as readonly LevelKey[]) {
    const before = level(previous.content, key);
    const after = level(content, key);
    if (before === after) continue;
    check(before === undefined || before <= senderLevel, rule, `sender cannot change ${key} from ${before}`);
    check(after === undefined || after <= senderLevel, rule, `sender cannot set ${key} to ${after}`);
  }
  const maps = roomVersion.limitNotificationsPowerLevels ? ['events', 'notifications'] : ['events'];
  for (const key of maps) {
    checkLevelMapChange(key, previous.content[key], content[key], roomVersion, senderLevel, () => true);
  }
  checkLevelMapChange('users', previous.content.users, content.users, roomVersion, senderLevel, (userId) => userId !== event.sender);
}

/**
 * Entries changed or removed must have been at most the sender's level (users: below it, except
 * the sender's own entry); entries added or changed must be at most the sender's level.
 */
function checkLevelMapChange(
  name: string,
  beforeRaw: unknown,
  afterRaw: unknown,
  roomVersion: RoomVersion,
  senderLevel: number,
  guardsCurrent: (key: string) => boolean,
): void {
  const rule = 'm.room.power_levels';
  const before = isObject(beforeRaw) ? beforeRaw : {};
  const after = isObject(afterRaw) ? afterRaw : {};
  const isUsers = name === 'users';
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const old = Object.hasOwn(before, key) ? parseLevel(before[key], roomVersion) : undefined;
    const now = Object.hasOwn(after, key) ? parseLevel(after[key], roomVersion) : undefined;
    if (old === now) continue;
    if (old !== undefined && guardsCurrent(key)) {
      const tooHigh = isUsers ? old >= senderLevel : old > senderLevel;
      check(!tooHigh, rule, `sender cannot change ${name}[${key}] from ${old}`);
    }
    if (now !== undefined) check(now <= senderLevel, rule, `sender cannot set ${name}[${key}] to ${now}`);
  }
}
