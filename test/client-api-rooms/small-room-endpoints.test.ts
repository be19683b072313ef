/**
 * Room-bound small endpoints, on the whole homeserver in one process (federation-ingress
 * included): content reports, timestamp_to_event, the OpenID token exchange at
 * federation's /openid/userinfo, and /.well-known/matrix/support when not configured.
 */
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '@tessera/testing';
import { enc, Homeserver, v3, type Backend, type Login } from './harness.js';

const backends: Array<{ backend: Backend; available: boolean }> = [
  { backend: 'embedded', available: true },
  { backend: 'postgres', available: services.postgres && services.nats && services.redis },
];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

for (const { backend, available } of backends) {
  describe.skipIf(!available)(`reports, timestamp_to_event and OpenID (${backend})`, () => {
    let hs: Homeserver;
    let alice: Login;
    let bob: Login;
    let carol: Login;
    let roomId: string;
    const as = (l: Login) => ({ token: l.access_token });
    const reportCount = async () => Number((await hs.db.query<{ n: string | number }>('SELECT COUNT(*) AS n FROM content_reports')).rows[0]!.n);
    const send = async (who: Login, room: string, body: string) =>
      (await hs.ok('PUT', v3(`rooms/${enc(room)}/send/m.room.message/${enc(`${Math.random()}`)}`), { ...as(who), body: { msgtype: 'm.text', body } })).event_id as string;

    beforeAll(async () => {
      hs = await Homeserver.start(backend);
      alice = await hs.register('alice');
      bob = await hs.register('bob');
      carol = await hs.register('carol');
      roomId = (await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { preset: 'private_chat', invite: [bob.user_id] } })).room_id;
      await hs.ok('POST', v3(`join/${enc(roomId)}`), { ...as(bob), body: {} });
    }, 120_000);
    afterAll(async () => hs?.close());

    describe('POST /rooms/{roomId}/report/{eventId}', () => {
      it('stores a report from a member who can see the event', async () => {
        const eventId = await send(alice, roomId, 'something rude');
        const before = await reportCount();
        expect(await hs.ok('POST', v3(`rooms/${enc(roomId)}/report/${enc(eventId)}`), { ...as(bob), body: { reason: 'rude', score: -50 } })).toEqual({});
        expect(await hs.ok('POST', v3(`rooms/${enc(roomId)}/report/${enc(eventId)}`), { ...as(bob), body: {} })).toEqual({});
        expect(await reportCount()).toBe(before + 2);
        const { rows } = await hs.db.query('SELECT kind, reporter, room_id, event_id, reason, score FROM content_reports WHERE event_id = $1 ORDER BY id', [eventId]);
        expect(rows).toEqual([
          { kind: 'event', reporter: bob.user_id, room_id: roomId, event_id: eventId, reason: 'rude', score: -50 },
          { kind: 'event', reporter: bob.user_id, room_id: roomId, event_id: eventId, reason: null, score: null },
        ]);
      });

      it('refuses bad bodies and what the reporter cannot see, storing nothing', async () => {
        const eventId = await send(alice, roomId, 'another');
        const before = await reportCount();
        const path = v3(`rooms/${enc(roomId)}/report/${enc(eventId)}`);
        for (const score of [1, -101]) {
          const r = await hs.call('POST', path, { ...as(bob), body: { reason: 'x', score } });
          expect([r.status, r.body.errcode]).toEqual([400, 'M_INVALID_PARAM']);
        }
        const floatScore = await hs.call('POST', path, { ...as(bob), body: { score: -1.5 } });
        expect([floatScore.status, floatScore.body.errcode]).toEqual([400, 'M_BAD_JSON']);
        const badReason = await hs.call('POST', path, { ...as(bob), body: { reason: 5 } });
        expect([badReason.status, badReason.body.errcode]).toEqual([400, 'M_BAD_JSON']);
        // carol is not in the room; the event is unknown; the event id belongs to another room.
        const outsider = await hs.call('POST', path, { ...as(carol), body: { reason: 'x' } });
        expect([outsider.status, outsider.body.errcode]).toEqual([404, 'M_NOT_FOUND']);
        const unknown = await hs.call('POST', v3(`rooms/${enc(roomId)}/report/${enc('$nope')}`), { ...as(bob), body: { reason: 'x' } });
        expect([unknown.status, unknown.body.errcode]).toEqual([404, 'M_NOT_FOUND']);
        const otherRoom = (await hs.ok('POST', v3('createRoom'), { ...as(carol), body: {} })).room_id as string;
        const elsewhere = await hs.call('POST', v3(`rooms/${enc(otherRoom)}/report/${enc(eventId)}`), { ...as(carol), body: { reason: 'x' } });
        expect([elsewhere.status, elsewhere.body.errcode]).toEqual([404, 'M_NOT_FOUND']);
        // A redacted event has nothing left to review (the spec allows 404).
        await hs.ok('PUT', v3(`rooms/${enc(roomId)}/redact/${enc(eventId)}/${enc(`${Math.random()}`)}`), { ...as(alice), body: {} });
        const redacted = await hs.call('POST', path, { ...as(bob), body: { reason: 'x' } });
        expect([redacted.status, redacted.body.errcode]).toEqual([404, 'M_NOT_FOUND']);
        expect((await hs.call('POST', path, { body: { reason: 'x' } })).status).toBe(401);
        expect(await reportCount()).toBe(before);
      });

      it('refuses a member who left the room (the spec requires being joined)', async () => {
        const room = (await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { preset: 'public_chat' } })).room_id as string;
        await hs.ok('POST', v3(`join/${enc(room)}`), { ...as(carol), body: {} });
        const eventId = await send(alice, room, 'seen before leaving');
        await hs.ok('POST', v3(`rooms/${enc(room)}/leave`), { ...as(carol), body: {} });
        const left = await hs.call('POST', v3(`rooms/${enc(room)}/report/${enc(eventId)}`), { ...as(carol), body: { reason: 'x' } });
        expect([left.status, left.body.errcode]).toEqual([404, 'M_NOT_FOUND']);
      });
    });

    it('POST /rooms/{roomId}/report: any known room, by anyone; reason required', async () => {
      const before = await reportCount();
      expect(await hs.ok('POST', v3(`rooms/${enc(roomId)}/report`), { ...as(carol), body: { reason: '' } })).toEqual({});
      const missing = await hs.call('POST', v3(`rooms/${enc(roomId)}/report`), { ...as(carol), body: {} });
      expect([missing.status, missing.body.errcode]).toEqual([400, 'M_MISSING_PARAM']);
      const unknown = await hs.call('POST', v3(`rooms/${enc(`!nope:${hs.serverName}`)}/report`), { ...as(carol), body: { reason: 'x' } });
      expect([unknown.status, unknown.body.errcode]).toEqual([404, 'M_NOT_FOUND']);
      const badId = await hs.call('POST', v3('rooms/nope/report'), { ...as(carol), body: { reason: 'x' } });
      expect([badId.status, badId.body.errcode]).toEqual([400, 'M_INVALID_PARAM']);
      expect(await reportCount()).toBe(before + 1);
      const { rows } = await hs.db.query("SELECT reporter, room_id, reason FROM content_reports WHERE kind = 'room'");
      expect(rows).toEqual([{ reporter: carol.user_id, room_id: roomId, reason: '' }]);
    });

    it('POST /users/{userId}/report: known users only; reason required', async () => {
      const before = await reportCount();
      expect(await hs.ok('POST', v3(`users/${enc(alice.user_id)}/report`), { ...as(carol), body: { reason: 'spam' } })).toEqual({});
      const unknown = await hs.call('POST', v3(`users/${enc(`@nobody:${hs.serverName}`)}/report`), { ...as(carol), body: { reason: 'x' } });
      expect([unknown.status, unknown.body.errcode]).toEqual([404, 'M_NOT_FOUND']);
      const unseenRemote = await hs.call('POST', v3(`users/${enc('@who:elsewhere.example')}/report`), { ...as(carol), body: { reason: 'x' } });
      expect([unseenRemote.status, unseenRemote.body.errcode]).toEqual([404, 'M_NOT_FOUND']);
      const missing = await hs.call('POST', v3(`users/${enc(alice.user_id)}/report`), { ...as(carol), body: {} });
      expect([missing.status, missing.body.errcode]).toEqual([400, 'M_MISSING_PARAM']);
      expect(await reportCount()).toBe(before + 1);
      const { rows } = await hs.db.query("SELECT reporter, target_user_id, reason FROM content_reports WHERE kind = 'user'");
      expect(rows).toEqual([{ reporter: carol.user_id, target_user_id: alice.user_id, reason: 'spam' }]);
    });

    it('GET /v1/rooms/{roomId}/timestamp_to_event finds the closest event in each direction', async () => {
      const room = (await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { preset: 'private_chat' } })).room_id as string;
      await sleep(15);
      const first = await send(alice, room, 'first');
      await sleep(15);
      const between = Date.now();
      await sleep(15);
      const second = await send(alice, room, 'second');
      await sleep(15);
      const after = Date.now();
      const path = (ts: number | string, dir: string) => `/_matrix/client/v1/rooms/${enc(room)}/timestamp_to_event?ts=${ts}&dir=${dir}`;
      const forward = await hs.ok('GET', path(between, 'f'), as(alice));
      expect(forward.event_id).toBe(second);
      expect(forward.origin_server_ts).toBeGreaterThanOrEqual(between);
      const backward = await hs.ok('GET', path(between, 'b'), as(alice));
      expect(backward.event_id).toBe(first);
      expect(backward.origin_server_ts).toBeLessThanOrEqual(between);
      expect((await hs.ok('GET', path(after, 'b'), as(alice))).event_id).toBe(second);
      const none = await hs.call('GET', path(after, 'f'), as(alice));
      expect([none.status, none.body.errcode]).toEqual([404, 'M_NOT_FOUND']);
      const beforeAll = await hs.call('GET', path(0, 'b'), as(alice));
      expect([beforeAll.status, beforeAll.body.errcode]).toEqual([404, 'M_NOT_FOUND']);

      const outsider = await hs.call('GET', path(between, 'f'), as(carol));
      expect([outsider.status, outsider.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
      const badDir = await hs.call('GET', path(between, 'x'), as(alice));
      expect([badDir.status, badDir.body.errcode]).toEqual([400, 'M_INVALID_PARAM']);
      const noDir = await hs.call('GET', `/_matrix/client/v1/rooms/${enc(room)}/timestamp_to_event?ts=1`, as(alice));
      expect([noDir.status, noDir.body.errcode]).toEqual([400, 'M_MISSING_PARAM']);
      const noTs = await hs.call('GET', `/_matrix/client/v1/rooms/${enc(room)}/timestamp_to_event?dir=f`, as(alice));
      expect([noTs.status, noTs.body.errcode]).toEqual([400, 'M_MISSING_PARAM']);
      const badTs = await hs.call('GET', path('soon', 'f'), as(alice));
      expect([badTs.status, badTs.body.errcode]).toEqual([400, 'M_INVALID_PARAM']);
      expect((await hs.call('GET', path(between, 'f'))).status).toBe(401);
    });

    it('exchanges an OpenID token at federation /openid/userinfo, unsigned', async () => {
      const port = (hs.running.apps.get('federation')!.getHttpServer().address() as AddressInfo).port;
      const userinfo = async (query: string) => {
        const response = await fetch(`http://127.0.0.1:${port}/_matrix/federation/v1/openid/userinfo${query}`);
        return { status: response.status, body: (await response.json()) as Record<string, unknown> };
      };
      const issued = await hs.ok('POST', v3(`user/${enc(bob.user_id)}/openid/request_token`), { ...as(bob), body: {} });
      expect(issued.matrix_server_name).toBe(hs.serverName);
      expect(await userinfo(`?access_token=${enc(issued.access_token)}`)).toEqual({ status: 200, body: { sub: bob.user_id } });
      expect(await userinfo('?access_token=not-a-token')).toMatchObject({ status: 401, body: { errcode: 'M_UNKNOWN_TOKEN' } });
      // A client access token is no OpenID token.
      expect(await userinfo(`?access_token=${enc(bob.access_token)}`)).toMatchObject({ status: 401, body: { errcode: 'M_UNKNOWN_TOKEN' } });
      expect(await userinfo('')).toMatchObject({ status: 401, body: { errcode: 'M_MISSING_TOKEN' } });
      // An expired token is refused.
      await hs.db.query('UPDATE openid_tokens SET expires_ts = $1', [Date.now() - 1]);
      expect(await userinfo(`?access_token=${enc(issued.access_token)}`)).toMatchObject({ status: 401, body: { errcode: 'M_UNKNOWN_TOKEN' } });
    });

    it('GET /.well-known/matrix/support is 404 M_NOT_FOUND when not configured', async () => {
      const reply = await hs.call('GET', '/.well-known/matrix/support');
      expect([reply.status, reply.body.errcode]).toEqual([404, 'M_NOT_FOUND']);
    });
  });
}
