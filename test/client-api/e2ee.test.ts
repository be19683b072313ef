import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '@tessera/testing';
import { encodeSyncToken, KeysService, ToDeviceService, type SyncPositions } from '@tessera/client-api-service';
import { addSignature, canonicalJsonBytes, encodeUnpaddedBase64, generateSigningKey, signablePart, signBytes, type SigningKey } from '@tessera/protocol';
import { ClientApiHarness } from './harness.js';

const setups = [
  { name: 'PostgreSQL + Redis', database: 'postgres' as const, redis: true, available: services.postgres && services.redis },
  { name: 'PGlite + in-memory store', database: 'pglite' as const, redis: false, available: true },
];

type Login = { user_id: string; access_token: string; device_id: string };

function token(deviceLists: number): string {
  const positions: SyncPositions = { events: 0, account_data: 0, to_device: 0, device_lists: deviceLists, receipts: 0, typing: 0, presence: 0 };
  return encodeSyncToken(positions);
}

function deviceKeys(login: Login) {
  return {
    user_id: login.user_id,
    device_id: login.device_id,
    algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
    keys: { [`curve25519:${login.device_id}`]: 'curve-public', [`ed25519:${login.device_id}`]: 'ed-public' },
    signatures: { [login.user_id]: { [`ed25519:${login.device_id}`]: 'sig' } },
  };
}

for (const setup of setups) {
  describe.skipIf(!setup.available)(`E2EE plumbing over HTTP (${setup.name})`, () => {
    let hs: ClientApiHarness;
    let alice: Login;
    let bob: Login;

    beforeAll(async () => {
      hs = await ClientApiHarness.start({ database: setup.database, redis: setup.redis });
      alice = await hs.register('alice', 'pw', { initial_device_display_name: 'Alice phone' });
      bob = await hs.register('bob', 'pw');
      // Device list changes are reported to users who share a room.
      await hs.sharedRoom(alice, bob);
    });
    afterAll(async () => {
      await hs?.close();
    });

    it('uploads device keys and one-time keys, queries and claims them', async () => {
      const keys = hs.nest.get(KeysService);
      const before = (await keys.getDeviceListChangesSince(bob.user_id, 0)).position;
      const upload = await hs.call('POST', '/_matrix/client/v3/keys/upload', {
        token: alice.access_token,
        body: {
          device_keys: deviceKeys(alice),
          one_time_keys: { 'signed_curve25519:AAAA': { key: 'k1', signatures: {} }, 'signed_curve25519:AAAB': { key: 'k2', signatures: {} } },
          fallback_keys: { 'signed_curve25519:FFFF': { key: 'fb', fallback: true, signatures: {} } },
        },
      });
      expect(upload.status).toBe(200);
      expect(upload.body).toEqual({ one_time_key_counts: { signed_curve25519: 2 } });

      const changes = await keys.getDeviceListChangesSince(bob.user_id, before);
      expect(changes.changed).toContain(alice.user_id);
      const fromTo = await hs.call('GET', `/_matrix/client/v3/keys/changes?from=${token(before)}&to=${token(changes.position)}`, { token: bob.access_token });
      expect(fromTo.body).toEqual({ changed: [alice.user_id], left: [] });
      expect((await hs.call('GET', `/_matrix/client/v3/keys/changes?from=${token(changes.position)}&to=${token(changes.position)}`, { token: bob.access_token })).body.changed).toEqual([]);
      expect((await hs.call('GET', '/_matrix/client/v3/keys/changes?from=junk&to=s0', { token: bob.access_token })).body.errcode).toBe('M_INVALID_PARAM');

      const query = await hs.call('POST', '/_matrix/client/v3/keys/query', { token: bob.access_token, body: { device_keys: { [alice.user_id]: [] } } });
      expect(query.body.device_keys[alice.user_id][alice.device_id]).toEqual({ ...deviceKeys(alice), unsigned: { device_display_name: 'Alice phone' } });
      const one = await hs.call('POST', '/_matrix/client/v3/keys/query', { token: bob.access_token, body: { device_keys: { [alice.user_id]: ['NOSUCH'] } } });
      expect(one.body.device_keys[alice.user_id]).toEqual({});

      const claims: string[] = [];
      for (let i = 0; i < 3; i++) {
        const claim = await hs.call('POST', '/_matrix/client/v3/keys/claim', { token: bob.access_token, body: { one_time_keys: { [alice.user_id]: { [alice.device_id]: 'signed_curve25519' } } } });
        expect(claim.status).toBe(200);
        claims.push(...Object.keys(claim.body.one_time_keys[alice.user_id][alice.device_id]));
      }
      // Two one-time keys, each given once, then the fallback key.
      expect(claims).toEqual(['signed_curve25519:AAAA', 'signed_curve25519:AAAB', 'signed_curve25519:FFFF']);
      expect(await keys.oneTimeKeyCounts(alice.user_id, alice.device_id)).toEqual({ signed_curve25519: 0 });
      expect(await keys.unusedFallbackKeyTypes(alice.user_id, alice.device_id)).toEqual([]);

      const wrongUser = await hs.call('POST', '/_matrix/client/v3/keys/upload', { token: bob.access_token, body: { device_keys: deviceKeys(alice) } });
      expect(wrongUser.body.errcode).toBe('M_INVALID_PARAM');
      const reusedId = await hs.call('POST', '/_matrix/client/v3/keys/upload', { token: alice.access_token, body: { one_time_keys: { 'signed_curve25519:AAAC': 'x', 'bad-key-name': 'y' } } });
      expect(reusedId.body.errcode).toBe('M_BAD_JSON');
      // The bad body stored nothing: AAAC is not claimable.
      const afterBad = await hs.call('POST', '/_matrix/client/v3/keys/claim', { token: bob.access_token, body: { one_time_keys: { [alice.user_id]: { [alice.device_id]: 'signed_curve25519' } } } });
      expect(Object.keys(afterBad.body.one_time_keys[alice.user_id][alice.device_id])).toEqual(['signed_curve25519:FFFF']);
    });

    it('uploads cross-signing keys and signatures', async () => {
      // Real Ed25519 keys: signatures are verified on upload.
      const [masterKey, selfKey, userKey, deviceKey, aliceUserKey] = [1, 2, 3, 4, 5].map(() => generateSigningKey());
      const idOf = (k: SigningKey) => `ed25519:${k.publicKeyBase64}`;
      const sign = <T extends object>(obj: T, userId: string, keyId: string, key: SigningKey) =>
        addSignature(obj, userId, keyId, encodeUnpaddedBase64(signBytes(canonicalJsonBytes(signablePart(obj)), key)));
      const crossKey = (userId: string, usage: string, k: SigningKey) => ({ user_id: userId, usage: [usage], keys: { [idOf(k)]: k.publicKeyBase64 } });
      const master = crossKey(bob.user_id, 'master', masterKey);
      const selfSigning = sign(crossKey(bob.user_id, 'self_signing', selfKey), bob.user_id, idOf(masterKey), masterKey);
      const userSigning = sign(crossKey(bob.user_id, 'user_signing', userKey), bob.user_id, idOf(masterKey), masterKey);
      const first = await hs.call('POST', '/_matrix/client/v3/keys/device_signing/upload', { token: bob.access_token, body: { master_key: master, self_signing_key: selfSigning, user_signing_key: userSigning } });
      expect(first.status).toBe(200);
      const replace = await hs.call('POST', '/_matrix/client/v3/keys/device_signing/upload', { token: bob.access_token, body: { master_key: { ...master, keys: { 'ed25519:other': 'other' } } } });
      expect(replace.status).toBe(401);

      const bobDeviceKeyId = `ed25519:${bob.device_id}`;
      const bobDevice = sign(
        { ...deviceKeys(bob), keys: { [`curve25519:${bob.device_id}`]: 'curve-public', [bobDeviceKeyId]: deviceKey.publicKeyBase64 }, signatures: {} },
        bob.user_id, bobDeviceKeyId, deviceKey,
      );
      await hs.call('POST', '/_matrix/client/v3/keys/upload', { token: bob.access_token, body: { device_keys: bobDevice } });
      const upload = (who: Login, body: unknown) => hs.call('POST', '/_matrix/client/v3/keys/signatures/upload', { token: who.access_token, body });
      const masterId = masterKey.publicKeyBase64;

      // Valid: bob's device by his self-signing key, his master key by his device.
      const signed = await upload(bob, {
        [bob.user_id]: {
          [bob.device_id]: sign(bobDevice, bob.user_id, idOf(selfKey), selfKey),
          [masterId]: sign(master, bob.user_id, bobDeviceKeyId, deviceKey),
        },
      });
      expect(signed.body).toEqual({ failures: {} });

      // Refused, and nothing stored: a wrong signature, a changed object, an unknown key, a key the signer may not sign with.
      const forged = { ...bobDevice, signatures: { [bob.user_id]: { [idOf(selfKey)]: encodeUnpaddedBase64(signBytes(Buffer.from('other bytes'), selfKey)) } } };
      const changed = sign({ ...bobDevice, algorithms: ['m.megolm.v1.aes-sha2'] }, bob.user_id, idOf(selfKey), selfKey);
      const byMaster = sign(bobDevice, bob.user_id, idOf(masterKey), masterKey);
      expect((await upload(bob, { [bob.user_id]: { [bob.device_id]: forged } })).body.failures[bob.user_id][bob.device_id].errcode).toBe('M_INVALID_SIGNATURE');
      expect((await upload(bob, { [bob.user_id]: { [bob.device_id]: changed } })).body.failures[bob.user_id][bob.device_id].errcode).toBe('M_INVALID_PARAM');
      expect((await upload(bob, { [bob.user_id]: { NOSUCH: byMaster } })).body.failures[bob.user_id].NOSUCH.errcode).toBe('M_NOT_FOUND');
      expect((await upload(bob, { [bob.user_id]: { [bob.device_id]: byMaster } })).body.failures[bob.user_id][bob.device_id].errcode).toBe('M_INVALID_SIGNATURE');

      const byAlice = await hs.call('POST', '/_matrix/client/v3/keys/query', { token: alice.access_token, body: { device_keys: { [bob.user_id]: [] } } });
      expect(byAlice.body.master_keys[bob.user_id].signatures[bob.user_id]).toEqual({ [bobDeviceKeyId]: expect.any(String) });
      expect(byAlice.body.self_signing_keys[bob.user_id]).toEqual(selfSigning);
      expect(byAlice.body.user_signing_keys[bob.user_id]).toBeUndefined();
      expect(Object.keys(byAlice.body.device_keys[bob.user_id][bob.device_id].signatures[bob.user_id]).sort()).toEqual([bobDeviceKeyId, idOf(selfKey)].sort());
      const bySelf = await hs.call('POST', '/_matrix/client/v3/keys/query', { token: bob.access_token, body: { device_keys: { [bob.user_id]: [] } } });
      expect(bySelf.body.user_signing_keys[bob.user_id]).toEqual(userSigning);

      // Another user's master key, by the signer's user-signing key; not another user's device.
      const aliceMaster = generateSigningKey();
      await hs.call('POST', '/_matrix/client/v3/keys/device_signing/upload', {
        token: alice.access_token,
        body: {
          master_key: crossKey(alice.user_id, 'master', aliceMaster),
          user_signing_key: sign(crossKey(alice.user_id, 'user_signing', aliceUserKey), alice.user_id, idOf(aliceMaster), aliceMaster),
        },
      });
      const bobMasterNow = byAlice.body.master_keys[bob.user_id];
      const trusted = await upload(alice, { [bob.user_id]: { [masterId]: sign(bobMasterNow, alice.user_id, idOf(aliceUserKey), aliceUserKey) } });
      expect(trusted.body).toEqual({ failures: {} });
      const deviceOfOther = await upload(alice, { [bob.user_id]: { [bob.device_id]: sign(bobDevice, alice.user_id, idOf(aliceUserKey), aliceUserKey) } });
      expect(deviceOfOther.body.failures[bob.user_id][bob.device_id].errcode).toBe('M_INVALID_PARAM');
      const query = await hs.call('POST', '/_matrix/client/v3/keys/query', { token: alice.access_token, body: { device_keys: { [bob.user_id]: [] } } });
      expect(Object.keys(query.body.master_keys[bob.user_id].signatures[alice.user_id])).toEqual([idOf(aliceUserKey)]);
      // Only the signer sees their user-signing key's signature: not bob, not anyone else.
      const carol = await hs.register('carol', 'pw');
      for (const viewer of [bob, carol]) {
        const seen = await hs.call('POST', '/_matrix/client/v3/keys/query', { token: viewer.access_token, body: { device_keys: { [bob.user_id]: [] } } });
        expect(Object.keys(seen.body.master_keys[bob.user_id].signatures)).toEqual([bob.user_id]);
      }
    });

    it('delivers to-device messages per device, once per transaction, until acknowledged', async () => {
      const toDevice = hs.nest.get(ToDeviceService);
      const bob2 = await hs.login('bob', 'pw', { device_id: 'BOB2' });
      const start = await toDevice.currentPosition();
      const send = (txn: string, messages: unknown) => hs.call('PUT', `/_matrix/client/v3/sendToDevice/m.room_key_request/${txn}`, { token: alice.access_token, body: { messages } });
      expect((await send('t1', { [bob.user_id]: { [bob.device_id]: { n: 1 } } })).status).toBe(200);
      expect((await send('t1', { [bob.user_id]: { [bob.device_id]: { n: 1 } } })).status).toBe(200); // retried: not delivered twice
      expect((await send('t2', { [bob.user_id]: { '*': { n: 2 } } })).status).toBe(200);
      expect((await send('t3', { [bob.user_id]: { [bob.device_id]: 'not an object' } })).body.errcode).toBe('M_BAD_JSON');

      const first = await toDevice.getToDeviceSince(bob.user_id, bob.device_id, start);
      expect(first.events).toEqual([
        { type: 'm.room_key_request', sender: alice.user_id, content: { n: 1 } },
        { type: 'm.room_key_request', sender: alice.user_id, content: { n: 2 } },
      ]);
      const other = await toDevice.getToDeviceSince(bob.user_id, bob2.device_id, start);
      expect(other.events.map((e) => e.content)).toEqual([{ n: 2 }]);
      // Asking again from the old position still returns them (not yet acknowledged) ...
      expect((await toDevice.getToDeviceSince(bob.user_id, bob.device_id, start)).events).toHaveLength(2);
      // ... and from the new position they are gone for good.
      expect((await toDevice.getToDeviceSince(bob.user_id, bob.device_id, first.position)).events).toEqual([]);
      expect((await toDevice.getToDeviceSince(bob.user_id, bob.device_id, start)).events).toEqual([]);

      for (let i = 0; i < 5; i++) await send(`batch${i}`, { [bob.user_id]: { [bob.device_id]: { i } } });
      const page = await toDevice.getToDeviceSince(bob.user_id, bob.device_id, first.position, 3);
      expect(page.events.map((e) => e.content)).toEqual([{ i: 0 }, { i: 1 }]);
      const rest = await toDevice.getToDeviceSince(bob.user_id, bob.device_id, page.position, 3);
      expect(rest.events.map((e) => e.content)).toEqual([{ i: 2 }, { i: 3 }, { i: 4 }]);
    });

    it('deleting a device removes its keys and inbox and announces the change', async () => {
      const keys = hs.nest.get(KeysService);
      const gone = await hs.login('alice', 'pw', { device_id: 'GONE' });
      await hs.call('POST', '/_matrix/client/v3/keys/upload', { token: gone.access_token, body: { device_keys: deviceKeys(gone) } });
      const position = (await keys.getDeviceListChangesSince(alice.user_id, 0)).position;
      expect((await hs.call('POST', '/_matrix/client/v3/logout', { token: gone.access_token })).status).toBe(200);
      const query = await hs.call('POST', '/_matrix/client/v3/keys/query', { token: bob.access_token, body: { device_keys: { [alice.user_id]: [] } } });
      expect(Object.keys(query.body.device_keys[alice.user_id])).toEqual([alice.device_id]);
      expect((await keys.getDeviceListChangesSince(bob.user_id, position)).changed).toEqual([alice.user_id]);
    });
  });
}
