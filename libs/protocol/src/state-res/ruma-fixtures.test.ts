/**
 * The ruma-state-res snapshot scenarios (../shared/matrix-spec/state-res): every scenario fed
 * the three ways its harness does (event by event, per batch, all at once), each of which must
 * give the expected snapshot.
 */
import { pathToFileURL } from 'node:url';
import { specPath } from '@tessera/spec-data';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { splitStateKey, stateKey, type RoomEvent, type StateMap } from '../event-types.js';
import { getRoomVersion } from '../room-versions.js';
import { resolveAllAtOnce, resolveBatches, resolveEventByEvent } from './batches.js';
import { eventSourceOf } from './event-source.js';
import { resolveState } from './resolve.js';

const ROOT = pathToFileURL(specPath('state-res') + '/');
const fixture = (name: string): any => JSON.parse(readFileSync(new URL(`ruma-fixtures/${name}`, ROOT), 'utf8'));

function expected(snapshot: string): Array<[string, string, string]> {
  const text = readFileSync(new URL(`ruma-expected/${snapshot}@resolved_state.snap`, ROOT), 'utf8');
  const json = JSON.parse(text.slice(text.indexOf('---', 3) + 3));
  return json.map((e: any) => [e.type, e.state_key, e.event_id]);
}

function asRows(state: StateMap): Array<[string, string, string]> {
  return [...state]
    .map(([k, id]) => [...splitStateKey(k), id] as [string, string, string])
    .sort((a, b) => (a[0] + '\u0000' + a[1] < b[0] + '\u0000' + b[1] ? -1 : 1));
}

function roomVersionOf(pdus: RoomEvent[]) {
  const create = pdus.find((p) => p.type === 'm.room.create')!;
  return getRoomVersion(create.content.room_version ?? '1');
}

const batchScenarios: Record<string, string[]> = {
  minimal_private_chat: ['bootstrap-private-chat.json'],
  minimal_public_chat: ['bootstrap-public-chat.json'],
  origin_server_ts_tiebreak: ['bootstrap-private-chat.json', 'origin-server-ts-tiebreak.json'],
  ban_vs_power_levels: ['bootstrap-public-chat.json', 'ban-vs-power-levels-alice.json', 'ban-vs-power-levels-bob.json'],
  topic_vs_power_levels: ['bootstrap-public-chat.json', 'topic-vs-power-levels-alice.json', 'topic-vs-power-levels-bob.json'],
  power_levels_admin_vs_mod: ['bootstrap-public-chat.json', 'power-levels-admin-vs-mod-alice.json', 'power-levels-admin-vs-mod-bob.json'],
  topic_vs_ban: ['bootstrap-public-chat.json', 'topic-vs-ban-common.json', 'topic-vs-ban-alice.json', 'topic-vs-ban-bob.json'],
  join_rules_vs_join: ['bootstrap-public-chat.json', 'join-rules-vs-join-common.json', 'join-rules-vs-join-alice.json', 'join-rules-vs-join-ella.json'],
  concurrent_joins: ['bootstrap-public-chat.json', 'concurrent-joins-charlie.json', 'concurrent-joins-ella.json'],
};

describe('ruma-state-res fixtures, fed three ways', () => {
  for (const [name, files] of Object.entries(batchScenarios)) {
    describe(name, () => {
      const batches: RoomEvent[][] = files.map(fixture);
      const pdus = batches.flat();
      const version = roomVersionOf(pdus);
      const want = expected(name);
      it('event by event', () => expect(asRows(resolveEventByEvent(version, pdus))).toEqual(want));
      it('per batch', () => expect(asRows(resolveBatches(version, batches))).toEqual(want));
      it('all at once', () => expect(asRows(resolveAllAtOnce(version, pdus))).toEqual(want));
    });
  }
});

const stateMapScenarios: Array<[string, string, string[]]> = [
  ['msc4297_problem_a_state_res_v2_0', 'MSC4297-problem-A/pdus-v11.json', ['MSC4297-problem-A/state-bob.json', 'MSC4297-problem-A/state-charlie.json']],
  ['msc4297_problem_a_state_res_v2_1', 'MSC4297-problem-A/pdus-v12.json', ['MSC4297-problem-A/state-bob.json', 'MSC4297-problem-A/state-charlie.json']],
  ['msc4297_problem_b_state_res_v2_0', 'MSC4297-problem-B/pdus-v11.json', ['MSC4297-problem-B/state-eve.json', 'MSC4297-problem-B/state-zara.json']],
  ['msc4297_problem_b_state_res_v2_1', 'MSC4297-problem-B/pdus-v12.json', ['MSC4297-problem-B/state-eve.json', 'MSC4297-problem-B/state-zara.json']],
];

describe('ruma-state-res fixtures, given state maps (MSC4297)', () => {
  for (const [name, pduFile, stateFiles] of stateMapScenarios) {
    it(name, () => {
      const pdus: RoomEvent[] = fixture(pduFile);
      const events = eventSourceOf(pdus);
      const version = roomVersionOf(pdus);
      const stateSets = stateFiles.map((f) => {
        const map: StateMap = new Map();
        for (const id of fixture(f) as string[]) {
          const e = events.get(id)!;
          map.set(stateKey(e.type, e.state_key!), id);
        }
        return map;
      });
      expect(asRows(resolveState(version, stateSets, events))).toEqual(expected(name));
    });
  }
});
