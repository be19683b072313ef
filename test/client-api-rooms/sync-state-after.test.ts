/**
 * GET /sync with use_state_after (spec v1.16, MSC4222): rooms carry `state_after`, the state at
 * the END of the timeline (in full on an initial or full_state sync, else what changed since the
 * previous sync), instead of `state`. Without the parameter the answer is as before. Real HTTP
 * against the whole homeserver; every answer is validated against the spec's OpenAPI.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '@tessera/testing';
import { enc, Homeserver, v3, type Backend, type Login } from './harness.js';

const backends: Array<{ backend: Backend; available: boolean }> = [
  { backend: 'embedded', available: true },
  { backend: 'postgres', available: services.postgres && services.nats && services.redis },
];

for (const { backend, available } of backends) {
  describe.skipIf(!available)(`/sync use_state_after (${backend})`, () => {
    let hs: Homeserver;
    const as = (l: Login) => ({ token: l.access_token });

    beforeAll(async () => {
      hs = await Homeserver.start(backend);
    }, 120_000);
    afterAll(async () => hs?.close());

    const sync = (who: Login, opts: { since?: string; filter?: unknown; after?: boolean | string; fullState?: boolean } = {}) => {
      const q = [
        opts.since ? `since=${enc(opts.since)}` : '',
        opts.filter ? `filter=${enc(JSON.stringify(opts.filter))}` : '',
        opts.after === undefined ? '' : `use_state_after=${opts.after}`,
        opts.fullState ? 'full_state=true' : '',
      ].filter(Boolean);
      return hs.ok('GET', v3(`sync${q.length > 0 ? `?${q.join('&')}` : ''}`), as(who));
    };
    const text = (who: Login, roomId: string, body: string) =>
      hs.ok<{ event_id: string }>('PUT', v3(`rooms/${enc(roomId)}/send/m.room.message/${Math.random()}`), { ...as(who), body: { msgtype: 'm.text', body } });
    const setState = (who: Login, roomId: string, type: string, content: Record<string, unknown>, stateKey = '') =>
      hs.ok<{ event_id: string }>('PUT', v3(`rooms/${enc(roomId)}/state/${type}/${enc(stateKey)}`), { ...as(who), body: content });
    const join = (who: Login, roomId: string) => hs.ok('POST', v3(`rooms/${enc(roomId)}/join`), { ...as(who), body: {} });
    const createRoom = async (owner: Login, body: Record<string, unknown> = {}) =>
      (await hs.ok('POST', v3('createRoom'), { ...as(owner), body: { preset: 'public_chat', ...body } })).room_id as string;
    /** (type, state_key) -> event id of a list of state events. */
    const byKey = (events: any[]) => Object.fromEntries(events.map((e) => [`${e.type}|${e.state_key}`, e.event_id]));
    const ids = (events: any[]) => events.map((e) => e.event_id);
    const members = (events: any[]) => events.filter((e) => e.type === 'm.room.member').map((e) => e.state_key).sort();
    const currentState = async (who: Login, roomId: string) => byKey(await hs.ok('GET', v3(`rooms/${enc(roomId)}/state`), as(who)));

    it('initial sync: state_after (no state) is the room state at the end of the timeline, timeline state events included', async () => {
      const alice = await hs.register('sa_init_alice');
      const roomId = await createRoom(alice, { name: 'After', topic: 'first topic' });
      await text(alice, roomId, 'hello');

      const s = await sync(alice, { after: true });
      const room = s.rooms.join[roomId];
      expect(room.state).toBeUndefined();
      expect(byKey(room.state_after.events)).toEqual(await currentState(alice, roomId));
      // The timeline's own state events (the topic, among others) are in state_after too.
      const timelineState = room.timeline.events.filter((e: any) => e.state_key !== undefined);
      expect(timelineState.map((e: any) => e.type)).toContain('m.room.topic');
      expect(ids(room.state_after.events)).toEqual(expect.arrayContaining(ids(timelineState)));
      expect(room.summary['m.joined_member_count']).toBe(1);

      // A limited timeline: the state before it and the timeline's state, all in state_after.
      const short = (await sync(alice, { after: true, filter: { room: { timeline: { limit: 2 } } } })).rooms.join[roomId];
      expect(short.timeline.limited).toBe(true);
      expect(byKey(short.state_after.events)).toEqual(await currentState(alice, roomId));

      // Without the parameter, or with false: `state` as before, the state at the start of the timeline (timeline state left out).
      for (const after of [undefined, false]) {
        const before = (await sync(alice, { after })).rooms.join[roomId];
        expect(before.state_after).toBeUndefined();
        const inTimeline = new Set(ids(before.timeline.events));
        expect(ids(before.state.events).some((id) => inTimeline.has(id))).toBe(false);
        expect({ ...byKey(before.state.events), ...byKey(before.timeline.events.filter((e: any) => e.state_key !== undefined)) }).toEqual(
          await currentState(alice, roomId),
        );
      }
      const garbage = await hs.call('GET', v3('sync?use_state_after=yes'), as(alice));
      expect([garbage.status, garbage.body.errcode]).toEqual([400, 'M_INVALID_PARAM']);
    });

    it('incremental sync: a state event in the timeline is in state_after; only what changed; the same answer without the parameter has it in the timeline only', async () => {
      const alice = await hs.register('sa_inc_alice');
      const bob = await hs.register('sa_inc_bob');
      const roomId = await createRoom(alice, { topic: 'old topic' });
      await join(bob, roomId);
      const s0 = await sync(alice, { after: true });

      const topic = await setState(alice, roomId, 'm.room.topic', { topic: 'new topic' });
      await text(bob, roomId, 'after the topic');
      const s1 = await sync(alice, { since: s0.next_batch, after: true });
      const room = s1.rooms.join[roomId];
      expect(room.timeline.limited).toBe(false);
      expect(ids(room.timeline.events)).toContain(topic.event_id);
      expect(room.state).toBeUndefined();
      expect(ids(room.state_after.events)).toEqual([topic.event_id]);
      expect(room.state_after.events[0].content).toEqual({ topic: 'new topic' });

      // The same window without the parameter: `state` is empty (the topic is in the timeline, after its start).
      const plain = await sync(alice, { since: s0.next_batch });
      expect(plain.rooms.join[roomId].state).toEqual({ events: [] });
      expect(plain.rooms.join[roomId].state_after).toBeUndefined();
      expect(ids(plain.rooms.join[roomId].timeline.events)).toEqual(ids(room.timeline.events));

      // Messages only: state_after is there, empty.
      await text(bob, roomId, 'just a message');
      const s2 = await sync(alice, { since: s1.next_batch, after: true });
      expect(s2.rooms.join[roomId].state_after).toEqual({ events: [] });

      // A state event that changes nothing in the end (set and set back): state_after has the last one.
      await setState(alice, roomId, 'm.room.topic', { topic: 'flip' });
      const back = await setState(alice, roomId, 'm.room.topic', { topic: 'new topic' });
      const s3 = await sync(alice, { since: s2.next_batch, after: true });
      expect(ids(s3.rooms.join[roomId].state_after.events)).toEqual([back.event_id]);

      // A newly joined room: its state in full.
      const carol = await hs.register('sa_inc_carol');
      const c0 = await sync(carol, { after: true });
      await join(carol, roomId);
      const c1 = await sync(carol, { since: c0.next_batch, after: true, filter: { room: { timeline: { limit: 2 } } } });
      expect(byKey(c1.rooms.join[roomId].state_after.events)).toEqual(await currentState(alice, roomId));

      // full_state on an incremental sync: in full too.
      await text(bob, roomId, 'for full state');
      const full = await sync(alice, { since: s3.next_batch, after: true, fullState: true });
      expect(byKey(full.rooms.join[roomId].state_after.events)).toEqual(await currentState(alice, roomId));
    });

    it('gappy incremental sync: state changed before the timeline window is in state_after with its newest value', async () => {
      const alice = await hs.register('sa_gap_alice');
      const bob = await hs.register('sa_gap_bob');
      const roomId = await createRoom(alice, { name: 'gap room' });
      await join(bob, roomId);
      const limit5 = { room: { timeline: { limit: 5 } } };
      const s0 = await sync(alice, { after: true, filter: limit5 });

      const oldTopic = await setState(alice, roomId, 'm.room.topic', { topic: 'in the gap' });
      const name = await setState(alice, roomId, 'm.room.name', { name: 'renamed in the gap' });
      for (let i = 0; i < 8; i++) await text(bob, roomId, `gap filler ${i}`);
      const newTopic = await setState(alice, roomId, 'm.room.topic', { topic: 'in the timeline' });
      await text(bob, roomId, 'last');

      const s1 = await sync(alice, { since: s0.next_batch, after: true, filter: limit5 });
      const room = s1.rooms.join[roomId];
      expect(room.timeline.limited).toBe(true);
      expect(ids(room.timeline.events)).not.toContain(name.event_id);
      expect(room.state).toBeUndefined();
      // The name changed before the window, the topic twice (before it and in it): the newest of each.
      expect(byKey(room.state_after.events)).toEqual({ 'm.room.name|': name.event_id, 'm.room.topic|': newTopic.event_id });

      // Without the parameter: the state at the start of the timeline (the topic the gap left).
      const plain = (await sync(alice, { since: s0.next_batch, filter: limit5 })).rooms.join[roomId];
      expect(byKey(plain.state.events)).toEqual({ 'm.room.name|': name.event_id, 'm.room.topic|': oldTopic.event_id });
    });

    it('lazy-loading members: state_after has the members of every timeline sender (those whose member event is in the timeline too)', async () => {
      const alice = await hs.register('sa_lazy_alice');
      const bob = await hs.register('sa_lazy_bob');
      const carol = await hs.register('sa_lazy_carol');
      const dave = await hs.register('sa_lazy_dave');
      const roomId = await createRoom(alice);
      for (const who of [bob, carol, dave]) await join(who, roomId);
      for (let i = 0; i < 6; i++) await text(alice, roomId, `filler ${i}`);
      const rename = await setState(bob, roomId, 'm.room.member', { membership: 'join', displayname: 'Bobby' }, bob.user_id);
      await text(bob, roomId, 'from bob');
      await text(carol, roomId, 'from carol');
      const lazy = (limit: number) => ({ room: { state: { lazy_load_members: true }, timeline: { limit } } });

      // `state` (no parameter) leaves bob out: the timeline shows his member before his message.
      expect(members((await sync(alice, { filter: lazy(3) })).rooms.join[roomId].state.events)).toEqual([alice.user_id, carol.user_id].sort());

      const s0 = await sync(alice, { after: true, filter: lazy(3) });
      const room = s0.rooms.join[roomId];
      expect(room.timeline.events.map((e: any) => e.sender)).toEqual([bob.user_id, bob.user_id, carol.user_id]);
      // bob's member is in the timeline (before his message) and still in state_after; dave sent nothing.
      expect(members(room.state_after.events)).toEqual([alice.user_id, bob.user_id, carol.user_id].sort());
      expect(room.state_after.events.find((e: any) => e.state_key === bob.user_id).event_id).toBe(rename.event_id);
      expect(room.state_after.events.some((e: any) => e.type === 'm.room.create')).toBe(true);

      // Incremental: a new sender's member comes; one this device was sent does not come again.
      await text(dave, roomId, 'from dave');
      await text(bob, roomId, 'bob again');
      const s1 = await sync(alice, { since: s0.next_batch, after: true, filter: lazy(10) });
      expect(members(s1.rooms.join[roomId].state_after.events)).toEqual([dave.user_id]);
      await text(dave, roomId, 'dave again');
      const s2 = await sync(alice, { since: s1.next_batch, after: true, filter: lazy(10) });
      expect(s2.rooms.join[roomId].state_after).toEqual({ events: [] });

      // A membership change in the window is sent whoever sent messages (every change since the last sync).
      await hs.ok('POST', v3(`rooms/${enc(roomId)}/leave`), { ...as(carol), body: {} });
      await text(dave, roomId, 'carol left');
      const s3 = await sync(alice, { since: s2.next_batch, after: true, filter: lazy(10) });
      const carolLeave = s3.rooms.join[roomId].state_after.events.find((e: any) => e.state_key === carol.user_id);
      expect(carolLeave.content.membership).toBe('leave');
      expect(members(s3.rooms.join[roomId].state_after.events)).toEqual([carol.user_id]);

      // include_redundant_members: the senders' members every time.
      const redundant = { room: { state: { lazy_load_members: true, include_redundant_members: true }, timeline: { limit: 10 } } };
      await text(dave, roomId, 'redundant');
      const r = await sync(alice, { since: s3.next_batch, after: true, filter: redundant });
      expect(members(r.rooms.join[roomId].state_after.events)).toEqual([dave.user_id]);
    });

    it('left rooms: state_after is the state at the leave, in full on an initial sync and as changes on an incremental one', async () => {
      const alice = await hs.register('sa_left_alice');
      const bob = await hs.register('sa_left_bob');
      const roomId = await createRoom(alice, { name: 'before bob left' });
      await join(bob, roomId);
      const b0 = await sync(bob, { after: true });

      const topic = await setState(alice, roomId, 'm.room.topic', { topic: 'while bob was here' });
      await text(alice, roomId, 'bye bob');
      await hs.ok('POST', v3(`rooms/${enc(roomId)}/leave`), { ...as(bob), body: {} });
      const stateAtLeave = await currentState(alice, roomId);
      // Changes after the leave are not bob's to see.
      await setState(alice, roomId, 'm.room.name', { name: 'after bob left' });

      const b1 = await sync(bob, { since: b0.next_batch, after: true });
      const left = b1.rooms.leave[roomId];
      expect(left.state).toBeUndefined();
      const leave = left.timeline.events.at(-1);
      expect([leave.type, leave.state_key, leave.content.membership]).toEqual(['m.room.member', bob.user_id, 'leave']);
      expect(byKey(left.state_after.events)).toEqual({ 'm.room.topic|': topic.event_id, [`m.room.member|${bob.user_id}`]: leave.event_id });

      // Without the parameter: `state` before the timeline, which holds both changes itself.
      const plain = (await sync(bob, { since: b0.next_batch })).rooms.leave[roomId];
      expect(plain.state).toEqual({ events: [] });
      expect(plain.state_after).toBeUndefined();

      // An initial sync with include_leave: the state at the leave in full (the old name).
      const initial = (await sync(bob, { after: true, filter: { room: { include_leave: true } } })).rooms.leave[roomId];
      expect(initial.state).toBeUndefined();
      expect(byKey(initial.state_after.events)).toEqual(stateAtLeave);
      expect(initial.state_after.events.find((e: any) => e.type === 'm.room.name').content.name).toBe('before bob left');
    });
  });
}
