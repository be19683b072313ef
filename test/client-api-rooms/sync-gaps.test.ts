/**
 * Client-Server API behaviours /sync and the room endpoints owe the spec (issue 5): unread
 * counts by push rules, device_lists.left, prev_content, profile changes in rooms,
 * deactivation, signature upload checks. Real HTTP against the whole homeserver.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '@tessera/testing';
import { enc, Homeserver, v3, type Backend, type Login } from './harness.js';

const backends: Array<{ backend: Backend; available: boolean }> = [
  { backend: 'embedded', available: true },
  { backend: 'postgres', available: services.postgres && services.nats && services.redis },
];

for (const { backend, available } of backends) {
  describe.skipIf(!available)(`client-server gaps (${backend})`, () => {
    let hs: Homeserver;
    const as = (l: Login) => ({ token: l.access_token });

    beforeAll(async () => {
      hs = await Homeserver.start(backend);
    }, 120_000);
    afterAll(async () => hs?.close());

    const sendEvent = (who: Login, roomId: string, content: Record<string, unknown>, type = 'm.room.message') =>
      hs.ok<{ event_id: string }>('PUT', v3(`rooms/${enc(roomId)}/send/${type}/${Math.random()}`), { ...as(who), body: content });
    const text = (who: Login, roomId: string, body: string, extra: Record<string, unknown> = {}) => sendEvent(who, roomId, { msgtype: 'm.text', body, ...extra });
    const sync = (who: Login, since?: string, filter?: unknown) => {
      const q = [since ? `since=${enc(since)}` : '', filter ? `filter=${enc(JSON.stringify(filter))}` : ''].filter(Boolean).join('&');
      return hs.ok('GET', v3(`sync${q ? `?${q}` : ''}`), as(who));
    };
    /** Room of three (so the one-to-one rules stay out of the way) made by `owner`. */
    async function roomOfThree(owner: Login, a: Login, b: Login): Promise<string> {
      const { room_id } = await hs.ok('POST', v3('createRoom'), { ...as(owner), body: { preset: 'public_chat' } });
      for (const who of [a, b]) await hs.ok('POST', v3(`rooms/${enc(room_id)}/join`), { ...as(who), body: {} });
      return room_id;
    }

    it('counts unread notifications and highlights by the push rules; receipts reset them, per thread when asked', async () => {
      const alice = await hs.register('pushalice');
      const bob = await hs.register('pushbob');
      const carol = await hs.register('pushcarol');
      const roomId = await roomOfThree(alice, bob, carol);
      const s0 = await sync(alice);
      expect(s0.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 0, highlight_count: 0 });

      await text(bob, roomId, 'hello');
      await text(bob, roomId, 'hey you', { 'm.mentions': { user_ids: [alice.user_id] } });
      await text(bob, roomId, 'news for all', { 'm.mentions': { room: true } }); // bob (level 0) may not notify the room
      await text(bob, roomId, 'pushalice: look'); // the legacy user name rule (no m.mentions)
      await text(bob, roomId, 'pushalice but mentions say no one', { 'm.mentions': {} });
      await text(bob, roomId, 'a bot says', { msgtype: 'm.notice' });
      const expected = { notification_count: 5, highlight_count: 2 };
      const s1 = await sync(alice, s0.next_batch); // carried forward in memory
      expect(s1.rooms.join[roomId].unread_notifications).toEqual(expected);
      expect((await sync(alice)).rooms.join[roomId].unread_notifications).toEqual(expected); // counted from the database

      // A rule with no actions (dont_notify is the same) does not count.
      await hs.ok('PUT', v3(`pushrules/global/sender/${enc(bob.user_id)}`), { ...as(alice), body: { actions: ['dont_notify'] } });
      await text(bob, roomId, 'quiet now');
      await text(carol, roomId, 'hi');
      const s2 = await sync(alice, s1.next_batch);
      expect(s2.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 6, highlight_count: 2 });

      // The room creator (level 100) mentioning the room highlights for bob.
      await text(alice, roomId, 'meeting now', { 'm.mentions': { room: true } });
      const bobView = await sync(bob);
      // bob's own last message reset his count: carol's "hi" and alice's room mention are after it.
      expect(bobView.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 2, highlight_count: 1 });

      // A read receipt (private or not) at the latest event resets alice's counts.
      const last = await text(carol, roomId, 'last');
      await hs.ok('POST', v3(`rooms/${enc(roomId)}/receipt/m.read.private/${enc(last.event_id)}`), { ...as(alice), body: {} });
      const s3 = await sync(alice, s2.next_batch);
      expect(s3.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 0, highlight_count: 0 });

      // Threads: counted apart with unread_thread_notifications, reset by a threaded receipt.
      const root = await text(carol, roomId, 'thread root');
      await text(carol, roomId, 'in thread', { 'm.relates_to': { rel_type: 'm.thread', event_id: root.event_id } });
      const reply = await text(carol, roomId, 'in thread again', { 'm.relates_to': { rel_type: 'm.thread', event_id: root.event_id } });
      const threaded = { room: { timeline: { unread_thread_notifications: true } } };
      const t1 = await sync(alice, s3.next_batch, threaded);
      expect(t1.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 1, highlight_count: 0 });
      expect(t1.rooms.join[roomId].unread_thread_notifications).toEqual({ [root.event_id]: { notification_count: 2, highlight_count: 0 } });
      expect((await sync(alice, s3.next_batch)).rooms.join[roomId].unread_notifications).toEqual({ notification_count: 3, highlight_count: 0 });
      await hs.ok('POST', v3(`rooms/${enc(roomId)}/receipt/m.read/${enc(reply.event_id)}`), { ...as(alice), body: { thread_id: root.event_id } });
      const t2 = await sync(alice, t1.next_batch, threaded);
      expect(t2.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 1, highlight_count: 0 });
      expect(t2.rooms.join[roomId].unread_thread_notifications).toEqual({});
    });

    it('reports in device_lists.left the users who no longer share any room since the token', async () => {
      const alice = await hs.register('leftalice');
      const bob = await hs.register('leftbob');
      const carol = await hs.register('leftcarol');
      const dave = await hs.register('leftdave');
      const eve = await hs.register('lefteve');
      const create = async (owner: Login) => (await hs.ok('POST', v3('createRoom'), { ...as(owner), body: { preset: 'public_chat' } })).room_id as string;
      const join = (who: Login, roomId: string) => hs.ok('POST', v3(`rooms/${enc(roomId)}/join`), { ...as(who), body: {} });
      const leave = (who: Login, roomId: string) => hs.ok('POST', v3(`rooms/${enc(roomId)}/leave`), { ...as(who), body: {} });
      const r1 = await create(alice);
      await join(bob, r1);
      await join(carol, r1);
      const r2 = await create(carol);
      await join(alice, r2);
      const r3 = await create(dave);
      await join(alice, r3);
      await hs.ok('POST', v3(`rooms/${enc(r1)}/invite`), { ...as(alice), body: { user_id: eve.user_id } });
      const s0 = await sync(alice);

      await leave(bob, r1); // shares nothing with alice any more
      await leave(carol, r1); // still shares r2
      await leave(alice, r3); // dave shared only r3
      await leave(eve, r1); // a rejected invite: never shared a room
      const s1 = await sync(alice, s0.next_batch);
      expect(s1.device_lists.left).toEqual([bob.user_id, dave.user_id].sort());
      expect(s1.device_lists.changed).not.toContain(bob.user_id);
      const changes = await hs.ok('GET', v3(`keys/changes?from=${enc(s0.next_batch)}&to=${enc(s1.next_batch)}`), as(alice));
      expect(changes.left).toEqual([bob.user_id, dave.user_id].sort());

      // Nothing left since s1: no left entries; a rejoin is not a leave.
      await join(bob, r1);
      const s2 = await sync(alice, s1.next_batch);
      expect(s2.device_lists?.left ?? []).toEqual([]);
      expect(s2.device_lists?.changed ?? []).toContain(bob.user_id);
    });

    it('gives timeline state events unsigned.prev_content, prev_sender and replaces_state (sync, messages, event, context)', async () => {
      const alice = await hs.register('prevalice');
      const bob = await hs.register('prevbob');
      const power = { users: { [alice.user_id]: 100, [bob.user_id]: 50 } };
      const { room_id: roomId } = await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { preset: 'public_chat', power_level_content_override: power } });
      await hs.ok('POST', v3(`rooms/${enc(roomId)}/join`), { ...as(bob), body: {} });
      const setTopic = (who: Login, topic: string) => hs.ok<{ event_id: string }>('PUT', v3(`rooms/${enc(roomId)}/state/m.room.topic/`), { ...as(who), body: { topic } });
      const first = await setTopic(alice, 'one');
      const s0 = await sync(alice);
      const second = await setTopic(bob, 'two');
      const expectReplaces = (e: any) => {
        expect(e.event_id).toBe(second.event_id);
        expect(e.unsigned).toMatchObject({ prev_content: { topic: 'one' }, prev_sender: alice.user_id, replaces_state: first.event_id });
      };
      const inSync = (await sync(alice, s0.next_batch)).rooms.join[roomId].timeline.events;
      expectReplaces(inSync.find((e: any) => e.event_id === second.event_id));
      expectReplaces(await hs.ok('GET', v3(`rooms/${enc(roomId)}/event/${enc(second.event_id)}`), as(alice)));
      const messages = await hs.ok('GET', v3(`rooms/${enc(roomId)}/messages?dir=b&limit=5`), as(alice));
      expectReplaces(messages.chunk.find((e: any) => e.event_id === second.event_id));
      const firstInMessages = messages.chunk.find((e: any) => e.event_id === first.event_id);
      expect(firstInMessages.unsigned.prev_content).toBeUndefined(); // the room had no topic before
      const context = await hs.ok('GET', v3(`rooms/${enc(roomId)}/context/${enc(second.event_id)}?limit=2`), as(alice));
      expectReplaces(context.event);
      // bob's join replaced nothing of his; his member event in a fresh sync's timeline says so.
      const joinEvent = (await sync(bob)).rooms.join[roomId].timeline.events.find((e: any) => e.type === 'm.room.member' && e.state_key === bob.user_id);
      expect(joinEvent?.unsigned?.prev_content).toBeUndefined();
    });

    it('sends profile changes as new member events in every joined room; deactivation leaves every room and erases the profile only when asked', async () => {
      const alice = await hs.register('profalice');
      const bob = await hs.register('profbob');
      const carol = await hs.register('profcarol');
      const dave = await hs.register('profdave');
      const r1 = await roomOfThree(alice, bob, carol);
      const { room_id: r2 } = await hs.ok('POST', v3('createRoom'), { ...as(bob), body: { preset: 'public_chat' } });
      const member = (roomId: string, userId: string) => hs.ok('GET', v3(`rooms/${enc(roomId)}/state/m.room.member/${enc(userId)}`), as(bob));
      const s0 = await sync(alice);

      await hs.ok('PUT', v3(`profile/${enc(bob.user_id)}/displayname`), { ...as(bob), body: { displayname: 'Bobby Tables' } });
      await hs.ok('PUT', v3(`profile/${enc(bob.user_id)}/avatar_url`), { ...as(bob), body: { avatar_url: 'mxc://example.org/bobby' } });
      for (const roomId of [r1, r2]) {
        expect(await hs.ok('GET', v3(`rooms/${enc(roomId)}/state/m.room.member/${enc(bob.user_id)}`), as(bob))).toEqual({
          membership: 'join', displayname: 'Bobby Tables', avatar_url: 'mxc://example.org/bobby',
        });
      }
      const timeline = (await sync(alice, s0.next_batch)).rooms.join[r1].timeline.events.filter((e: any) => e.type === 'm.room.member' && e.state_key === bob.user_id);
      expect(timeline.map((e: any) => e.content.displayname)).toEqual(['Bobby Tables', 'Bobby Tables']);
      expect(timeline[0].unsigned.prev_content.displayname).not.toBe('Bobby Tables');

      // The new display name is what the legacy display name rule matches.
      await hs.ok('PUT', v3(`profile/${enc(alice.user_id)}/displayname`), { ...as(alice), body: { displayname: 'Queen of Hearts' } });
      const s1 = await sync(alice);
      await text(bob, r1, 'off with their heads, says the queen of hearts');
      expect((await sync(alice, s1.next_batch)).rooms.join[r1].unread_notifications.highlight_count).toBe(1);

      // Deactivation without erase: carol leaves r1 and her invite to r2 is rejected; the profile is kept (not served).
      await hs.ok('PUT', v3(`profile/${enc(carol.user_id)}/displayname`), { ...as(carol), body: { displayname: 'Carol' } });
      await hs.ok('POST', v3(`rooms/${enc(r2)}/invite`), { ...as(bob), body: { user_id: carol.user_id } });
      const deactivate = async (who: Login, localpart: string, erase: boolean) => {
        const challenge = await hs.call('POST', v3('account/deactivate'), { ...as(who), body: {} });
        await hs.ok('POST', v3('account/deactivate'), {
          ...as(who),
          body: { erase, auth: { type: 'm.login.password', session: challenge.body.session, user: localpart, password: 'correct horse battery staple' } },
        });
      };
      await deactivate(carol, 'profcarol', false);
      expect((await member(r1, carol.user_id)).membership).toBe('leave');
      expect((await member(r2, carol.user_id)).membership).toBe('leave');
      const { DB } = await import('@tessera/http');
      const db = hs.clientApp.get(DB);
      const profileOf = async (userId: string) => (await db.query('SELECT profile FROM accounts WHERE user_id = $1', [userId])).rows[0].profile;
      expect(await profileOf(carol.user_id)).toMatchObject({ displayname: 'Carol' });

      // With erase: the profile is gone too.
      await hs.ok('POST', v3(`rooms/${enc(r1)}/join`), { ...as(dave), body: {} });
      await hs.ok('PUT', v3(`profile/${enc(dave.user_id)}/displayname`), { ...as(dave), body: { displayname: 'Dave' } });
      await deactivate(dave, 'profdave', true);
      expect((await member(r1, dave.user_id)).membership).toBe('leave');
      expect(await profileOf(dave.user_id)).toEqual({});
    });
  });
}
