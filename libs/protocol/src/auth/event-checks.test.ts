/** Auth events selection, the check of cited auth events, and the PDU format checks. */
import { describe, expect, it } from 'vitest';
import type { RoomEvent } from '../event-types.js';
import { getRoomVersion, ROOM_VERSIONS } from '../room-versions.js';
import { AuthError } from './auth-error.js';
import { checkAuthEvents } from './auth-events.js';
import { authTypesForEvent } from './auth-types.js';
import { checkEventFormat } from './event-format.js';

const ALICE = '@alice:a.example';
const BOB = '@bob:a.example';
const ALL = [...ROOM_VERSIONS.keys()];

function refusedBy(fn: () => void): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (e instanceof AuthError) return e.rule;
    throw e;
  }
}

describe('authTypesForEvent', () => {
  it('the create event cites nothing', () => {
    expect(authTypesForEvent({ type: 'm.room.create', sender: ALICE, state_key: '', content: {} }, getRoomVersion('10'))).toEqual([]);
  });
  it.each(ALL)('a message cites create (not in v12), power levels, sender member: v%s', (id) => {
    const v = getRoomVersion(id);
    const types = authTypesForEvent({ type: 'm.room.message', sender: ALICE, content: {} }, v);
    const expected: Array<[string, string]> = [['m.room.power_levels', ''], ['m.room.member', ALICE]];
    expect(types).toEqual(v.roomIdIsCreateEventHash ? expected : [['m.room.create', ''], ...expected]);
  });
  it('a join cites target member and join rules; the authoriser from v8', () => {
    const join = { type: 'm.room.member', sender: BOB, state_key: BOB, content: { membership: 'join', join_authorised_via_users_server: ALICE } };
    expect(authTypesForEvent(join, getRoomVersion('10'))).toEqual([
      ['m.room.create', ''],
      ['m.room.power_levels', ''],
      ['m.room.member', BOB],
      ['m.room.join_rules', ''],
      ['m.room.member', ALICE],
    ]);
    expect(authTypesForEvent(join, getRoomVersion('7'))).not.toContainEqual(['m.room.member', ALICE]);
  });
  it('a third-party invite cites the m.room.third_party_invite of its token', () => {
    const invite = { type: 'm.room.member', sender: ALICE, state_key: BOB, content: { membership: 'invite', third_party_invite: { signed: { token: 'tok', mxid: BOB } } } };
    expect(authTypesForEvent(invite, getRoomVersion('12'))).toEqual([
      ['m.room.power_levels', ''],
      ['m.room.member', ALICE],
      ['m.room.member', BOB],
      ['m.room.join_rules', ''],
      ['m.room.third_party_invite', 'tok'],
    ]);
  });
  it('a kick cites no join rules', () => {
    const kick = { type: 'm.room.member', sender: ALICE, state_key: BOB, content: { membership: 'leave' } };
    expect(authTypesForEvent(kick, getRoomVersion('10')).map(([t]) => t)).not.toContain('m.room.join_rules');
  });
});

describe('checkAuthEvents', () => {
  const v10 = getRoomVersion('10');
  const v12 = getRoomVersion('12');
  const e = (id: string, type: string, stateKey: string, extra: Partial<RoomEvent> = {}): RoomEvent => ({
    event_id: id,
    room_id: '!r:a.example',
    sender: ALICE,
    type,
    state_key: stateKey,
    content: {},
    prev_events: [],
    auth_events: [],
    origin_server_ts: 0,
    ...extra,
  });
  const create = e('$c', 'm.room.create', '');
  const power = e('$p', 'm.room.power_levels', '');
  const aliceJoin = e('$a', 'm.room.member', ALICE, { content: { membership: 'join' } });
  const otherJoin = e('$a2', 'm.room.member', ALICE, { content: { membership: 'join' } });
  const topic = e('$t', 'm.room.topic', '');
  const msg = (auth: string[], extra: Partial<RoomEvent> = {}): RoomEvent => ({ ...e('$m', 'm.room.message', '', extra), state_key: undefined, auth_events: auth, ...extra });
  const all = [create, power, aliceJoin, otherJoin, topic];

  it('accepts the right auth events', () => {
    expect(refusedBy(() => checkAuthEvents(msg(['$c', '$p', '$a']), all, v10))).toBeUndefined();
  });
  it('refuses duplicate (type, state_key) entries', () => {
    expect(refusedBy(() => checkAuthEvents(msg(['$c', '$a', '$a2']), all, v10))).toBe('auth events');
  });
  it('refuses an unexpected type', () => {
    expect(refusedBy(() => checkAuthEvents(msg(['$c', '$t']), all, v10))).toBe('auth events');
  });
  it('refuses a rejected auth event', () => {
    expect(refusedBy(() => checkAuthEvents(msg(['$c', '$p']), all, v10, { isRejected: (id) => id === '$p' }))).toBe('auth events');
  });
  it('refuses a missing create event before v12', () => {
    expect(refusedBy(() => checkAuthEvents(msg(['$p', '$a']), all, v10))).toBe('auth events');
  });
  it('refuses an auth event of another room', () => {
    const foreign = e('$fp', 'm.room.power_levels', '', { room_id: '!other:a.example' });
    expect(refusedBy(() => checkAuthEvents(msg(['$c', '$fp']), [...all, foreign], v10))).toBe('auth events');
  });
  it('refuses an auth event that was not provided', () => {
    expect(refusedBy(() => checkAuthEvents(msg(['$c', '$nope']), all, v10))).toBe('auth events');
  });
  it('v12: refuses a cited create event, accepts none', () => {
    const create12 = { ...create, room_id: undefined };
    expect(refusedBy(() => checkAuthEvents(msg(['$c', '$p']), [create12, power], v12))).toBe('auth events');
    expect(refusedBy(() => checkAuthEvents(msg(['$p', '$a']), all, v12))).toBeUndefined();
  });
});

describe('checkEventFormat', () => {
  const v10 = getRoomVersion('10');
  const v12 = getRoomVersion('12');
  const v1 = getRoomVersion('1');
  const pdu = (extra: Record<string, any> = {}) => ({
    room_id: '!r:a.example',
    sender: ALICE,
    type: 'm.room.message',
    content: { body: 'hi' },
    prev_events: ['$a'],
    auth_events: ['$b'],
    depth: 5,
    origin_server_ts: 1,
    hashes: { sha256: 'x' },
    signatures: {},
    ...extra,
  });
  const ok = (fn: () => void) => expect(refusedBy(fn)).toBeUndefined();

  it('accepts a well-formed PDU', () => ok(() => checkEventFormat(pdu(), v10)));
  it('refuses a PDU over 65,536 bytes of canonical JSON', () => {
    expect(refusedBy(() => checkEventFormat(pdu({ content: { body: 'x'.repeat(65_536) } }), v10))).toBe('event format: size');
    ok(() => checkEventFormat(pdu({ content: { body: 'x'.repeat(60_000) } }), v10));
  });
  it.each(['type', 'sender', 'room_id', 'state_key'])('refuses a %s over 255 codepoints (v10), over 255 bytes from v11', (field) => {
    const long = field === 'sender' ? `@${'a'.repeat(250)}:a.example` : field === 'room_id' ? `!${'r'.repeat(250)}:a.example` : 'a'.repeat(256);
    expect(refusedBy(() => checkEventFormat(pdu({ [field]: long }), v10))).toBe(`event format: ${field}`);
    if (field === 'type' || field === 'state_key') {
      // 70 four-byte codepoints: 280 bytes (Complement's event size test, in a v10 room).
      const multiByte = '\u{1F4A5}'.repeat(70);
      ok(() => checkEventFormat(pdu({ [field]: multiByte }), v10));
      expect(refusedBy(() => checkEventFormat(pdu({ [field]: multiByte }), getRoomVersion('11')))).toBe(`event format: ${field}`);
    }
  });
  it('refuses an event_id over 255 bytes (v1)', () => {
    expect(refusedBy(() => checkEventFormat(pdu({ event_id: `$${'e'.repeat(250)}:a.example` }), v1))).toBe('event format: event_id');
    ok(() => checkEventFormat(pdu({ event_id: '$e:a.example' }), v1));
  });
  it('refuses more than 20 prev_events and 10 auth_events', () => {
    const ids = (n: number) => Array.from({ length: n }, (_, i) => `$${i}`);
    ok(() => checkEventFormat(pdu({ prev_events: ids(20), auth_events: ids(10) }), v10));
    expect(refusedBy(() => checkEventFormat(pdu({ prev_events: ids(21) }), v10))).toBe('event format: prev_events');
    expect(refusedBy(() => checkEventFormat(pdu({ auth_events: ids(11) }), v10))).toBe('event format: auth_events');
  });
  it('refuses a depth that is negative, not an integer, or missing', () => {
    ok(() => checkEventFormat(pdu({ depth: 0 }), v10));
    for (const depth of [-1, 1.5, '3', undefined]) {
      expect(refusedBy(() => checkEventFormat(pdu({ depth }), v10))).toBe('event format: depth');
    }
  });
  it('refuses integers outside the canonical JSON range from v6, not before', () => {
    expect(refusedBy(() => checkEventFormat(pdu({ content: { n: 2 ** 60 } }), v10))).toBe('event format: canonical JSON');
    ok(() => checkEventFormat(pdu({ content: { n: 2 ** 60 } }), getRoomVersion('5')));
  });
  it('v12: the create event has no room_id; other events name the create event hash', () => {
    const hashId = `!${'A'.repeat(43)}`;
    ok(() => checkEventFormat(pdu({ type: 'm.room.create', state_key: '', room_id: undefined, prev_events: [], auth_events: [] }), v12));
    expect(refusedBy(() => checkEventFormat(pdu({ type: 'm.room.create', state_key: '', prev_events: [], auth_events: [] }), v12))).toBe('event format: room_id');
    ok(() => checkEventFormat(pdu({ room_id: hashId }), v12));
    expect(refusedBy(() => checkEventFormat(pdu(), v12))).toBe('event format: room_id');
  });
  it('before v12 every event, the create event too, has a !opaque:server room_id', () => {
    expect(refusedBy(() => checkEventFormat(pdu({ type: 'm.room.create', state_key: '', room_id: undefined, prev_events: [], auth_events: [] }), v10))).toBe('event format: room_id');
  });
  it('refuses missing core fields', () => {
    expect(refusedBy(() => checkEventFormat(pdu({ type: 5 }), v10))).toBe('event format');
    expect(refusedBy(() => checkEventFormat(pdu({ content: [] }), v10))).toBe('event format');
    expect(refusedBy(() => checkEventFormat(pdu({ prev_events: 'x' }), v10))).toBe('event format');
  });
});
