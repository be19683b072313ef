/**
 * Property: the resolved state does not depend on the order of the input state sets.
 * State sets are drawn from the ruma fixtures (states after each batch and one-entry maps of
 * single events, the shapes the pipeline produces) and from the MSC4297 state maps.
 */
import { pathToFileURL } from 'node:url';
import { specPath } from '@tessera/spec-data';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { stateKey, type RoomEvent, type StateMap } from '../event-types.js';
import { getRoomVersion } from '../room-versions.js';
import { resolveBatches } from './batches.js';
import { eventSourceOf } from './event-source.js';
import { resolveState } from './resolve.js';

const ROOT = pathToFileURL(specPath('state-res', 'ruma-fixtures') + '/');
const load = (name: string): RoomEvent[] => JSON.parse(readFileSync(new URL(name, ROOT), 'utf8'));

const rooms: Array<{ name: string; batches: string[] }> = [
  { name: 'topic_vs_ban', batches: ['bootstrap-public-chat.json', 'topic-vs-ban-common.json', 'topic-vs-ban-alice.json', 'topic-vs-ban-bob.json'] },
  { name: 'join_rules_vs_join', batches: ['bootstrap-public-chat.json', 'join-rules-vs-join-common.json', 'join-rules-vs-join-alice.json', 'join-rules-vs-join-ella.json'] },
  { name: 'ban_vs_power_levels', batches: ['bootstrap-public-chat.json', 'ban-vs-power-levels-alice.json', 'ban-vs-power-levels-bob.json'] },
  { name: 'msc4297 B v12', batches: ['MSC4297-problem-B/pdus-v12.json'] },
  { name: 'msc4297 A v11', batches: ['MSC4297-problem-A/pdus-v11.json'] },
];

describe('state resolution is independent of the order of the state sets', () => {
  for (const room of rooms) {
    it(room.name, () => {
      const batches = room.batches.map(load);
      const pdus = batches.flat();
      const events = eventSourceOf(pdus);
      const version = getRoomVersion(pdus.find((p) => p.type === 'm.room.create')!.content.room_version);
      // Candidate state sets: the state after each prefix of the events (event by event, as
      // the per-batch harness resolves them) and one-entry maps.
      const candidates: StateMap[] = [];
      for (let i = 1; i <= pdus.length; i++) candidates.push(resolveBatches(version, [pdus.slice(0, i)], events));
      for (const p of pdus) candidates.push(new Map([[stateKey(p.type, p.state_key!), p.event_id]]));

      fc.assert(
        fc.property(
          fc.uniqueArray(fc.integer({ min: 0, max: candidates.length - 1 }), { minLength: 2, maxLength: 5 }),
          fc.func(fc.integer()),
          (picked, rank) => {
            const sets = picked.map((i) => candidates[i]);
            const shuffled = [...sets].map((s, i) => ({ s, r: rank(i) })).sort((a, b) => a.r - b.r).map((x) => x.s);
            const reversed = [...sets].reverse();
            const expected = resolveState(version, sets, events);
            expect(resolveState(version, shuffled, events)).toEqual(expected);
            expect(resolveState(version, reversed, events)).toEqual(expected);
          },
        ),
        { numRuns: 150 },
      );
    });
  }
});
