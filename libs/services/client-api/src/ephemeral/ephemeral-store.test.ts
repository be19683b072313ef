import { afterAll, describe, expect, it } from 'vitest';
import { REDIS_URL, services, uniqueName } from '@tessera/testing';
import type { EphemeralStore } from './ephemeral-store.js';
import { MemoryEphemeralStore } from './memory-ephemeral-store.js';
import { RedisEphemeralStore } from './redis-ephemeral-store.js';

const stores: { name: string; available: boolean; make: () => EphemeralStore }[] = [
  { name: 'memory', available: true, make: () => new MemoryEphemeralStore() },
  { name: 'Redis', available: services.redis, make: () => new RedisEphemeralStore({ url: REDIS_URL, prefix: `${uniqueName('eph')}:` }) },
];

for (const { name, available, make } of stores) {
  describe.skipIf(!available)(`ephemeral store (${name})`, () => {
    const store = available ? make() : undefined!;
    afterAll(async () => {
      await store?.close();
    });

    it('token bucket: allows the burst, then refuses with a retry delay', async () => {
      const key = uniqueName('bucket');
      for (let i = 0; i < 3; i++) expect((await store.consumeRateLimit(key, 0.5, 3)).allowed).toBe(true);
      const refused = await store.consumeRateLimit(key, 0.5, 3);
      expect(refused.allowed).toBe(false);
      // One token at 0.5/s takes up to 2 s.
      expect(refused.retryAfterMs).toBeGreaterThan(0);
      expect(refused.retryAfterMs).toBeLessThanOrEqual(2000);
      // Another key has its own bucket.
      expect((await store.consumeRateLimit(uniqueName('bucket'), 0.5, 3)).allowed).toBe(true);
    });

    it('temporary values are taken once', async () => {
      const key = uniqueName('nonce');
      await store.putTemporary(key, 'v', 60_000);
      expect(await store.takeTemporary(key)).toBe('v');
      expect(await store.takeTemporary(key)).toBeUndefined();
      expect(await store.takeTemporary(uniqueName('never'))).toBeUndefined();
    });

    it('typing: positions grow, stop removes, expiry removes and takes a position', async () => {
      const room = `!${uniqueName('room')}:example.org`;
      const p1 = await store.setTyping(room, '@a:x', 60_000);
      const p2 = await store.setTyping(room, '@b:x', 1);
      expect(p2).toBeGreaterThan(p1);
      await new Promise((r) => setTimeout(r, 20));
      expect((await store.getTyping(room)).userIds).toEqual(['@a:x']);
      const expired = await store.expireTyping(room);
      expect(expired).toBeGreaterThan(p2);
      expect(await store.expireTyping(room)).toBeUndefined();
      const p3 = await store.setTyping(room, '@a:x', 0);
      expect(await store.getTyping(room)).toEqual({ userIds: [], position: p3 });
      expect(await store.currentTypingPosition()).toBeGreaterThanOrEqual(p3);
    });

    it('presence: records with positions', async () => {
      const user = `@${uniqueName('u')}:example.org`;
      expect(await store.getPresence(user)).toBeUndefined();
      const position = await store.setPresence(user, 'unavailable', 'away', 1234);
      expect(await store.getPresence(user)).toEqual({ presence: 'unavailable', statusMsg: 'away', lastActiveTs: 1234, position });
      expect(await store.currentPresencePosition()).toBeGreaterThanOrEqual(position);

      // Who changed after a position, and several records in one read.
      const other = `@${uniqueName('v')}:example.org`;
      const later = await store.setPresence(other, 'online', undefined, 5678);
      const again = await store.setPresence(user, 'online', undefined, 9999);
      expect(later).toBeGreaterThan(position);
      expect(new Set(await store.presenceChangedSince(position))).toEqual(new Set([user, other]));
      expect(await store.presenceChangedSince(again)).toEqual([]);
      expect((await store.presenceChangedSince(later)).includes(other)).toBe(false);
      const both = await store.getPresences([user, other, `@${uniqueName('nobody')}:example.org`]);
      expect([...both.keys()].sort()).toEqual([user, other].sort());
      expect(both.get(user)).toMatchObject({ presence: 'online', lastActiveTs: 9999, position: again });
    });
  });
}
