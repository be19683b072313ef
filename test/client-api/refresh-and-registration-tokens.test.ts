/**
 * Refresh tokens (POST /refresh, `refresh_token: true` at login and registration, expiring
 * access tokens answered with soft_logout) and registration tokens (the
 * m.login.registration_token stage, the validity endpoint, Synapse's admin API and the admin
 * command line), over real HTTP on PostgreSQL + Redis and on PGlite + the in-memory store.
 * Every JSON answer is checked against the spec's OpenAPI by the harness.
 */
import { spawn } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConfig } from '@tessera/config';
import { services } from '@tessera/testing';
import { startClientApiReplicas, type ClientApiReplicas } from '../support/client-api-replicas.js';
import { checkAgainstSpec, ClientApiHarness } from './harness.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const SECRET = 'shared-registration-secret';
const PASSWORD = 'correct horse battery staple';

const setups = [
  { name: 'PostgreSQL + Redis', database: 'postgres' as const, redis: true, available: services.postgres && services.redis },
  { name: 'PGlite + in-memory store', database: 'pglite' as const, redis: false, available: true },
];

const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');

/** A user made through the shared-secret admin registration (no UIA, so no registration token). */
async function sharedSecretUser(hs: ClientApiHarness, username: string, admin = false) {
  const { body } = await hs.call('GET', '/_synapse/admin/v1/register');
  const mac = createHmac('sha1', SECRET)
    .update(`${body.nonce}\x00${username}\x00${PASSWORD}\x00${admin ? 'admin' : 'notadmin'}`)
    .digest('hex');
  const done = await hs.call('POST', '/_synapse/admin/v1/register', { body: { nonce: body.nonce, username, password: PASSWORD, admin, mac } });
  expect(done.status, JSON.stringify(done.body)).toBe(200);
  return done.body as { user_id: string; access_token: string; device_id: string };
}

/** Runs `npm run admin -- ...args` as npm does (tsx loader), without npm in between. */
function admin(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'tools/admin.ts', ...args], { cwd: repo, env: { ...process.env, ADMIN_ACCESS_TOKEN: undefined } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end('');
  });
}

for (const setup of setups) {
  describe.skipIf(!setup.available)(`refresh tokens and registration tokens (${setup.name})`, () => {
    let hs: ClientApiHarness;
    let root: { user_id: string; access_token: string };

    const whoami = (token: string) => hs.call('GET', '/_matrix/client/v3/account/whoami', { token });
    const refresh = (token: string, prefix = 'v3') => hs.call('POST', `/_matrix/client/${prefix}/refresh`, { body: { refresh_token: token } });
    const login = (user: string, extra: Record<string, unknown> = {}) =>
      hs.call('POST', '/_matrix/client/v3/login', { body: { type: 'm.login.password', identifier: { type: 'm.id.user', user }, password: PASSWORD, ...extra } });
    const newToken = async (body: Record<string, unknown> = {}) => {
      const created = await hs.call('POST', '/_synapse/admin/v1/registration_tokens/new', { token: root.access_token, body });
      expect(created.status, JSON.stringify(created.body)).toBe(200);
      return created.body as { token: string; uses_allowed: number | null; pending: number; completed: number; expiry_time: number | null };
    };
    const tokenInfo = async (token: string) => (await hs.call('GET', `/_synapse/admin/v1/registration_tokens/${token}`, { token: root.access_token })).body;
    /** The full registration: the token stage, then m.login.dummy. */
    const registerWithToken = async (username: string, token: string, extra: Record<string, unknown> = {}) => {
      const first = await hs.call('POST', '/_matrix/client/v3/register', { body: { username, password: PASSWORD, ...extra } });
      expect(first.status).toBe(401);
      const staged = await hs.call('POST', '/_matrix/client/v3/register', {
        body: { username, password: PASSWORD, auth: { type: 'm.login.registration_token', token, session: first.body.session }, ...extra },
      });
      expect(staged.status, JSON.stringify(staged.body)).toBe(401);
      expect(staged.body.completed).toEqual(['m.login.registration_token']);
      const done = await hs.call('POST', '/_matrix/client/v3/register', {
        body: { username, password: PASSWORD, auth: { type: 'm.login.dummy', session: first.body.session }, ...extra },
      });
      expect(done.status, JSON.stringify(done.body)).toBe(200);
      return done.body;
    };

    beforeAll(async () => {
      hs = await ClientApiHarness.start({
        database: setup.database,
        redis: setup.redis,
        config: { registration_shared_secret: SECRET, registration_requires_token: true, refreshable_access_token_lifetime: '10m' },
      });
      root = await sharedSecretUser(hs, 'root', true);
      await sharedSecretUser(hs, 'rita');
    });
    afterAll(async () => {
      await hs?.close();
    });

    it('gives a refresh token and an expiring access token only to clients that ask', async () => {
      const plain = await login('rita');
      expect(plain.status).toBe(200);
      expect(plain.body.refresh_token).toBeUndefined();
      expect(plain.body.expires_in_ms).toBeUndefined();
      expect(await hs.db.query('SELECT expires_ts FROM access_tokens WHERE token_hash = $1', [sha256(plain.body.access_token)])).toMatchObject({ rows: [{ expires_ts: null }] });

      const asked = await login('rita', { refresh_token: true });
      expect(asked.status).toBe(200);
      expect(asked.body.refresh_token).toMatch(/^syr_/);
      // refreshable_access_token_lifetime: 10m from the configuration.
      expect(asked.body.expires_in_ms).toBe(600_000);
      expect((await whoami(asked.body.access_token)).body.user_id).toBe(`@rita:${hs.serverName}`);
      // Only the hash of a refresh token is stored.
      const { rows } = await hs.db.query<{ token_hash: string }>('SELECT token_hash FROM refresh_tokens WHERE user_id = $1', [`@rita:${hs.serverName}`]);
      expect(rows.map((r) => r.token_hash)).toContain(sha256(asked.body.refresh_token));
      expect(rows.map((r) => r.token_hash)).not.toContain(asked.body.refresh_token);

      const declined = await login('rita', { refresh_token: false });
      expect(declined.body.refresh_token).toBeUndefined();
      const wrongType = await login('rita', { refresh_token: 'yes' });
      expect(wrongType.status).toBe(400);
    });

    it('rotates: the old pair lives until the new one is used, a lost answer can be retried', async () => {
      const first = (await login('rita', { refresh_token: true })).body;
      const second = await refresh(first.refresh_token);
      expect(second.status).toBe(200);
      expect(second.body).toEqual({ access_token: expect.any(String), refresh_token: expect.stringMatching(/^syr_/), expires_in_ms: 600_000 });
      expect(second.body.access_token).not.toBe(first.access_token);
      expect(second.body.refresh_token).not.toBe(first.refresh_token);
      // Nothing of the new pair used yet: the old access token still works (requests in flight).
      expect((await whoami(first.access_token)).status).toBe(200);

      // The answer was "lost": the client refreshes again with the old token; the unused pair is replaced.
      const retried = await refresh(first.refresh_token);
      expect(retried.status).toBe(200);
      const replaced = await whoami(second.body.access_token);
      expect(replaced.status).toBe(401);
      expect(replaced.body).toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', soft_logout: false });
      expect((await refresh(second.body.refresh_token)).body.errcode).toBe('M_UNKNOWN_TOKEN');

      // First use of the new access token: the old refresh token and its access token end.
      const used = await whoami(retried.body.access_token);
      expect(used.body).toMatchObject({ user_id: `@rita:${hs.serverName}`, device_id: first.device_id });
      expect((await whoami(first.access_token)).body).toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', soft_logout: false });
      const stale = await refresh(first.refresh_token);
      expect(stale.status).toBe(401);
      expect(stale.body.errcode).toBe('M_UNKNOWN_TOKEN');

      // Using the new refresh token (r0 too) also ends its predecessor, without the access token being used.
      const third = await refresh(retried.body.refresh_token, 'r0');
      expect(third.status).toBe(200);
      const fourth = await refresh(third.body.refresh_token);
      expect(fourth.status).toBe(200);
      expect((await whoami(retried.body.access_token)).status).toBe(401);
      expect((await refresh(retried.body.refresh_token)).status).toBe(401);
      // The third pair lives until the fourth is used.
      expect((await whoami(third.body.access_token)).status).toBe(200);
      expect((await whoami(fourth.body.access_token)).body.device_id).toBe(first.device_id);
      expect((await whoami(third.body.access_token)).status).toBe(401);
      expect((await refresh(third.body.refresh_token)).status).toBe(401);
    });

    it('answers an expired access token with soft_logout: true, and refreshing recovers the session', async () => {
      const pair = (await login('rita', { refresh_token: true })).body;
      // Past its expiry (set in the database so the test waits for nothing; the token was never used, so no cache holds it).
      await hs.db.query('UPDATE access_tokens SET expires_ts = $2 WHERE token_hash = $1', [sha256(pair.access_token), Date.now() - 1]);
      const expired = await whoami(pair.access_token);
      expect(expired.status).toBe(401);
      expect(expired.body).toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', soft_logout: true });
      // Also where authentication is optional.
      const summary = await hs.call('GET', `/_matrix/client/v1/room_summary/${encodeURIComponent('!nowhere:example.org')}`, { token: pair.access_token });
      expect(summary.body).toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', soft_logout: true });

      const renewed = await refresh(pair.refresh_token);
      expect(renewed.status).toBe(200);
      expect((await whoami(renewed.body.access_token)).body.device_id).toBe(pair.device_id);
      // The expired one is now gone for good.
      expect((await whoami(pair.access_token)).body).toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', soft_logout: false });
    });

    it('refuses unknown or missing refresh tokens', async () => {
      const unknown = await refresh('syr_not_a_real_token');
      expect(unknown.status).toBe(401);
      expect(unknown.body).toMatchObject({ errcode: 'M_UNKNOWN_TOKEN' });
      const missing = await hs.call('POST', '/_matrix/client/v3/refresh', { body: {} });
      expect(missing.status).toBe(400);
      expect(missing.body.errcode).toBe('M_MISSING_PARAM');
      // An access token is no refresh token.
      const pair = (await login('rita', { refresh_token: true })).body;
      expect((await refresh(pair.access_token)).status).toBe(401);
    });

    it('ends refresh tokens with logout, logout/all, device deletion and a new login to the device', async () => {
      const a = (await login('rita', { refresh_token: true })).body;
      expect((await hs.call('POST', '/_matrix/client/v3/logout', { token: a.access_token, body: {} })).status).toBe(200);
      expect((await refresh(a.refresh_token)).body.errcode).toBe('M_UNKNOWN_TOKEN');

      // A pair mid-rotation (old and new refresh tokens both alive) goes entirely.
      const b = (await login('rita', { refresh_token: true })).body;
      const b2 = (await refresh(b.refresh_token)).body;
      const c = (await login('rita', { refresh_token: true })).body;
      expect((await hs.call('POST', '/_matrix/client/v3/logout/all', { token: c.access_token, body: {} })).status).toBe(200);
      for (const token of [b.refresh_token, b2.refresh_token, c.refresh_token]) expect((await refresh(token)).status).toBe(401);
      for (const token of [b.access_token, b2.access_token]) expect((await whoami(token)).status).toBe(401);

      const keeper = (await login('rita')).body;
      const victim = (await login('rita', { refresh_token: true, device_id: 'REFRESHVICTIM' })).body;
      const challenge = await hs.call('DELETE', '/_matrix/client/v3/devices/REFRESHVICTIM', { token: keeper.access_token, body: {} });
      const deleted = await hs.call('DELETE', '/_matrix/client/v3/devices/REFRESHVICTIM', {
        token: keeper.access_token,
        body: { auth: { type: 'm.login.password', session: challenge.body.session, identifier: { type: 'm.id.user', user: 'rita' }, password: PASSWORD } },
      });
      expect(deleted.status, JSON.stringify(deleted.body)).toBe(200);
      expect((await refresh(victim.refresh_token)).status).toBe(401);

      const before = (await login('rita', { refresh_token: true, device_id: 'SAMEDEVICE' })).body;
      const after = (await login('rita', { refresh_token: true, device_id: 'SAMEDEVICE' })).body;
      expect((await refresh(before.refresh_token)).status).toBe(401);
      expect((await refresh(after.refresh_token)).status).toBe(200);
      const { rows } = await hs.db.query('SELECT 1 FROM refresh_tokens WHERE user_id = $1 AND device_id = $2', [`@rita:${hs.serverName}`, 'REFRESHVICTIM']);
      expect(rows).toHaveLength(0);
    });

    it('asks for a registration token first, checks it, and counts its uses', async () => {
      const challenge = await hs.call('POST', '/_matrix/client/v3/register', { body: { username: 'tina', password: PASSWORD } });
      expect(challenge.status).toBe(401);
      expect(challenge.body.flows).toEqual([{ stages: ['m.login.registration_token', 'm.login.dummy'] }]);

      // Without the token stage, dummy alone does not register.
      const dummyOnly = await hs.call('POST', '/_matrix/client/v3/register', {
        body: { username: 'tina', password: PASSWORD, auth: { type: 'm.login.dummy', session: challenge.body.session } },
      });
      expect(dummyOnly.status).toBe(401);
      expect(dummyOnly.body.completed).toEqual(['m.login.dummy']);

      const wrong = await hs.call('POST', '/_matrix/client/v3/register', {
        body: { username: 'tina', password: PASSWORD, auth: { type: 'm.login.registration_token', token: 'no-such-token', session: challenge.body.session } },
      });
      expect(wrong.status).toBe(401);
      expect(wrong.body).toMatchObject({ errcode: 'M_UNAUTHORIZED', session: challenge.body.session });

      const once = await newToken({ uses_allowed: 1 });
      expect(once).toMatchObject({ uses_allowed: 1, pending: 0, completed: 0, expiry_time: null });
      expect(once.token).toMatch(/^[A-Za-z0-9._~-]{16}$/);
      expect((await hs.call('GET', `/_matrix/client/v1/register/m.login.registration_token/validity?token=${once.token}`)).body).toEqual({ valid: true });

      // The stage reserves the token's only use: a second registration cannot take it meanwhile.
      const accepted = await hs.call('POST', '/_matrix/client/v3/register', {
        body: { username: 'tina', password: PASSWORD, auth: { type: 'm.login.registration_token', token: once.token, session: challenge.body.session } },
      });
      expect(accepted.status, JSON.stringify(accepted.body)).toBe(200);
      expect(accepted.body).toMatchObject({ user_id: `@tina:${hs.serverName}` });
      expect(await tokenInfo(once.token)).toMatchObject({ pending: 0, completed: 1 });
      expect((await hs.call('GET', `/_matrix/client/v1/register/m.login.registration_token/validity?token=${once.token}`)).body).toEqual({ valid: false });

      const other = await hs.call('POST', '/_matrix/client/v3/register', { body: { username: 'tom', password: PASSWORD } });
      const usedUp = await hs.call('POST', '/_matrix/client/v3/register', {
        body: { username: 'tom', password: PASSWORD, auth: { type: 'm.login.registration_token', token: once.token, session: other.body.session } },
      });
      expect(usedUp.body.errcode).toBe('M_UNAUTHORIZED');

      // pending: reserved by a session that has not finished.
      const twice = await newToken({ uses_allowed: 1, token: 'one-more' });
      const s1 = await hs.call('POST', '/_matrix/client/v3/register', { body: { username: 'uma', password: PASSWORD } });
      const r1 = await hs.call('POST', '/_matrix/client/v3/register', {
        body: { username: 'uma', password: PASSWORD, auth: { type: 'm.login.registration_token', token: twice.token, session: s1.body.session } },
      });
      expect(r1.status).toBe(401);
      expect(r1.body.completed).toEqual(['m.login.registration_token']);
      expect(await tokenInfo(twice.token)).toMatchObject({ pending: 1, completed: 0 });
      expect((await hs.call('GET', '/_matrix/client/v1/register/m.login.registration_token/validity?token=one-more')).body).toEqual({ valid: false });
      const s2 = await hs.call('POST', '/_matrix/client/v3/register', { body: { username: 'vic', password: PASSWORD } });
      const r2 = await hs.call('POST', '/_matrix/client/v3/register', {
        body: { username: 'vic', password: PASSWORD, auth: { type: 'm.login.registration_token', token: twice.token, session: s2.body.session } },
      });
      expect(r2.body.errcode).toBe('M_UNAUTHORIZED');
      // Repeating the stage with the same token in the same session takes no second use.
      const r1again = await hs.call('POST', '/_matrix/client/v3/register', {
        body: { username: 'uma', password: PASSWORD, auth: { type: 'm.login.registration_token', token: twice.token, session: s1.body.session } },
      });
      expect(r1again.status).toBe(401);
      expect(await tokenInfo(twice.token)).toMatchObject({ pending: 1, completed: 0 });
      const finished = await hs.call('POST', '/_matrix/client/v3/register', {
        body: { username: 'uma', password: PASSWORD, refresh_token: true, auth: { type: 'm.login.dummy', session: s1.body.session } },
      });
      expect(finished.status).toBe(200);
      // Registration with refresh_token: true gets a refresh token too.
      expect(finished.body).toMatchObject({ user_id: `@uma:${hs.serverName}`, refresh_token: expect.stringMatching(/^syr_/), expires_in_ms: 600_000 });
      expect((await refresh(finished.body.refresh_token)).status).toBe(200);
      expect(await tokenInfo(twice.token)).toMatchObject({ pending: 0, completed: 1 });

      // An abandoned session gives its pending use back when old sessions are swept.
      const spare = await newToken({ uses_allowed: 1 });
      const s3 = await hs.call('POST', '/_matrix/client/v3/register', { body: { username: 'wes', password: PASSWORD } });
      await hs.call('POST', '/_matrix/client/v3/register', {
        body: { username: 'wes', password: PASSWORD, auth: { type: 'm.login.registration_token', token: spare.token, session: s3.body.session } },
      });
      expect(await tokenInfo(spare.token)).toMatchObject({ pending: 1 });
      await hs.db.query('UPDATE uia_sessions SET created_ts = 0 WHERE session_id = $1', [s3.body.session]);
      await hs.call('POST', '/_matrix/client/v3/register', { body: { username: 'xena', password: PASSWORD } });
      expect(await tokenInfo(spare.token)).toMatchObject({ pending: 0, completed: 0 });
      await registerWithToken('xena', spare.token);
    });

    it('refuses expired tokens; validity needs a token', async () => {
      const soon = await newToken({ expiry_time: Date.now() + 3_600_000 });
      await hs.db.query('UPDATE registration_tokens SET expiry_time = $2 WHERE token = $1', [soon.token, Date.now() - 1]);
      expect((await hs.call('GET', `/_matrix/client/v1/register/m.login.registration_token/validity?token=${soon.token}`)).body).toEqual({ valid: false });
      const s = await hs.call('POST', '/_matrix/client/v3/register', { body: { username: 'yuri', password: PASSWORD } });
      const refused = await hs.call('POST', '/_matrix/client/v3/register', {
        body: { username: 'yuri', password: PASSWORD, auth: { type: 'm.login.registration_token', token: soon.token, session: s.body.session } },
      });
      expect(refused.body.errcode).toBe('M_UNAUTHORIZED');
      const missing = await hs.call('GET', '/_matrix/client/v1/register/m.login.registration_token/validity');
      expect(missing.status).toBe(400);
      expect(missing.body.errcode).toBe('M_MISSING_PARAM');
      const unknown = await hs.call('GET', '/_matrix/client/v1/register/m.login.registration_token/validity?token=unheard-of');
      expect(unknown.body).toEqual({ valid: false });
    });

    it("serves Synapse's admin API for registration tokens to server admins only", async () => {
      const rita = (await login('rita')).body;
      const refused = await hs.call('POST', '/_synapse/admin/v1/registration_tokens/new', { token: rita.access_token, body: {} });
      expect(refused.status).toBe(403);
      expect((await hs.call('GET', '/_synapse/admin/v1/registration_tokens', { token: rita.access_token })).status).toBe(403);
      expect((await hs.call('GET', '/_synapse/admin/v1/registration_tokens')).status).toBe(401);

      const named = await newToken({ token: 'abc.DEF_1~-', uses_allowed: 3 });
      expect(named).toEqual({ token: 'abc.DEF_1~-', uses_allowed: 3, pending: 0, completed: 0, expiry_time: null });
      const duplicate = await hs.call('POST', '/_synapse/admin/v1/registration_tokens/new', { token: root.access_token, body: { token: 'abc.DEF_1~-' } });
      expect(duplicate.status).toBe(400);
      for (const bad of [{ token: 'has space' }, { length: 0 }, { length: 65 }, { uses_allowed: -1 }, { expiry_time: 1 }]) {
        const reply = await hs.call('POST', '/_synapse/admin/v1/registration_tokens/new', { token: root.access_token, body: bad });
        expect(reply.status, JSON.stringify(bad)).toBe(400);
      }
      expect((await newToken({ length: 5 })).token).toHaveLength(5);

      const updated = await hs.call('PUT', '/_synapse/admin/v1/registration_tokens/abc.DEF_1~-', { token: root.access_token, body: { uses_allowed: 0 } });
      expect(updated.body).toMatchObject({ uses_allowed: 0 });
      const valid = await hs.call('GET', '/_synapse/admin/v1/registration_tokens?valid=true', { token: root.access_token });
      const invalid = await hs.call('GET', '/_synapse/admin/v1/registration_tokens?valid=false', { token: root.access_token });
      expect(valid.body.registration_tokens.map((t: { token: string }) => t.token)).not.toContain('abc.DEF_1~-');
      expect(invalid.body.registration_tokens.map((t: { token: string }) => t.token)).toContain('abc.DEF_1~-');
      expect((await hs.call('DELETE', '/_synapse/admin/v1/registration_tokens/abc.DEF_1~-', { token: root.access_token })).status).toBe(200);
      expect((await hs.call('GET', '/_synapse/admin/v1/registration_tokens/abc.DEF_1~-', { token: root.access_token })).status).toBe(404);
    });

    it('admin create-registration-token / list-registration-tokens make tokens that register users', async () => {
      const created = await admin(['create-registration-token', '--uses-allowed', '2', '--valid-for', '1d', '--access-token', root.access_token, hs.base]);
      expect(created.code, created.stderr).toBe(0);
      const token = created.stdout.trim();
      expect(token).toMatch(/^[A-Za-z0-9._~-]{16}$/);
      expect(await tokenInfo(token)).toMatchObject({ uses_allowed: 2, pending: 0, completed: 0, expiry_time: expect.any(Number) });
      await registerWithToken('zoe', token);

      // Logging in as the admin with -u/-p (the tool's session is logged out afterwards).
      const named = await admin(['create-registration-token', '--token', 'from-the-cli', '-u', 'root', '-p', PASSWORD, hs.base]);
      expect(named.code, named.stderr).toBe(0);
      expect(named.stdout).toBe('from-the-cli\n');
      await registerWithToken('zack', 'from-the-cli');

      const listed = await admin(['list-registration-tokens', '--valid', '--access-token', root.access_token, hs.base]);
      expect(listed.code, listed.stderr).toBe(0);
      const tokens = listed.stdout.trim().split('\n').map((line) => JSON.parse(line) as { token: string; completed: number });
      expect(tokens).toContainEqual(expect.objectContaining({ token, completed: 1 }));

      const notAdmin = await admin(['create-registration-token', '-u', 'rita', '-p', PASSWORD, hs.base]);
      expect(notAdmin.code).toBe(1);
      expect(notAdmin.stderr).toContain('M_FORBIDDEN');
      const usage = await admin(['create-registration-token', '--token', 'x', '--length', '3', '--access-token', 'y', hs.base]);
      expect(usage.code).toBe(2);
    });
  });
}

describe('refresh with JWT access tokens; validity with registration disabled (PGlite)', () => {
  let hs: ClientApiHarness;
  beforeAll(async () => {
    hs = await ClientApiHarness.start({
      database: 'pglite',
      redis: false,
      config: { registration_shared_secret: SECRET, enable_registration: false, refreshable_access_token_lifetime: '1s' },
      overrides: { accessTokenFormat: 'jwt', jwtAccessTokenSecret: 'access-token-signing-secret-of-32-chars' },
    });
    await sharedSecretUser(hs, 'jules');
  });
  afterAll(async () => {
    await hs?.close();
  });

  it('answers the validity check with 403 M_FORBIDDEN when registration is disabled', async () => {
    const reply = await hs.call('GET', '/_matrix/client/v1/register/m.login.registration_token/validity?token=anything');
    expect(reply.status).toBe(403);
    expect(reply.body.errcode).toBe('M_FORBIDDEN');
  });

  it('issues JWTs that carry their expiry, with opaque refresh tokens that rotate them', async () => {
    const login = await hs.call('POST', '/_matrix/client/v3/login', {
      body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'jules' }, password: PASSWORD, refresh_token: true },
    });
    expect(login.status).toBe(200);
    expect(login.body.expires_in_ms).toBe(1000);
    expect(login.body.refresh_token).toMatch(/^syr_/);
    const claims = JSON.parse(Buffer.from(login.body.access_token.split('.')[1], 'base64url').toString()) as { exp?: number };
    expect(typeof claims.exp).toBe('number');

    // Wait (bounded) for the 1 s lifetime to pass; the answer then is a soft logout.
    let expired: { status: number; body: any } | undefined;
    for (let i = 0; i < 40; i++) {
      const reply = await hs.call('GET', '/_matrix/client/v3/account/whoami', { token: login.body.access_token });
      if (reply.status === 401) {
        expired = reply;
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(expired?.body).toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', soft_logout: true });

    const renewed = await hs.call('POST', '/_matrix/client/v3/refresh', { body: { refresh_token: login.body.refresh_token } });
    expect(renewed.status).toBe(200);
    expect(renewed.body.access_token.split('.')).toHaveLength(3);
    const me = await hs.call('GET', '/_matrix/client/v3/account/whoami', { token: renewed.body.access_token });
    // It may itself expire within a second on a slow machine: then it is a soft logout, never an unknown token.
    if (me.status === 200) expect(me.body.user_id).toBe(`@jules:${hs.serverName}`);
    else expect(me.body).toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', soft_logout: true });
    // Once the new pair was used, the old expired JWT is revoked: no longer a soft logout.
    const again = await hs.call('POST', '/_matrix/client/v3/refresh', { body: { refresh_token: renewed.body.refresh_token } });
    expect(again.status).toBe(200);
    expect((await hs.call('GET', '/_matrix/client/v3/account/whoami', { token: login.body.access_token })).body).toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', soft_logout: false });
    expect((await hs.call('POST', '/_matrix/client/v3/refresh', { body: { refresh_token: login.body.refresh_token } })).status).toBe(401);

    // A login without refresh_token keeps a JWT without exp that never expires.
    const plain = await hs.call('POST', '/_matrix/client/v3/login', { body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'jules' }, password: PASSWORD } });
    const plainClaims = JSON.parse(Buffer.from(plain.body.access_token.split('.')[1], 'base64url').toString()) as { exp?: number };
    expect(plainClaims.exp).toBeUndefined();
    expect(plain.body.expires_in_ms).toBeUndefined();
  });
});

describe('configuration: registration_requires_token and refreshable_access_token_lifetime', () => {
  const build = (raw: Record<string, unknown>, env: Record<string, string> = {}) => buildConfig(raw, { env, cwd: '/tmp' });

  it('defaults to no token needed and lets the client-api default (5 minutes) apply', () => {
    const c = build({});
    expect(c.registration.registrationRequiresToken).toBe(false);
    expect(c.clientApi.refreshableAccessTokenLifetimeMs).toBeUndefined();
  });

  it('reads both from the file, the switch also from REGISTRATION_REQUIRES_TOKEN', () => {
    const c = build({ registration_requires_token: true, refreshable_access_token_lifetime: '1h' });
    expect(c.registration.registrationRequiresToken).toBe(true);
    expect(c.clientApi.refreshableAccessTokenLifetimeMs).toBe(3_600_000);
    expect(build({ refreshable_access_token_lifetime: 90_000 }).clientApi.refreshableAccessTokenLifetimeMs).toBe(90_000);
    expect(build({ registration_requires_token: true }, { REGISTRATION_REQUIRES_TOKEN: 'false' }).registration.registrationRequiresToken).toBe(false);
  });

  it('refuses bad values, naming the field', () => {
    expect(() => build({ registration_requires_token: 'yes' })).toThrow(/registration_requires_token/);
    expect(() => build({ refreshable_access_token_lifetime: 'soon' })).toThrow(/refreshable_access_token_lifetime/);
  });
});

describe.skipIf(!services.postgres || !services.nats || !services.redis)('refresh across two client-api replicas (PostgreSQL + NATS + Redis)', () => {
  let replicas: ClientApiReplicas | undefined;
  let a: string;
  let b: string;

  beforeAll(async () => {
    replicas = await startClientApiReplicas('refresh-replicas', { registration_shared_secret: SECRET });
    a = replicas.a;
    b = replicas.b;
  });
  afterAll(async () => {
    await replicas?.close();
  });

  const call = async (base: string, method: string, path: string, token?: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = (await res.json()) as any;
    checkAgainstSpec(method, path, res.status, json);
    return { status: res.status, body: json };
  };

  it('a pair replaced on one replica is refused at once by the other, which had cached it', async () => {
    const { body: nonce } = await call(a, 'GET', '/_synapse/admin/v1/register');
    const mac = createHmac('sha1', SECRET).update(`${nonce.nonce}\x00nora\x00${PASSWORD}\x00notadmin`).digest('hex');
    expect((await call(a, 'POST', '/_synapse/admin/v1/register', undefined, { nonce: nonce.nonce, username: 'nora', password: PASSWORD, mac })).status).toBe(200);
    const login = await call(a, 'POST', '/_matrix/client/v3/login', undefined, { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'nora' }, password: PASSWORD, refresh_token: true });
    expect(login.status).toBe(200);
    // Replica B trusts (and caches) the first access token.
    expect((await call(b, 'GET', '/_matrix/client/v3/account/whoami', login.body.access_token)).status).toBe(200);

    // Refreshed on B, the new access token first used on A: the old pair ends, on B too.
    const renewed = await call(b, 'POST', '/_matrix/client/v3/refresh', undefined, { refresh_token: login.body.refresh_token });
    expect(renewed.status).toBe(200);
    expect((await call(a, 'GET', '/_matrix/client/v3/account/whoami', renewed.body.access_token)).status).toBe(200);
    const old = await call(b, 'GET', '/_matrix/client/v3/account/whoami', login.body.access_token);
    expect(old.status).toBe(401);
    expect(old.body).toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', soft_logout: false });
    expect((await call(a, 'POST', '/_matrix/client/v3/refresh', undefined, { refresh_token: login.body.refresh_token })).status).toBe(401);

    // Logout on A ends the refresh token for B as well.
    expect((await call(b, 'GET', '/_matrix/client/v3/account/whoami', renewed.body.access_token)).status).toBe(200);
    expect((await call(a, 'POST', '/_matrix/client/v3/logout', renewed.body.access_token, {})).status).toBe(200);
    expect((await call(b, 'GET', '/_matrix/client/v3/account/whoami', renewed.body.access_token)).status).toBe(401);
    expect((await call(b, 'POST', '/_matrix/client/v3/refresh', undefined, { refresh_token: renewed.body.refresh_token })).status).toBe(401);
  });
});
