/**
 * State resolution figures on a room of realistic size:
 * - two forks of a room with 10,000 joined members where 1,000 state events conflict (power
 *   levels, bans, joins, topics): wall time of one resolution (goal: under 1 s), for room
 *   version 10 (state res v2) and 12 (v2.1);
 * - auth checks per second of a stream of membership events against a 10,000-member state;
 * - auth chain difference of two 5,000-event auth chains.
 */
import { pathToFileURL } from 'node:url';
import {
  authChainDifference,
  authTypesForEvent,
  authorize,
  eventSourceOf,
  getRoomVersion,
  resolveState,
  stateKey,
  type RoomEvent,
  type RoomVersion,
  type StateMap,
} from '@tessera/protocol';

const MEMBERS = 10_000;
const CONFLICTS_PER_FORK = 500;

/** Deterministic pseudo-random numbers, so every run measures the same room. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

class RoomBuilder {
  readonly events = new Map<string, RoomEvent>();
  private n = 0;
  readonly roomId: string;

  constructor(readonly version: RoomVersion) {
    this.roomId = version.roomIdIsCreateEventHash ? '!create' : '!bench:a.example';
  }

  /** Appends an event authorized against `state` (the auth events are picked from it). */
  add(state: StateMap, fields: { type: string; sender: string; state_key?: string; content: Record<string, any> }, prev: string[]): RoomEvent {
    const id = fields.type === 'm.room.create' ? '$create' : `$e${++this.n}`;
    const auth = authTypesForEvent(fields, this.version)
      .map(([t, k]) => state.get(stateKey(t, k)))
      .filter((x): x is string => x !== undefined);
    const event: RoomEvent = {
      event_id: id,
      ...(fields.type === 'm.room.create' && this.version.roomIdIsCreateEventHash ? {} : { room_id: this.roomId }),
      ...fields,
      prev_events: prev,
      auth_events: auth,
      origin_server_ts: this.n,
      depth: this.n,
    };
    this.events.set(id, event);
    if (typeof event.state_key === 'string') state.set(stateKey(event.type, event.state_key), id);
    return event;
  }
}

const user = (i: number) => `@user${i}:a.example`;
const ALICE = '@alice:a.example';
const MOD = user(0);

/** A room of 10,000 joined members, then two forks of 500 state events each. */
function buildForkedRoom(version: RoomVersion) {
  const room = new RoomBuilder(version);
  const base: StateMap = new Map();
  let last = room.add(base, { type: 'm.room.create', sender: ALICE, state_key: '', content: version.implicitRoomCreator ? { room_version: version.id } : { creator: ALICE, room_version: version.id } }, []);
  last = room.add(base, { type: 'm.room.member', sender: ALICE, state_key: ALICE, content: { membership: 'join' } }, [last.event_id]);
  const users: Record<string, number> = { [MOD]: 50 };
  for (let i = 1; i <= 20; i++) users[user(i)] = 50;
  if (!version.privilegedCreators) users[ALICE] = 100;
  last = room.add(base, { type: 'm.room.power_levels', sender: ALICE, state_key: '', content: { users } }, [last.event_id]);
  last = room.add(base, { type: 'm.room.join_rules', sender: ALICE, state_key: '', content: { join_rule: 'public' } }, [last.event_id]);
  for (let i = 0; i < MEMBERS; i++) {
    last = room.add(base, { type: 'm.room.member', sender: user(i), state_key: user(i), content: { membership: 'join' } }, [last.event_id]);
  }

  const fork = (sender: string, seed: number, joinOffset: number): StateMap => {
    const state = new Map(base);
    let prev = last.event_id;
    for (let k = 0; k < CONFLICTS_PER_FORK; k++) {
      const r = (k + seed) % 10;
      let fields;
      if (r === 0) {
        users[user(21 + ((k * 7 + seed) % 1000))] = 10 + (k % 40);
        fields = { type: 'm.room.power_levels', sender, state_key: '', content: { users: { ...users } } };
      } else if (r < 4) {
        // Distinct targets, disjoint between the forks: every ban is its own conflict.
        const target = user(100 + ((k * 13 + seed * 997) % (MEMBERS - 100)));
        fields = { type: 'm.room.member', sender, state_key: target, content: { membership: 'ban' } };
      } else if (r < 8) {
        const joiner = user(MEMBERS + joinOffset + k);
        fields = { type: 'm.room.member', sender: joiner, state_key: joiner, content: { membership: 'join' } };
      } else {
        fields = { type: 'm.room.topic', sender, state_key: '', content: { topic: `topic ${seed}-${k}` } };
      }
      prev = room.add(state, fields, [prev]).event_id;
    }
    return state;
  };
  const forkA = fork(ALICE, 0, 0);
  const forkB = fork(MOD, 5, 100_000);
  return { room, base, forkA, forkB };
}

/** Conflicted keys, and the events of the conflicted state set (the values of those keys). */
function countConflicts(a: StateMap, b: StateMap): { keys: number; events: number } {
  let keys = 0;
  const events = new Set<string>();
  for (const k of new Set([...a.keys(), ...b.keys()])) {
    if (a.get(k) === b.get(k)) continue;
    keys++;
    for (const id of [a.get(k), b.get(k)]) if (id !== undefined) events.add(id);
  }
  return { keys, events: events.size };
}

/** Best of `runs` after a first (cold) run, whose time is returned too. */
function timeMs(fn: () => unknown, runs = 3): number {
  const coldStart = process.hrtime.bigint();
  fn();
  const cold = Number(process.hrtime.bigint() - coldStart) / 1e6;
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    fn();
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e6);
  }
  lastCold = cold;
  return best;
}

let lastCold = 0;

function benchResolve(versionId: string, name: string): void {
  const version = getRoomVersion(versionId);
  const { room, forkA, forkB } = buildForkedRoom(version);
  const events = eventSourceOf(room.events);
  const conflicts = countConflicts(forkA, forkB);
  let size = 0;
  const ms = timeMs(() => (size = resolveState(version, [forkA, forkB], events).size));
  console.log(`# ${name}: ${room.events.size} events, ${conflicts.keys} conflicted keys holding ${conflicts.events} conflicting state events, resolved state of ${size} entries`);
  console.log(`BENCH ${name} ${ms.toFixed(1)} ms`);
  console.log(`BENCH ${name}_cold ${lastCold.toFixed(1)} ms`);
}

function benchAuthChecks(): void {
  const version = getRoomVersion('10');
  const { room, base } = buildForkedRoom(version);
  const lookup = (t: string, k: string) => {
    const id = base.get(stateKey(t, k));
    return id === undefined ? undefined : room.events.get(id);
  };
  // A stream of membership changes: joins of newcomers, leaves, kicks and bans by the
  // moderator, invites by members.
  const stream: RoomEvent[] = [];
  for (let i = 0; i < 4_000; i++) {
    const target = user(100 + ((i * 37) % (MEMBERS - 100)));
    const kind = i % 5;
    const newcomer = `@new${i}:b.example`;
    const f =
      kind === 0 ? { sender: newcomer, state_key: newcomer, content: { membership: 'join' } }
      : kind === 1 ? { sender: target, state_key: target, content: { membership: 'leave' } }
      : kind === 2 ? { sender: MOD, state_key: target, content: { membership: 'leave' } }
      : kind === 3 ? { sender: MOD, state_key: target, content: { membership: 'ban' } }
      : { sender: target, state_key: newcomer, content: { membership: 'invite' } };
    stream.push({ event_id: `$s${i}`, room_id: room.roomId, type: 'm.room.member', ...f, prev_events: ['$x'], auth_events: [], origin_server_ts: i });
  }
  let checks = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < 1e9) {
    for (const event of stream) authorize(event, lookup, version);
    checks += stream.length;
    elapsed = Number(process.hrtime.bigint() - start);
  }
  console.log(`BENCH auth_checks_membership_10k_members ${Math.round(checks / (elapsed / 1e9))} checks/s`);
}

function benchAuthChainDifference(): void {
  // Two auth chains of 5,000 events each that share their first 1,000: each event cites up to
  // three earlier events of its chain, as auth events do (create, power levels, membership).
  const random = rng(7);
  const events = new Map<string, RoomEvent>();
  const add = (id: string, auth: string[]) =>
    events.set(id, { event_id: id, room_id: '!r:a.example', sender: ALICE, type: 'm.room.member', state_key: id, content: {}, prev_events: [], auth_events: auth, origin_server_ts: events.size });
  const pick = (chain: string[]) => {
    const auth = new Set<string>([chain[0]]);
    if (chain.length > 1) auth.add(chain[chain.length - 1]);
    if (chain.length > 2) auth.add(chain[Math.floor(random() * chain.length)]);
    return [...auth];
  };
  const shared: string[] = [];
  for (let i = 0; i < 1_000; i++) {
    const id = `$s${i}`;
    add(id, i === 0 ? [] : pick(shared));
    shared.push(id);
  }
  const branch = (name: string) => {
    const chain = [...shared];
    for (let i = 0; i < 4_000; i++) {
      const id = `$${name}${i}`;
      add(id, pick(chain));
      chain.push(id);
    }
    return chain;
  };
  const a = branch('a');
  const b = branch('b');
  const source = eventSourceOf(events);
  const sets: StateMap[] = [new Map([['k', a[a.length - 1]]]), new Map([['k', b[b.length - 1]]])];
  let size = 0;
  const ms = timeMs(() => (size = authChainDifference(sets, source).size), 5);
  console.log(`# auth chain difference: ${size} events differ`);
  console.log(`BENCH auth_chain_difference_2x5000 ${ms.toFixed(2)} ms`);
}

export async function main(): Promise<void> {
  benchResolve('10', 'state_res_v2_10k_members_1k_conflicts');
  benchResolve('12', 'state_res_v2_1_10k_members_1k_conflicts');
  benchAuthChecks();
  benchAuthChainDifference();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
