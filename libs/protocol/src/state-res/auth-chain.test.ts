/** Auth chains, the conflicted state subgraph, and resolution with precomputed auth chains. */
import { pathToFileURL } from 'node:url';
import { specPath } from '@tessera/spec-data';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { stateKey, type RoomEvent, type StateMap } from '../event-types.js';
import { getRoomVersion } from '../room-versions.js';
import { authChain, conflictedStateSubgraph } from './auth-chain.js';
import { resolveBatches } from './batches.js';
import { eventSourceOf } from './event-source.js';
import { resolveState } from './resolve.js';

const node = (id: string, auth: string[]): RoomEvent => ({ event_id: id, sender: '@a:x', type: 't', state_key: id, content: {}, prev_events: [], auth_events: auth, origin_server_ts: 0 });
//   a <- b <- c <- d,  b <- e,  x (unrelated)
const graph = eventSourceOf([node('a', []), node('b', ['a']), node('c', ['b']), node('d', ['c']), node('e', ['b']), node('x', [])]);

describe('authChain', () => {
  it('is every event reachable through auth_events, without the start unless asked', () => {
    expect(authChain(['d'], graph)).toEqual(new Set(['c', 'b', 'a']));
    expect(authChain(['d', 'e'], graph, { includeStart: true })).toEqual(new Set(['d', 'e', 'c', 'b', 'a']));
    expect(authChain(['x'], graph)).toEqual(new Set());
  });
  it('uses a precomputed chain where the provider knows one', () => {
    const provider = (id: string) => (id === 'c' ? ['b', 'a', 'z'] : undefined);
    expect(authChain(['d'], graph, { provider })).toEqual(new Set(['c', 'b', 'a', 'z']));
  });
});

describe('conflictedStateSubgraph', () => {
  it('holds the events on paths between conflicted events', () => {
    expect(conflictedStateSubgraph(new Set(['d', 'b']), graph)).toEqual(new Set(['d', 'c', 'b']));
    expect(conflictedStateSubgraph(new Set(['d', 'e']), graph)).toEqual(new Set(['d', 'e']));
    expect(conflictedStateSubgraph(new Set(['d', 'a', 'x']), graph)).toEqual(new Set(['d', 'c', 'b', 'a', 'x']));
  });
});

describe('resolution with a precomputed auth chain provider', () => {
  it('gives the same states as walking the events', () => {
    const root = pathToFileURL(specPath('state-res', 'ruma-fixtures') + '/');
    const pdus: RoomEvent[] = ['bootstrap-public-chat.json', 'topic-vs-ban-common.json', 'topic-vs-ban-alice.json', 'topic-vs-ban-bob.json'].flatMap((f) =>
      JSON.parse(readFileSync(new URL(f, root), 'utf8')),
    );
    const events = eventSourceOf(pdus);
    const version = getRoomVersion('10');
    let calls = 0;
    const provider = (id: string) => {
      calls++;
      return authChain([id], events);
    };
    const sets: StateMap[] = [resolveBatches(version, [pdus.slice(0, 9)], events), ...pdus.slice(8).map((p) => new Map([[stateKey(p.type, p.state_key!), p.event_id]]))];
    expect(resolveState(version, sets, events, { authChains: provider })).toEqual(resolveState(version, sets, events));
    expect(calls).toBeGreaterThan(0);
  });
});
