import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '@tessera/testing';
import { StreamChanges, TypingService, type StreamChange } from '@tessera/client-api-service';
import { ClientApiHarness, type Reply } from './harness.js';

const setups = [
  { name: 'PostgreSQL + Redis', database: 'postgres' as const, redis: true, available: services.postgres && services.redis },
  { name: 'PGlite + in-memory store', database: 'pglite' as const, redis: false, available: true },
];

for (const setup of setups) {
  describe.skipIf(!setup.available)(`presence, typing, rate limits (${setup.name})`, () => {
    let hs: ClientApiHarness;
    let alice: { user_id: string; access_token: string; device_id: string };
    let bob: { user_id: string; access_token: string; device_id: string };
    let room: string;

    beforeAll(async () => {
      hs = await ClientApiHarness.start({
        database: setup.database,
        redis: setup.redis,
        // A tight per-IP limit on rate-limited endpoints, to see the 429.
        overrides: { rateLimit: { perIp: { perSecond: 0.01, burst: 30 }, perUser: { perSecond: 0.01, burst: 12 } } },
      });
      alice = await hs.register('alice');
      bob = await hs.register('bob');
      room = await hs.sharedRoom(alice, bob);
    });
    afterAll(async () => {
      await hs?.close();
    });

    it('sets and reads presence', async () => {
      const path = `/_matrix/client/v3/presence/${encodeURIComponent(alice.user_id)}/status`;
      expect((await hs.call('GET', path, { token: bob.access_token })).body).toEqual({ presence: 'offline' });
      expect((await hs.call('PUT', path, { token: alice.access_token, body: { presence: 'online', status_msg: 'hi' } })).status).toBe(200);
      const read = await hs.call('GET', path, { token: bob.access_token });
      expect(read.body).toMatchObject({ presence: 'online', status_msg: 'hi', currently_active: true });
      expect(read.body.last_active_ago).toBeGreaterThanOrEqual(0);
      expect((await hs.call('PUT', path, { token: bob.access_token, body: { presence: 'online' } })).status).toBe(403);
      expect((await hs.call('PUT', path, { token: alice.access_token, body: { presence: 'asleep' } })).body.errcode).toBe('M_INVALID_PARAM');
      expect((await hs.call('GET', path, { token: bob.access_token })).body.presence).toBe('online');
    });

    it('records typing with expiry and wakes listeners', async () => {
      const typing = hs.nest.get(TypingService);
      const seen: StreamChange[] = [];
      const stop = hs.nest.get(StreamChanges).listen((change) => seen.push(change));
      const start = await typing.currentPosition();
      const path = (user: string) => `/_matrix/client/v3/rooms/${encodeURIComponent(room)}/typing/${encodeURIComponent(user)}`;
      expect((await hs.call('PUT', path(alice.user_id), { token: alice.access_token, body: { typing: true, timeout: 30000 } })).status).toBe(200);
      expect((await hs.call('PUT', path(bob.user_id), { token: bob.access_token, body: { typing: true, timeout: 1 } })).status).toBe(200);
      expect((await hs.call('PUT', path(bob.user_id), { token: alice.access_token, body: { typing: true } })).status).toBe(403);
      expect((await hs.call('PUT', path(alice.user_id), { token: alice.access_token, body: { typing: 'yes' } })).body.errcode).toBe('M_BAD_JSON');
      const outsider = await hs.register('outsider');
      expect((await hs.call('PUT', path(outsider.user_id), { token: outsider.access_token, body: { typing: true } })).status).toBe(403);

      // Bob's 1 ms expires on its own; the expiry is a change of its own that wakes /sync.
      await waitFor(() => seen.filter((c) => c.stream === 'typing').length >= 3);
      const changes = await typing.getTypingSince([room, '!other:example.org'], start);
      expect(changes.rooms).toEqual({ [room]: [alice.user_id] });
      expect((await typing.getTypingSince([room], changes.position)).rooms).toEqual({});

      expect((await hs.call('PUT', path(alice.user_id), { token: alice.access_token, body: { typing: false } })).status).toBe(200);
      expect((await typing.getTypingSince([room], changes.position)).rooms).toEqual({ [room]: [] });
      stop();
    });

    it('answers 429 M_LIMIT_EXCEEDED with retry_after_ms and Retry-After', async () => {
      let limited: Reply | undefined;
      for (let i = 0; i < 40 && !limited; i++) {
        const reply = await hs.call('GET', '/_matrix/client/v3/account/whoami', { token: alice.access_token });
        if (reply.status === 429) limited = reply;
        else expect(reply.status).toBe(200);
      }
      expect(limited, 'the limit was reached').toBeDefined();
      expect(limited!.body.errcode).toBe('M_LIMIT_EXCEEDED');
      expect(limited!.body.retry_after_ms).toBeGreaterThan(0);
      expect(Number(limited!.headers.get('retry-after'))).toBeGreaterThan(0);
      // Endpoints the spec does not rate-limit still answer, and login has a bucket of its own.
      expect((await hs.call('GET', '/_matrix/client/v3/devices', { token: alice.access_token })).status).toBe(200);
      await hs.login('alice');
    });
  });
}

async function waitFor(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((r) => setTimeout(r, 25));
  expect(condition()).toBe(true);
}
