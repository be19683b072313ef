/**
 * Filter conformance, as Sytest and Complement check it: the filter API's validation, event
 * filters in /sync (wildcards, room lists, limits that count filtered events, lazy-loaded
 * members across incremental syncs, event_fields, event_format), and the filter in /messages
 * and /context. Real HTTP against the whole homeserver; JSON answers validated against the
 * spec's OpenAPI (except event_fields answers, which leave out required fields on purpose).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '@tessera/testing';
import { enc, Homeserver, v3, type Backend, type Login } from './harness.js';

const backends: Array<{ backend: Backend; available: boolean }> = [
  { backend: 'embedded', available: true },
  { backend: 'postgres', available: services.postgres && services.nats && services.redis },
];

for (const { backend, available } of backends) {
  describe.skipIf(!available)(`filter conformance (${backend})`, () => {
    let hs: Homeserver;
    const as = (l: Login) => ({ token: l.access_token });

    beforeAll(async () => {
      hs = await Homeserver.start(backend);
    }, 120_000);
    afterAll(async () => hs?.close());

    const send = (who: Login, roomId: string, content: Record<string, unknown>, type = 'm.room.message') =>
      hs.ok<{ event_id: string }>('PUT', v3(`rooms/${enc(roomId)}/send/${type}/${Math.random()}`), { ...as(who), body: content });
    const text = (who: Login, roomId: string, body: string) => send(who, roomId, { msgtype: 'm.text', body });
    const fillers = async (who: Login, roomId: string, n: number) => {
      for (let i = 1; i <= n; i++) await send(who, roomId, { filler: i }, 'a.made.up.filler.type');
    };
    const sync = (who: Login, since: string | undefined, filter: unknown) => {
      const q = [since ? `since=${enc(since)}` : '', `filter=${enc(typeof filter === 'string' ? filter : JSON.stringify(filter))}`].filter(Boolean).join('&');
      return hs.ok('GET', v3(`sync?${q}`), as(who));
    };
    const createRoom = async (owner: Login, body: Record<string, unknown> = { preset: 'public_chat' }) =>
      (await hs.ok('POST', v3('createRoom'), { ...as(owner), body })).room_id as string;
    const join = (who: Login, roomId: string) => hs.ok('POST', v3(`rooms/${enc(roomId)}/join`), { ...as(who), body: {} });
    const members = (room: any): string[] =>
      (room?.state?.events ?? []).filter((e: any) => e.type === 'm.room.member').map((e: any) => e.state_key).sort();

    it('rejects malformed filters with 400 M_BAD_JSON (Sytest "Check creating invalid filters returns 4xx") and other users\' filters with 403', async () => {
      const alice = await hs.register('fvalice');
      const bob = await hs.register('fvbob');
      const invalid = [
        { presence: 'not_an_object' },
        { room: { timeline: 'not_an_object' } },
        { room: { timeline: { rooms: 'not_a_list' } } },
        { room: { timeline: { types: [0] } } },
        { room: { timeline: { rooms: ['not_a_room_id'] } } },
        { room: { timeline: { not_rooms: ['not_a_room_id'] } } },
        { room: { rooms: ['not_a_room_id'] } },
        { room: { timeline: { senders: ['not_a_sender_id'] } } },
        { room: { state: { not_senders: ['@nodomain'] } } },
        { presence: { senders: ['nobody'] } },
        { room: { state: { lazy_load_members: 'true' } } },
        { room: { state: { include_redundant_members: 1 } } },
        { event_format: 'xml' },
        { event_fields: 'content' },
      ];
      for (const body of invalid) {
        const reply = await hs.call('POST', v3(`user/${enc(alice.user_id)}/filter`), { ...as(alice), body });
        expect(reply.status, JSON.stringify(body)).toBe(400);
        expect(reply.body.errcode, JSON.stringify(body)).toBe('M_BAD_JSON');
      }
      const inline = await hs.call('GET', v3(`sync?filter=${enc(JSON.stringify({ room: { timeline: { senders: ['x'] } } }))}`), as(alice));
      expect(inline.status).toBe(400);

      const { filter_id } = await hs.ok('POST', v3(`user/${enc(alice.user_id)}/filter`), { ...as(alice), body: { room: { timeline: { limit: 5, rooms: ['!abc:example.org'] } } } });
      expect(await hs.ok('GET', v3(`user/${enc(alice.user_id)}/filter/${filter_id}`), as(alice))).toEqual({ room: { timeline: { limit: 5, rooms: ['!abc:example.org'] } } });
      const theirs = await hs.call('GET', v3(`user/${enc(alice.user_id)}/filter/${filter_id}`), as(bob));
      expect(theirs.status).toBe(403);
      expect(theirs.body.errcode).toBe('M_FORBIDDEN');
      const forOther = await hs.call('POST', v3(`user/${enc(alice.user_id)}/filter`), { ...as(bob), body: {} });
      expect(forOther.status).toBe(403);
      const unknown = await hs.call('GET', v3(`user/${enc(alice.user_id)}/filter/12345678`), as(alice));
      expect(unknown.status).toBe(404);
      expect(unknown.body.errcode).toBe('M_NOT_FOUND');
    });

    it('matches `*` anywhere in a type pattern, and applies room.timeline.rooms / not_rooms', async () => {
      const alice = await hs.register('wcalice');
      const roomA = await createRoom(alice);
      const roomB = await createRoom(alice);
      await send(alice, roomA, { n: 1 }, 'org.example.one.ping');
      await send(alice, roomA, { n: 2 }, 'org.example.two.pong');
      await send(alice, roomA, { n: 3 }, 'org.example.three.ping');
      const s = await sync(alice, undefined, { room: { timeline: { types: ['org.example.*.ping'] }, state: { types: [] } } });
      expect(s.rooms.join[roomA].timeline.events.map((e: any) => e.content.n)).toEqual([1, 3]);
      const not = await sync(alice, undefined, { room: { timeline: { not_types: ['*.ping', 'm.*'] }, state: { types: [] } } });
      expect(not.rooms.join[roomA].timeline.events.map((e: any) => e.type)).toEqual(['org.example.two.pong']);

      const scoped = await sync(alice, undefined, { room: { timeline: { not_rooms: [roomA] }, state: { types: [] } } });
      expect(scoped.rooms.join[roomA]?.timeline.events ?? []).toEqual([]);
      expect(scoped.rooms.join[roomB].timeline.events.length).toBeGreaterThan(0);
      const only = await sync(alice, undefined, { room: { timeline: { rooms: [roomB] }, state: { rooms: [roomB] } } });
      expect(only.rooms.join[roomA]?.timeline.events ?? []).toEqual([]);
      expect(only.rooms.join[roomA]?.state.events ?? []).toEqual([]);
      expect(only.rooms.join[roomB].timeline.events.length).toBeGreaterThan(0);
    });

    it('takes timeline limit 0 as no timeline (Sytest "Can pass a JSON filter as a query parameter")', async () => {
      const user = await hs.register('zeroalice');
      const roomId = await createRoom(user);
      const s = await sync(user, undefined, { room: { state: { types: ['m.room.member'] }, timeline: { limit: 0 } } });
      const room = s.rooms.join[roomId];
      expect(room.timeline?.events ?? []).toEqual([]);
      expect(room.state.events.map((e: any) => [e.type, e.state_key])).toEqual([['m.room.member', user.user_id]]);
    });

    it('counts the timeline limit in events that pass the filter (Sytest "A filtered timeline reaches its limit")', async () => {
      const user = await hs.register('ftlalice');
      const filter = { room: { timeline: { limit: 1, types: ['m.room.message'] }, state: { types: [] } }, account_data: { types: [] }, presence: { types: [] } };
      const { filter_id } = await hs.ok('POST', v3(`user/${enc(user.user_id)}/filter`), { ...as(user), body: filter });
      const roomId = await createRoom(user);
      const message = await text(user, roomId, 'My message');
      await fillers(user, roomId, 12);
      const s = await sync(user, undefined, filter_id);
      const room = s.rooms.join[roomId];
      expect(room.state?.events ?? []).toEqual([]);
      expect(room.timeline.events.map((e: any) => e.event_id)).toEqual([message.event_id]);
      expect(room.timeline.limited).toBe(false);

      // Incremental: the filtered event is found past the unfiltered ones, and the timeline says more are before it.
      await text(user, roomId, 'second');
      await text(user, roomId, 'third');
      await fillers(user, roomId, 5);
      const next = await sync(user, s.next_batch, filter_id);
      expect(next.rooms.join[roomId].timeline.events.map((e: any) => e.content.body)).toEqual(['third']);
      expect(next.rooms.join[roomId].timeline.limited).toBe(true);
    });

    it('lazy-loads members in initial, incremental and gappy syncs, without redundant members unless asked (Sytest 31sync/15lazy-members)', async () => {
      const alice = await hs.register('llalice');
      const bob = await hs.register('llbob');
      const charlie = await hs.register('llcharlie');
      const dave = await hs.register('lldave');
      const filter = { room: { state: { lazy_load_members: true }, timeline: { limit: 10 } } };
      const roomId = await createRoom(alice);
      await hs.ok('PUT', v3(`rooms/${enc(roomId)}/state/m.room.name/`), { ...as(alice), body: { name: 'A room name' } });
      await join(bob, roomId);
      await join(charlie, roomId);
      await fillers(bob, roomId, 10);

      // Initial: the timeline's senders and the user herself.
      const s0 = await sync(alice, undefined, filter);
      expect(members(s0.rooms.join[roomId])).toEqual([alice.user_id, bob.user_id].sort());
      expect(s0.rooms.join[roomId].state.events.map((e: any) => e.type)).toContain('m.room.name');

      // Incremental, not gappy: the new sender only.
      await text(charlie, roomId, 'Message from charlie');
      const s1 = await sync(alice, s0.next_batch, filter);
      expect(s1.rooms.join[roomId].timeline.limited).toBe(false);
      expect(s1.rooms.join[roomId].state.events.map((e: any) => [e.type, e.state_key])).toEqual([['m.room.member', charlie.user_id]]);
      // Nothing new: nothing at all.
      const quiet = await hs.ok('GET', v3(`sync?since=${enc(s1.next_batch)}&filter=${enc(JSON.stringify(filter))}&timeout=0`), as(alice));
      expect(quiet.rooms?.join?.[roomId]).toBeUndefined();

      // Senders already sent to this device are not sent again.
      await text(bob, roomId, 'New message from bob');
      await text(charlie, roomId, 'New message from charlie');
      const s2 = await sync(alice, s1.next_batch, filter);
      expect(members(s2.rooms.join[roomId])).toEqual([]);

      // ...unless include_redundant_members (but not the user's own member).
      const redundant = { room: { state: { lazy_load_members: true, include_redundant_members: true }, timeline: { limit: 10 } } };
      await text(bob, roomId, 'again from bob');
      await text(charlie, roomId, 'again from charlie');
      const s3 = await sync(alice, s2.next_batch, redundant);
      expect(members(s3.rooms.join[roomId])).toEqual([bob.user_id, charlie.user_id].sort());

      // Gappy: all state changes in the gap (dave's join) and the timeline's senders not yet sent.
      const fresh = await sync(alice, undefined, filter); // a new sequence: the device is taken to remember nothing
      expect(members(fresh.rooms.join[roomId])).toEqual([alice.user_id, bob.user_id, charlie.user_id].sort());
      await join(dave, roomId);
      await fillers(charlie, roomId, 20);
      const g1 = await sync(alice, fresh.next_batch, filter);
      expect(g1.rooms.join[roomId].timeline.limited).toBe(true);
      expect(members(g1.rooms.join[roomId])).toEqual([dave.user_id]);
      await hs.ok('POST', v3(`rooms/${enc(roomId)}/leave`), { ...as(dave), body: {} });
      await fillers(bob, roomId, 20);
      const g2 = await sync(alice, g1.next_batch, filter);
      const changed = g2.rooms.join[roomId].state.events.filter((e: any) => e.type === 'm.room.member');
      expect(changed.map((e: any) => [e.state_key, e.content.membership])).toEqual([[dave.user_id, 'leave']]);

      // An old member coming back to life in a gappy sync.
      const eve = await hs.register('lleve');
      await join(eve, roomId);
      const s4 = await sync(alice, g2.next_batch, filter);
      await fillers(bob, roomId, 10);
      await fillers(eve, roomId, 10);
      const g3 = await sync(alice, s4.next_batch, filter);
      expect(members(g3.rooms.join[roomId])).toEqual([]); // eve's join was in s4's timeline
      const s5 = await sync(alice, undefined, { room: { state: { lazy_load_members: true }, timeline: { limit: 1 } } });
      expect(members(s5.rooms.join[roomId])).toEqual([alice.user_id, eve.user_id].sort());
    });

    it('gives events in federation format and only the asked event_fields', async () => {
      const user = await hs.register('fmtalice');
      const roomId = await createRoom(user);
      const message = await hs.ok<{ event_id: string }>('PUT', v3(`rooms/${enc(roomId)}/send/m.room.message/fmt1`), { ...as(user), body: { msgtype: 'm.text', body: 'Test message', 'a.b': { c: 1 } } });
      const fed = await sync(user, undefined, { event_format: 'federation', room: { timeline: { limit: 1 } } });
      const [event] = fed.rooms.join[roomId].timeline.events;
      for (const key of ['event_id', 'content', 'room_id', 'sender', 'origin_server_ts', 'type', 'prev_events', 'auth_events', 'depth', 'hashes', 'signatures']) {
        expect(event, key).toHaveProperty(key);
      }
      expect(event.event_id).toBe(message.event_id);
      expect(event.content.body).toBe('Test message');
      expect(fed.rooms.join[roomId].state.events.every((e: any) => Array.isArray(e.auth_events) && typeof e.event_id === 'string')).toBe(true);

      // event_fields leaves required fields out: read without the OpenAPI check.
      const filter = { event_fields: ['type', 'content.body', 'content.a\\.b.c', 'unsigned.transaction_id'], room: { timeline: { limit: 1 } } };
      const response = await fetch(`${hs.base}${v3(`sync?filter=${enc(JSON.stringify(filter))}`)}`, { headers: { authorization: `Bearer ${user.access_token}` } });
      expect(response.status).toBe(200);
      const body: any = await response.json();
      expect(body.rooms.join[roomId].timeline.events).toEqual([
        { type: 'm.room.message', content: { body: 'Test message', 'a.b': { c: 1 } }, unsigned: { transaction_id: 'fmt1' } },
      ]);
      const state = body.rooms.join[roomId].state.events;
      expect(state.length).toBeGreaterThan(0);
      for (const e of state) expect(Object.keys(e).every((k) => k === 'type' || k === 'content')).toBe(true);
    });

    it('/messages: from omitted, lazy-loaded members as of the chunk (own included), limit and end', async () => {
      const alice = await hs.register('msgalice');
      const bob = await hs.register('msgbob');
      const roomId = await createRoom(alice);
      await join(bob, roomId);
      await text(bob, roomId, 'hi from bob');
      await hs.ok('PUT', v3(`rooms/${enc(roomId)}/state/m.room.member/${enc(bob.user_id)}`), { ...as(bob), body: { membership: 'join', displayname: 'Bobby' } });
      await text(alice, roomId, 'hi from alice');

      // From omitted: dir=f starts at the room's creation, dir=b at its end.
      const first = await hs.ok('GET', v3(`rooms/${enc(roomId)}/messages?dir=f&limit=1`), as(alice));
      expect(first.chunk[0].type).toBe('m.room.create');
      expect(typeof first.end).toBe('string');
      const last = await hs.ok('GET', v3(`rooms/${enc(roomId)}/messages?dir=b&limit=1`), as(alice));
      expect(last.chunk[0].content.body).toBe('hi from alice');

      // Lazy loading: the senders' members, the requester's own among them, as they were at the chunk.
      const lazy = { lazy_load_members: true, types: ['m.room.message'] };
      const both = await hs.ok('GET', v3(`rooms/${enc(roomId)}/messages?dir=b&filter=${enc(JSON.stringify(lazy))}`), as(alice));
      expect(both.chunk.map((e: any) => e.content.body)).toEqual(['hi from alice', 'hi from bob']);
      expect(both.state.map((e: any) => e.state_key).sort()).toEqual([alice.user_id, bob.user_id].sort());
      const newest = await hs.ok('GET', v3(`rooms/${enc(roomId)}/messages?dir=b&limit=1&filter=${enc(JSON.stringify(lazy))}`), as(alice));
      expect(newest.state.map((e: any) => e.state_key)).toEqual([alice.user_id]);
      const older = await hs.ok('GET', v3(`rooms/${enc(roomId)}/messages?dir=b&limit=1&from=${enc(newest.end)}&filter=${enc(JSON.stringify(lazy))}`), as(alice));
      expect(older.chunk.map((e: any) => e.content.body)).toEqual(['hi from bob']);
      expect(older.state.map((e: any) => e.state_key)).toEqual([bob.user_id]);
      expect(older.state[0].content.displayname).not.toBe('Bobby');

      // Past the start: nothing, and no end.
      const past = await hs.ok('GET', v3(`rooms/${enc(roomId)}/messages?dir=b&from=t0`), as(alice));
      expect(past.chunk).toEqual([]);
      expect(past.end).toBeUndefined();
      const bad = await hs.call('GET', v3(`rooms/${enc(roomId)}/messages?dir=b&limit=-1`), as(alice));
      expect(bad.status).toBe(400);
    });

    it('/context: filter, limit split before/after, lazy-loaded state, 404 for an unknown event', async () => {
      const alice = await hs.register('ctxalice');
      const bob = await hs.register('ctxbob');
      const carol = await hs.register('ctxcarol');
      const roomId = await createRoom(alice);
      await join(bob, roomId);
      await join(carol, roomId);
      await text(carol, roomId, 'c1');
      await text(bob, roomId, 'b1');
      await fillers(carol, roomId, 2);
      const middle = await text(bob, roomId, 'b2');
      await fillers(carol, roomId, 2);
      await text(bob, roomId, 'b3');
      await text(bob, roomId, 'b4');
      const filter = { types: ['m.room.message'], not_senders: [carol.user_id], lazy_load_members: true };
      const ctx = await hs.ok('GET', v3(`rooms/${enc(roomId)}/context/${enc(middle.event_id)}?limit=3&filter=${enc(JSON.stringify(filter))}`), as(alice));
      expect(ctx.event.event_id).toBe(middle.event_id);
      expect(ctx.events_before.map((e: any) => e.content.body)).toEqual(['b1']);
      expect(ctx.events_after.map((e: any) => e.content.body)).toEqual(['b3', 'b4']);
      expect(members({ state: { events: ctx.state } })).toEqual([alice.user_id, bob.user_id].sort());
      expect(typeof ctx.start).toBe('string');
      expect(typeof ctx.end).toBe('string');
      const before = await hs.ok('GET', v3(`rooms/${enc(roomId)}/messages?dir=b&from=${enc(ctx.start)}&filter=${enc(JSON.stringify({ types: ['m.room.message'] }))}`), as(alice));
      expect(before.chunk.map((e: any) => e.content.body)).toEqual(['c1']);

      const missing = await hs.call('GET', v3(`rooms/${enc(roomId)}/context/${enc('$nope')}`), as(alice));
      expect(missing.status).toBe(404);
      expect(missing.body.errcode).toBe('M_NOT_FOUND');
    });
  });
}
