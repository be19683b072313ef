import { describe, expect, it } from 'vitest';
import { backoffDelayMs, resolveSettings, settingsFromEnvironment } from './options.js';
import { rendezvousOwner, shardOf, shardsFor } from './shards.js';

describe('shards', () => {
  const replicas = ['a', 'b', 'c'];

  it('gives every shard to exactly one live replica, spread over all of them', () => {
    const owned = replicas.map((r) => shardsFor(r, replicas, 64));
    expect(owned.flat().sort((x, y) => x - y)).toEqual(Array.from({ length: 64 }, (_, i) => i));
    for (const o of owned) expect(o.length).toBeGreaterThan(5);
  });

  it('moves only the shards of a replica that leaves, and only shards to a replica that joins', () => {
    const before = new Map(Array.from({ length: 64 }, (_, s) => [s, rendezvousOwner(s, replicas)]));
    const without = new Map(Array.from({ length: 64 }, (_, s) => [s, rendezvousOwner(s, ['a', 'c'])]));
    for (const [s, owner] of before) if (owner !== 'b') expect(without.get(s)).toBe(owner);
    const withD = new Map(Array.from({ length: 64 }, (_, s) => [s, rendezvousOwner(s, [...replicas, 'd'])]));
    for (const [s, owner] of withD) if (owner !== 'd') expect(owner).toBe(before.get(s));
  });

  it('hashes a server name to a stable shard', () => {
    expect(shardOf('matrix.org', 64)).toBe(shardOf('matrix.org', 64));
    expect(shardOf('matrix.org', 64)).toBeGreaterThanOrEqual(0);
    expect(shardOf('matrix.org', 64)).toBeLessThan(64);
  });
});

describe('backoff', () => {
  const settings = { backoffInitialMs: 1000, backoffMaxMs: 60_000 };

  it('doubles per failure between half and all of the step, capped', () => {
    expect(backoffDelayMs(1, settings, () => 0)).toBe(500);
    expect(backoffDelayMs(1, settings, () => 1)).toBe(1000);
    expect(backoffDelayMs(4, settings, () => 0)).toBe(4000);
    expect(backoffDelayMs(4, settings, () => 1)).toBe(8000);
    expect(backoffDelayMs(50, settings, () => 1)).toBe(60_000);
    expect(backoffDelayMs(50, settings, () => 0)).toBe(30_000);
  });

  it('spreads retries of many destinations (jitter)', () => {
    const delays = new Set(Array.from({ length: 50 }, () => backoffDelayMs(3, settings)));
    expect(delays.size).toBeGreaterThan(10);
  });
});

describe('settings', () => {
  it('refuses limits above the spec\'s 50 PDUs and 100 EDUs per transaction, and bad numbers', () => {
    expect(() => resolveSettings({ maxPdusPerTransaction: 51 })).toThrow(/50 PDUs/);
    expect(() => resolveSettings({ maxEdusPerTransaction: 101 })).toThrow(/100 EDUs/);
    expect(() => resolveSettings({ leaseTtlMs: 0 })).toThrow(/leaseTtlMs/);
    expect(() => settingsFromEnvironment({ FANOUT_LEASE_TTL_MS: 'soon' })).toThrow(/FANOUT_LEASE_TTL_MS/);
    expect(settingsFromEnvironment({ FANOUT_BACKOFF_MAX_MS: '5000', FANOUT_REPLICA_ID: 'r1' })).toEqual({ backoffMaxMs: 5000, replicaId: 'r1' });
  });
});
