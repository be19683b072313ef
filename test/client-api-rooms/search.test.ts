/**
 * POST /search (room_events) over real HTTP, on PGlite and on PostgreSQL: words in body, name
 * and topic, filters, joined rooms and history visibility only, rank and recent order,
 * next_batch pages, context with profiles, state, groups, bad bodies, redactions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '@tessera/testing';
import { SearchService } from '../../libs/services/client-api/src/search/search.service.js';
import { enc, Homeserver, v3, type Backend, type Login } from './harness.js';

const backends: Array<{ backend: Backend; available: boolean }> = [
  { backend: 'embedded', available: true },
  { backend: 'postgres', available: services.postgres && services.nats && services.redis },
];

interface Result {
  rank: number;
  result: { event_id: string; room_id: string; type: string; sender: string; content: Record<string, unknown> };
  context?: { events_before: Array<{ event_id: string }>; events_after: Array<{ event_id: string }>; start?: string; end?: string; profile_info?: Record<string, { displayname?: string }> };
}

for (const { backend, available } of backends) {
  describe.skipIf(!available)(`server side search (${backend})`, () => {
    let hs: Homeserver;
    let alice: Login;
    let bob: Login;
    let carol: Login;
    const as = (l: Login) => ({ token: l.access_token });
    let txn = 0;

    const text = async (who: Login, roomId: string, body: string): Promise<string> =>
      (await hs.ok('PUT', v3(`rooms/${enc(roomId)}/send/m.room.message/s${txn++}`), { ...as(who), body: { msgtype: 'm.text', body } })).event_id;
    const search = (who: Login, roomEvents: Record<string, unknown>, nextBatch?: string) =>
      hs.call('POST', v3(`search${nextBatch ? `?next_batch=${enc(nextBatch)}` : ''}`), { ...as(who), body: { search_categories: { room_events: roomEvents } } });
    const found = async (who: Login, roomEvents: Record<string, unknown>, nextBatch?: string) => {
      const reply = await search(who, roomEvents, nextBatch);
      expect(reply.status, JSON.stringify(reply.body)).toBe(200);
      return reply.body.search_categories.room_events as {
        count: number; highlights: string[]; results: Result[]; next_batch?: string; state?: Record<string, Array<{ type: string }>>;
        groups?: Record<string, Record<string, { results: string[]; order: number; next_batch?: string }>>;
      };
    };
    const ids = (results: Result[]) => results.map((r) => r.result.event_id);

    let roomA: string; // alice + bob, shared history, named and with a topic
    let roomB: string; // alice only
    let roomJ: string; // history "joined": carol joins after the first message
    let aLanded: string;
    let aTogether: string;
    let aNothing: string;
    let aRedacted: string;
    let bMartians: string;
    let jSecret: string;
    let jPublic: string;

    beforeAll(async () => {
      hs = await Homeserver.start(backend);
      [alice, bob, carol] = [await hs.register('alice'), await hs.register('bob'), await hs.register('carol')];
      // bob's join carries his profile (the creator's join from createRoom does not, here).
      await hs.ok('PUT', v3(`profile/${enc(bob.user_id)}/displayname`), { ...as(bob), body: { displayname: 'Bob Bobson' } });
      roomA = (await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { preset: 'public_chat', name: 'Martian Embassy', topic: 'Talks with the visitors' } })).room_id;
      await hs.ok('POST', v3(`rooms/${enc(roomA)}/join`), { ...as(bob), body: {} });
      aLanded = await text(alice, roomA, 'The Martians have landed');
      aTogether = await text(bob, roomA, 'men and martians, together at last');
      aNothing = await text(alice, roomA, 'nothing to see here');
      aRedacted = await text(alice, roomA, 'martians: delete this one');
      await hs.ok('PUT', v3(`rooms/${enc(roomA)}/redact/${enc(aRedacted)}/r1`), { ...as(alice), body: {} });
      roomB = (await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { preset: 'private_chat' } })).room_id;
      bMartians = await text(alice, roomB, 'martians in room B');
      roomJ = (await hs.ok('POST', v3('createRoom'), {
        ...as(alice), body: { preset: 'public_chat', initial_state: [{ type: 'm.room.history_visibility', content: { history_visibility: 'joined' } }] },
      })).room_id;
      jSecret = await text(alice, roomJ, 'secret martians plan');
      await hs.ok('POST', v3(`rooms/${enc(roomJ)}/join`), { ...as(carol), body: {} });
      jPublic = await text(alice, roomJ, 'public martians talk');
    }, 120_000);

    afterAll(async () => {
      await hs?.close();
    });

    it('finds words of the message bodies in the joined rooms, case-insensitively and by prefix, with highlights', async () => {
      const r = await found(alice, { search_term: 'MARTIAN', keys: ['content.body'], order_by: 'recent' });
      expect(ids(r.results)).toEqual([jPublic, jSecret, bMartians, aTogether, aLanded]);
      expect(r.count).toBe(5);
      expect(r.highlights).toEqual(expect.arrayContaining(['martian', 'martians']));
      expect(r.next_batch).toBeUndefined();
      const first = r.results[0]!;
      expect(first.result).toMatchObject({ type: 'm.room.message', room_id: roomJ, sender: alice.user_id, content: { body: 'public martians talk' } });
      expect(typeof first.rank).toBe('number');
      // Every word must be there.
      expect(ids((await found(alice, { search_term: 'men martians' })).results)).toEqual([aTogether]);
      expect((await found(alice, { search_term: 'venusians' })).results).toEqual([]);
      expect((await found(alice, { search_term: '  !!  ' })).results).toEqual([]);
      expect(ids((await found(alice, { search_term: 'nothing' })).results)).toEqual([aNothing]);
    });

    it('finds words inside runs of Chinese or Japanese text', async () => {
      const room = (await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { preset: 'private_chat' } })).room_id;
      const japanese = await text(alice, room, '日本語のテキストです');
      const r = await found(alice, { search_term: 'テキスト' });
      expect(ids(r.results)).toEqual([japanese]);
      expect(r.highlights).toContain('テキスト');
      expect((await found(alice, { search_term: '中文' })).results).toEqual([]);
    });

    it('searches room names and topics by their keys, and all three by default', async () => {
      const names = await found(alice, { search_term: 'embassy', keys: ['content.name'] });
      expect(names.results.map((r) => [r.result.type, r.result.room_id])).toEqual([['m.room.name', roomA]]);
      const topics = await found(alice, { search_term: 'visitors', keys: ['content.topic'] });
      expect(topics.results.map((r) => [r.result.type, r.result.content.topic])).toEqual([['m.room.topic', 'Talks with the visitors']]);
      expect((await found(alice, { search_term: 'visitors', keys: ['content.body', 'content.name'] })).results).toEqual([]);
      const all = await found(alice, { search_term: 'martian', order_by: 'recent' });
      expect(all.results.map((r) => r.result.type).sort()).toEqual(['m.room.message', 'm.room.message', 'm.room.message', 'm.room.message', 'm.room.message', 'm.room.name']);
      // The filter's types narrow the keys.
      expect((await found(alice, { search_term: 'martian', filter: { types: ['m.room.name'] } })).results.map((r) => r.result.type)).toEqual(['m.room.name']);
      expect((await found(alice, { search_term: 'martian', filter: { not_types: ['m.room.*'] } })).results).toEqual([]);
    });

    it('applies the filter: rooms, not_rooms, senders, not_senders, limit', async () => {
      expect(ids((await found(alice, { search_term: 'martians', keys: ['content.body'], filter: { rooms: [roomB] } })).results)).toEqual([bMartians]);
      const notA = await found(alice, { search_term: 'martians', keys: ['content.body'], order_by: 'recent', filter: { not_rooms: [roomA] } });
      expect(ids(notA.results)).toEqual([jPublic, jSecret, bMartians]);
      expect(ids((await found(alice, { search_term: 'martians', filter: { senders: [bob.user_id] } })).results)).toEqual([aTogether]);
      const notBob = await found(alice, { search_term: 'martians', keys: ['content.body'], filter: { not_senders: [bob.user_id] } });
      expect(ids(notBob.results)).not.toContain(aTogether);
      expect(notBob.results).toHaveLength(4);
      // A room the user is not in stays out even when named.
      expect((await found(bob, { search_term: 'martians', filter: { rooms: [roomB] } })).results).toEqual([]);
    });

    it('finds only events of rooms the user is joined to, and only history they may see', async () => {
      const bobs = await found(bob, { search_term: 'martians', keys: ['content.body'], order_by: 'recent' });
      expect(ids(bobs.results)).toEqual([aTogether, aLanded]);
      // carol joined roomJ after "secret martians plan" (history_visibility joined).
      const carols = await found(carol, { search_term: 'martians', order_by: 'recent' });
      expect(ids(carols.results)).toEqual([jPublic]);
      expect(ids((await found(carol, { search_term: 'secret' })).results)).toEqual([]);
      // Once bob leaves roomA, he finds nothing there.
      const room = (await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { preset: 'public_chat' } })).room_id;
      await hs.ok('POST', v3(`rooms/${enc(room)}/join`), { ...as(bob), body: {} });
      const farewell = await text(alice, room, 'farewell xylophone');
      expect(ids((await found(bob, { search_term: 'xylophone' })).results)).toEqual([farewell]);
      await hs.ok('POST', v3(`rooms/${enc(room)}/leave`), { ...as(bob), body: {} });
      expect((await found(bob, { search_term: 'xylophone' })).results).toEqual([]);
    });

    it('never matches a redacted event', async () => {
      const r = await found(alice, { search_term: 'delete' });
      expect(r.results).toEqual([]);
      expect(ids((await found(alice, { search_term: 'martians', keys: ['content.body'] })).results)).not.toContain(aRedacted);
    });

    it('orders by rank or by recency', async () => {
      const room = (await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { preset: 'private_chat' } })).room_id;
      const dense = await text(alice, room, 'zebra zebra zebra');
      const sparse = await text(alice, room, 'one zebra among many other words in a rather long sentence about nothing in particular');
      const recent = await found(alice, { search_term: 'zebra', order_by: 'recent' });
      expect(ids(recent.results)).toEqual([sparse, dense]);
      const ranked = await found(alice, { search_term: 'zebra', order_by: 'rank' });
      expect(ids(ranked.results)).toEqual([dense, sparse]);
      expect(ranked.results[0]!.rank).toBeGreaterThan(ranked.results[1]!.rank);
      // rank is the default order.
      expect(ids((await found(alice, { search_term: 'zebra' })).results)).toEqual([dense, sparse]);
    });

    it('pages with next_batch, in either order, without repeats', async () => {
      const room = (await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { preset: 'private_chat' } })).room_id;
      const sent: string[] = [];
      for (let i = 0; i < 5; i++) sent.push(await text(alice, room, `paginate ${'quokka '.repeat(i + 1)}`));
      for (const order_by of ['recent', 'rank'] as const) {
        const pages: string[][] = [];
        let next: string | undefined;
        do {
          const page = await found(alice, { search_term: 'quokka', order_by, filter: { limit: 2 } }, next);
          pages.push(ids(page.results));
          next = page.next_batch;
        } while (next && pages.length < 10);
        expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
        // More quokkas rank higher; recent is newest first: here both are the reverse of sending.
        expect(pages.flat()).toEqual([...sent].reverse());
      }
      // A new event after the first page does not shift a rank-ordered page.
      const first = await found(alice, { search_term: 'quokka', order_by: 'rank', filter: { limit: 2 } });
      await text(alice, room, 'quokka quokka quokka quokka quokka quokka');
      const second = await found(alice, { search_term: 'quokka', order_by: 'rank', filter: { limit: 2 } }, first.next_batch);
      expect(ids(second.results)).toEqual([sent[2], sent[1]]);
      const bad = await search(alice, { search_term: 'quokka' }, 'not-a-token');
      expect(bad.status).toBe(400);
      expect(bad.body.errcode).toBe('M_INVALID_PARAM');
    });

    it('reads bounded windows of the log, newest first, and continues below each with next_batch', async () => {
      const room = (await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { preset: 'private_chat' } })).room_id;
      const walrus: string[] = [];
      walrus.push(await text(alice, room, 'walrus one'));
      for (let i = 0; i < 2; i++) await text(alice, room, 'filler');
      walrus.push(await text(alice, room, 'walrus two'));
      for (let i = 0; i < 4; i++) await text(alice, room, 'filler');
      walrus.push(await text(alice, room, 'walrus three'));
      const service = hs.clientApp.get(SearchService);
      const saved = { ...service.bounds };
      Object.assign(service.bounds, { windowSize: 3, windowsPerRequest: 2 });
      try {
        const pages: string[][] = [];
        let next: string | undefined;
        do {
          const page = await found(alice, { search_term: 'walrus', order_by: 'recent', filter: { rooms: [room] } }, next);
          pages.push(ids(page.results));
          next = page.next_batch;
        } while (next && pages.length < 20);
        // Two windows of three events per request: "three" and "two" first, "one" in the next.
        expect(pages[0]).toEqual([walrus[2], walrus[1]]);
        expect(pages[1]).toEqual([walrus[0]]);
        expect(pages.flat()).toEqual([...walrus].reverse());
        expect(next).toBeUndefined();
      } finally {
        Object.assign(service.bounds, saved);
      }
      // With the usual bounds, one request finds all three.
      expect(ids((await found(alice, { search_term: 'walrus', order_by: 'recent' })).results)).toEqual([...walrus].reverse());
    });

    it('gives the context of each result, with the senders\' profiles', async () => {
      const r = await found(alice, {
        search_term: 'together', event_context: { before_limit: 1, after_limit: 1, include_profile: true },
      });
      expect(ids(r.results)).toEqual([aTogether]);
      const context = r.results[0]!.context!;
      expect(context.events_before.map((e) => e.event_id)).toEqual([aLanded]);
      expect(context.events_after.map((e) => e.event_id)).toEqual([aNothing]);
      expect(context.start).toMatch(/./);
      expect(context.end).toMatch(/./);
      expect(context.profile_info![bob.user_id]).toEqual({ displayname: 'Bob Bobson' });
      expect(Object.keys(context.profile_info!).sort()).toEqual([alice.user_id, bob.user_id].sort());
      // The tokens page on with /messages.
      const older = await hs.ok('GET', v3(`rooms/${enc(roomA)}/messages?dir=b&limit=1&from=${enc(context.start!)}`), as(alice));
      expect(older.chunk).toHaveLength(1);
      expect(older.chunk[0].event_id).not.toBe(aLanded);
      // Without include_profile, no profiles; without event_context, no context.
      const plain = await found(alice, { search_term: 'together', event_context: { before_limit: 0, after_limit: 2 } });
      expect(plain.results[0]!.context!.profile_info).toBeUndefined();
      expect(plain.results[0]!.context!.events_before).toEqual([]);
      expect(plain.results[0]!.context!.events_after.map((e) => e.event_id)).toEqual([aNothing, aRedacted]);
      expect((await found(alice, { search_term: 'together' })).results[0]!.context).toBeUndefined();
      // carol's context in the "joined" room leaves out what she may not see.
      const carols = await found(carol, { search_term: 'public', event_context: { before_limit: 5, after_limit: 0 } });
      expect(carols.results[0]!.context!.events_before.map((e) => e.event_id)).not.toContain(jSecret);
    });

    it('includes the current state of the rooms with results when asked', async () => {
      const r = await found(alice, { search_term: 'martians', keys: ['content.body'], include_state: true, filter: { rooms: [roomA, roomB] } });
      expect(Object.keys(r.state!).sort()).toEqual([roomA, roomB].sort());
      expect(r.state![roomA]!.map((e) => e.type)).toEqual(expect.arrayContaining(['m.room.create', 'm.room.name', 'm.room.member']));
      expect((await found(alice, { search_term: 'martians' })).state).toBeUndefined();
    });

    it('groups results by room and by sender, each group with its own next_batch', async () => {
      const r = await found(alice, { search_term: 'martians', keys: ['content.body'], order_by: 'recent', groupings: { group_by: [{ key: 'room_id' }, { key: 'sender' }] } });
      const byRoom = r.groups!.room_id!;
      expect(byRoom[roomA]!.results).toEqual([aTogether, aLanded]);
      expect(byRoom[roomB]!.results).toEqual([bMartians]);
      expect(byRoom[roomJ]!.results).toEqual([jPublic, jSecret]);
      expect([byRoom[roomJ]!.order, byRoom[roomB]!.order, byRoom[roomA]!.order]).toEqual([1, 2, 3]);
      expect(r.groups!.sender![bob.user_id]!.results).toEqual([aTogether]);
      expect(r.groups!.sender![alice.user_id]!.results).toEqual([jPublic, jSecret, bMartians, aLanded]);
      expect(byRoom[roomA]!.next_batch).toBeUndefined();

      // A page of one: the room group's next_batch continues in that room only.
      const paged = await found(alice, { search_term: 'martians', keys: ['content.body'], order_by: 'recent', filter: { limit: 3 }, groupings: { group_by: [{ key: 'room_id' }] } });
      expect(ids(paged.results)).toEqual([jPublic, jSecret, bMartians]);
      const inB = paged.groups!.room_id![roomB]!.next_batch!;
      expect((await found(alice, { search_term: 'martians', keys: ['content.body'], order_by: 'recent' }, inB)).results).toEqual([]);
      const inJ = paged.groups!.room_id![roomJ]!.next_batch!;
      expect((await found(alice, { search_term: 'martians', keys: ['content.body'], order_by: 'recent' }, inJ)).results).toEqual([]);
      const rest = await found(alice, { search_term: 'martians', keys: ['content.body'], order_by: 'recent' }, paged.next_batch);
      expect(ids(rest.results)).toEqual([aTogether, aLanded]);
    });

    it('refuses bad bodies with the spec errors and needs an access token', async () => {
      const post = (body: unknown, token: string | undefined = alice.access_token) => hs.call('POST', v3('search'), { token, body });
      const anonymous = await hs.call('POST', v3('search'), { body: { search_categories: { room_events: { search_term: 'martians' } } } });
      expect([anonymous.status, anonymous.body.errcode]).toEqual([401, 'M_MISSING_TOKEN']);
      const cases: Array<[unknown, number, string]> = [
        [[], 400, 'M_BAD_JSON'],
        [{}, 400, 'M_MISSING_PARAM'],
        [{ search_categories: 'x' }, 400, 'M_BAD_JSON'],
        [{ search_categories: { room_events: [] } }, 400, 'M_BAD_JSON'],
        [{ search_categories: { room_events: {} } }, 400, 'M_MISSING_PARAM'],
        [{ search_categories: { room_events: { search_term: 5 } } }, 400, 'M_BAD_JSON'],
        [{ search_categories: { room_events: { search_term: 'a', order_by: 'newest' } } }, 400, 'M_INVALID_PARAM'],
        [{ search_categories: { room_events: { search_term: 'a', keys: ['content.msgtype'] } } }, 400, 'M_INVALID_PARAM'],
        [{ search_categories: { room_events: { search_term: 'a', keys: 'content.body' } } }, 400, 'M_BAD_JSON'],
        [{ search_categories: { room_events: { search_term: 'a', filter: { rooms: 'x' } } } }, 400, 'M_BAD_JSON'],
        [{ search_categories: { room_events: { search_term: 'a', filter: { limit: -1 } } } }, 400, 'M_INVALID_PARAM'],
        [{ search_categories: { room_events: { search_term: 'a', event_context: { before_limit: -1 } } } }, 400, 'M_INVALID_PARAM'],
        [{ search_categories: { room_events: { search_term: 'a', event_context: { after_limit: '3' } } } }, 400, 'M_BAD_JSON'],
        [{ search_categories: { room_events: { search_term: 'a', include_state: 'yes' } } }, 400, 'M_BAD_JSON'],
        [{ search_categories: { room_events: { search_term: 'a', groupings: { group_by: [{ key: 'type' }] } } } }, 400, 'M_INVALID_PARAM'],
        [{ search_categories: { room_events: { search_term: 'a', groupings: { group_by: { key: 'room_id' } } } } }, 400, 'M_BAD_JSON'],
        [{ search_categories: { people: { search_term: 'a' } } }, 400, 'M_INVALID_PARAM'],
      ];
      for (const [body, status, errcode] of cases) {
        const reply = await post(body);
        expect([reply.status, reply.body?.errcode], JSON.stringify(body)).toEqual([status, errcode]);
      }
      // No category asked: nothing to answer.
      expect(await hs.ok('POST', v3('search'), { ...as(alice), body: { search_categories: {} } })).toEqual({ search_categories: {} });
    });
  });
}
