import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '@tessera/testing';
import { ClientApiHarness } from './harness.js';

const setups = [
  { name: 'PostgreSQL + Redis', database: 'postgres' as const, redis: true, available: services.postgres && services.redis },
  { name: 'PGlite + in-memory store', database: 'pglite' as const, redis: false, available: true },
];

for (const setup of setups) {
  describe.skipIf(!setup.available)(`accounts over HTTP (${setup.name})`, () => {
    let hs: ClientApiHarness;
    beforeAll(async () => {
      hs = await ClientApiHarness.start({ database: setup.database, redis: setup.redis, config: { registration_shared_secret: 'shh' } });
    });
    afterAll(async () => {
      await hs?.close();
    });

    it('registers with the m.login.dummy flow, validating usernames', async () => {
      const challenge = await hs.call('POST', '/_matrix/client/v3/register', { body: { username: 'alice', password: 'pw-alice' } });
      expect(challenge.status).toBe(401);
      expect(challenge.body.flows).toEqual([{ stages: ['m.login.dummy'] }]);
      expect(challenge.body.params).toEqual({});
      expect(typeof challenge.body.session).toBe('string');

      const done = await hs.call('POST', '/_matrix/client/v3/register', {
        body: { username: 'alice', password: 'pw-alice', device_id: 'ALICEDEV', initial_device_display_name: 'Alice phone', auth: { type: 'm.login.dummy', session: challenge.body.session } },
      });
      expect(done.status).toBe(200);
      expect(done.body).toMatchObject({ user_id: `@alice:${hs.serverName}`, device_id: 'ALICEDEV' });
      expect(done.body.access_token).toMatch(/^syt_/);

      const taken = await hs.call('POST', '/_matrix/client/v3/register', { body: { username: 'Alice', password: 'x' } });
      expect(taken.status).toBe(400);
      expect(taken.body.errcode).toBe('M_USER_IN_USE');

      for (const bad of ['al ice', 'al!ce', '_alice', '12345', 'é']) {
        const reply = await hs.call('POST', '/_matrix/client/v3/register', { body: { username: bad, password: 'x' } });
        expect(reply.status, bad).toBe(400);
        expect(reply.body.errcode, bad).toBe('M_INVALID_USERNAME');
      }

      const available = await hs.call('GET', '/_matrix/client/v3/register/available?username=bob');
      expect(available).toMatchObject({ status: 200, body: { available: true } });
      const unavailable = await hs.call('GET', '/_matrix/client/v3/register/available?username=alice');
      expect(unavailable.body.errcode).toBe('M_USER_IN_USE');

      const guest = await hs.call('POST', '/_matrix/client/v3/register?kind=guest', { body: {} });
      expect(guest.status).toBe(403);
      expect(guest.body.errcode).toBe('M_GUEST_ACCESS_FORBIDDEN');
    });

    it('inhibit_login registers without a session; the legacy r0 prefix works', async () => {
      const first = await hs.call('POST', '/_matrix/client/r0/register', { body: { username: 'quiet', password: 'pw' } });
      const done = await hs.call('POST', '/_matrix/client/r0/register', {
        body: { username: 'quiet', password: 'pw', inhibit_login: true, auth: { type: 'm.login.dummy', session: first.body.session } },
      });
      expect(done.status).toBe(200);
      expect(done.body).toEqual({ user_id: `@quiet:${hs.serverName}` });
    });

    it('logs in with m.login.password (identifier and legacy user), whoami, logout', async () => {
      const flows = await hs.call('GET', '/_matrix/client/v3/login');
      expect(flows.body.flows.map((f: { type: string }) => f.type)).toEqual(['m.login.password', 'm.login.token']);

      const login = await hs.login('alice', 'pw-alice', { initial_device_display_name: 'laptop' });
      expect(login.user_id).toBe(`@alice:${hs.serverName}`);
      const legacy = await hs.call('POST', '/_matrix/client/v3/login', { body: { type: 'm.login.password', user: `@alice:${hs.serverName}`, password: 'pw-alice' } });
      expect(legacy.status).toBe(200);

      const wrong = await hs.call('POST', '/_matrix/client/v3/login', { body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'alice' }, password: 'nope' } });
      expect(wrong.status).toBe(403);
      expect(wrong.body.errcode).toBe('M_FORBIDDEN');

      const whoami = await hs.call('GET', '/_matrix/client/v3/account/whoami', { token: login.access_token });
      expect(whoami.body).toEqual({ user_id: login.user_id, device_id: login.device_id, is_guest: false });
      const viaQuery = await hs.call('GET', `/_matrix/client/v3/account/whoami?access_token=${encodeURIComponent(legacy.body.access_token)}`);
      expect(viaQuery.body.device_id).toBe(legacy.body.device_id);

      const missing = await hs.call('GET', '/_matrix/client/v3/account/whoami');
      expect(missing.status).toBe(401);
      expect(missing.body.errcode).toBe('M_MISSING_TOKEN');

      expect((await hs.call('POST', '/_matrix/client/v3/logout', { token: login.access_token })).status).toBe(200);
      const after = await hs.call('GET', '/_matrix/client/v3/account/whoami', { token: login.access_token });
      expect(after.status).toBe(401);
      expect(after.body).toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', soft_logout: false });
      // The other session is untouched; its device is still listed, the logged-out one is gone.
      const devices = await hs.call('GET', '/_matrix/client/v3/devices', { token: legacy.body.access_token });
      const ids = devices.body.devices.map((d: { device_id: string }) => d.device_id);
      expect(ids).toContain(legacy.body.device_id);
      expect(ids).not.toContain(login.device_id);
    });

    it('logout/all ends every session', async () => {
      const one = await hs.login('alice', 'pw-alice');
      const two = await hs.login('alice', 'pw-alice');
      expect((await hs.call('POST', '/_matrix/client/v3/logout/all', { token: one.access_token })).status).toBe(200);
      for (const token of [one.access_token, two.access_token]) {
        expect((await hs.call('GET', '/_matrix/client/v3/account/whoami', { token })).body.errcode).toBe('M_UNKNOWN_TOKEN');
      }
    });

    it('m.login.token from /v1/login/get_token signs in once', async () => {
      const session = await hs.login('alice', 'pw-alice');
      const challenge = await hs.call('POST', '/_matrix/client/v1/login/get_token', { token: session.access_token, body: {} });
      expect(challenge.status).toBe(401);
      expect(challenge.body.flows).toEqual([{ stages: ['m.login.password'] }]);
      const issued = await hs.call('POST', '/_matrix/client/v1/login/get_token', {
        token: session.access_token,
        body: { auth: { type: 'm.login.password', session: challenge.body.session, identifier: { type: 'm.id.user', user: session.user_id }, password: 'pw-alice' } },
      });
      expect(issued.status).toBe(200);
      expect(issued.body.expires_in_ms).toBeGreaterThan(0);
      const login = await hs.call('POST', '/_matrix/client/v3/login', { body: { type: 'm.login.token', token: issued.body.login_token } });
      expect(login.status).toBe(200);
      expect(login.body.user_id).toBe(session.user_id);
      const again = await hs.call('POST', '/_matrix/client/v3/login', { body: { type: 'm.login.token', token: issued.body.login_token } });
      expect(again.status).toBe(403);
    });

    it('changes the password with UIA and logs out the other devices', async () => {
      await hs.register('carol', 'old-pw');
      const keep = await hs.login('carol', 'old-pw');
      const other = await hs.login('carol', 'old-pw');
      const challenge = await hs.call('POST', '/_matrix/client/v3/account/password', { token: keep.access_token, body: { new_password: 'new-pw' } });
      expect(challenge.status).toBe(401);
      const badPassword = await hs.call('POST', '/_matrix/client/v3/account/password', {
        token: keep.access_token,
        body: { new_password: 'new-pw', auth: { type: 'm.login.password', session: challenge.body.session, identifier: { type: 'm.id.user', user: 'carol' }, password: 'wrong' } },
      });
      expect(badPassword.status).toBe(401);
      expect(badPassword.body.errcode).toBe('M_FORBIDDEN');
      const done = await hs.call('POST', '/_matrix/client/v3/account/password', {
        token: keep.access_token,
        body: { new_password: 'new-pw', auth: { type: 'm.login.password', session: challenge.body.session, identifier: { type: 'm.id.user', user: 'carol' }, password: 'old-pw' } },
      });
      expect(done.status).toBe(200);
      expect((await hs.call('GET', '/_matrix/client/v3/account/whoami', { token: keep.access_token })).status).toBe(200);
      expect((await hs.call('GET', '/_matrix/client/v3/account/whoami', { token: other.access_token })).status).toBe(401);
      const oldLogin = await hs.call('POST', '/_matrix/client/v3/login', { body: { type: 'm.login.password', user: 'carol', password: 'old-pw' } });
      expect(oldLogin.status).toBe(403);
      await hs.login('carol', 'new-pw');

      // logout_devices false keeps the other sessions.
      const stays = await hs.login('carol', 'new-pw');
      const c2 = await hs.call('POST', '/_matrix/client/v3/account/password', { token: keep.access_token, body: { new_password: 'newer-pw', logout_devices: false } });
      const d2 = await hs.call('POST', '/_matrix/client/v3/account/password', {
        token: keep.access_token,
        body: { new_password: 'newer-pw', logout_devices: false, auth: { type: 'm.login.password', session: c2.body.session, user: 'carol', password: 'new-pw' } },
      });
      expect(d2.status).toBe(200);
      expect((await hs.call('GET', '/_matrix/client/v3/account/whoami', { token: stays.access_token })).status).toBe(200);
    });

    it('deactivates an account with UIA: sessions end, login and profile refused, id stays taken', async () => {
      const dave = await hs.register('dave', 'pw-dave');
      const other = await hs.login('dave', 'pw-dave');
      expect((await hs.call('GET', '/_matrix/client/v3/account/3pid', { token: dave.access_token })).body).toEqual({ threepids: [] });
      const challenge = await hs.call('POST', '/_matrix/client/v3/account/deactivate', { token: dave.access_token, body: {} });
      expect(challenge.status).toBe(401);
      const done = await hs.call('POST', '/_matrix/client/v3/account/deactivate', {
        token: dave.access_token,
        body: { auth: { type: 'm.login.password', session: challenge.body.session, user: 'dave', password: 'pw-dave' } },
      });
      expect(done.status).toBe(200);
      for (const token of [dave.access_token, other.access_token]) {
        expect((await hs.call('GET', '/_matrix/client/v3/account/whoami', { token })).status).toBe(401);
      }
      const login = await hs.call('POST', '/_matrix/client/v3/login', { body: { type: 'm.login.password', user: 'dave', password: 'pw-dave' } });
      expect(login).toMatchObject({ status: 403, body: { errcode: 'M_USER_DEACTIVATED' } });
      const wrong = await hs.call('POST', '/_matrix/client/v3/login', { body: { type: 'm.login.password', user: 'dave', password: 'nope' } });
      expect(wrong.body.errcode).toBe('M_FORBIDDEN');
      expect((await hs.call('GET', `/_matrix/client/v3/profile/${encodeURIComponent(dave.user_id)}`)).status).toBe(404);
      expect((await hs.call('GET', '/_matrix/client/v3/register/available?username=dave')).body.errcode).toBe('M_USER_IN_USE');
    });

    it('generates a user id when none is asked for', async () => {
      const first = await hs.call('POST', '/_matrix/client/v3/register', { body: { password: 'pw' } });
      const done = await hs.call('POST', '/_matrix/client/v3/register', { body: { password: 'pw', auth: { type: 'm.login.dummy', session: first.body.session } } });
      expect(done.status).toBe(200);
      expect(done.body.user_id).toMatch(new RegExp(`^@\\d{10}:${hs.serverName.replace(/\./g, '\\.')}$`));
      const noPassword = await hs.call('POST', '/_matrix/client/v3/register', { body: { auth: { type: 'm.login.dummy', session: first.body.session } } });
      expect(noPassword.body.errcode).toBe('M_MISSING_PARAM');
    });

    it('lists, renames and deletes devices (delete needs UIA)', async () => {
      const session = await hs.login('alice', 'pw-alice', { device_id: 'RENAMEME' });
      const got = await hs.call('GET', '/_matrix/client/v3/devices/RENAMEME', { token: session.access_token });
      expect(got.status).toBe(200);
      expect(got.body.device_id).toBe('RENAMEME');
      expect((await hs.call('PUT', '/_matrix/client/v3/devices/RENAMEME', { token: session.access_token, body: { display_name: 'Desk' } })).status).toBe(200);
      expect((await hs.call('GET', '/_matrix/client/v3/devices/RENAMEME', { token: session.access_token })).body.display_name).toBe('Desk');
      expect((await hs.call('GET', '/_matrix/client/v3/devices/NOPE', { token: session.access_token })).status).toBe(404);
      expect((await hs.call('PUT', '/_matrix/client/v3/devices/NOPE', { token: session.access_token, body: { display_name: 'x' } })).status).toBe(404);

      const victim = await hs.login('alice', 'pw-alice', { device_id: 'VICTIM' });
      const challenge = await hs.call('DELETE', '/_matrix/client/v3/devices/VICTIM', { token: session.access_token, body: {} });
      expect(challenge.status).toBe(401);
      expect((await hs.call('GET', '/_matrix/client/v3/account/whoami', { token: victim.access_token })).status).toBe(200);
      const deleted = await hs.call('DELETE', '/_matrix/client/v3/devices/VICTIM', {
        token: session.access_token,
        body: { auth: { type: 'm.login.password', session: challenge.body.session, user: 'alice', password: 'pw-alice' } },
      });
      expect(deleted.status).toBe(200);
      expect((await hs.call('GET', '/_matrix/client/v3/account/whoami', { token: victim.access_token })).status).toBe(401);

      const again = await hs.call('DELETE', '/_matrix/client/v3/devices/VICTIM', { token: session.access_token, body: {} });
      const gone = await hs.call('DELETE', '/_matrix/client/v3/devices/VICTIM', {
        token: session.access_token,
        body: { auth: { type: 'm.login.password', session: again.body.session, user: 'alice', password: 'pw-alice' } },
      });
      expect(gone.status).toBe(200);

      const v2 = await hs.login('alice', 'pw-alice', { device_id: 'V2' });
      const c2 = await hs.call('POST', '/_matrix/client/v3/delete_devices', { token: session.access_token, body: { devices: ['V2'] } });
      expect(c2.status).toBe(401);
      const d2 = await hs.call('POST', '/_matrix/client/v3/delete_devices', {
        token: session.access_token,
        body: { devices: ['V2'], auth: { type: 'm.login.password', session: c2.body.session, user: 'alice', password: 'pw-alice' } },
      });
      expect(d2.status).toBe(200);
      expect((await hs.call('GET', '/_matrix/client/v3/account/whoami', { token: v2.access_token })).status).toBe(401);
    });

    it('registers by shared secret as register_new_matrix_user does', async () => {
      const { body } = await hs.call('GET', '/_synapse/admin/v1/register');
      const nonce = body.nonce as string;
      const mac = createHmac('sha1', 'shh').update(`${nonce}\0admin1\0pw-admin\0admin`).digest('hex');
      const badMac = await hs.call('POST', '/_synapse/admin/v1/register', { body: { nonce, username: 'admin1', password: 'pw-admin', admin: true, mac: '00'.repeat(20) } });
      expect(badMac.status).toBe(403);
      // The nonce was used up by the failed attempt.
      const reused = await hs.call('POST', '/_synapse/admin/v1/register', { body: { nonce, username: 'admin1', password: 'pw-admin', admin: true, mac } });
      expect(reused.status).toBe(400);
      const fresh = (await hs.call('GET', '/_synapse/admin/v1/register')).body.nonce as string;
      const mac2 = createHmac('sha1', 'shh').update(`${fresh}\0admin1\0pw-admin\0admin`).digest('hex');
      const ok = await hs.call('POST', '/_synapse/admin/v1/register', { body: { nonce: fresh, username: 'admin1', password: 'pw-admin', admin: true, mac: mac2 } });
      expect(ok.status).toBe(200);
      expect(ok.body.user_id).toBe(`@admin1:${hs.serverName}`);
      expect((await hs.call('GET', '/_matrix/client/v3/account/whoami', { token: ok.body.access_token })).status).toBe(200);
    });

    it('refuses malformed bodies without changing anything', async () => {
      const notJson = await hs.call('POST', '/_matrix/client/v3/register', { rawBody: '{"username": "mallory",' });
      expect(notJson.status).toBe(400);
      expect(notJson.body.errcode).toBe('M_NOT_JSON');
      const badType = await hs.call('POST', '/_matrix/client/v3/register', { body: { username: 42, password: 'x' } });
      expect(badType.body.errcode).toBe('M_BAD_JSON');
      const array = await hs.call('POST', '/_matrix/client/v3/login', { body: [1, 2] });
      expect(array.body.errcode).toBe('M_BAD_JSON');
      const noType = await hs.call('POST', '/_matrix/client/v3/login', { body: { user: 'alice' } });
      expect(noType.body.errcode).toBe('M_MISSING_PARAM');
      expect((await hs.call('GET', '/_matrix/client/v3/register/available?username=mallory')).body.available).toBe(true);
      const unknown = await hs.call('GET', '/_matrix/client/v3/no/such/endpoint');
      expect(unknown).toMatchObject({ status: 404, body: { errcode: 'M_UNRECOGNIZED' } });
      const wrongMethod = await hs.call('DELETE', '/_matrix/client/v3/account/whoami');
      expect(wrongMethod).toMatchObject({ status: 405, body: { errcode: 'M_UNRECOGNIZED' } });
      const tooLarge = await hs.call('POST', '/_matrix/client/v3/login', { rawBody: JSON.stringify({ type: 'm.login.password', pad: 'x'.repeat(60 * 1024 * 1024) }) });
      expect(tooLarge).toMatchObject({ status: 413, body: { errcode: 'M_TOO_LARGE' } });
    });
  });
}
