/**
 * The classic state resolution v2 scenarios (../shared/matrix-spec/state-res/scenarios.md),
 * rebuilt as data: a DAG of events whose auth_events are picked from the state before each
 * event, the state at END computed by resolution wherever branches meet.
 */
import { describe, expect, it } from 'vitest';
import { authTypesForEvent } from '../auth/auth-types.js';
import { isStateEvent, stateKey, type RoomEvent, type StateMap } from '../event-types.js';
import { getRoomVersion } from '../room-versions.js';
import { authChainDifference } from './auth-chain.js';
import { eventSourceOf } from './event-source.js';
import { resolveState } from './resolve.js';
import { lexicographicalTopologicalSort, reverseTopologicalPowerSort } from './sorting.js';

const V2 = getRoomVersion('2');
const u = (name: string) => `@${name}:example.com`;
const ALICE = u('alice');
const BOB = u('bob');
const CHARLIE = u('charlie');
const EVELYN = u('evelyn');
const ZARA = u('zara');

type Node = { sender: string; type: string; state_key?: string; content: Record<string, any> };
const member = (sender: string, target: string, membership: string): Node => ({
  sender,
  type: 'm.room.member',
  state_key: target,
  content: { membership },
});
const pl = (sender: string, users: Record<string, number>, extra: Record<string, any> = {}): Node => ({
  sender,
  type: 'm.room.power_levels',
  state_key: '',
  content: { users, ...extra },
});
const topic = (sender: string): Node => ({ sender, type: 'm.room.topic', state_key: '', content: {} });
const message = (sender: string): Node => ({ sender, type: 'm.room.message', content: {} });

const INITIAL: Record<string, Node> = {
  CREATE: { sender: ALICE, type: 'm.room.create', state_key: '', content: { creator: ALICE } },
  IMA: member(ALICE, ALICE, 'join'),
  IPOWER: pl(ALICE, { [ALICE]: 100 }),
  IJR: { sender: ALICE, type: 'm.room.join_rules', state_key: '', content: { join_rule: 'public' } },
  IMB: member(BOB, BOB, 'join'),
  IMC: member(CHARLIE, CHARLIE, 'join'),
  IMZ: member(ZARA, ZARA, 'join'),
  START: message(ZARA),
  END: message(ZARA),
};
const INITIAL_EDGES = [['START', 'IMZ', 'IMC', 'IMB', 'IJR', 'IPOWER', 'IMA', 'CREATE']];
const id = (node: string) => `$${node}:example.com`;

/** Builds the room and returns the state at START and at END. */
function run(extra: Record<string, Node>, edgeChains: string[][]): { start: StateMap; end: StateMap } {
  const nodes = { ...INITIAL, ...extra };
  const prevs = new Map<string, Set<string>>(Object.keys(nodes).map((n) => [n, new Set()]));
  for (const chain of [...INITIAL_EDGES, ...edgeChains]) {
    for (let i = 0; i + 1 < chain.length; i++) prevs.get(chain[i])!.add(chain[i + 1]);
  }
  const order = lexicographicalTopologicalSort(prevs, (a, b) => a < b);
  const events = new Map<string, RoomEvent>();
  const source = eventSourceOf(events);
  const after = new Map<string, StateMap>();
  order.forEach((node, ts) => {
    const prevNodes = [...prevs.get(node)!];
    const before: StateMap =
      prevNodes.length === 0
        ? new Map()
        : prevNodes.length === 1
          ? new Map(after.get(prevNodes[0])!)
          : resolveState(V2, prevNodes.map((p) => after.get(p)!), source);
    const spec = nodes[node];
    const authEvents = authTypesForEvent(spec, V2)
      .map(([t, k]) => before.get(stateKey(t, k)))
      .filter((x): x is string => x !== undefined);
    const event: RoomEvent = {
      event_id: id(node),
      room_id: '!test:example.com',
      ...spec,
      origin_server_ts: ts,
      prev_events: prevNodes.map(id),
      auth_events: authEvents,
      depth: ts,
    };
    events.set(event.event_id, event);
    const state = new Map(before);
    if (isStateEvent(event)) state.set(stateKey(event.type, event.state_key!), event.event_id);
    after.set(node, state);
  });
  return { start: after.get('START')!, end: after.get('END')! };
}

/** The END state's entries that changed since START, as node names; expected keys included. */
function changed(extra: Record<string, Node>, edges: string[][], expected: string[]): string[] {
  const { start, end } = run(extra, edges);
  const nodes = { ...INITIAL, ...extra };
  const expectedKeys = new Set(expected.map((n) => stateKey(nodes[n].type, nodes[n].state_key!)));
  const result: string[] = [];
  for (const [key, eventId] of end) {
    if (expectedKeys.has(key) || start.get(key) !== eventId) result.push(eventId.slice(1, eventId.indexOf(':')));
  }
  return result.sort();
}

describe('classic state resolution v2 scenarios', () => {
  it('ban vs power levels: the ban wins, bob\'s power levels lose', () => {
    const extra = { PA: pl(ALICE, { [ALICE]: 100, [BOB]: 50 }), MA: member(ALICE, ALICE, 'join'), MB: member(ALICE, BOB, 'ban'), PB: pl(BOB, { [ALICE]: 100, [BOB]: 50 }) };
    const edges = [['END', 'MB', 'MA', 'PA', 'START'], ['END', 'PB', 'PA']];
    expect(changed(extra, edges, ['PA', 'MA', 'MB'])).toEqual(['MA', 'MB', 'PA']);
  });

  it('join rule evasion: the join rules apply first and refuse evelyn\'s join', () => {
    const extra = { JR: { sender: ALICE, type: 'm.room.join_rules', state_key: '', content: { join_rules: 'private' } }, ME: member(EVELYN, EVELYN, 'join') };
    const edges = [['END', 'JR', 'START'], ['END', 'ME', 'START']];
    expect(changed(extra, edges, ['JR'])).toEqual(['JR']);
  });

  it('off-topic power levels: charlie\'s demotion of himself stands', () => {
    const extra = { PA: pl(ALICE, { [ALICE]: 100, [BOB]: 50 }), PB: pl(BOB, { [ALICE]: 100, [BOB]: 50, [CHARLIE]: 50 }), PC: pl(CHARLIE, { [ALICE]: 100, [BOB]: 50, [CHARLIE]: 0 }) };
    const edges = [['END', 'PC', 'PB', 'PA', 'START'], ['END', 'PA']];
    expect(changed(extra, edges, ['PC'])).toEqual(['PC']);
  });

  const topicBasic = {
    T1: topic(ALICE),
    PA1: pl(ALICE, { [ALICE]: 100, [BOB]: 50 }),
    T2: topic(ALICE),
    PA2: pl(ALICE, { [ALICE]: 100, [BOB]: 0 }),
    PB: pl(BOB, { [ALICE]: 100, [BOB]: 50 }),
    T3: topic(BOB),
  };

  it('topic basic: alice\'s later power levels and topic win', () => {
    const edges = [['END', 'PA2', 'T2', 'PA1', 'T1', 'START'], ['END', 'T3', 'PB', 'PA1']];
    expect(changed(topicBasic, edges, ['PA2', 'T2'])).toEqual(['PA2', 'T2']);
  });

  it('topic reset: after bob\'s ban his topic is reset to T1', () => {
    const extra = { T1: topic(ALICE), PA: pl(ALICE, { [ALICE]: 100, [BOB]: 50 }), T2: topic(BOB), MB: member(ALICE, BOB, 'ban') };
    const edges = [['END', 'MB', 'T2', 'PA', 'T1', 'START'], ['END', 'T1']];
    expect(changed(extra, edges, ['T1', 'MB', 'PA'])).toEqual(['MB', 'PA', 'T1']);
  });

  it('topic: the last topic on the mainline wins', () => {
    const extra = { ...topicBasic, MZ1: message(ZARA), T4: topic(ALICE) };
    const edges = [['END', 'T4', 'MZ1', 'PA2', 'T2', 'PA1', 'T1', 'START'], ['END', 'MZ1', 'T3', 'PB', 'PA1']];
    expect(changed(extra, edges, ['T4', 'PA2'])).toEqual(['PA2', 'T4']);
  });

  it('mainline sort: mainline position beats the later timestamp of T4', () => {
    const extra = {
      T1: topic(ALICE),
      PA1: pl(ALICE, { [ALICE]: 100, [BOB]: 50 }),
      T2: topic(ALICE),
      PA2: pl(ALICE, { [ALICE]: 100, [BOB]: 50 }, { events: { 'm.room.power_levels': 100 } }),
      PB: pl(BOB, { [ALICE]: 100, [BOB]: 50 }),
      T3: topic(BOB),
      T4: topic(ALICE),
    };
    const edges = [['END', 'T3', 'PA2', 'T2', 'PA1', 'T1', 'START'], ['END', 'T4', 'PB', 'PA1']];
    expect(changed(extra, edges, ['T3', 'PA2'])).toEqual(['PA2', 'T3']);
  });

  it('lexicographical topological sort of {l:{o}, m:{n,o}, n:{o}, o:{}, p:{o}}', () => {
    const graph = new Map<string, string[]>([['l', ['o']], ['m', ['n', 'o']], ['n', ['o']], ['o', []], ['p', ['o']]]);
    expect(lexicographicalTopologicalSort(graph, (a, b) => a < b)).toEqual(['o', 'l', 'n', 'm', 'p']);
  });

  it('reverse topological power ordering: power, then timestamp, then id', () => {
    const levels: Record<string, number> = { a: 0, b: 0, c: 0, d: 25, e: 50, f: 75, g: 100 };
    const ts: Record<string, number> = { a: 1, b: 2, c: 2, d: 3, e: 4, f: 4, g: 5 };
    const powerLevels: RoomEvent = { event_id: '$pl', sender: ALICE, type: 'm.room.power_levels', state_key: '', content: { users: Object.fromEntries(Object.entries(levels).map(([n, l]) => [u(n), l])) }, prev_events: [], auth_events: [], origin_server_ts: 0 };
    const events: RoomEvent[] = [powerLevels, ...Object.keys(levels).map((n) => ({ event_id: `$${n}`, sender: u(n), type: 'm.room.topic', state_key: '', content: {}, prev_events: [], auth_events: ['$pl'], origin_server_ts: ts[n] }))];
    const sorted = reverseTopologicalPowerSort(Object.keys(levels).map((n) => `$${n}`), eventSourceOf(events), V2);
    expect(sorted).toEqual(['$g', '$f', '$e', '$d', '$a', '$b', '$c']);
  });

  it('simple fork of joins: both joins are kept', () => {
    const ev = (name: string, node: Node, auth: string[], prev: string[]): RoomEvent => ({ event_id: id(name), room_id: '!test:example.com', ...node, auth_events: auth.map(id), prev_events: prev.map(id), origin_server_ts: 0 });
    const events = [
      ev('CREATE', INITIAL.CREATE, [], []),
      ev('IMA', INITIAL.IMA, ['CREATE'], ['CREATE']),
      ev('IJR', INITIAL.IJR, ['CREATE', 'IMA'], ['IMA']),
      ev('IMB', INITIAL.IMB, ['CREATE', 'IJR'], ['IJR']),
      ev('IMC', INITIAL.IMC, ['CREATE', 'IJR'], ['IJR']),
    ];
    const state = (...names: string[]) => new Map(names.map((n) => { const e = events.find((x) => x.event_id === id(n))!; return [stateKey(e.type, e.state_key!), e.event_id]; }));
    const resolved = resolveState(V2, [state('CREATE', 'IMA', 'IJR', 'IMB'), state('CREATE', 'IMA', 'IJR', 'IMC')], eventSourceOf(events));
    expect([...resolved.values()].sort()).toEqual(['CREATE', 'IJR', 'IMA', 'IMB', 'IMC'].map(id).sort());
  });

  describe('auth chain difference', () => {
    const chain = (ids: string[]): RoomEvent[] => ids.map((x, i) => ({ event_id: x, sender: ALICE, type: 'm.room.topic', state_key: x, content: {}, prev_events: [], auth_events: i === 0 ? [] : [ids[i - 1]], origin_server_ts: i }));
    const sets = (...groups: string[][]) => groups.map((g) => new Map(g.map((x) => [x, x])));
    it('A<-B<-C: [{a,b},{c}] differ by {c}', () => {
      expect(authChainDifference(sets(['A', 'B'], ['C']), eventSourceOf(chain(['A', 'B', 'C'])))).toEqual(new Set(['C']));
    });
    it('A<-B<-C<-D: [{a,b},{c,d}] differ by {c,d}', () => {
      expect(authChainDifference(sets(['A', 'B'], ['C', 'D']), eventSourceOf(chain(['A', 'B', 'C', 'D'])))).toEqual(new Set(['C', 'D']));
    });
  });
});
