/**
 * What an audit of Complement's tests/csapi (account_*, apidoc_*, invalid, keychanges, e2e key
 * backup, device lists) found this server answering otherwise than Complement (and Synapse)
 * expect; each case names the Complement test it stands for.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '@tessera/testing';
import { enc, Homeserver, v3, type Backend, type Login } from './harness.js';

const backends: Array<{ backend: Backend; available: boolean }> = [
  { backend: 'embedded', available: true },
  { backend: 'postgres', available: services.postgres && services.nats && services.redis },
];

const PASSWORD = 'correct horse battery staple';

for (const { backend, available } of backends) {
  describe.skipIf(!available)(`Complement csapi apidoc findings (${backend})`, () => {
    let hs: Homeserver;
    let alice: Login;
    let bob: Login;
    const as = (l: Login) => ({ token: l.access_token });
    const send = async (who: Login, roomId: string, body: string) =>
      (await hs.ok('PUT', v3(`rooms/${enc(roomId)}/send/m.room.message/${enc(`${Math.random()}`)}`), { ...as(who), body: { msgtype: 'm.text', body } })).event_id as string;

    beforeAll(async () => {
      hs = await Homeserver.start(backend);
      alice = await hs.register('alice');
      bob = await hs.register('bob');
    }, 120_000);
    afterAll(async () => hs?.close());

    it('sends JSON as plain application/json (TestLogin "GET /login yields a set of flows", TestRegistration "POST {} returns a set of flows")', async () => {
      // GET with a body, as Complement sends it.
      const got = await new Promise<{ status: number; type: string | undefined }>((resolve, reject) => {
        const req = request(`${hs.base}${v3('login')}`, { method: 'GET', headers: { 'content-type': 'application/json', 'content-length': '2' } }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode!, type: res.headers['content-type'] }));
        });
        req.on('error', reject);
        req.end('{}');
      });
      expect(got).toEqual({ status: 200, type: 'application/json' });
      const challenge = await fetch(`${hs.base}${v3('register')}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      expect(challenge.status).toBe(401);
      expect(challenge.headers.get('content-type')).toBe('application/json');
    });

    it('refuses UIA with another user\'s credentials with 403 (TestDeviceManagement "requires UI auth user to match device owner")', async () => {
      const second = await hs.ok('POST', v3('login'), { body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: alice.user_id }, password: PASSWORD } });
      const asBob = { auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: bob.user_id }, password: PASSWORD } };
      const refused = await hs.call('DELETE', v3(`devices/${enc(second.device_id)}`), { ...as(alice), body: asBob });
      expect(refused.status).toBe(403);
      expect(refused.body.errcode).toBe('M_FORBIDDEN');
      expect((await hs.call('GET', v3(`devices/${enc(second.device_id)}`), as(alice))).status).toBe(200);
      // A wrong password of the right user stays a failed stage (401 with the flows).
      const wrong = await hs.call('DELETE', v3(`devices/${enc(second.device_id)}`), { ...as(alice), body: { auth: { ...asBob.auth, identifier: { type: 'm.id.user', user: alice.user_id }, password: 'nope' } } });
      expect(wrong.status).toBe(401);
      expect(wrong.body).toMatchObject({ errcode: 'M_FORBIDDEN', session: expect.any(String), flows: expect.any(Array) });
      await hs.ok('DELETE', v3(`devices/${enc(second.device_id)}`), { ...as(alice), body: { auth: { ...asBob.auth, identifier: { type: 'm.id.user', user: alice.user_id } } } });
    });

    it('puts the rich topic with a createRoom topic (TestRoomCreate "writes rich topic representation")', async () => {
      const { room_id } = await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { preset: 'public_chat', topic: 'Test Room', initial_state: [{ type: 'm.room.topic', state_key: '', content: { topic: 'Shenanigans' } }] } });
      expect(await hs.ok('GET', v3(`rooms/${enc(room_id)}/state/m.room.topic/`), as(alice))).toEqual({ topic: 'Test Room', 'm.topic': { 'm.text': [{ body: 'Test Room', mimetype: 'text/plain' }] } });
      const plain = await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { initial_state: [{ type: 'm.room.topic', state_key: '', content: { topic: 'As given' } }] } });
      expect(await hs.ok('GET', v3(`rooms/${enc(plain.room_id)}/state/m.room.topic/`), as(alice))).toEqual({ topic: 'As given' });
    });

    it('keeps the other keys of a join body in the member event (TestRoomMembers "can join a room with custom content")', async () => {
      const { room_id } = await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { preset: 'public_chat' } });
      await hs.ok('POST', v3(`join/${enc(room_id)}`), { ...as(bob), body: { foo: 'bar', membership: 'leave', displayname: 'not me' } });
      expect(await hs.ok('GET', v3(`rooms/${enc(room_id)}/state/m.room.member/${enc(bob.user_id)}`), as(alice))).toEqual({ foo: 'bar', membership: 'join', displayname: 'bob' });
    });

    it('refuses content without canonical JSON with 400 M_BAD_JSON, not 503 (TestJson "Invalid numerical values")', async () => {
      const { room_id } = await hs.ok('POST', v3('createRoom'), { ...as(alice), body: {} });
      for (const raw of ['{"body": 9007199254740992}', '{"body": -9007199254740992}', '{"body": 1.1}']) {
        const reply = await hs.call('PUT', v3(`rooms/${enc(room_id)}/send/complement.dummy/${Math.random()}`), { ...as(alice), rawBody: raw });
        expect([reply.status, reply.body.errcode], raw).toEqual([400, 'M_BAD_JSON']);
        const state = await hs.call('PUT', v3(`rooms/${enc(room_id)}/state/complement.dummy/x`), { ...as(alice), rawBody: raw });
        expect([state.status, state.body.errcode], raw).toEqual([400, 'M_BAD_JSON']);
      }
    });

    it('drops an emptied alt_aliases with a deleted alias (TestRoomDeleteAlias "Can delete canonical alias")', async () => {
      const { room_id } = await hs.ok('POST', v3('createRoom'), { ...as(alice), body: {} });
      const alias = `#gone:${hs.serverName}`;
      await hs.ok('PUT', v3(`directory/room/${enc(alias)}`), { ...as(alice), body: { room_id } });
      await hs.ok('PUT', v3(`rooms/${enc(room_id)}/state/m.room.canonical_alias/`), { ...as(alice), body: { alias, alt_aliases: [alias] } });
      await hs.ok('DELETE', v3(`directory/room/${enc(alias)}`), as(alice));
      expect(await hs.ok('GET', v3(`rooms/${enc(room_id)}/state/m.room.canonical_alias/`), as(alice))).toEqual({});
    });

    it('refuses /messages of a forgotten room with 403 whatever the parameters (TestRoomForget "Forgotten room messages cannot be paginated")', async () => {
      const { room_id } = await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { preset: 'public_chat' } });
      await hs.ok('POST', v3(`join/${enc(room_id)}`), { ...as(bob), body: {} });
      await send(alice, room_id, 'Hello world!');
      await hs.ok('POST', v3(`rooms/${enc(room_id)}/leave`), { ...as(alice), body: {} });
      // Left but not forgotten: the history up to the leave stays readable; "dir" is still required.
      expect((await hs.call('GET', v3(`rooms/${enc(room_id)}/messages?dir=b`), as(alice))).status).toBe(200);
      expect((await hs.call('GET', v3(`rooms/${enc(room_id)}/messages`), as(alice))).body.errcode).toBe('M_MISSING_PARAM');
      await hs.ok('POST', v3(`rooms/${enc(room_id)}/forget`), { ...as(alice), body: {} });
      for (const query of ['', '?dir=b']) {
        const reply = await hs.call('GET', v3(`rooms/${enc(room_id)}/messages${query}`), as(alice));
        expect([reply.status, reply.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
      }
      // Rejoining (the room is public) makes it readable again.
      await hs.ok('POST', v3(`join/${enc(room_id)}`), { ...as(alice), body: {} });
      expect((await hs.call('GET', v3(`rooms/${enc(room_id)}/messages?dir=b`), as(alice))).status).toBe(200);
    });

    it('gives a full search page a next_batch, and the page after none (TestSearch "Can back-paginate search results", "Can get context")', async () => {
      const { room_id } = await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { preset: 'private_chat' } });
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) ids.push(await send(alice, room_id, `Message number ${i}`));
      const search = async (next?: string) =>
        (await hs.ok('POST', v3(`search${next ? `?next_batch=${enc(next)}` : ''}`), {
          ...as(alice),
          body: { search_categories: { room_events: { keys: ['content.body'], search_term: 'Message', order_by: 'recent', filter: { limit: 10, rooms: [room_id] } } } },
        })).search_categories.room_events as { count: number; results: Array<{ result: { event_id: string } }>; next_batch?: string };
      const first = await search();
      expect([first.count, first.results[0]!.result.event_id, first.results[9]!.result.event_id]).toEqual([20, ids[19], ids[10]]);
      const second = await search(first.next_batch!);
      expect([second.count, second.results[0]!.result.event_id, second.results[9]!.result.event_id]).toEqual([20, ids[9], ids[0]]);
      expect(second.next_batch).toEqual(expect.any(String));
      const third = await search(second.next_batch);
      expect(third.count).toBe(20);
      expect(third.results).toEqual([]);
      expect(third.next_batch).toBeUndefined();
      // A page of one with its one result: still full, so with a next_batch.
      const context = (await hs.ok('POST', v3('search'), {
        ...as(alice),
        body: { search_categories: { room_events: { search_term: 'Message 4', order_by: 'recent', filter: { limit: 1, rooms: [room_id] }, event_context: { before_limit: 2, after_limit: 2 } } } },
      })).search_categories.room_events;
      expect(context.count).toBe(1);
      expect(context.next_batch).toEqual(expect.any(String));
      expect(context.results[0].context.events_before.map((e: { content: { body: string } }) => e.content.body)).toEqual(['Message number 3', 'Message number 2']);
      expect(context.results[0].context.events_after.map((e: { content: { body: string } }) => e.content.body)).toEqual(['Message number 5', 'Message number 6']);
    });
  });
}
