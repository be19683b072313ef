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
  });
}
