/**
 * Token lifetimes as Synapse's settings (refresh_token_lifetime,
 * nonrefreshable_access_token_lifetime, session_lifetime) and the periodic cleanup of expired
 * tokens, over real HTTP on PostgreSQL + Redis and on PGlite + the in-memory store. Every JSON
 * answer is checked against the spec's OpenAPI by the harness.
 *
 * Expiry is mostly set in the database (the test waits for nothing); one case lets lifetimes of
 * a few hundred milliseconds really pass, waiting for them with a bounded poll.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '@tessera/testing';
import { ClientApiHarness } from './harness.js';

const PASSWORD = 'correct horse battery staple';
const HOUR = 3_600_000;
const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');

const setups = [
  { name: 'PostgreSQL + Redis', database: 'postgres' as const, redis: true, available: services.postgres && services.redis },
  { name: 'PGlite + in-memory store', database: 'pglite' as const, redis: false, available: true },
];

/** Polls (bounded) until `check` holds; the test fails if it never does. */
async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`never happened: ${what}`);
}

for (const setup of setups) {
  describe.skipIf(!setup.available)(`token lifetimes and cleanup (${setup.name})`, () => {
    let hs: ClientApiHarness;
    let userId: string;

    const whoami = (token: string) => hs.call('GET', '/_matrix/client/v3/account/whoami', { token });
    const refresh = (token: string) => hs.call('POST', '/_matrix/client/v3/refresh', { body: { refresh_token: token } });
    const login = (extra: Record<string, unknown> = {}) =>
      hs.call('POST', '/_matrix/client/v3/login', { body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'lena' }, password: PASSWORD, ...extra } });
    const rowOf = async (table: 'access_tokens' | 'refresh_tokens', token: string) =>
      (await hs.db.query<{ expires_ts: string | number | null }>(`SELECT * FROM ${table} WHERE token_hash = $1`, [sha256(token)])).rows[0];
    const expire = (table: 'access_tokens' | 'refresh_tokens', token: string, ts: number) =>
      hs.db.query(`UPDATE ${table} SET expires_ts = $2 WHERE token_hash = $1`, [sha256(token), ts]);

    beforeAll(async () => {
      hs = await ClientApiHarness.start({
        database: setup.database,
        redis: setup.redis,
        config: { refreshable_access_token_lifetime: '10m', refresh_token_lifetime: '1d', nonrefreshable_access_token_lifetime: '1h', session_lifetime: '30d' },
        // Sweep often; expired rows stay on record (answered as a soft logout) for an hour.
        overrides: { tokenCleanupIntervalMs: 50, expiredTokenRetentionMs: HOUR },
      });
      userId = (await hs.register('lena')).user_id;
    });
    afterAll(async () => {
      await hs?.close();
    });

    it('gives access tokens issued without a refresh token nonrefreshable_access_token_lifetime, then a soft logout', async () => {
      const before = Date.now();
      const plain = await login();
      expect(plain.status).toBe(200);
      expect(plain.body.refresh_token).toBeUndefined();
      // The spec's expires_in_ms: without a refresh token the client logs in again when it ends.
      expect(plain.body.expires_in_ms).toBe(HOUR);
      const row = await rowOf('access_tokens', plain.body.access_token);
      expect(Number(row.expires_ts)).toBeGreaterThanOrEqual(before + HOUR);
      expect((await whoami(plain.body.access_token)).status).toBe(200);

      // Past its expiry (set in the database; whoami cached it, and a cached entry never outlives the expiry it was read with,
      // so use a fresh login for the expired case).
      const other = (await login()).body;
      await expire('access_tokens', other.access_token, Date.now() - 1);
      const expired = await whoami(other.access_token);
      expect(expired.status).toBe(401);
      expect(expired.body).toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', soft_logout: true });

      // The soft-logged-out client logs in again to its device: the old token is then unknown.
      const again = await login({ device_id: other.device_id });
      expect(again.status).toBe(200);
      expect((await whoami(again.body.access_token)).body).toMatchObject({ user_id: userId, device_id: other.device_id });
      expect((await whoami(other.access_token)).body).toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', soft_logout: false });

      // Registration without refresh_token gets the same lifetime.
      const done = (await hs.register('mona')) as { expires_in_ms?: number };
      expect(done.expires_in_ms).toBe(HOUR);
    });

    it('lets a refresh token be used for refresh_token_lifetime; an expired one is a soft logout with no effect', async () => {
      const before = Date.now();
      const pair = (await login({ refresh_token: true })).body;
      expect(pair.expires_in_ms).toBe(600_000);
      const row = await rowOf('refresh_tokens', pair.refresh_token);
      expect(Number(row.expires_ts)).toBeGreaterThanOrEqual(before + 24 * HOUR);

      // A refresh gives the new refresh token its own lifetime from now.
      const renewed = await refresh(pair.refresh_token);
      expect(renewed.status).toBe(200);
      expect(renewed.body.expires_in_ms).toBe(600_000);
      expect(Number((await rowOf('refresh_tokens', renewed.body.refresh_token)).expires_ts)).toBeGreaterThanOrEqual(before + 24 * HOUR);
      expect((await whoami(renewed.body.access_token)).status).toBe(200);

      // Expired: 401 M_UNKNOWN_TOKEN with soft_logout: true (the spec's only documented failure of /refresh).
      await expire('refresh_tokens', renewed.body.refresh_token, Date.now() - 1);
      const refused = await refresh(renewed.body.refresh_token);
      expect(refused.status).toBe(401);
      expect(refused.body).toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', soft_logout: true });
      // Refused with no effect: its access token lives on until its own expiry, and asking again gets the same answer.
      expect((await whoami(renewed.body.access_token)).status).toBe(200);
      expect((await refresh(renewed.body.refresh_token)).body).toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', soft_logout: true });

      // The client logs in again to the same device: the old refresh token is then gone for good.
      const relogin = await login({ refresh_token: true, device_id: pair.device_id });
      expect(relogin.status).toBe(200);
      expect((await refresh(renewed.body.refresh_token)).body).toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', soft_logout: false });
      expect((await whoami(relogin.body.access_token)).body.device_id).toBe(pair.device_id);
    });

    it('keeps a session within session_lifetime across refreshes', async () => {
      const before = Date.now();
      const pair = (await login({ refresh_token: true })).body;
      const row = (await hs.db.query<{ session_expires_ts: string | number }>('SELECT session_expires_ts FROM refresh_tokens WHERE token_hash = $1', [sha256(pair.refresh_token)])).rows[0];
      const sessionEnd = Number(row.session_expires_ts);
      expect(sessionEnd).toBeGreaterThanOrEqual(before + 30 * 24 * HOUR);

      // The session ends in a minute: the next pair is cut to it, and carries the same end.
      const soon = Date.now() + 60_000;
      await hs.db.query('UPDATE refresh_tokens SET session_expires_ts = $2 WHERE token_hash = $1', [sha256(pair.refresh_token), soon]);
      const renewed = await refresh(pair.refresh_token);
      expect(renewed.status).toBe(200);
      expect(renewed.body.expires_in_ms).toBeGreaterThan(0);
      expect(renewed.body.expires_in_ms).toBeLessThanOrEqual(60_000);
      const next = (
        await hs.db.query<{ expires_ts: string | number; session_expires_ts: string | number }>('SELECT expires_ts, session_expires_ts FROM refresh_tokens WHERE token_hash = $1', [
          sha256(renewed.body.refresh_token),
        ])
      ).rows[0];
      expect(Number(next.session_expires_ts)).toBe(soon);
      expect(Number(next.expires_ts)).toBe(soon);
      expect(Number((await rowOf('access_tokens', renewed.body.access_token)).expires_ts)).toBeLessThanOrEqual(soon);
    });

    it('removes tokens expired longer than the retention, periodically; recently expired ones stay soft logouts', async () => {
      const longAgo = Date.now() - 2 * HOUR;
      // An expired non-refreshable access token, an expired access token of a live refresh token,
      // and an expired refresh token whose access token is still valid.
      const plain = (await login()).body;
      const chain = (await login({ refresh_token: true })).body;
      const dead = (await login({ refresh_token: true })).body;
      await expire('access_tokens', plain.access_token, longAgo);
      await expire('access_tokens', chain.access_token, longAgo);
      await expire('refresh_tokens', dead.refresh_token, longAgo);
      // Expired a moment ago: within the retention, it stays.
      const recent = (await login()).body;
      await expire('access_tokens', recent.access_token, Date.now() - 1);

      await eventually(
        async () =>
          (await rowOf('access_tokens', plain.access_token)) === undefined &&
          (await rowOf('access_tokens', chain.access_token)) === undefined &&
          (await rowOf('refresh_tokens', dead.refresh_token)) === undefined &&
          (await rowOf('access_tokens', dead.access_token)) === undefined,
        'the cleanup removes the expired rows',
      );

      // Gone: unknown tokens now (soft_logout: false), the dead refresh token's access token with it.
      expect((await whoami(plain.access_token)).body).toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', soft_logout: false });
      expect((await refresh(dead.refresh_token)).body).toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', soft_logout: false });
      expect((await whoami(dead.access_token)).body).toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', soft_logout: false });
      // The live refresh token of the chain was kept and still refreshes.
      const renewed = await refresh(chain.refresh_token);
      expect(renewed.status).toBe(200);
      expect((await whoami(renewed.body.access_token)).body.user_id).toBe(userId);
      // Within the retention: still on record, still a soft logout.
      expect(await rowOf('access_tokens', recent.access_token)).toBeDefined();
      expect((await whoami(recent.access_token)).body).toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', soft_logout: true });
    });
  });
}

describe('short lifetimes really passing (PGlite)', () => {
  let hs: ClientApiHarness;
  beforeAll(async () => {
    hs = await ClientApiHarness.start({
      database: 'pglite',
      redis: false,
      config: { refreshable_access_token_lifetime: '200ms', refresh_token_lifetime: '300ms', nonrefreshable_access_token_lifetime: '200ms' },
      overrides: { tokenCleanupIntervalMs: 0 },
    });
    await hs.register('kim');
  });
  afterAll(async () => {
    await hs?.close();
  });

  it('expires access tokens with and without a refresh token, and refresh tokens, as configured', async () => {
    const login = (extra: Record<string, unknown> = {}) =>
      hs.call('POST', '/_matrix/client/v3/login', { body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'kim' }, password: PASSWORD, ...extra } });
    const plain = await login();
    expect(plain.body.expires_in_ms).toBe(200);
    const pair = await login({ refresh_token: true });
    expect(pair.body.expires_in_ms).toBe(200);

    let lastPlain: any;
    await eventually(async () => {
      lastPlain = await hs.call('GET', '/_matrix/client/v3/account/whoami', { token: plain.body.access_token });
      return lastPlain.status === 401;
    }, 'the access token issued without a refresh token expires');
    expect(lastPlain.body).toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', soft_logout: true });

    let lastRefresh: any;
    await eventually(async () => {
      lastRefresh = await hs.call('POST', '/_matrix/client/v3/refresh', { body: { refresh_token: pair.body.refresh_token } });
      // Until it expires, each refresh succeeds (and replaces the unused successor); then the answer is a soft logout.
      return lastRefresh.status === 401;
    }, 'the refresh token expires');
    expect(lastRefresh.body).toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', soft_logout: true });
  });
});
