/**
 * The room version registry, 1 to 12, as data. Code that behaves differently per room
 * version asks for a property here; it never compares version strings.
 *
 * Facts from the spec's room version pages (rooms/v1 ... v12).
 */

/** How an event is identified: v1 has an `event_id` field `$local:server`; v2 is the
 *  reference hash in standard unpadded base64 (room v3); v3 the same, URL-safe (v4+). */
export type EventIdFormat = 'v1' | 'v2' | 'v3';

/** State resolution algorithm: v1 (room v1), v2 (v2-v11), v2.1 (v12, MSC4297). */
export type StateResolutionAlgorithm = 'v1' | 'v2' | 'v2.1';

export interface RedactionRules {
  /** v1-v5: m.room.aliases keeps `aliases`. */
  readonly keepAliasesContent: boolean;
  /** v8+: m.room.join_rules keeps `allow`. */
  readonly keepJoinRulesAllow: boolean;
  /** v9+: m.room.member keeps `join_authorised_via_users_server`. */
  readonly keepJoinAuthorisedVia: boolean;
  /**
   * v11+ (MSC2176, MSC3821, MSC3989): top-level `origin`, `membership`, `prev_state` are no
   * longer kept; m.room.create keeps all content; m.room.power_levels keeps `invite`;
   * m.room.redaction keeps `redacts` in content; m.room.member keeps
   * `third_party_invite.signed`.
   */
  readonly v11Rules: boolean;
}

export interface RoomVersion {
  readonly id: string;
  readonly stable: boolean;
  readonly eventIdFormat: EventIdFormat;
  readonly stateResolution: StateResolutionAlgorithm;
  /** v5+: a signing key must be valid (valid_until_ts) at the event's origin_server_ts. */
  readonly enforceKeyValidity: boolean;
  /**
   * v1-v2: m.room.redaction has its own auth rule (the redact level, or the same server as the
   * redacted event). From v3 on event ids carry no server and redactions are checked when shown.
   */
  readonly redactionAuthRule: boolean;
  /** v1-v5: m.room.aliases has its own auth rule (state_key must be the sender's server). */
  readonly specialCaseAliasesAuth: boolean;
  /** v6+: events with floats or integers out of range are refused (strict canonical JSON). */
  readonly strictCanonicalJson: boolean;
  /** v6+: the `notifications` key of m.room.power_levels is covered by the power level checks. */
  readonly limitNotificationsPowerLevels: boolean;
  /** v7+: `knock` membership and join rule. */
  readonly knockJoinRule: boolean;
  /** v8+: `restricted` join rule with join_authorised_via_users_server. */
  readonly restrictedJoinRule: boolean;
  /** v9+: the fix that keeps join_authorised_via_users_server through redaction. */
  readonly restrictedJoinRuleFix: boolean;
  /** v10+: `knock_restricted` join rule. */
  readonly knockRestrictedJoinRule: boolean;
  /** v10+: power level values must be integers, not strings holding integers. */
  readonly integerPowerLevels: boolean;
  /**
   * v11+: the 255 limits of type, state_key, sender, room_id and event_id count bytes. Before,
   * they count codepoints, as Synapse and Dendrite check them there: rooms hold events with
   * longer multi-byte state keys that must not be refused now (Complement's event size test).
   */
  readonly strictEventByteLimits: boolean;
  /** v11+ (MSC2175): m.room.create has no `creator`; the sender is the creator. */
  readonly implicitRoomCreator: boolean;
  /**
   * v12 (MSC4289): the create event's sender and `additional_creators` are creators with
   * infinite power level; they may not appear in m.room.power_levels `users`.
   */
  readonly privilegedCreators: boolean;
  /**
   * v12 (MSC4291): the room id is `!` + the create event's reference hash (URL-safe,
   * unpadded); the create event has no room_id and is not cited in auth_events.
   */
  readonly roomIdIsCreateEventHash: boolean;
  readonly redaction: RedactionRules;
}

const v1: RoomVersion = {
  id: '1',
  stable: true,
  eventIdFormat: 'v1',
  stateResolution: 'v1',
  enforceKeyValidity: false,
  redactionAuthRule: true,
  specialCaseAliasesAuth: true,
  strictCanonicalJson: false,
  limitNotificationsPowerLevels: false,
  knockJoinRule: false,
  restrictedJoinRule: false,
  restrictedJoinRuleFix: false,
  knockRestrictedJoinRule: false,
  integerPowerLevels: false,
  strictEventByteLimits: false,
  implicitRoomCreator: false,
  privilegedCreators: false,
  roomIdIsCreateEventHash: false,
  redaction: { keepAliasesContent: true, keepJoinRulesAllow: false, keepJoinAuthorisedVia: false, v11Rules: false },
};

const v2: RoomVersion = { ...v1, id: '2', stateResolution: 'v2' };
const v3: RoomVersion = { ...v2, id: '3', eventIdFormat: 'v2', redactionAuthRule: false };
const v4: RoomVersion = { ...v3, id: '4', eventIdFormat: 'v3' };
const v5: RoomVersion = { ...v4, id: '5', enforceKeyValidity: true };
const v6: RoomVersion = {
  ...v5,
  id: '6',
  specialCaseAliasesAuth: false,
  strictCanonicalJson: true,
  limitNotificationsPowerLevels: true,
  redaction: { ...v5.redaction, keepAliasesContent: false },
};
const v7: RoomVersion = { ...v6, id: '7', knockJoinRule: true };
const v8: RoomVersion = {
  ...v7,
  id: '8',
  restrictedJoinRule: true,
  redaction: { ...v7.redaction, keepJoinRulesAllow: true },
};
const v9: RoomVersion = {
  ...v8,
  id: '9',
  restrictedJoinRuleFix: true,
  redaction: { ...v8.redaction, keepJoinAuthorisedVia: true },
};
const v10: RoomVersion = { ...v9, id: '10', knockRestrictedJoinRule: true, integerPowerLevels: true };
const v11: RoomVersion = {
  ...v10,
  id: '11',
  strictEventByteLimits: true,
  implicitRoomCreator: true,
  redaction: { ...v10.redaction, v11Rules: true },
};
const v12: RoomVersion = {
  ...v11,
  id: '12',
  stateResolution: 'v2.1',
  privilegedCreators: true,
  roomIdIsCreateEventHash: true,
};

export const ROOM_VERSIONS: ReadonlyMap<string, RoomVersion> = new Map(
  [v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12].map((v) => [v.id, v]),
);

/** The version new rooms get unless the creator asks for another (as Synapse: 10 until v12 settles). */
export const DEFAULT_ROOM_VERSION = '10';

export class UnknownRoomVersionError extends Error {
  constructor(readonly roomVersion: string) {
    super(`unknown room version ${JSON.stringify(roomVersion)}: supported versions are 1 to 12`);
    this.name = 'UnknownRoomVersionError';
  }
}

export function getRoomVersion(id: string): RoomVersion {
  const version = ROOM_VERSIONS.get(id);
  if (!version) throw new UnknownRoomVersionError(id);
  return version;
}

export function isKnownRoomVersion(id: unknown): id is string {
  return typeof id === 'string' && ROOM_VERSIONS.has(id);
}
