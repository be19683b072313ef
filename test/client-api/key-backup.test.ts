import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from 'matrix-js-sdk';
import { logger } from 'matrix-js-sdk/lib/logger.js';
import { requestKeyBackupVersion } from 'matrix-js-sdk/lib/rust-crypto/backup.js';
import { services } from '@tessera/testing';
import { checkAgainstSpec, ClientApiHarness } from './harness.js';

const setups = [
  { name: 'PostgreSQL + Redis', database: 'postgres' as const, redis: true, available: services.postgres && services.redis },
  { name: 'PGlite + in-memory store', database: 'pglite' as const, redis: false, available: true },
];

type Login = { user_id: string; access_token: string; device_id: string };

const ALGORITHM = 'm.megolm_backup.v1.curve25519-aes-sha2';
const V3 = '/_matrix/client/v3';
const R0 = '/_matrix/client/r0';

function authData(publicKey: string) {
  return { public_key: publicKey, signatures: { '@someone:example.org': { 'ed25519:DEVICE': 'sig' } } };
}

function keyData(first_message_index: number, forwarded_count: number, is_verified: boolean, tag = 'data') {
  return { first_message_index, forwarded_count, is_verified, session_data: { ephemeral: `eph-${tag}`, ciphertext: `ct-${tag}`, mac: `mac-${tag}` } };
}

const enc = encodeURIComponent;

/** The SDK's fetch, checking every JSON response against the spec as the harness's own calls do. */
const validatingFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
  const response = await fetch(input, init);
  if (response.headers.get('content-type')?.includes('application/json')) {
    const url = new URL(input instanceof Request ? input.url : input.toString());
    checkAgainstSpec(init?.method ?? 'GET', url.pathname, response.status, await response.clone().json());
  }
  return response;
};

for (const setup of setups) {
  describe.skipIf(!setup.available)(`server-side key backups (${setup.name})`, () => {
    let hs: ClientApiHarness;
    let alice: Login;
    let bob: Login;
    let carol: Login;
    const roomA = '!roomA:example.org';
    const roomB = '!roomB:example.org';

    const call = (user: Login, method: string, path: string, body?: unknown) => hs.call(method, `${V3}${path}`, { token: user.access_token, body });
    const keysPath = (version: string, roomId?: string, sessionId?: string) =>
      `/room_keys/keys${roomId === undefined ? '' : `/${enc(roomId)}`}${sessionId === undefined ? '' : `/${enc(sessionId)}`}?version=${enc(version)}`;
    const newVersion = async (user: Login, publicKey = 'pk') => {
      const created = await call(user, 'POST', '/room_keys/version', { algorithm: ALGORITHM, auth_data: authData(publicKey) });
      expect(created.status, JSON.stringify(created.body)).toBe(200);
      return created.body.version as string;
    };
    /** The whole of a user's backup state, to show a refused request changed nothing. */
    const snapshot = async (user: Login) => {
      const current = await call(user, 'GET', '/room_keys/version');
      if (current.status !== 200) return { current: current.body };
      return { current: current.body, keys: (await call(user, 'GET', keysPath(current.body.version))).body };
    };

    beforeAll(async () => {
      hs = await ClientApiHarness.start({ database: setup.database, redis: setup.redis });
      alice = await hs.register('alice', 'pw');
      bob = await hs.register('bob', 'pw');
      carol = await hs.register('carol', 'pw');
    });
    afterAll(async () => {
      await hs?.close();
    });

    it('answers 404 M_NOT_FOUND for the current version when there is no backup, and needs a token', async () => {
      const none = await call(alice, 'GET', '/room_keys/version');
      expect(none.status).toBe(404);
      expect(none.body.errcode).toBe('M_NOT_FOUND');
      const anonymous = await hs.call('GET', `${V3}/room_keys/version`);
      expect(anonymous.status).toBe(401);
      expect(anonymous.body.errcode).toBe('M_MISSING_TOKEN');
      expect((await call(alice, 'GET', '/room_keys/version/1')).status).toBe(404);
      expect((await call(alice, 'GET', keysPath('1'))).body.errcode).toBe('M_NOT_FOUND');
      const noBackup = await call(alice, 'PUT', keysPath('1', roomA, 'sess'), keyData(0, 0, false));
      expect(noBackup.status).toBe(404);
      expect(noBackup.body.errcode).toBe('M_NOT_FOUND');
    });

    it('creates versions, describes them, stores and reads keys in the three shapes, with count and etag', async () => {
      const version = await newVersion(bob, 'bob-pk-1');
      expect(version).toBe('1');
      const current = await call(bob, 'GET', '/room_keys/version');
      expect(current.status).toBe(200);
      expect(current.body).toEqual({ algorithm: ALGORITHM, auth_data: authData('bob-pk-1'), count: 0, etag: expect.any(String), version: '1' });
      expect((await call(bob, 'GET', '/room_keys/version/1')).body).toEqual(current.body);
      // r0 serves the same.
      expect((await hs.call('GET', `${R0}/room_keys/version/1`, { token: bob.access_token })).body).toEqual(current.body);
      let etag = current.body.etag as string;

      // One session; its id has the characters of a base64 megolm session id.
      const sessionId = 'ciM/JWTPrmiWPPZNkRLDPQ+f9AW';
      const one = await call(bob, 'PUT', keysPath(version, roomA, sessionId), keyData(3, 0, false, 'one'));
      expect(one.status, JSON.stringify(one.body)).toBe(200);
      expect(one.body.count).toBe(1);
      expect(one.body.etag).not.toBe(etag);
      etag = one.body.etag;

      const room = await call(bob, 'PUT', keysPath(version, roomA), { sessions: { s2: keyData(0, 1, true, 's2'), s3: keyData(5, 0, false, 's3') } });
      expect(room.body).toEqual({ count: 3, etag: expect.any(String) });
      expect(room.body.etag).not.toBe(etag);
      etag = room.body.etag;

      const all = await call(bob, 'PUT', keysPath(version), { rooms: { [roomB]: { sessions: { s4: keyData(0, 0, true, 's4') } } } });
      expect(all.body.count).toBe(4);
      expect(all.body.etag).not.toBe(etag);
      etag = all.body.etag;

      expect((await call(bob, 'GET', keysPath(version, roomA, sessionId))).body).toEqual(keyData(3, 0, false, 'one'));
      expect((await call(bob, 'GET', keysPath(version, roomA))).body).toEqual({
        sessions: { [sessionId]: keyData(3, 0, false, 'one'), s2: keyData(0, 1, true, 's2'), s3: keyData(5, 0, false, 's3') },
      });
      expect((await call(bob, 'GET', keysPath(version))).body).toEqual({
        rooms: {
          [roomA]: { sessions: { [sessionId]: keyData(3, 0, false, 'one'), s2: keyData(0, 1, true, 's2'), s3: keyData(5, 0, false, 's3') } },
          [roomB]: { sessions: { s4: keyData(0, 0, true, 's4') } },
        },
      });
      // Through r0 too.
      expect((await hs.call('GET', `${R0}${keysPath(version, roomB, 's4')}`, { token: bob.access_token })).body).toEqual(keyData(0, 0, true, 's4'));
      // Empty answers: a room without keys, a session without a key.
      expect((await call(bob, 'GET', keysPath(version, '!nothing:example.org'))).body).toEqual({ sessions: {} });
      const missing = await call(bob, 'GET', keysPath(version, roomA, 'nosuch'));
      expect(missing.status).toBe(404);
      expect(missing.body.errcode).toBe('M_NOT_FOUND');

      const described = await call(bob, 'GET', '/room_keys/version');
      expect(described.body).toMatchObject({ count: 4, etag, version: '1' });

      // Backups are per user: alice sees none of bob's.
      expect((await call(alice, 'GET', '/room_keys/version')).status).toBe(404);
      expect((await call(alice, 'GET', keysPath(version))).status).toBe(404);
    });

    it('replaces a stored key only by a better one (is_verified, then first_message_index, then forwarded_count)', async () => {
      const version = await newVersion(carol);
      const cases: { stored: [number, number, boolean]; uploaded: [number, number, boolean]; replaces: boolean }[] = [
        // A verified key is kept over an unverified one, whatever the indexes.
        { stored: [10, 5, true], uploaded: [0, 0, false], replaces: false },
        { stored: [10, 5, false], uploaded: [20, 9, true], replaces: true },
        // Same is_verified: the lower first_message_index wins, whatever the forwarded counts.
        { stored: [10, 5, false], uploaded: [9, 50, false], replaces: true },
        { stored: [10, 5, true], uploaded: [11, 0, true], replaces: false },
        // Same is_verified and index: the lower forwarded_count wins.
        { stored: [10, 5, false], uploaded: [10, 4, false], replaces: true },
        { stored: [10, 5, true], uploaded: [10, 6, true], replaces: false },
        // All equal: the stored key stays.
        { stored: [10, 5, false], uploaded: [10, 5, false], replaces: false },
      ];
      for (const [i, c] of cases.entries()) {
        const session = `case-${i}`;
        const put = await call(carol, 'PUT', keysPath(version, roomA, session), keyData(...c.stored, 'stored'));
        expect(put.status).toBe(200);
        const again = await call(carol, 'PUT', keysPath(version, roomA, session), keyData(...c.uploaded, 'uploaded'));
        expect(again.status).toBe(200);
        expect(again.body.count, `case ${i}`).toBe(put.body.count);
        if (c.replaces) expect(again.body.etag, `case ${i}`).not.toBe(put.body.etag);
        else expect(again.body.etag, `case ${i}`).toBe(put.body.etag);
        const kept = await call(carol, 'GET', keysPath(version, roomA, session));
        expect(kept.body, `case ${i}`).toEqual(c.replaces ? keyData(...c.uploaded, 'uploaded') : keyData(...c.stored, 'stored'));
      }

      // In one request: a new key, a better one and a worse one; only the first two are written.
      const before = await call(carol, 'GET', '/room_keys/version');
      const batch = await call(carol, 'PUT', keysPath(version), {
        rooms: { [roomA]: { sessions: { 'case-0': keyData(0, 0, true, 'better'), 'case-3': keyData(99, 0, false, 'worse'), fresh: keyData(1, 1, false, 'fresh') } } },
      });
      expect(batch.body.count).toBe(before.body.count + 1);
      expect(batch.body.etag).not.toBe(before.body.etag);
      expect((await call(carol, 'GET', keysPath(version, roomA, 'case-0'))).body).toEqual(keyData(0, 0, true, 'better'));
      expect((await call(carol, 'GET', keysPath(version, roomA, 'case-3'))).body).toEqual(keyData(10, 5, true, 'stored'));
      expect((await call(carol, 'GET', keysPath(version, roomA, 'fresh'))).body).toEqual(keyData(1, 1, false, 'fresh'));
      // An upload of nothing, or of nothing better, leaves etag and count as they were.
      const nothing = await call(carol, 'PUT', keysPath(version), { rooms: {} });
      expect(nothing.body).toEqual(batch.body);
    });

    it('stores keys only in the current version: 403 M_WRONG_ROOM_KEYS_VERSION with current_version, 404 for an unknown one', async () => {
      const user = await hs.register('dave', 'pw');
      const v1 = await newVersion(user, 'pk-1');
      await call(user, 'PUT', keysPath(v1, roomA, 'old'), keyData(0, 0, false, 'old'));
      const v2 = await newVersion(user, 'pk-2');
      expect(v2).toBe('2');
      const current = await call(user, 'GET', '/room_keys/version');
      expect(current.body).toMatchObject({ version: '2', count: 0, auth_data: authData('pk-2') });

      for (const path of [keysPath(v1, roomA, 'new'), keysPath(v1, roomA), keysPath(v1)]) {
        const body = path.includes('/new?') ? keyData(0, 0, false) : path.includes(enc(roomA)) ? { sessions: { new: keyData(0, 0, false) } } : { rooms: { [roomA]: { sessions: { new: keyData(0, 0, false) } } } };
        const wrong = await call(user, 'PUT', path, body);
        expect(wrong.status).toBe(403);
        expect(wrong.body).toMatchObject({ errcode: 'M_WRONG_ROOM_KEYS_VERSION', current_version: '2' });
      }
      for (const version of ['3', '0', 'abc', '01']) {
        const unknown = await call(user, 'PUT', keysPath(version, roomA, 'new'), keyData(0, 0, false));
        expect(unknown.status, version).toBe(404);
        expect(unknown.body.errcode).toBe('M_NOT_FOUND');
      }
      // The version query parameter is required on every keys endpoint.
      for (const [method, path] of [
        ['GET', '/room_keys/keys'],
        ['PUT', '/room_keys/keys'],
        ['DELETE', '/room_keys/keys'],
        ['GET', `/room_keys/keys/${enc(roomA)}`],
        ['PUT', `/room_keys/keys/${enc(roomA)}/s`],
        ['DELETE', `/room_keys/keys/${enc(roomA)}/s`],
      ] as const) {
        const body = method === 'PUT' ? (path.endsWith('/s') ? keyData(0, 0, false) : { rooms: {} }) : undefined;
        const noVersion = await call(user, method, path, body);
        expect(noVersion.status, `${method} ${path}`).toBe(400);
        expect(noVersion.body.errcode).toBe('M_MISSING_PARAM');
      }
      // Nothing reached either version, and the old version's keys can still be read.
      expect((await call(user, 'GET', keysPath(v1))).body).toEqual({ rooms: { [roomA]: { sessions: { old: keyData(0, 0, false, 'old') } } } });
      expect((await call(user, 'GET', keysPath(v2))).body).toEqual({ rooms: {} });
      expect((await call(user, 'GET', '/room_keys/version/1')).body.count).toBe(1);
    });

    it('updates auth_data of a version, refusing another algorithm or a different version in the body', async () => {
      const user = await hs.register('erin', 'pw');
      const version = await newVersion(user, 'pk-before');
      const updated = await call(user, 'PUT', `/room_keys/version/${version}`, { algorithm: ALGORITHM, auth_data: authData('pk-after'), version });
      expect(updated.status).toBe(200);
      expect(updated.body).toEqual({});
      expect((await call(user, 'GET', `/room_keys/version/${version}`)).body.auth_data).toEqual(authData('pk-after'));
      // Without the optional version in the body too.
      expect((await call(user, 'PUT', `/room_keys/version/${version}`, { algorithm: ALGORITHM, auth_data: authData('pk-third') })).status).toBe(200);

      const before = await snapshot(user);
      const refusals: [string, unknown, number, string][] = [
        [`/room_keys/version/${version}`, { algorithm: ALGORITHM, auth_data: authData('x'), version: '7' }, 400, 'M_INVALID_PARAM'],
        [`/room_keys/version/${version}`, { algorithm: 'm.megolm_backup.v1', auth_data: authData('x') }, 400, 'M_INVALID_PARAM'],
        [`/room_keys/version/${version}`, { algorithm: ALGORITHM }, 400, 'M_MISSING_PARAM'],
        [`/room_keys/version/${version}`, { algorithm: ALGORITHM, auth_data: 'abc' }, 400, 'M_BAD_JSON'],
        [`/room_keys/version/${version}`, { algorithm: ALGORITHM, auth_data: { signatures: {} } }, 400, 'M_MISSING_PARAM'],
        ['/room_keys/version/9', { algorithm: ALGORITHM, auth_data: authData('x') }, 404, 'M_NOT_FOUND'],
        ['/room_keys/version/latest', { algorithm: ALGORITHM, auth_data: authData('x') }, 404, 'M_NOT_FOUND'],
      ];
      for (const [path, body, status, errcode] of refusals) {
        const refused = await call(user, 'PUT', path, body);
        expect(refused.status, JSON.stringify(body)).toBe(status);
        expect(refused.body.errcode, JSON.stringify(body)).toBe(errcode);
      }
      expect(await snapshot(user)).toEqual(before);
      // Another user cannot touch it.
      expect((await call(alice, 'PUT', `/room_keys/version/${version}`, { algorithm: ALGORITHM, auth_data: authData('mallory') })).status).toBe(404);
      expect(await snapshot(user)).toEqual(before);
    });

    it('deletes keys by session, room and all, and versions with their keys', async () => {
      const user = await hs.register('frank', 'pw');
      const v1 = await newVersion(user);
      const stored = await call(user, 'PUT', keysPath(v1), {
        rooms: {
          [roomA]: { sessions: { a1: keyData(0, 0, false), a2: keyData(0, 0, false) } },
          [roomB]: { sessions: { b1: keyData(0, 0, false), b2: keyData(0, 0, false) } },
        },
      });
      expect(stored.body.count).toBe(4);

      const session = await call(user, 'DELETE', keysPath(v1, roomA, 'a1'));
      expect(session.status).toBe(200);
      expect(session.body.count).toBe(3);
      expect(session.body.etag).not.toBe(stored.body.etag);
      expect((await call(user, 'GET', keysPath(v1, roomA, 'a1'))).status).toBe(404);
      // Deleting what is not there changes nothing.
      expect((await call(user, 'DELETE', keysPath(v1, roomA, 'a1'))).body).toEqual(session.body);

      const room = await call(user, 'DELETE', keysPath(v1, roomB));
      expect(room.body.count).toBe(1);
      expect(room.body.etag).not.toBe(session.body.etag);
      expect((await call(user, 'GET', keysPath(v1))).body).toEqual({ rooms: { [roomA]: { sessions: { a2: keyData(0, 0, false) } } } });

      const all = await call(user, 'DELETE', keysPath(v1));
      expect(all.body.count).toBe(0);
      expect((await call(user, 'GET', keysPath(v1))).body).toEqual({ rooms: {} });
      expect((await call(user, 'GET', '/room_keys/version')).body).toMatchObject({ version: v1, count: 0, etag: all.body.etag });
      expect((await call(user, 'DELETE', keysPath('5'))).status).toBe(404);

      // Keys may be deleted from an older version too (spec: only storing needs the current one).
      await call(user, 'PUT', keysPath(v1, roomA, 'kept'), keyData(0, 0, false));
      const v2 = await newVersion(user);
      await call(user, 'PUT', keysPath(v2, roomB, 'in-v2'), keyData(0, 0, false));
      expect((await call(user, 'DELETE', keysPath(v1, roomA, 'kept'))).body.count).toBe(0);
      await call(user, 'PUT', keysPath(v2, roomB, 'in-v2-too'), keyData(0, 0, false));

      // Deleting the current version deletes its keys; the previous one becomes current again.
      const deleted = await call(user, 'DELETE', `/room_keys/version/${v2}`);
      expect(deleted.status).toBe(200);
      expect(deleted.body).toEqual({});
      expect((await call(user, 'GET', `/room_keys/version/${v2}`)).status).toBe(404);
      expect((await call(user, 'GET', keysPath(v2))).status).toBe(404);
      expect((await call(user, 'GET', '/room_keys/version')).body.version).toBe(v1);
      // Deleted before: 200 again. Never created: 404.
      expect((await call(user, 'DELETE', `/room_keys/version/${v2}`)).status).toBe(200);
      const never = await call(user, 'DELETE', '/room_keys/version/40');
      expect(never.status).toBe(404);
      expect(never.body.errcode).toBe('M_NOT_FOUND');
      expect((await call(user, 'DELETE', '/room_keys/version/x')).status).toBe(404);

      // Numbers are not reused, and a new version starts empty.
      const v3 = await newVersion(user);
      expect(v3).toBe('3');
      expect((await call(user, 'GET', keysPath(v3))).body).toEqual({ rooms: {} });
      expect((await call(user, 'GET', '/room_keys/version')).body).toMatchObject({ version: '3', count: 0 });

      await call(user, 'DELETE', `/room_keys/version/${v3}`);
      await call(user, 'DELETE', `/room_keys/version/${v1}`);
      expect((await call(user, 'GET', '/room_keys/version')).status).toBe(404);
      // Another user's delete does not reach this user's versions.
      const v4 = await newVersion(user);
      expect((await call(alice, 'DELETE', `/room_keys/version/${v4}`)).status).toBe(404);
      expect((await call(user, 'GET', '/room_keys/version')).body.version).toBe(v4);
    });

    it('reads as matrix-js-sdk reads it at startup: no backup is null, then the backup', async () => {
      (logger as unknown as { setLevel?: (level: string) => void }).setLevel?.('silent');
      const user = await hs.register('sdkuser', 'pw');
      const client = createClient({ baseUrl: hs.base, fetchFn: validatingFetch, userId: user.user_id, accessToken: user.access_token, deviceId: user.device_id });
      expect(await requestKeyBackupVersion(client.http)).toBeNull();
      const version = await newVersion(user, 'sdk-pk');
      expect(await requestKeyBackupVersion(client.http)).toEqual({ algorithm: ALGORITHM, auth_data: authData('sdk-pk'), count: 0, etag: expect.any(String), version });
      expect(await requestKeyBackupVersion(client.http, version)).toMatchObject({ version });
      expect(await requestKeyBackupVersion(client.http, '77')).toBeNull();
    });

    it('orders concurrent writes of one user: distinct version numbers, every key counted once, the best kept', async () => {
      const user = await hs.register('henry', 'pw');
      const versions = await Promise.all(Array.from({ length: 6 }, () => newVersion(user)));
      expect([...versions].sort((a, b) => Number(a) - Number(b))).toEqual(['1', '2', '3', '4', '5', '6']);
      const results = await Promise.all(
        Array.from({ length: 12 }, (_, i) => call(user, 'PUT', keysPath('6', roomA, `s${i}`), keyData(i, 0, false, `s${i}`))),
      );
      expect(results.map((r) => r.status)).toEqual(Array.from({ length: 12 }, () => 200));
      // Each answer saw its own write and all before it: the counts are 1..12, each once.
      expect(results.map((r) => r.body.count).sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
      expect(new Set(results.map((r) => r.body.etag)).size).toBe(12);
      expect((await call(user, 'GET', '/room_keys/version')).body).toMatchObject({ version: '6', count: 12 });
      expect(Object.keys((await call(user, 'GET', keysPath('6', roomA))).body.sessions)).toHaveLength(12);

      // Many devices backing up the same session at once: one key counted, the best one kept.
      const same = await Promise.all(
        [5, 3, 9, 1, 7, 2, 8, 4].map((index) => call(user, 'PUT', keysPath('6', roomB, 'shared'), keyData(index, 0, false, `i${index}`))),
      );
      expect(same.map((r) => r.status)).toEqual(Array.from({ length: 8 }, () => 200));
      expect((await call(user, 'GET', '/room_keys/version')).body.count).toBe(13);
      expect((await call(user, 'GET', keysPath('6', roomB, 'shared'))).body).toEqual(keyData(1, 0, false, 'i1'));
    });

    it('stores a backup of another algorithm as given (as Synapse; Complement makes "m.megolm_backup.v1" backups)', async () => {
      const user = await hs.register('heidi', 'pw');
      const created = await call(user, 'POST', '/room_keys/version', { algorithm: 'm.megolm_backup.v1', auth_data: { foo: 'bar' } });
      expect(created.status).toBe(200);
      // Read without the harness's schema check: the spec's response schema enumerates only the algorithm it defines.
      const current = await fetch(`${hs.base}${V3}/room_keys/version`, { headers: { authorization: `Bearer ${user.access_token}` } });
      expect(current.status).toBe(200);
      expect(await current.json()).toMatchObject({ algorithm: 'm.megolm_backup.v1', auth_data: { foo: 'bar' }, version: created.body.version, count: 0 });
    });

    it('refuses malformed bodies with the spec errors and changes nothing', async () => {
      const user = await hs.register('grace', 'pw');
      // Creating: no version appears.
      const creations: [unknown, string][] = [
        [{ auth_data: authData('x') }, 'M_MISSING_PARAM'],
        [{ algorithm: ALGORITHM }, 'M_MISSING_PARAM'],
        [{ algorithm: '', auth_data: { foo: 'bar' } }, 'M_INVALID_PARAM'],
        [{ algorithm: 42, auth_data: authData('x') }, 'M_BAD_JSON'],
        [{ algorithm: ALGORITHM, auth_data: [] }, 'M_BAD_JSON'],
        [{ algorithm: ALGORITHM, auth_data: {} }, 'M_MISSING_PARAM'],
        [{ algorithm: ALGORITHM, auth_data: { public_key: 5 } }, 'M_BAD_JSON'],
        [{ algorithm: ALGORITHM, auth_data: { public_key: 'pk\u0000' } }, 'M_BAD_JSON'],
        [[ALGORITHM], 'M_BAD_JSON'],
      ];
      for (const [body, errcode] of creations) {
        const refused = await call(user, 'POST', '/room_keys/version', body);
        expect(refused.status, JSON.stringify(body)).toBe(400);
        expect(refused.body.errcode, JSON.stringify(body)).toBe(errcode);
      }
      const notJson = await hs.call('POST', `${V3}/room_keys/version`, { token: user.access_token, rawBody: '{"algorithm": ' });
      expect(notJson.status).toBe(400);
      expect(notJson.body.errcode).toBe('M_NOT_JSON');
      expect((await call(user, 'GET', '/room_keys/version')).status).toBe(404);

      // The first version created after the refusals is number 1: nothing was numbered.
      const version = await newVersion(user);
      expect(version).toBe('1');
      await call(user, 'PUT', keysPath(version, roomA, 'good'), keyData(4, 0, false, 'good'));
      const before = await snapshot(user);

      const uploads: [string, unknown, string][] = [
        // A good key next to a bad one: neither is stored.
        [keysPath(version), { rooms: { [roomA]: { sessions: { another: keyData(0, 0, false), good: { ...keyData(0, 0, true), is_verified: 'yes' } } } } }, 'M_INVALID_PARAM'],
        [keysPath(version), { rooms: { [roomA]: { sessions: { another: keyData(0, 0, false) } }, 'not-a-room': { sessions: {} } } }, 'M_INVALID_PARAM'],
        [keysPath(version), { rooms: { [roomA]: { sessions: { another: keyData(0, 0, false) } }, [roomB]: {} } }, 'M_MISSING_PARAM'],
        [keysPath(version), { rooms: [] }, 'M_BAD_JSON'],
        [keysPath(version), {}, 'M_MISSING_PARAM'],
        [keysPath(version, roomA), { sessions: { another: keyData(0, 0, false), good: { first_message_index: 0, forwarded_count: 0, is_verified: true } } }, 'M_MISSING_PARAM'],
        [keysPath(version, roomA), { sessions: 'x' }, 'M_BAD_JSON'],
        [keysPath(version, roomA), { sessions: { '': keyData(0, 0, false) } }, 'M_INVALID_PARAM'],
        [keysPath(version, roomA, 'good'), { ...keyData(0, 0, true), first_message_index: -1 }, 'M_INVALID_PARAM'],
        [keysPath(version, roomA, 'good'), { ...keyData(0, 0, true), forwarded_count: 1.5 }, 'M_INVALID_PARAM'],
        [keysPath(version, roomA, 'good'), { ...keyData(0, 0, true), session_data: 'opaque' }, 'M_INVALID_PARAM'],
        [keysPath(version, roomA, 'good'), { ...keyData(0, 0, true), session_data: { ciphertext: 'a\u0000b' } }, 'M_BAD_JSON'],
        [keysPath(version, roomA, 'good'), [keyData(0, 0, true)], 'M_BAD_JSON'],
        [keysPath(version, 'not-a-room', 'good'), keyData(0, 0, true), 'M_INVALID_PARAM'],
      ];
      for (const [path, body, errcode] of uploads) {
        const refused = await call(user, 'PUT', path, body);
        expect(refused.status, `${path} ${JSON.stringify(body)}`).toBe(400);
        expect(refused.body.errcode, `${path} ${JSON.stringify(body)}`).toBe(errcode);
      }
      const broken = await hs.call('PUT', `${V3}${keysPath(version, roomA, 'good')}`, { token: user.access_token, rawBody: '{"first_message_index": 0,' });
      expect(broken.status).toBe(400);
      expect(broken.body.errcode).toBe('M_NOT_JSON');
      expect(await snapshot(user)).toEqual(before);
    });
  });
}
