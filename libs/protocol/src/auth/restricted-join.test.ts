import { describe, expect, it } from 'vitest';
import { getRoomVersion } from '../room-versions.js';
import { PowerContext } from './power-levels.js';
import { chooseAuthoriser, decideRestrictedJoin, isRestrictedJoinRule, type RestrictedJoinFacts } from './restricted-join.js';
import type { RoomEvent } from '../event-types.js';

const v10 = getRoomVersion('10');
const v12 = getRoomVersion('12');
const CREATOR = '@creator:hs';
const A = '!a:hs';
const B = '!b:hs';

const power = (users: Record<string, number>, invite?: number) =>
  ({ sender: CREATOR, content: { users, ...(invite === undefined ? {} : { invite }) } }) as Pick<RoomEvent, 'sender' | 'content'>;
const create = { sender: CREATOR, content: { creator: CREATOR } } as Pick<RoomEvent, 'sender' | 'content'>;
const ctx = (p: Pick<RoomEvent, 'sender' | 'content'>, rv = v10) => new PowerContext(p as RoomEvent, create as RoomEvent, rv);

function facts(over: Partial<RestrictedJoinFacts> = {}): RestrictedJoinFacts {
  return {
    joinRules: { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: A }] },
    create,
    powerLevels: power({ '@mod:hs': 50, [CREATOR]: 100 }, 50),
    targetMembership: undefined,
    localJoined: [CREATOR, '@mod:hs', '@plain:hs'],
    allowedRooms: new Map([[A, { serverIn: true, userMembership: 'join' }]]),
    ...over,
  };
}

describe('chooseAuthoriser', () => {
  it('picks the highest power level able to invite, then the lowest user id', () => {
    const p = ctx(power({ '@b:hs': 100, '@a:hs': 100, '@c:hs': 50 }, 50));
    expect(chooseAuthoriser(['@c:hs', '@b:hs', '@a:hs', '@d:hs'], p)).toBe('@a:hs');
    expect(chooseAuthoriser(['@c:hs', '@d:hs'], p)).toBe('@c:hs');
  });

  it('names nobody when no candidate reaches the invite level', () => {
    expect(chooseAuthoriser(['@d:hs', '@e:hs'], ctx(power({ '@x:hs': 100 }, 50)))).toBeUndefined();
    expect(chooseAuthoriser([], ctx(power({}, 0)))).toBeUndefined();
  });

  it('takes the default invite level (0) when power levels leave it out', () => {
    expect(chooseAuthoriser(['@z:hs', '@y:hs'], ctx(power({})))).toBe('@y:hs');
  });

  it('counts v12 creators as the most powerful', () => {
    const p = new PowerContext({ sender: CREATOR, content: { users: { '@a:hs': 100 }, invite: 50 } } as unknown as RoomEvent, { sender: CREATOR, content: {} } as RoomEvent, v12);
    expect(chooseAuthoriser(['@a:hs', CREATOR], p)).toBe(CREATOR);
  });
});

describe('decideRestrictedJoin', () => {
  it('applies to restricted from v8 and knock_restricted from v10 only', () => {
    expect(isRestrictedJoinRule('restricted', getRoomVersion('7'))).toBe(false);
    expect(isRestrictedJoinRule('restricted', getRoomVersion('8'))).toBe(true);
    expect(isRestrictedJoinRule('knock_restricted', getRoomVersion('9'))).toBe(false);
    expect(isRestrictedJoinRule('knock_restricted', v10)).toBe(true);
    expect(decideRestrictedJoin(facts({ joinRules: { join_rule: 'public' } }), v10)).toEqual({ outcome: 'unrestricted' });
    expect(decideRestrictedJoin(facts(), getRoomVersion('7'))).toEqual({ outcome: 'unrestricted' });
  });

  it('needs no authoriser for a user joined, invited (or banned: the auth rules refuse)', () => {
    for (const m of ['join', 'invite', 'ban']) expect(decideRestrictedJoin(facts({ targetMembership: m }), v10)).toEqual({ outcome: 'unrestricted' });
  });

  it('authorises a member of an allowed room through the most powerful local user', () => {
    expect(decideRestrictedJoin(facts(), v10)).toEqual({ outcome: 'authorised', authoriser: CREATOR });
    expect(decideRestrictedJoin(facts({ targetMembership: 'leave', joinRules: { join_rule: 'knock_restricted', allow: [{ type: 'm.room_membership', room_id: A }] } }), v10))
      .toEqual({ outcome: 'authorised', authoriser: CREATOR });
  });

  it('refuses a user in none of the allowed rooms this server is in', () => {
    expect(decideRestrictedJoin(facts({ allowedRooms: new Map([[A, { serverIn: true, userMembership: 'leave' }]]) }), v10)).toEqual({ outcome: 'not-allowed' });
  });

  it('cannot authorise when this server is in none of the allowed rooms (or the list has none)', () => {
    expect(decideRestrictedJoin(facts({ allowedRooms: new Map([[A, { serverIn: false, userMembership: undefined }]]) }), v10)).toEqual({ outcome: 'unable-to-authorise' });
    expect(decideRestrictedJoin(facts({ joinRules: { join_rule: 'restricted', allow: [{ type: 'm.other', room_id: A }] } }), v10)).toEqual({ outcome: 'unable-to-authorise' });
  });

  it('looks at every allowed room: membership in any visible one is enough', () => {
    const joinRules = { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: A }, { type: 'm.room_membership', room_id: B }] };
    const allowedRooms = new Map([[A, { serverIn: false, userMembership: undefined }], [B, { serverIn: true, userMembership: 'join' }]]);
    expect(decideRestrictedJoin(facts({ joinRules, allowedRooms }), v10).outcome).toBe('authorised');
  });

  it('cannot grant the join when no local user may invite', () => {
    expect(decideRestrictedJoin(facts({ localJoined: ['@plain:hs'] }), v10)).toEqual({ outcome: 'unable-to-grant' });
    expect(decideRestrictedJoin(facts({ localJoined: [] }), v10)).toEqual({ outcome: 'unable-to-grant' });
  });
});
