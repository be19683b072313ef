/** The state-resolve tool, run as operators run it: a child process reading fixture files. */
import { specPath } from '@tessera/spec-data';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { getRoomVersion, resolveBatches, splitStateKey } from '@tessera/protocol';

const repo = fileURLToPath(new URL('..', import.meta.url));
const fixtures = specPath('state-res', 'ruma-fixtures') + '/';
const expectedDir = specPath('state-res', 'ruma-expected') + '/';

function run(...files: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'tools/state-resolve.ts', ...files], { cwd: repo, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function snapshot(name: string) {
  const text = readFileSync(join(expectedDir, `${name}@resolved_state.snap`), 'utf8');
  return JSON.parse(text.slice(text.indexOf('---', 3) + 3)).map((e: any) => ({ type: e.type, state_key: e.state_key, event_id: e.event_id }));
}

const tmp = mkdtempSync(join(tmpdir(), 'state-resolve-'));
function file(name: string, content: string): string {
  const path = join(tmp, name);
  writeFileSync(path, content);
  return path;
}

describe('state-resolve tool', () => {
  it.each([
    ['ban_vs_power_levels', ['bootstrap-public-chat.json', 'ban-vs-power-levels-alice.json', 'ban-vs-power-levels-bob.json']],
    ['topic_vs_ban', ['bootstrap-public-chat.json', 'topic-vs-ban-common.json', 'topic-vs-ban-alice.json', 'topic-vs-ban-bob.json']],
    ['origin_server_ts_tiebreak', ['bootstrap-private-chat.json', 'origin-server-ts-tiebreak.json']],
  ])('resolves %s per batch like the harness', (name, files) => {
    const r = run(...files.map((f) => join(fixtures, f)));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(snapshot(name));
  });

  it('reads a room version 12 room (create event without room_id)', () => {
    const r = run(join(fixtures, 'MSC4297-problem-B/pdus-v12.json'));
    expect(r.code).toBe(0);
    const pdus = JSON.parse(readFileSync(join(fixtures, 'MSC4297-problem-B/pdus-v12.json'), 'utf8'));
    const state = resolveBatches(getRoomVersion('12'), [pdus]);
    const want = [...state]
      .map(([k, event_id]) => ({ type: splitStateKey(k)[0], state_key: splitStateKey(k)[1], event_id }))
      .sort((a, b) => (a.type + '\u0000' + a.state_key < b.type + '\u0000' + b.state_key ? -1 : 1));
    expect(JSON.parse(r.stdout)).toEqual(want);
    expect(want.find((x) => x.type === 'm.room.create')).toBeDefined();
  });

  const bad: Array<[string, string[], RegExp]> = [
    ['not JSON', [file('bad.json', '[{"event_id": ')], /not JSON/],
    ['not an array', [file('object.json', '{"a":1}')], /JSON array/],
    ['a PDU without sender', [file('nosender.json', JSON.stringify([{ event_id: '$x', type: 'm.room.create', state_key: '', content: { room_version: '10' }, origin_server_ts: 0, prev_events: [], auth_events: [] }]))], /"sender"/],
    ['an unknown room version', [file('v99.json', JSON.stringify([{ event_id: '$c', room_id: '!r:x', sender: '@a:x', type: 'm.room.create', state_key: '', content: { room_version: '99' }, origin_server_ts: 0, prev_events: [], auth_events: [] }]))], /unknown room version "99"/],
    ['no create event', [file('nocreate.json', '[]')], /no m.room.create/],
    ['a missing file', [join(tmp, 'absent.json')], /cannot read/],
    ['no arguments', [], /usage/],
  ];
  it.each(bad)('refuses %s with one line and exit code 2', (_label, files, message) => {
    const r = run(...files);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  });
});
