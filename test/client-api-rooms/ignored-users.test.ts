/**
 * Ignoring users (spec "Ignoring Users", m.ignored_user_list): once a user is ignored, /sync sends
 * none of their events but state events, and none of their invites, and /messages and /context
 * leave their events out likewise; unignoring brings new events back. On the embedded default and on PostgreSQL + NATS + Redis; every JSON answer validated
 * against the spec's OpenAPI by the harness.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '@tessera/testing';
import { enc, Homeserver, v3, type Backend, type Login } from './harness.js';

const backends: Array<{ backend: Backend; available: boolean }> = [
  { backend: 'embedded', available: true },
  { backend: 'postgres', available: services.postgres && services.nats && services.redis },
];

for (const { backend, available } of backends) {
  describe.skipIf(!available)(`ignoring users (${backend})`, () => {
    let hs: Homeserver;
    let alice: Login;
    let bob: Login;
    let chris: Login;
    let roomId: string;
    const as = (l: Login) => ({ token: l.access_token });
    const sync = (since?: string) => hs.ok('GET', v3(`sync?timeout=0${since ? `&since=${enc(since)}` : ''}`), as(alice));
    const send = async (who: Login, body: string) =>
      (await hs.ok('PUT', v3(`rooms/${enc(roomId)}/send/m.room.message/${Math.random().toString(36).slice(2)}`), { ...as(who), body: { msgtype: 'm.text', body } })).event_id as string;
    const ignore = (users: string[]) =>
      hs.ok('PUT', v3(`user/${enc(alice.user_id)}/account_data/m.ignored_user_list`), {
        ...as(alice),
        body: { ignored_users: Object.fromEntries(users.map((u) => [u, {}])) },
      });
    const timelineOf = (response: any): any[] => response.rooms?.join?.[roomId]?.timeline?.events ?? [];

    beforeAll(async () => {
      hs = await Homeserver.start(backend);
      [alice, bob, chris] = [await hs.register('alice'), await hs.register('bob'), await hs.register('chris')];
      // Bob may set the topic: a state event of an ignored user must still reach alice.
      const power_level_content_override = { users: { [alice.user_id]: 100, [bob.user_id]: 50 } };
      roomId = (await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { preset: 'public_chat', power_level_content_override } })).room_id;
      for (const who of [bob, chris]) await hs.ok('POST', v3(`join/${enc(roomId)}`), { ...as(who), body: {} });
    }, 120_000);
    afterAll(async () => hs?.close());

    it("hides an ignored user's messages and invites from /sync at once, keeps their state events, and shows them again once unignored", async () => {
      const start = await sync();
      await ignore([bob.user_id]);
      const fromBob = await send(bob, 'you will not see this');
      const fromChris = await send(chris, 'you will see this');
      const topic = (await hs.ok('PUT', v3(`rooms/${enc(roomId)}/state/m.room.topic`), { ...as(bob), body: { topic: 'set by bob' } })).event_id;
      const bobRoom = (await hs.ok('POST', v3('createRoom'), { ...as(bob), body: { preset: 'private_chat', invite: [alice.user_id] } })).room_id;
      const chrisRoom = (await hs.ok('POST', v3('createRoom'), { ...as(chris), body: { preset: 'private_chat', invite: [alice.user_id] } })).room_id;

      const incremental = await sync(start.next_batch);
      const ids = timelineOf(incremental).map((e) => e.event_id);
      expect(ids).toContain(fromChris);
      expect(ids).toContain(topic);
      expect(ids).not.toContain(fromBob);
      expect(incremental.rooms.invite?.[chrisRoom]).toBeDefined();
      expect(incremental.rooms.invite?.[bobRoom]).toBeUndefined();
      expect(incremental.account_data.events.find((e: any) => e.type === 'm.ignored_user_list').content.ignored_users).toEqual({ [bob.user_id]: {} });

      // An initial sync (another device, or a client starting over) hides them too.
      const initial = await sync();
      expect(timelineOf(initial).map((e) => e.event_id)).not.toContain(fromBob);
      expect(initial.rooms.invite?.[bobRoom]).toBeUndefined();
      expect(initial.rooms.invite?.[chrisRoom]).toBeDefined();

      await ignore([]);
      const afterUnignore = await send(bob, 'back again');
      const later = await sync(incremental.next_batch);
      expect(timelineOf(later).map((e) => e.event_id)).toContain(afterUnignore);
    });

    it("leaves an ignored user's messages out of /messages and /context, but not their state events", async () => {
      await ignore([bob.user_id]);
      const before = await send(chris, 'before');
      const hidden = await send(bob, 'hidden');
      const name = (await hs.ok('PUT', v3(`rooms/${enc(roomId)}/state/m.room.name`), { ...as(bob), body: { name: 'named by bob' } })).event_id;
      const after = await send(chris, 'after');
      const page = await hs.ok('GET', v3(`rooms/${enc(roomId)}/messages?dir=b&limit=3`), as(alice));
      expect(page.chunk.map((e: any) => e.event_id)).toEqual([after, name, before]);
      const context = await hs.ok('GET', v3(`rooms/${enc(roomId)}/context/${enc(name)}?limit=2`), as(alice));
      expect(context.events_before.map((e: any) => e.event_id)).toEqual([before]);
      expect(context.events_after.map((e: any) => e.event_id)).toEqual([after]);
      expect(JSON.stringify(context)).not.toContain(hidden);
      await ignore([]);
    });

    it('fills the timeline limit with events of users not ignored', async () => {
      await ignore([bob.user_id]);
      const start = await sync();
      const shown: string[] = [];
      for (let i = 0; i < 3; i++) shown.push(await send(chris, `chris ${i}`));
      for (let i = 0; i < 6; i++) await send(bob, `bob ${i}`);
      const filter = encodeURIComponent(JSON.stringify({ room: { timeline: { limit: 3 } } }));
      const response = await hs.ok('GET', v3(`sync?timeout=0&since=${enc(start.next_batch)}&filter=${filter}`), as(alice));
      const timeline = response.rooms.join[roomId].timeline;
      expect(timeline.events.map((e: any) => e.event_id)).toEqual(shown);
      await ignore([]);
    });
  });
}
