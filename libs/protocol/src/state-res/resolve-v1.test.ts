/** State resolution v1 (room version 1): power levels first, then join rules, members, the rest. */
import { describe, expect, it } from 'vitest';
import { stateKey, type RoomEvent, type StateMap } from '../event-types.js';
import { getRoomVersion } from '../room-versions.js';
import { eventSourceOf } from './event-source.js';
import { resolveState } from './resolve.js';

const V1 = getRoomVersion('1');
const ALICE = '@alice:a.example';
const BOB = '@bob:b.example';
let depth = 0;
function ev(id: string, sender: string, type: string, key: string, content: Record<string, any>, auth: string[], d = ++depth): RoomEvent {
  return { event_id: `$${id}:a.example`, room_id: '!r:a.example', sender, type, state_key: key, content, auth_events: auth.map((a) => `$${a}:a.example`), prev_events: [], origin_server_ts: d, depth: d };
}
const create = ev('create', ALICE, 'm.room.create', '', { creator: ALICE }, [], 1);
const joinA = ev('ja', ALICE, 'm.room.member', ALICE, { membership: 'join' }, ['create'], 2);
const pl1 = ev('pl1', ALICE, 'm.room.power_levels', '', { users: { [ALICE]: 100, [BOB]: 50 } }, ['create', 'ja'], 3);
const jr = ev('jr', ALICE, 'm.room.join_rules', '', { join_rule: 'public' }, ['create', 'ja', 'pl1'], 4);
const joinB = ev('jb', BOB, 'm.room.member', BOB, { membership: 'join' }, ['create', 'pl1', 'jr'], 5);
const base = [create, joinA, pl1, jr, joinB];
const state = (...events: RoomEvent[]): StateMap => new Map(events.map((e) => [stateKey(e.type, e.state_key!), e.event_id]));

describe('state resolution v1', () => {
  it('two topics: the deeper one that passes auth wins', () => {
    const t1 = ev('t1', ALICE, 'm.room.topic', '', { topic: 'a' }, ['create', 'ja', 'pl1'], 6);
    const t2 = ev('t2', BOB, 'm.room.topic', '', { topic: 'b' }, ['create', 'jb', 'pl1'], 7);
    const events = eventSourceOf([...base, t1, t2]);
    const resolved = resolveState(V1, [state(...base, t1), state(...base, t2)], events);
    expect(resolved.get(stateKey('m.room.topic', ''))).toBe(t2.event_id);
  });

  it('power levels: alice demotes bob, bob\'s later power levels fail on replay', () => {
    const plA = ev('pla', ALICE, 'm.room.power_levels', '', { users: { [ALICE]: 100, [BOB]: 0 } }, ['create', 'ja', 'pl1'], 6);
    const plB = ev('plb', BOB, 'm.room.power_levels', '', { users: { [ALICE]: 100, [BOB]: 50 }, state_default: 10 }, ['create', 'jb', 'pl1'], 7);
    const events = eventSourceOf([...base, plA, plB]);
    const resolved = resolveState(V1, [state(...base, plA), state(...base, plB)], events);
    expect(resolved.get(stateKey('m.room.power_levels', ''))).toBe(plA.event_id);
  });

  it('a key missing from one set is not a conflict in v1 (it is in v2)', () => {
    const t1 = ev('t1', BOB, 'm.room.topic', '', { topic: 'a' }, ['create', 'jb', 'pl1'], 6);
    const events = eventSourceOf([...base, t1]);
    const sets = [state(...base, t1), state(...base)];
    expect(resolveState(V1, sets, events).get(stateKey('m.room.topic', ''))).toBe(t1.event_id);
  });
});
