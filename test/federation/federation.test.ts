/**
 * Two homeservers of ours federating over real HTTPS on loopback (test CA, allow-listed
 * loopback), each with its own PostgreSQL database and bus: request authentication, joins
 * through send_join, /send with good and bad PDUs, idempotent transactions, and the history
 * endpoints, every answer validated against the spec's OpenAPI.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computeEventId, generateSigningKey, getRoomVersion, stateKey } from '@tessera/protocol';
import {
  ROOMSERVER_FEDERATION, ROOMSERVER_INPUT, Subjects, subscribeOn,
  type CreateRoomReply, type InboundEdu, type EventIdReply, type JoinRemoteRequest, type RemoteMembershipReply, type RoomServerRequest,
} from '@tessera/bus';
import { signRequest, type FederationClient } from '@tessera/federation-client';
import { getCurrentState, getEvent, isRoomHeld } from '@tessera/storage';
import { services, validateResponse } from '@tessera/testing';
import { createFederationPki, FederatingServer, type FederationPki } from './harness.js';
import { buildRemotePdu } from './pdus.js';

const enc = encodeURIComponent;

describe.skipIf(!services.postgres)('federation between two homeservers over HTTPS', () => {
  let pki: FederationPki;
  let hs1: FederatingServer;
  let hs2: FederatingServer;
  let as2: FederationClient; // requests signed as hs2
  let roomId: string;
  let alice: string;
  let bob: string;

  beforeAll(async () => {
    pki = createFederationPki();
    hs1 = await FederatingServer.start(pki);
    hs2 = await FederatingServer.start(pki);
    as2 = hs2.client();
    alice = `@alice:${hs1.serverName}`;
    bob = `@bob:${hs2.serverName}`;
    const created = await hs1.bus.request<RoomServerRequest, CreateRoomReply>(ROOMSERVER_INPUT, { op: 'createRoom', sender: alice, preset: 'public_chat', name: 'Federated' });
    roomId = created.roomId;
  });

  afterAll(async () => {
    as2?.close();
    await hs2?.stop();
    await hs1?.stop();
    pki?.dispose();
  });

  async function rawRequest(method: string, path: string, headers: Record<string, string>, body?: string) {
    // Raw HTTPS with the test CA, to send what our own client never would.
    const { request } = await import('node:https');
    return new Promise<{ status: number; body: any }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: hs1.port, method, path, ca: pki.ca.certPem, headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  it('refuses unsigned, wrongly keyed, misdirected and tampered requests with 401 M_UNAUTHORIZED', async () => {
    const path = `/_matrix/federation/v1/send/refused1`;
    const content = { origin: hs2.serverName, origin_server_ts: Date.now(), pdus: [], edus: [{ edu_type: 'm.typing', content: { room_id: roomId, user_id: bob, typing: true } }] };
    const body = JSON.stringify(content);

    const unsigned = await rawRequest('PUT', path, {}, body);
    expect(unsigned.status).toBe(401);
    expect(unsigned.body.errcode).toBe('M_UNAUTHORIZED');

    // Signed by a key hs2 never published, under hs2's key id.
    const impostor = { ...generateSigningKey(hs2.signingKey.keyId.slice('ed25519:'.length)) };
    const wrongKey = signRequest({ method: 'PUT', uri: path, origin: hs2.serverName, destination: hs1.serverName, content }, impostor);
    expect((await rawRequest('PUT', path, { authorization: wrongKey }, body)).status).toBe(401);

    const misdirected = signRequest({ method: 'PUT', uri: path, origin: hs2.serverName, destination: 'elsewhere.test', content }, hs2.signingKey);
    const m = await rawRequest('PUT', path, { authorization: misdirected }, body);
    expect(m.status).toBe(401);
    expect(m.body.errcode).toBe('M_UNAUTHORIZED');

    const good = signRequest({ method: 'PUT', uri: path, origin: hs2.serverName, destination: hs1.serverName, content }, hs2.signingKey);
    const tampered = await rawRequest('PUT', path, { authorization: good }, JSON.stringify({ ...content, pdus: [{ forged: true }] }));
    expect(tampered.status).toBe(401);

    // None of them was recorded as a transaction: the same id signed properly is applied now.
    const accepted = await rawRequest('PUT', path, { authorization: good }, body);
    expect(accepted.status).toBe(200);
    validateResponse('server-server', 'PUT', '/_matrix/federation/v1/send/{txnId}', 200, accepted.body);
  });

  it('joins a room held by hs1 from hs2 through make_join/send_join', async () => {
    expect(await isRoomHeld(hs2.db, roomId)).toBe(false);
    // make_join answers as the spec says.
    const made = await as2.get<any>(hs1.serverName, `/_matrix/federation/v1/make_join/${enc(roomId)}/${enc(bob)}`, { query: { ver: ['10', '11'] } });
    validateResponse('server-server', 'GET', '/_matrix/federation/v1/make_join/{roomId}/{userId}', 200, made);
    // A version hs2 says it does not support is refused.
    await expect(as2.get(hs1.serverName, `/_matrix/federation/v1/make_join/${enc(roomId)}/${enc(bob)}`, { query: { ver: ['1'] } })).rejects.toMatchObject({ status: 400, errcode: 'M_INCOMPATIBLE_ROOM_VERSION' });

    const joined = await hs2.bus.request<JoinRemoteRequest, RemoteMembershipReply>(ROOMSERVER_FEDERATION, { op: 'joinRemote', roomId, userId: bob, serverNames: [hs1.serverName], content: { displayname: 'Bob' } });
    expect(await isRoomHeld(hs2.db, roomId)).toBe(true);
    // Both servers hold the same current state, with bob joined.
    const s1 = new Map((await getCurrentState(hs1.db, roomId)).map(([t, k, id]) => [stateKey(t, k), id]));
    const s2 = new Map((await getCurrentState(hs2.db, roomId)).map(([t, k, id]) => [stateKey(t, k), id]));
    expect(s2).toEqual(s1);
    expect(s1.get(stateKey('m.room.member', bob))).toBe(joined.eventId);
    expect((await getEvent(hs2.db, joined.eventId))!.json.content).toMatchObject({ membership: 'join', displayname: 'Bob' });
  });

  it('accepts good PDUs in /send, refuses bad signatures and unauthorized state, stores a bad hash redacted, and applies a transaction once', async () => {
    const good = await buildRemotePdu(hs1.db, roomId, { type: 'm.room.message', sender: bob, content: { msgtype: 'm.text', body: 'hello from hs2' } }, hs2.serverName, hs2.signingKey);
    const stranger = generateSigningKey('stranger');
    const badSig = await buildRemotePdu(hs1.db, roomId, { type: 'm.room.message', sender: bob, content: { msgtype: 'm.text', body: 'forged' } }, hs2.serverName, stranger);
    const hashed = await buildRemotePdu(hs1.db, roomId, { type: 'm.room.message', sender: bob, content: { msgtype: 'm.text', body: 'original' } }, hs2.serverName, hs2.signingKey);
    const badHash = { ...hashed.pdu, content: { msgtype: 'm.text', body: 'altered after signing' } };
    // bob (power 0) may not change the power levels.
    const current = await getEvent(hs1.db, (await getCurrentState(hs1.db, roomId)).find(([t]) => t === 'm.room.power_levels')![2]);
    const grab = await buildRemotePdu(hs1.db, roomId, { type: 'm.room.power_levels', stateKey: '', sender: bob, content: { ...current!.json.content, users: { [bob]: 100 } } }, hs2.serverName, hs2.signingKey);

    const txn = { origin: hs2.serverName, origin_server_ts: Date.now(), pdus: [good.pdu, badSig.pdu, badHash, grab.pdu] };
    const res = await as2.put<any>(hs1.serverName, '/_matrix/federation/v1/send/txn-mixed', txn);
    validateResponse('server-server', 'PUT', '/_matrix/federation/v1/send/{txnId}', 200, res);
    expect(res.pdus[good.eventId]).toEqual({});
    expect(res.pdus[badSig.eventId].error).toMatch(/signature/);
    expect(res.pdus[grab.eventId].error).toBeTruthy();
    expect(res.pdus[hashed.eventId]).toEqual({});

    expect((await getEvent(hs1.db, good.eventId))!.streamPos).not.toBeNull();
    expect(await getEvent(hs1.db, badSig.eventId)).toBeNull();
    const grabbed = await getEvent(hs1.db, grab.eventId);
    expect(grabbed?.rejectedReason).toBeTruthy();
    // The power levels did not change.
    expect((await getCurrentState(hs1.db, roomId)).find(([t]) => t === 'm.room.power_levels')![2]).toBe(current!.eventId);
    // The event with a bad hash is kept, redacted: its content is gone.
    expect((await getEvent(hs1.db, hashed.eventId))!.json.content).toEqual({});

    // The same transaction again: the same answer, nothing applied twice.
    const again = await as2.put<any>(hs1.serverName, '/_matrix/federation/v1/send/txn-mixed', txn);
    expect(again).toEqual(res);
    const { rows } = await hs1.db.query<{ n: number }>('SELECT COUNT(*)::int AS n FROM events WHERE event_id = $1', [good.eventId]);
    expect(rows[0]!.n).toBe(1);

    // The room carries on after the refused state change.
    const after = await buildRemotePdu(hs1.db, roomId, { type: 'm.room.message', sender: bob, content: { msgtype: 'm.text', body: 'still here' } }, hs2.serverName, hs2.signingKey);
    const res2 = await as2.put<any>(hs1.serverName, '/_matrix/federation/v1/send/txn-after', { origin: hs2.serverName, origin_server_ts: Date.now(), pdus: [after.pdu] });
    expect(res2.pdus[after.eventId]).toEqual({});
    // A local send on hs1 still works too.
    const local = await hs1.bus.request<RoomServerRequest, EventIdReply>(ROOMSERVER_INPUT, { op: 'sendEvent', roomId, sender: alice, type: 'm.room.message', content: { msgtype: 'm.text', body: 'hi bob' } });
    expect(local.eventId).toMatch(/^\$/);
  });

  it('fetches missing prev_events with get_missing_events', async () => {
    // hs2 accepts two of bob's events but only the second reaches hs1 (the first transaction
    // was lost): hs1 must fetch the first from hs2 before deciding the second.
    const first = await buildRemotePdu(hs2.db, roomId, { type: 'm.room.message', sender: bob, content: { msgtype: 'm.text', body: 'lost' } }, hs2.serverName, hs2.signingKey);
    await hs2.bus.request(ROOMSERVER_FEDERATION, { op: 'inputFederatedPdus', roomId, roomVersion: '10', origin: hs2.serverName, pdus: [first.pdu] });
    const second = await buildRemotePdu(hs2.db, roomId, { type: 'm.room.message', sender: bob, content: { msgtype: 'm.text', body: 'after the lost one' } }, hs2.serverName, hs2.signingKey, Date.now());
    expect(second.pdu.prev_events).toContain(first.eventId);
    await hs2.bus.request(ROOMSERVER_FEDERATION, { op: 'inputFederatedPdus', roomId, roomVersion: '10', origin: hs2.serverName, pdus: [second.pdu] });
    const res = await as2.put<any>(hs1.serverName, '/_matrix/federation/v1/send/txn-gap', { origin: hs2.serverName, origin_server_ts: Date.now(), pdus: [second.pdu] });
    expect(res.pdus[second.eventId]).toEqual({});
    expect((await getEvent(hs1.db, first.eventId))?.streamPos).not.toBeNull();
  });

  it('fills a gap of 300 events by paging get_missing_events backwards, and stores them oldest first', async () => {
    // hs2 accepts a chain of 301 of bob's events; hs1 receives only the last: the 300 before
    // it are more than one get_missing_events answer holds (at most 100 here).
    const chain: string[] = [];
    for (let i = 0; i <= 300; i++) {
      const e = await buildRemotePdu(hs2.db, roomId, { type: 'm.room.message', sender: bob, content: { msgtype: 'm.text', body: `gap ${i}` } }, hs2.serverName, hs2.signingKey);
      const r = await hs2.bus.request<object, { results: Record<string, { accepted: boolean }> }>(ROOMSERVER_FEDERATION, { op: 'inputFederatedPdus', roomId, roomVersion: '10', origin: hs2.serverName, pdus: [e.pdu] });
      expect(r.results[e.eventId]?.accepted).toBe(true);
      chain.push(e.eventId);
      if (i === 300) {
        const res = await as2.put<any>(hs1.serverName, '/_matrix/federation/v1/send/txn-long-gap', { origin: hs2.serverName, origin_server_ts: Date.now(), pdus: [e.pdu] });
        expect(res.pdus[e.eventId]).toEqual({});
      }
    }
    // Every event of the gap is in hs1's timeline (not an outlier bridged by fetched state), in chain order.
    const stored = await Promise.all(chain.map((id) => getEvent(hs1.db, id)));
    const missing = chain.filter((_, i) => !stored[i] || stored[i]!.outlier || stored[i]!.rejectedReason || stored[i]!.streamPos === null);
    expect(missing).toEqual([]);
    const positions = stored.map((e) => Number(e!.streamPos));
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
    expect(new Set(positions).size).toBe(positions.length);
  });

  it('answers state, state_ids, event, event_auth, backfill and get_missing_events as the spec says', async () => {
    const latest = (await getCurrentState(hs1.db, roomId)).find(([t, k]) => t === 'm.room.member' && k === bob)![2];
    const stateIds = await as2.get<any>(hs1.serverName, `/_matrix/federation/v1/state_ids/${enc(roomId)}`, { query: { event_id: latest } });
    validateResponse('server-server', 'GET', '/_matrix/federation/v1/state_ids/{roomId}', 200, stateIds);
    expect(stateIds.pdu_ids.length).toBeGreaterThan(3);
    const state = await as2.get<any>(hs1.serverName, `/_matrix/federation/v1/state/${enc(roomId)}`, { query: { event_id: latest } });
    validateResponse('server-server', 'GET', '/_matrix/federation/v1/state/{roomId}', 200, state);
    expect(state.pdus.length).toBe(stateIds.pdu_ids.length);
    const event = await as2.get<any>(hs1.serverName, `/_matrix/federation/v1/event/${enc(latest)}`);
    validateResponse('server-server', 'GET', '/_matrix/federation/v1/event/{eventId}', 200, event);
    const auth = await as2.get<any>(hs1.serverName, `/_matrix/federation/v1/event_auth/${enc(roomId)}/${enc(latest)}`);
    validateResponse('server-server', 'GET', '/_matrix/federation/v1/event_auth/{roomId}/{eventId}', 200, auth);
    expect(auth.auth_chain.some((e: any) => e.type === 'm.room.create')).toBe(true);
    const extremity = (await hs1.db.query<{ event_id: string }>(`SELECT e.event_id FROM forward_extremities f JOIN events e ON e.event_nid = f.event_nid`)).rows[0]!.event_id;
    const backfill = await as2.get<any>(hs1.serverName, `/_matrix/federation/v1/backfill/${enc(roomId)}`, { query: { v: [extremity], limit: 5 } });
    validateResponse('server-server', 'GET', '/_matrix/federation/v1/backfill/{roomId}', 200, backfill);
    expect(backfill.pdus.length).toBe(5);
    const missing = await as2.post<any>(hs1.serverName, `/_matrix/federation/v1/get_missing_events/${enc(roomId)}`, { earliest_events: [latest], latest_events: [extremity], limit: 10 });
    validateResponse('server-server', 'POST', '/_matrix/federation/v1/get_missing_events/{roomId}', 200, missing);
    expect(missing.events.length).toBeGreaterThan(0);
    expect(missing.events.map((e: any) => e.type)).not.toContain('m.room.create');

    // A server with nobody in the room is refused.
    const outsider = await FederatingServer.start(pki);
    try {
      const c = outsider.client();
      await expect(c.get(hs1.serverName, `/_matrix/federation/v1/state_ids/${enc(roomId)}`, { query: { event_id: latest } })).rejects.toMatchObject({ status: 403 });
      c.close();
    } finally {
      await outsider.stop();
    }
  });

  it('answers timestamp_to_event with the closest timeline event in each direction, and the spec errors', async () => {
    const { rows } = await hs1.db.query<{ event_id: string; origin_server_ts: string }>(
      `SELECT e.event_id, e.origin_server_ts FROM events e JOIN rooms r ON r.room_nid = e.room_nid
        WHERE r.room_id = $1 AND e.stream_pos IS NOT NULL AND NOT e.outlier AND e.rejected_reason IS NULL
        ORDER BY e.origin_server_ts, e.stream_pos`,
      [roomId],
    );
    const first = rows[0]!;
    const last = rows[rows.length - 1]!;
    const path = `/_matrix/federation/v1/timestamp_to_event/${enc(roomId)}`;
    const forward = await as2.get<any>(hs1.serverName, path, { query: { ts: '0', dir: 'f' } });
    validateResponse('server-server', 'GET', '/_matrix/federation/v1/timestamp_to_event/{roomId}', 200, forward);
    expect(forward).toEqual({ event_id: first.event_id, origin_server_ts: Number(first.origin_server_ts) });
    const backward = await as2.get<any>(hs1.serverName, path, { query: { ts: String(Number(last.origin_server_ts) + 60_000), dir: 'b' } });
    expect(backward).toEqual({ event_id: last.event_id, origin_server_ts: Number(last.origin_server_ts) });
    await expect(as2.get(hs1.serverName, path, { query: { ts: String(Number(last.origin_server_ts) + 60_000), dir: 'f' } })).rejects.toMatchObject({ status: 404 });
    await expect(as2.get(hs1.serverName, path, { query: { ts: '0' } })).rejects.toMatchObject({ status: 400 });
    await expect(as2.get(hs1.serverName, path, { query: { ts: 'soon', dir: 'f' } })).rejects.toMatchObject({ status: 400 });
  });

  it('answers send_join with omit_members: the heroes\' memberships only, and no auth event the state already holds', async () => {
    const outsider = await FederatingServer.start(pki);
    const as3 = outsider.client();
    try {
      const room = (await hs1.bus.request<RoomServerRequest, CreateRoomReply>(ROOMSERVER_INPUT, { op: 'createRoom', sender: alice, preset: 'public_chat' })).roomId;
      const carol = `@carol:${outsider.serverName}`;
      const join = async (query: Record<string, string>) => {
        const { pdu, eventId } = await buildRemotePdu(hs1.db, room, { type: 'm.room.member', sender: carol, stateKey: carol, content: { membership: 'join' } }, outsider.serverName, outsider.signingKey);
        return as3.put<any>(hs1.serverName, `/_matrix/federation/v2/send_join/${enc(room)}/${enc(eventId)}`, pdu, { query });
      };
      const partial = await join({ omit_members: 'true' });
      validateResponse('server-server', 'PUT', '/_matrix/federation/v2/send_join/{roomId}/{eventId}', 200, partial);
      expect(partial.members_omitted).toBe(true);
      // No name or canonical alias: alice, the one other member, is the room's hero and stays.
      expect(partial.state.map((e: any) => `${e.type}|${e.state_key}`).sort()).toEqual(
        ['m.room.create|', 'm.room.history_visibility|', 'm.room.join_rules|', `m.room.member|${alice}`, 'm.room.power_levels|'].sort(),
      );
      expect(partial.auth_chain).toEqual([]);
      expect(partial.servers_in_room).toContain(hs1.serverName);
      // Joined now: a second join (a repeat) without omit_members answers in full, members_omitted false.
      const full = await join({});
      expect(full.members_omitted).toBe(false);
      expect(full.state.filter((e: any) => e.type === 'm.room.member').map((e: any) => e.state_key).sort()).toEqual([alice, carol].sort());
    } finally {
      as3.close();
      await outsider.stop();
    }
  });

  it('serves /backfill and /get_missing_events as the asking server may see them: events from before its users joined a "joined" room redacted', async () => {
    const room = (await hs1.bus.request<RoomServerRequest, CreateRoomReply>(ROOMSERVER_INPUT, {
      op: 'createRoom', sender: alice, preset: 'public_chat',
      initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'joined' } }],
    })).roomId;
    const send = async (body: string) =>
      (await hs1.bus.request<RoomServerRequest, EventIdReply>(ROOMSERVER_INPUT, { op: 'sendEvent', roomId: room, sender: alice, type: 'm.room.message', content: { msgtype: 'm.text', body } })).eventId;
    const secret = await send('before hs2 was in the room');
    await hs2.bus.request<JoinRemoteRequest, RemoteMembershipReply>(ROOMSERVER_FEDERATION, { op: 'joinRemote', roomId: room, userId: bob, serverNames: [hs1.serverName], content: {} });
    const after = await send('after hs2 joined');
    const byId = (pdus: any[]) => new Map(pdus.map((p) => [computeEventId(p, getRoomVersion('10')), p]));
    const backfill = byId((await as2.get<any>(hs1.serverName, `/_matrix/federation/v1/backfill/${enc(room)}`, { query: { v: [after], limit: 20 } })).pdus);
    expect(backfill.get(after)?.content).toEqual({ msgtype: 'm.text', body: 'after hs2 joined' });
    expect(backfill.get(secret)?.content).toEqual({});
    // The create event and the rest of the state stay whole (redaction keeps what the auth rules need).
    expect([...backfill.values()].find((p) => p.type === 'm.room.history_visibility')?.content).toEqual({ history_visibility: 'joined' });
    const missing = byId((await as2.post<any>(hs1.serverName, `/_matrix/federation/v1/get_missing_events/${enc(room)}`, { earliest_events: [], latest_events: [after], limit: 20 })).events);
    expect(missing.get(secret)?.content).toEqual({});
  });

  it('serves keys as a notary, countersigned', async () => {
    const single = await as2.get<any>(hs1.serverName, `/_matrix/key/v2/query/${enc(hs2.serverName)}`);
    validateResponse('server-server', 'GET', '/_matrix/key/v2/query/{serverName}', 200, single);
    expect(single.server_keys[0].signatures[hs1.serverName]).toBeDefined();
    expect(single.server_keys[0].signatures[hs2.serverName]).toBeDefined();
    const batch = await as2.post<any>(hs1.serverName, '/_matrix/key/v2/query', { server_keys: { [hs2.serverName]: {}, [hs1.serverName]: {} } });
    validateResponse('server-server', 'POST', '/_matrix/key/v2/query', 200, batch);
    expect(batch.server_keys.map((d: any) => d.server_name).sort()).toEqual([hs1.serverName, hs2.serverName].sort());
  });

  it("drops typing notices and receipts for rooms whose server ACL denies the sending server, and passes the others on", async () => {
    const seen: InboundEdu[] = [];
    const subscription = await subscribeOn(hs1.bus, Subjects.eduInbound, (edu) => void seen.push(edu));
    try {
      const denied = (await hs1.bus.request<RoomServerRequest, CreateRoomReply>(ROOMSERVER_INPUT, { op: 'createRoom', sender: alice, preset: 'public_chat', name: 'ACL' })).roomId;
      // Port numbers are not compared: this denies every server on loopback, hs2 among them.
      await hs1.bus.request<RoomServerRequest, EventIdReply>(ROOMSERVER_INPUT, {
        op: 'sendEvent', roomId: denied, sender: alice, type: 'm.room.server_acl', stateKey: '', content: { allow: ['*'], deny: ['127.0.0.1'] },
      });
      const receipt = (room: string) => ({ 'm.read': { [bob]: { event_ids: [`$event-in-${room}`], data: { ts: 1 } } } });
      await as2.put(hs1.serverName, '/_matrix/federation/v1/send/txn-acl-edus', {
        origin: hs2.serverName,
        origin_server_ts: Date.now(),
        pdus: [],
        edus: [
          { edu_type: 'm.typing', content: { room_id: denied, user_id: bob, typing: true } },
          { edu_type: 'm.receipt', content: { [denied]: receipt(denied), [roomId]: receipt(roomId) } },
          { edu_type: 'm.typing', content: { room_id: roomId, user_id: bob, typing: true } },
        ],
      });
      for (let i = 0; i < 200 && seen.filter((e) => e.eduType === 'm.typing').length === 0; i++) await new Promise((r) => setTimeout(r, 25));
      const mine = seen.filter((e) => e.origin === hs2.serverName && (e.eduType === 'm.typing' || e.eduType === 'm.receipt'));
      expect(mine.map((e) => [e.eduType, e.content])).toEqual([
        ['m.receipt', { [roomId]: receipt(roomId) }],
        ['m.typing', { room_id: roomId, user_id: bob, typing: true }],
      ]);
    } finally {
      await subscription.unsubscribe();
    }
  });
});
