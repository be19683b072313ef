import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientApiHarness } from './harness.js';

const secret = 'a-long-shared-jwt-secret-for-tests';

describe('JWT login and JWT access tokens (PGlite + in-memory store)', () => {
  let hs: ClientApiHarness;
  beforeAll(async () => {
    hs = await ClientApiHarness.start({
      database: 'pglite',
      redis: false,
      overrides: {
        jwtLogin: { secret, algorithm: 'HS256', subjectClaim: 'sub', issuer: 'idp.example' },
        accessTokenFormat: 'jwt',
        jwtAccessTokenSecret: 'access-token-signing-secret',
      },
    });
  });
  afterAll(async () => {
    await hs?.close();
  });

  const jwt = (sub: string, issuer = 'idp.example', key = secret) =>
    new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuer(issuer).setIssuedAt().setExpirationTime('5m').sign(new TextEncoder().encode(key));

  it('logs in with org.matrix.login.jwt, creating the account on first use', async () => {
    const flows = await hs.call('GET', '/_matrix/client/v3/login');
    expect(flows.body.flows.map((f: { type: string }) => f.type)).toContain('org.matrix.login.jwt');
    const login = await hs.call('POST', '/_matrix/client/v3/login', { body: { type: 'org.matrix.login.jwt', token: await jwt('dana') } });
    expect(login.status).toBe(200);
    expect(login.body.user_id).toBe(`@dana:${hs.serverName}`);
    // The access token is a JWT of ours.
    expect(login.body.access_token.split('.')).toHaveLength(3);
    const whoami = await hs.call('GET', '/_matrix/client/v3/account/whoami', { token: login.body.access_token });
    expect(whoami.body.user_id).toBe(`@dana:${hs.serverName}`);

    for (const bad of [await jwt('dana', 'evil.example'), await jwt('dana', 'idp.example', 'wrong-secret-wrong-secret-wrong'), 'not.a.jwt']) {
      const refused = await hs.call('POST', '/_matrix/client/v3/login', { body: { type: 'org.matrix.login.jwt', token: bad } });
      expect(refused).toMatchObject({ status: 403, body: { errcode: 'M_FORBIDDEN' } });
    }
  });

  it('revokes JWT access tokens on logout', async () => {
    const a = await hs.call('POST', '/_matrix/client/v3/login', { body: { type: 'org.matrix.login.jwt', token: await jwt('erin') } });
    const b = await hs.call('POST', '/_matrix/client/v3/login', { body: { type: 'org.matrix.login.jwt', token: await jwt('erin') } });
    expect((await hs.call('POST', '/_matrix/client/v3/logout', { token: a.body.access_token })).status).toBe(200);
    expect((await hs.call('GET', '/_matrix/client/v3/account/whoami', { token: a.body.access_token })).body.errcode).toBe('M_UNKNOWN_TOKEN');
    expect((await hs.call('GET', '/_matrix/client/v3/account/whoami', { token: b.body.access_token })).status).toBe(200);
    // A token signed with another key is refused.
    const forged = await new SignJWT({ device_id: b.body.device_id })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(b.body.user_id)
      .setJti('x')
      .setIssuer(hs.serverName)
      .setAudience('tessera-client-api')
      .sign(new TextEncoder().encode('not-the-server-secret'));
    expect((await hs.call('GET', '/_matrix/client/v3/account/whoami', { token: forged })).body.errcode).toBe('M_UNKNOWN_TOKEN');
    expect((await hs.call('POST', '/_matrix/client/v3/logout/all', { token: b.body.access_token })).status).toBe(200);
    expect((await hs.call('GET', '/_matrix/client/v3/account/whoami', { token: b.body.access_token })).body.errcode).toBe('M_UNKNOWN_TOKEN');
  });
});

describe('closed registration and reserved namespaces (PGlite + in-memory store)', () => {
  let hs: ClientApiHarness;
  beforeAll(async () => {
    hs = await ClientApiHarness.start({ database: 'pglite', redis: false, config: { enable_registration: false } });
  });
  afterAll(async () => {
    await hs?.close();
  });

  it('refuses registration when closed, and shared-secret registration when no secret is set', async () => {
    const reply = await hs.call('POST', '/_matrix/client/v3/register', { body: { username: 'frank', password: 'pw' } });
    expect(reply).toMatchObject({ status: 403, body: { errcode: 'M_FORBIDDEN' } });
    expect((await hs.call('GET', '/_synapse/admin/v1/register')).status).toBe(400);
  });
});

describe('exclusive namespaces (PGlite + in-memory store)', () => {
  let hs: ClientApiHarness;
  beforeAll(async () => {
    hs = await ClientApiHarness.start({ database: 'pglite', redis: false, overrides: { exclusiveUserNamespaces: ['^@irc_.*'] } });
  });
  afterAll(async () => {
    await hs?.close();
  });

  it('answers M_EXCLUSIVE for an application service namespace', async () => {
    const reply = await hs.call('POST', '/_matrix/client/v3/register', { body: { username: 'irc_bob', password: 'pw' } });
    expect(reply).toMatchObject({ status: 400, body: { errcode: 'M_EXCLUSIVE' } });
  });
});

describe('client API settings from the YAML configuration, without code overrides (PGlite + in-memory store)', () => {
  let hs: ClientApiHarness;
  let open: ClientApiHarness;
  beforeAll(async () => {
    hs = await ClientApiHarness.start({
      database: 'pglite',
      redis: false,
      config: {
        jwt_login: { secret, issuer: 'idp.example' },
        access_tokens: { format: 'jwt', jwt_secret: 'a-yaml-configured-access-token-secret' },
        // A bucket that refills slowly: the third rate-limited call in a row is refused.
        rate_limits: { per_user: { per_second: 0.01, burst: 2 }, per_ip: { per_second: 0 } },
      },
    });
    open = await ClientApiHarness.start({ database: 'pglite', redis: false, config: { rate_limits: { enabled: false, per_user: { per_second: 0.01, burst: 1 } } } });
  });
  afterAll(async () => {
    await hs?.close();
    await open?.close();
  });

  it('offers JWT login, issues JWT access tokens and limits per user as configured', async () => {
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('gina').setIssuer('idp.example').setExpirationTime('5m').sign(new TextEncoder().encode(secret));
    const login = await hs.call('POST', '/_matrix/client/v3/login', { body: { type: 'org.matrix.login.jwt', token } });
    expect(login.status, JSON.stringify(login.body)).toBe(200);
    expect(login.body.access_token.split('.')).toHaveLength(3);
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await hs.call('GET', '/_matrix/client/v3/account/whoami', { token: login.body.access_token })).status);
    expect(statuses).toEqual([200, 200, 429, 429]);
  });

  it('applies no limit with rate_limits.enabled false', async () => {
    const alice = await open.register('alice');
    for (let i = 0; i < 5; i++) expect((await open.call('GET', '/_matrix/client/v3/account/whoami', { token: alice.access_token })).status).toBe(200);
  });
});
