/**
 * Device list updates over federation: when a user of hs2 adds, renames or deletes a device or
 * uploads cross-signing keys, hs2 sends m.device_list_update / m.signing_key_update to hs1,
 * and the users of hs1 who share a room with them see them in device_lists.changed of /sync
 * (and /keys/changes), so their clients query the keys again. Two homeservers of ours
 * federating over HTTPS (test/consistency/harness.ts); every client API answer is validated
 * against the spec's OpenAPI document, and so is the federation answer of GET /user/devices.
 * Waits are polls with generous deadlines, never timing assertions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subscribeOn, Subjects, type InboundEdu, type Subscription } from '@tessera/bus';
import { createFederationClient, readFederationEnvironment } from '@tessera/federation-client';
import type { RunningServices } from '@tessera/http';
import { services, uniqueName, validateResponse } from '@tessera/testing';
import { createFederationPki, enc, eventually, TestHomeserver, v3, type FederationPki } from '../consistency/harness.js';

const TEST_TIMEOUT = 180_000;
const PASSWORD = 'correct horse battery staple';

describe.skipIf(!services.postgres || !services.nats)('device list updates over federation', () => {
  let pki: FederationPki;
  let hs1: TestHomeserver;
  let hs2: TestHomeserver;
  let alice: string;
  let dan: string;
  let danDevice: string;
  let erin: string;
  let since: string;
  /** Device list EDUs as hs1 received them, in order (a copy of what its client-api consumes). */
  const received: InboundEdu[] = [];
  let capture: Subscription | undefined;

  beforeAll(async () => {
    pki = createFederationPki();
    [hs1, hs2] = await Promise.all([TestHomeserver.start(pki), TestHomeserver.start(pki)]);
    alice = (await hs1.register('alice')).user_id;
    const danLogin = await hs2.register('dan');
    dan = danLogin.user_id;
    danDevice = danLogin.device_id;
    erin = (await hs2.register('erin')).user_id;

    // The harness keeps its services private; the bus is only read here, never written to.
    const bus = (hs1 as unknown as { running: RunningServices }).running.runtime.bus;
    capture = await subscribeOn(bus, Subjects.eduInbound, (edu) => {
      if (edu.eduType === 'm.device_list_update' || edu.eduType === 'm.signing_key_update') received.push(edu);
    });

    const roomId = (await hs1.ok<{ room_id: string }>('POST', v3('createRoom'), { token: hs1.token(alice), body: { preset: 'public_chat' } })).room_id;
    await hs2.ok('POST', v3(`join/${enc(roomId)}?server_name=${enc(hs1.serverName)}`), { token: hs2.token(dan), body: {} });
    await eventually(`hs1 sees ${dan} joined`, async () => {
      const member = await hs1.call<{ membership?: string }>('GET', v3(`rooms/${enc(roomId)}/state/m.room.member/${enc(dan)}`), { token: hs1.token(alice) });
      return member.body.membership === 'join';
    });
    since = (await hs1.ok<{ next_batch: string }>('GET', v3('sync?timeout=0'), { token: hs1.token(alice) })).next_batch;
  }, 120_000);

  afterAll(async () => {
    await capture?.unsubscribe();
    for (const hs of [hs1, hs2]) await hs?.stop({ drop: true });
    pki?.dispose();
  });

  /**
   * Long-polls alice's /sync from `since` until `user` is in device_lists.changed; returns every
   * user reported changed on the way and moves `since` on.
   */
  async function aliceSeesChanged(user: string): Promise<string[]> {
    const changed = new Set<string>();
    await eventually(`${alice} sees ${user} in device_lists.changed`, async () => {
      const sync = await hs1.ok<any>('GET', v3(`sync?since=${enc(since)}&timeout=10000`), { token: hs1.token(alice) });
      since = sync.next_batch;
      for (const u of sync.device_lists?.changed ?? []) changed.add(u);
      return changed.has(user);
    }, 90_000);
    return [...changed];
  }

  async function danDevicesSeenByAlice(): Promise<Record<string, any>> {
    const query = await hs1.ok<any>('POST', v3('keys/query'), { token: hs1.token(alice), body: { device_keys: { [dan]: [] } } });
    expect(query.failures).toEqual({});
    return query;
  }

  function deviceKeys(deviceId: string) {
    return {
      user_id: dan,
      device_id: deviceId,
      algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
      keys: { [`curve25519:${deviceId}`]: `curve-${deviceId}`, [`ed25519:${deviceId}`]: `ed-${deviceId}` },
      signatures: { [dan]: { [`ed25519:${deviceId}`]: `sig-${deviceId}` } },
    };
  }

  /** GET /_matrix/federation/v1/user/devices/{userId} on hs2, asked as hs1. */
  async function userDevicesOnHs2(userId: string): Promise<{ stream_id: number; devices: Array<{ device_id: string }>; master_key?: unknown }> {
    const client = createFederationClient(hs1.serverName, hs1.signingKey, readFederationEnvironment());
    try {
      const answer = await client.get<any>(hs2.serverName, `/_matrix/federation/v1/user/devices/${enc(userId)}`);
      validateResponse('server-server', 'get', '/_matrix/federation/v1/user/devices/{userId}', 200, answer);
      return answer;
    } finally {
      client.close();
    }
  }

  it('a device logged in and its keys uploaded on hs2 reach the /sync and keys/query of a user of hs1 sharing a room', async () => {
    const second = await hs2.ok<{ device_id: string; access_token: string }>('POST', v3('login'), {
      body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'dan' }, password: PASSWORD, device_id: 'DANLAPTOP', initial_device_display_name: 'Dan laptop' },
    });
    expect(await aliceSeesChanged(dan)).toEqual([dan]);

    await hs2.ok('POST', v3('keys/upload'), { token: second.access_token, body: { device_keys: deviceKeys('DANLAPTOP') } });
    await aliceSeesChanged(dan);
    const query = await danDevicesSeenByAlice();
    expect(query.device_keys[dan].DANLAPTOP).toMatchObject({ ...deviceKeys('DANLAPTOP'), unsigned: { device_display_name: 'Dan laptop' } });

    await hs2.ok('PUT', v3('devices/DANLAPTOP'), { token: hs2.token(dan), body: { display_name: 'Dan old laptop' } });
    await aliceSeesChanged(dan);
    expect((await danDevicesSeenByAlice()).device_keys[dan].DANLAPTOP.unsigned).toEqual({ device_display_name: 'Dan old laptop' });
  }, TEST_TIMEOUT);

  it('a device deleted on hs2 is reported, and keys/query no longer lists it', async () => {
    const challenge = await hs2.call<{ session: string }>('DELETE', v3('devices/DANLAPTOP'), { token: hs2.token(dan), body: {} });
    expect(challenge.status).toBe(401);
    await hs2.ok('DELETE', v3('devices/DANLAPTOP'), {
      token: hs2.token(dan),
      body: { auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'dan' }, password: PASSWORD, session: challenge.body.session } },
    });
    await aliceSeesChanged(dan);
    expect(Object.keys((await danDevicesSeenByAlice()).device_keys[dan])).not.toContain('DANLAPTOP');
  }, TEST_TIMEOUT);

  it('cross-signing keys uploaded on hs2 are reported (m.signing_key_update)', async () => {
    const master = { user_id: dan, usage: ['master'], keys: { 'ed25519:danmasterkey': 'danmasterkey' } };
    const selfSigning = {
      user_id: dan, usage: ['self_signing'], keys: { 'ed25519:danselfsigningkey': 'danselfsigningkey' },
      signatures: { [dan]: { 'ed25519:danmasterkey': 'signature-by-master' } },
    };
    await hs2.ok('POST', v3('keys/device_signing/upload'), { token: hs2.token(dan), body: { master_key: master, self_signing_key: selfSigning } });
    await aliceSeesChanged(dan);
    const query = await danDevicesSeenByAlice();
    expect(query.master_keys[dan]).toEqual(master);
    expect(query.self_signing_keys[dan]).toEqual(selfSigning);
    const update = received.find((edu) => edu.eduType === 'm.signing_key_update');
    expect(update?.content).toEqual({ user_id: dan, master_key: master, self_signing_key: selfSigning });
  }, TEST_TIMEOUT);

  it('a user of hs2 sharing no room with alice never appears, over /sync or /keys/changes', async () => {
    const from = since;
    const erinLogin = await hs2.ok<{ device_id: string; access_token: string }>('POST', v3('login'), {
      body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'erin' }, password: PASSWORD },
    });
    await hs2.ok('POST', v3('keys/upload'), { token: erinLogin.access_token, body: { device_keys: { ...deviceKeys(erinLogin.device_id), user_id: erin } } });
    // dan's change comes after erin's: once alice sees it, erin's would have come too.
    await hs2.ok('PUT', v3(`devices/${enc(danDevice)}`), { token: hs2.token(dan), body: { display_name: 'Dan phone' } });
    expect(await aliceSeesChanged(dan)).toEqual([dan]);
    const changes = await hs1.ok<{ changed: string[]; left: string[] }>('GET', v3(`keys/changes?from=${enc(from)}&to=${enc(since)}`), { token: hs1.token(alice) });
    expect(changes.changed).toEqual([dan]);
    const { rows } = await hs1.db.query<{ n: number }>('SELECT count(*)::int AS n FROM device_list_changes WHERE user_id = $1', [erin]);
    expect(rows[0]!.n).toBe(0);
  }, TEST_TIMEOUT);

  it('consecutive m.device_list_update EDUs chain by prev_id, ending at the stream_id GET /user/devices answers', async () => {
    const updates = received.filter((edu) => edu.eduType === 'm.device_list_update').map((edu) => edu.content as { user_id: string; device_id: string; stream_id: number; prev_id: number[]; deleted?: boolean });
    // Login, keys, rename and deletion of DANLAPTOP, then the rename of dan's first device.
    expect(updates.map((u) => [u.user_id, u.device_id, u.deleted ?? false])).toEqual([
      [dan, 'DANLAPTOP', false], [dan, 'DANLAPTOP', false], [dan, 'DANLAPTOP', false], [dan, 'DANLAPTOP', true], [dan, danDevice, false],
    ]);
    for (let i = 1; i < updates.length; i++) {
      expect(updates[i]!.stream_id).toBeGreaterThan(updates[i - 1]!.stream_id);
      expect(updates[i]!.prev_id).toEqual([updates[i - 1]!.stream_id]);
    }
    // The first names dan's registration, which no server sharing a room with him was told of.
    expect(updates[0]!.prev_id).toHaveLength(1);
    expect(updates[0]!.prev_id[0]).toBeLessThan(updates[0]!.stream_id);

    const devices = await userDevicesOnHs2(dan);
    expect(devices.stream_id).toBe(updates.at(-1)!.stream_id);
    expect(devices.devices.map((d) => d.device_id)).toEqual([danDevice]);
    expect(devices.master_key).toMatchObject({ usage: ['master'] });
  }, TEST_TIMEOUT);

  it('drops device list EDUs of hs2 about other servers\' users, users sharing no room, or malformed, and keeps serving', async () => {
    const { rows: before } = await hs1.db.query<{ n: number }>('SELECT count(*)::int AS n FROM device_list_changes WHERE user_id = $1', [alice]);
    const edus = [
      { edu_type: 'm.device_list_update', content: { user_id: alice, device_id: 'FORGED', stream_id: 1, prev_id: [] } },
      { edu_type: 'm.device_list_update', content: { user_id: erin, device_id: 'ERIN', stream_id: 1, prev_id: [] } },
      { edu_type: 'm.device_list_update', content: { user_id: dan, device_id: 'X', stream_id: 'not a number' } },
      { edu_type: 'm.signing_key_update', content: { user_id: dan, master_key: 'not a key' } },
      { edu_type: 'm.signing_key_update', content: { user_id: `@someone:${hs1.serverName}`, master_key: { user_id: `@someone:${hs1.serverName}` } } },
      // A good one last: once alice sees it, the ones before it have been handled.
      { edu_type: 'm.device_list_update', content: { user_id: dan, device_id: 'FROMTEST', stream_id: 1_000_000, prev_id: [] } },
    ];
    const client = createFederationClient(hs2.serverName, hs2.signingKey, readFederationEnvironment());
    try {
      const answer = await client.put<Record<string, unknown>>(hs1.serverName, `/_matrix/federation/v1/send/${uniqueName('txn')}`, {
        origin: hs2.serverName, origin_server_ts: Date.now(), pdus: [], edus,
      });
      expect(answer).toEqual({ pdus: {} });
    } finally {
      client.close();
    }
    expect(await aliceSeesChanged(dan)).toEqual([dan]);
    const { rows: after } = await hs1.db.query<{ n: number }>('SELECT count(*)::int AS n FROM device_list_changes WHERE user_id = $1', [alice]);
    expect(after[0]!.n).toBe(before[0]!.n);
    const { rows: erinRows } = await hs1.db.query<{ n: number }>('SELECT count(*)::int AS n FROM device_list_changes WHERE user_id = $1', [erin]);
    expect(erinRows[0]!.n).toBe(0);
  }, TEST_TIMEOUT);
});
