/**
 * Smaller Client-Server operations Element calls: the user directory, TURN credentials,
 * third-party lookups, OpenID tokens, /.well-known/matrix/support and admin whois, over real
 * HTTP against PostgreSQL and PGlite. Room-bound ones (reports, timestamp_to_event, the
 * OpenID exchange over federation) are in test/client-api-rooms/small-room-endpoints.test.ts.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConfig, ConfigError } from '@tessera/config';
import { services } from '@tessera/testing';
import { ClientApiHarness } from './harness.js';

const setups = [
  { name: 'PostgreSQL + Redis', database: 'postgres' as const, redis: true, available: services.postgres && services.redis },
  { name: 'PGlite + in-memory store', database: 'pglite' as const, redis: false, available: true },
];

type Login = { user_id: string; access_token: string; device_id: string };
const enc = encodeURIComponent;

const support = {
  contacts: [
    { role: 'm.role.admin', matrix_id: '@admin:example.org', email_address: 'admin@example.org' },
    { role: 'm.role.security', email_address: 'security@example.org' },
  ],
  support_page: 'https://example.org/support',
};

for (const setup of setups) {
  describe.skipIf(!setup.available)(`small endpoints over HTTP (${setup.name})`, () => {
    let hs: ClientApiHarness;
    let alice: Login;
    let bob: Login;
    let carol: Login;
    let dave: Login;
    let eve: Login;
    let frank: Login;
    const off = { perSecond: 0, burst: 0 };

    beforeAll(async () => {
      hs = await ClientApiHarness.start({
        database: setup.database,
        redis: setup.redis,
        config: { well_known: { support } },
        overrides: { rateLimit: { perUser: off, perIp: off } },
      });
      [alice, bob, carol, dave, eve, frank] = await Promise.all(['diralice', 'dirbob', 'dircarol', 'dirdave', 'direve', 'dirfrank'].map((name) => hs.register(name)));
      // alice and bob share a private room; carol is in a public room alice is not in;
      // eve and frank share a private room of their own; dave is in no room.
      await hs.sharedRoom(alice, bob);
      await hs.sharedRoom(eve, frank);
      const lobby = await hs.call('POST', '/_matrix/client/v3/createRoom', { token: carol.access_token, body: { preset: 'public_chat' } });
      expect(lobby.status).toBe(200);
      const setName = await hs.call('PUT', `/_matrix/client/v3/profile/${enc(bob.user_id)}/displayname`, { token: bob.access_token, body: { displayname: 'Bobby Tables' } });
      expect(setName.status).toBe(200);
      const setAvatar = await hs.call('PUT', `/_matrix/client/v3/profile/${enc(bob.user_id)}/avatar_url`, { token: bob.access_token, body: { avatar_url: 'mxc://example.org/bobby' } });
      expect(setAvatar.status).toBe(200);
    }, 120_000);
    afterAll(async () => {
      await hs?.close();
    });

    const search = (who: Login, body: unknown) => hs.call('POST', '/_matrix/client/v3/user_directory/search', { token: who.access_token, body });
    const ids = (reply: { body: { results: Array<{ user_id: string }> } }) => reply.body.results.map((r) => r.user_id).sort();

    describe('POST /user_directory/search', () => {
      it('finds users who share a room with the searcher or are in public rooms, never others', async () => {
        const byBob = await search(alice, { search_term: 'dirbob' });
        expect(byBob.status).toBe(200);
        expect(byBob.body).toEqual({ results: [{ user_id: bob.user_id, display_name: 'Bobby Tables', avatar_url: 'mxc://example.org/bobby' }], limited: false });
        expect(ids(await search(alice, { search_term: 'dircarol' }))).toEqual([carol.user_id]);
        expect((await search(alice, { search_term: 'dirdave' })).body).toEqual({ results: [], limited: false });
        expect((await search(alice, { search_term: 'direve' })).body).toEqual({ results: [], limited: false });
        // eve sees frank (shared room) and carol (public room), not alice or bob; nor herself: she
        // is in no public room (as Synapse, Complement TestRoomSpecificUsernameChange).
        expect(ids(await search(eve, { search_term: 'dir', limit: 50 }))).toEqual([carol.user_id, frank.user_id].sort());
        // In a public room, the searcher finds themselves.
        expect(ids(await search(carol, { search_term: 'dircarol' }))).toEqual([carol.user_id]);
      });

      it('matches word prefixes of the localpart and display name, case-insensitively', async () => {
        expect(ids(await search(alice, { search_term: 'TAB' }))).toEqual([bob.user_id]);
        expect(ids(await search(alice, { search_term: 'bobby tab' }))).toEqual([bob.user_id]);
        expect(ids(await search(alice, { search_term: 'DirBo' }))).toEqual([bob.user_id]);
        // A term inside a word is not a prefix of it.
        expect((await search(alice, { search_term: 'ables' })).body.results).toEqual([]);
        // Every term must match.
        expect((await search(alice, { search_term: 'bobby carol' })).body.results).toEqual([]);
      });

      it('ranks users sharing a room first and reports a truncated list with limited', async () => {
        const all = await search(alice, { search_term: 'dir' });
        // bob (shared room), carol (public room): the shared one ranks first.
        expect(all.body.limited).toBe(false);
        expect(all.body.results.map((r: { user_id: string }) => r.user_id).slice(-1)).toEqual([carol.user_id]);
        const one = await search(alice, { search_term: 'dir', limit: 1 });
        expect(one.body.results).toHaveLength(1);
        expect(one.body.limited).toBe(true);
        expect((await search(alice, { search_term: 'dir', limit: 0 })).body).toEqual({ results: [], limited: false });
        expect((await search(alice, { search_term: '  ' })).body).toEqual({ results: [], limited: false });
      });

      it('refuses bad requests', async () => {
        expect((await search(alice, {})).body.errcode).toBe('M_MISSING_PARAM');
        const badTerm = await search(alice, { search_term: 7 });
        expect([badTerm.status, badTerm.body.errcode]).toEqual([400, 'M_BAD_JSON']);
        expect((await search(alice, { search_term: 'x', limit: 'ten' })).body.errcode).toBe('M_BAD_JSON');
        expect((await search(alice, { search_term: 'x', limit: -1 })).body.errcode).toBe('M_INVALID_PARAM');
        const noToken = await hs.call('POST', '/_matrix/client/v3/user_directory/search', { body: { search_term: 'dir' } });
        expect([noToken.status, noToken.body.errcode]).toEqual([401, 'M_MISSING_TOKEN']);
      });
    });

    it('GET /voip/turnServer answers {} without a TURN server (as Synapse), and needs a token', async () => {
      // Read without the harness's schema check: the spec's 200 schema describes configured
      // credentials, and Synapse's answer for "no TURN server" is an empty object.
      const response = await fetch(`${hs.base}/_matrix/client/v3/voip/turnServer`, { headers: { authorization: `Bearer ${alice.access_token}` } });
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({});
      const noToken = await hs.call('GET', '/_matrix/client/v3/voip/turnServer');
      expect([noToken.status, noToken.body.errcode]).toEqual([401, 'M_MISSING_TOKEN']);
    });

    it('third-party lookups: no protocols, 404 for a protocol, empty lookups', async () => {
      const as = { token: alice.access_token };
      expect(await hs.call('GET', '/_matrix/client/v3/thirdparty/protocols', as)).toMatchObject({ status: 200, body: {} });
      expect((await hs.call('GET', '/_matrix/client/v3/thirdparty/protocols', as)).body).toEqual({});
      const irc = await hs.call('GET', '/_matrix/client/v3/thirdparty/protocol/irc', as);
      expect([irc.status, irc.body.errcode]).toEqual([404, 'M_NOT_FOUND']);
      expect(await hs.call('GET', '/_matrix/client/v3/thirdparty/location/irc?network=libera', as)).toMatchObject({ status: 200, body: [] });
      expect(await hs.call('GET', '/_matrix/client/v3/thirdparty/user/im.vector.protocol.sip_native?lookup=1', as)).toMatchObject({ status: 200, body: [] });
      expect(await hs.call('GET', `/_matrix/client/v3/thirdparty/location?alias=${enc('#a:example.org')}`, as)).toMatchObject({ status: 200, body: [] });
      expect(await hs.call('GET', `/_matrix/client/v3/thirdparty/user?userid=${enc(bob.user_id)}`, as)).toMatchObject({ status: 200, body: [] });
      const noAlias = await hs.call('GET', '/_matrix/client/v3/thirdparty/location', as);
      expect([noAlias.status, noAlias.body.errcode]).toEqual([400, 'M_MISSING_PARAM']);
      const noUser = await hs.call('GET', '/_matrix/client/v3/thirdparty/user', as);
      expect([noUser.status, noUser.body.errcode]).toEqual([400, 'M_MISSING_PARAM']);
      expect((await hs.call('GET', '/_matrix/client/v3/thirdparty/protocols')).status).toBe(401);
    });

    it('POST /user/{userId}/openid/request_token issues a one-hour token for oneself only, stored hashed', async () => {
      const path = `/_matrix/client/v3/user/${enc(alice.user_id)}/openid/request_token`;
      const issued = await hs.call('POST', path, { token: alice.access_token, body: {} });
      expect(issued.status).toBe(200);
      expect(issued.body).toEqual({ access_token: expect.any(String), token_type: 'Bearer', matrix_server_name: hs.serverName, expires_in: 3600 });
      const { rows } = await hs.db.query<{ user_id: string; expires_ts: string | number }>('SELECT user_id, expires_ts FROM openid_tokens WHERE token_hash = $1', [
        createHash('sha256').update(issued.body.access_token).digest('hex'),
      ]);
      expect(rows.map((r) => r.user_id)).toEqual([alice.user_id]);
      expect(Number(rows[0]!.expires_ts) - Date.now()).toBeGreaterThan(3_590_000);
      // The OpenID token is no access token.
      expect((await hs.call('GET', '/_matrix/client/v3/account/whoami', { token: issued.body.access_token })).body.errcode).toBe('M_UNKNOWN_TOKEN');

      const before = (await hs.db.query('SELECT token_hash FROM openid_tokens')).rows.length;
      const other = await hs.call('POST', `/_matrix/client/v3/user/${enc(bob.user_id)}/openid/request_token`, { token: alice.access_token, body: {} });
      expect([other.status, other.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
      const notObject = await hs.call('POST', path, { token: alice.access_token, body: [1] });
      expect([notObject.status, notObject.body.errcode]).toEqual([400, 'M_BAD_JSON']);
      const badId = await hs.call('POST', '/_matrix/client/v3/user/alice/openid/request_token', { token: alice.access_token, body: {} });
      expect([badId.status, badId.body.errcode]).toEqual([400, 'M_INVALID_PARAM']);
      expect((await hs.call('POST', path, { body: {} })).status).toBe(401);
      expect((await hs.db.query('SELECT token_hash FROM openid_tokens')).rows.length).toBe(before);
    });

    it('serves /.well-known/matrix/support as configured, without a token', async () => {
      const reply = await hs.call('GET', '/.well-known/matrix/support');
      expect(reply.status).toBe(200);
      expect(reply.body).toEqual(support);
    });

    it('GET /admin/whois/{userId}: oneself or a server admin; devices with last seen IP and time', async () => {
      const self = await hs.call('GET', `/_matrix/client/v3/admin/whois/${enc(dave.user_id)}`, { token: dave.access_token });
      expect(self.status).toBe(200);
      expect(self.body.user_id).toBe(dave.user_id);
      expect(Object.keys(self.body.devices)).toEqual([dave.device_id]);
      const [connection] = self.body.devices[dave.device_id].sessions[0].connections;
      expect(connection).toEqual({ ip: expect.stringMatching(/127\.0\.0\.1/), last_seen: expect.any(Number) });

      const refused = await hs.call('GET', `/_matrix/client/v3/admin/whois/${enc(dave.user_id)}`, { token: eve.access_token });
      expect([refused.status, refused.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
      await hs.db.query('UPDATE accounts SET is_admin = true WHERE user_id = $1', [eve.user_id]);
      const asAdmin = await hs.call('GET', `/_matrix/client/v3/admin/whois/${enc(dave.user_id)}`, { token: eve.access_token });
      expect(asAdmin.status).toBe(200);
      expect(Object.keys(asAdmin.body.devices)).toEqual([dave.device_id]);
      const remote = await hs.call('GET', `/_matrix/client/v3/admin/whois/${enc('@someone:elsewhere.example')}`, { token: eve.access_token });
      expect([remote.status, remote.body.errcode]).toEqual([400, 'M_INVALID_PARAM']);
      const unknown = await hs.call('GET', `/_matrix/client/v3/admin/whois/${enc(`@nobody:${hs.serverName}`)}`, { token: eve.access_token });
      expect(unknown.body).toEqual({ user_id: `@nobody:${hs.serverName}`, devices: {} });
      expect((await hs.call('GET', `/_matrix/client/v3/admin/whois/${enc(dave.user_id)}`)).status).toBe(401);
    });
  });
}

describe('well_known.support configuration', () => {
  const build = (support: unknown) => buildConfig({ well_known: { support } }, { env: {}, cwd: '/tmp' });
  const problem = (support: unknown) => {
    try {
      build(support);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error('expected a ConfigError');
  };

  it('reads contacts and the support page', () => {
    expect(build(support).wellKnown.support).toEqual({
      contacts: [
        { role: 'm.role.admin', matrixId: '@admin:example.org', emailAddress: 'admin@example.org' },
        { role: 'm.role.security', matrixId: undefined, emailAddress: 'security@example.org' },
      ],
      supportPage: 'https://example.org/support',
    });
    expect(build({ support_page: 'https://example.org/help' }).wellKnown.support).toEqual({ contacts: undefined, supportPage: 'https://example.org/help' });
    expect(buildConfig({}, { env: {}, cwd: '/tmp' }).wellKnown.support).toBeUndefined();
  });

  it('refuses what the spec does not allow', () => {
    expect(problem({})).toMatch(/well_known\.support.*contacts or support_page/);
    expect(problem({ contacts: [] })).toMatch(/at least one contact/);
    expect(problem({ contacts: [{ matrix_id: '@a:b.c' }] })).toMatch(/contacts\[0\]\.role/);
    expect(problem({ contacts: [{ role: 'm.role.admin' }] })).toMatch(/matrix_id or email_address/);
    expect(problem({ contacts: [{ role: 'm.role.admin', matrix_id: 'admin' }] })).toMatch(/matrix_id/);
    expect(problem({ contacts: [{ role: 'm.role.admin', email_address: 'nope' }] })).toMatch(/email_address/);
    expect(problem({ support_page: 'ftp://example.org' })).toMatch(/support_page/);
    expect(problem({ contacts: [{ role: 'm.role.admin', phone: '1' }] })).toMatch(/phone/);
  });
});
