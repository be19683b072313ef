/**
 * Event relationships over real HTTP: /relations (by rel type and event type, both directions,
 * recurse, history visibility) and /threads, on PGlite and on PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '@tessera/testing';
import { enc, Homeserver, v3, type Backend, type Login } from './harness.js';

const backends: Array<{ backend: Backend; available: boolean }> = [
  { backend: 'embedded', available: true },
  { backend: 'postgres', available: services.postgres && services.nats && services.redis },
];

const v1 = (path: string) => `/_matrix/client/v1/${path}`;
const ids = (chunk: Array<{ event_id: string }>) => chunk.map((e) => e.event_id);

for (const { backend, available } of backends) {
  describe.skipIf(!available)(`event relationships (${backend})`, () => {
    let hs: Homeserver;
    let alice: Login;
    let bob: Login;
    let carol: Login;
    let dave: Login;
    const as = (l: Login) => ({ token: l.access_token });
    let txn = 0;

    const send = async (who: Login, roomId: string, type: string, content: Record<string, unknown>): Promise<string> =>
      (await hs.ok('PUT', v3(`rooms/${enc(roomId)}/send/${enc(type)}/t${txn++}`), { ...as(who), body: content })).event_id;
    const text = (who: Login, roomId: string, body: string) => send(who, roomId, 'm.room.message', { msgtype: 'm.text', body });
    const react = (who: Login, roomId: string, target: string, key: string) =>
      send(who, roomId, 'm.reaction', { 'm.relates_to': { rel_type: 'm.annotation', event_id: target, key } });
    const threadReply = (who: Login, roomId: string, root: string, body: string) => send(who, roomId, 'm.room.message', {
      msgtype: 'm.text', body, 'm.relates_to': { rel_type: 'm.thread', event_id: root, is_falling_back: true, 'm.in_reply_to': { event_id: root } },
    });
    const relations = (who: Login, roomId: string, rest: string) => hs.call('GET', v1(`rooms/${enc(roomId)}/relations/${rest}`), as(who));

    // Room 1 (alice and bob; history shared): a root with a reaction, an edit, two thread
    // replies (one with its own reaction), a reference; a second thread started later.
    let room: string;
    let root: string;
    let reaction: string;
    let edit: string;
    let reply1: string;
    let replyReaction: string;
    let reply2: string;
    let reference: string;
    let rootB: string;
    let replyB: string;

    beforeAll(async () => {
      hs = await Homeserver.start(backend);
      [alice, bob, carol, dave] = [await hs.register('alice'), await hs.register('bob'), await hs.register('carol'), await hs.register('dave')];
      room = (await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { preset: 'public_chat' } })).room_id;
      await hs.ok('POST', v3(`rooms/${enc(room)}/join`), { ...as(bob), body: {} });
      root = await text(alice, room, 'root');
      reaction = await react(bob, room, root, '👍');
      edit = await send(alice, room, 'm.room.message', {
        msgtype: 'm.text', body: '* root!', 'm.new_content': { msgtype: 'm.text', body: 'root!' }, 'm.relates_to': { rel_type: 'm.replace', event_id: root },
      });
      reply1 = await threadReply(bob, room, root, 'first reply');
      await text(alice, room, 'unrelated');
      replyReaction = await react(alice, room, reply1, '🎉');
      reply2 = await threadReply(alice, room, root, 'second reply');
      reference = await send(bob, room, 'm.room.message', { msgtype: 'm.text', body: 'see above', 'm.relates_to': { rel_type: 'm.reference', event_id: root } });
      rootB = await text(alice, room, 'another root');
      replyB = await threadReply(alice, room, rootB, 'reply in B');
    }, 180_000);
    afterAll(async () => hs?.close());

    it('lists the children of an event, newest first, filtered by rel type and event type', async () => {
      const all = await relations(alice, room, enc(root));
      expect(all.status).toBe(200);
      expect(ids(all.body.chunk)).toEqual([reference, reply2, reply1, edit, reaction]);
      expect(all.body.next_batch).toBeUndefined();
      expect(all.body.prev_batch).toBeUndefined();
      expect(all.body.recursion_depth).toBeUndefined();
      expect(all.body.chunk[0]).toMatchObject({ room_id: room, sender: bob.user_id, type: 'm.room.message', content: { body: 'see above' } });

      expect(ids((await relations(bob, room, `${enc(root)}/m.annotation`)).body.chunk)).toEqual([reaction]);
      expect(ids((await relations(bob, room, `${enc(root)}/m.replace`)).body.chunk)).toEqual([edit]);
      expect(ids((await relations(bob, room, `${enc(root)}/m.thread`)).body.chunk)).toEqual([reply2, reply1]);
      expect(ids((await relations(bob, room, `${enc(root)}/m.thread/m.room.message`)).body.chunk)).toEqual([reply2, reply1]);
      expect(ids((await relations(bob, room, `${enc(root)}/m.annotation/m.reaction`)).body.chunk)).toEqual([reaction]);
      expect(ids((await relations(bob, room, `${enc(root)}/m.annotation/m.room.message`)).body.chunk)).toEqual([]);
      expect(ids((await relations(bob, room, `${enc(reply1)}/m.annotation`)).body.chunk)).toEqual([replyReaction]);
      // An event without children, and a plain message that is no one's child.
      expect((await relations(bob, room, enc(reference))).body).toEqual({ chunk: [] });
    });

    it('paginates backwards and forwards with next_batch, prev_batch and to', async () => {
      const page1 = await relations(alice, room, `${enc(root)}?limit=2`);
      expect(ids(page1.body.chunk)).toEqual([reference, reply2]);
      expect(page1.body.next_batch).toEqual(expect.any(String));
      const page2 = await relations(alice, room, `${enc(root)}?limit=2&from=${enc(page1.body.next_batch)}`);
      expect(ids(page2.body.chunk)).toEqual([reply1, edit]);
      expect(page2.body.prev_batch).toBe(page1.body.next_batch);
      const page3 = await relations(alice, room, `${enc(root)}?limit=2&from=${enc(page2.body.next_batch)}`);
      expect(ids(page3.body.chunk)).toEqual([reaction]);
      expect(page3.body.next_batch).toBeUndefined();

      const forward1 = await relations(alice, room, `${enc(root)}?dir=f&limit=3`);
      expect(ids(forward1.body.chunk)).toEqual([reaction, edit, reply1]);
      const forward2 = await relations(alice, room, `${enc(root)}?dir=f&limit=3&from=${enc(forward1.body.next_batch)}`);
      expect(ids(forward2.body.chunk)).toEqual([reply2, reference]);
      expect(forward2.body.next_batch).toBeUndefined();

      // Backwards from a forward token: the events up to that point, and `to` stops a page.
      const back = await relations(alice, room, `${enc(root)}?from=${enc(forward1.body.next_batch)}`);
      expect(ids(back.body.chunk)).toEqual([reply1, edit, reaction]);
      const bounded = await relations(alice, room, `${enc(root)}?to=${enc(page1.body.next_batch)}`);
      expect(ids(bounded.body.chunk)).toEqual([reference, reply2]);
      expect(bounded.body.next_batch).toBeUndefined();

      // A /messages token is a valid `from`: the point before the latest reference.
      const messages = await hs.ok('GET', v3(`rooms/${enc(room)}/messages?dir=b&limit=3`), as(alice));
      const fromMessages = await relations(alice, room, `${enc(root)}?from=${enc(messages.end)}`);
      expect(ids(fromMessages.body.chunk)).toEqual([reply2, reply1, edit, reaction]);
    });

    it('follows relations of relations with recurse and says how deep', async () => {
      const deep = await relations(alice, room, `${enc(root)}?recurse=true&limit=10`);
      // Default page: 5 (as Synapse), so the sixth is on the next page.
      const deepDefault = await relations(alice, room, `${enc(root)}?recurse=true`);
      expect(deepDefault.body.chunk).toHaveLength(5);
      expect(deepDefault.body.next_batch).toEqual(expect.any(String));
      expect(ids(deep.body.chunk)).toEqual([reference, reply2, replyReaction, reply1, edit, reaction]);
      expect(deep.body.recursion_depth).toBe(3);
      const deepAnnotations = await relations(alice, room, `${enc(root)}/m.annotation?recurse=true`);
      expect(ids(deepAnnotations.body.chunk)).toEqual([replyReaction, reaction]);
      const shallow = await relations(alice, room, `${enc(root)}/m.annotation?recurse=false`);
      expect(ids(shallow.body.chunk)).toEqual([reaction]);
      expect(shallow.body.recursion_depth).toBe(1);
      const paged = await relations(alice, room, `${enc(root)}?recurse=true&dir=f&limit=4`);
      expect(ids(paged.body.chunk)).toEqual([reaction, edit, reply1, replyReaction]);
      const rest = await relations(alice, room, `${enc(root)}?recurse=true&dir=f&limit=4&from=${enc(paged.body.next_batch)}`);
      expect(ids(rest.body.chunk)).toEqual([reply2, reference]);
    });

    it('bundles thread, edit and reference aggregations into /event, /messages and /relations', async () => {
      const bundled = (await hs.ok('GET', v3(`rooms/${enc(room)}/event/${enc(root)}`), as(bob))).unsigned['m.relations'];
      expect(bundled['m.thread']).toMatchObject({ count: 2, current_user_participated: true, latest_event: { event_id: reply2, content: { body: 'second reply' } } });
      expect(bundled['m.replace']).toMatchObject({ event_id: edit, sender: alice.user_id, content: { 'm.new_content': { body: 'root!' } } });
      expect(bundled['m.reference']).toEqual({ chunk: [{ event_id: reference }] });
      // The event itself is returned unmodified.
      expect((await hs.ok('GET', v3(`rooms/${enc(room)}/event/${enc(root)}`), as(bob))).content.body).toBe('root');

      // An edit by someone else is not a valid replacement; a later one by the sender wins.
      await send(bob, room, 'm.room.message', {
        msgtype: 'm.text', body: '* hijack', 'm.new_content': { msgtype: 'm.text', body: 'hijack' }, 'm.relates_to': { rel_type: 'm.replace', event_id: root },
      });
      const edit2 = await send(alice, room, 'm.room.message', {
        msgtype: 'm.text', body: '* root!!', 'm.new_content': { msgtype: 'm.text', body: 'root!!' }, 'm.relates_to': { rel_type: 'm.replace', event_id: root },
      });
      const messages = await hs.ok('GET', v3(`rooms/${enc(room)}/messages?dir=b&limit=50`), as(alice));
      const inMessages = messages.chunk.find((e: any) => e.event_id === root);
      expect(inMessages.unsigned['m.relations']['m.replace'].event_id).toBe(edit2);
      expect(inMessages.unsigned['m.relations']['m.thread'].count).toBe(2);
      // Bob took no part in thread B; events without children carry no aggregation.
      expect(messages.chunk.find((e: any) => e.event_id === rootB).unsigned['m.relations']['m.thread'].current_user_participated).toBe(true);
      expect(messages.chunk.find((e: any) => e.event_id === reference).unsigned['m.relations']).toBeUndefined();
      const asBob = await hs.ok('GET', v3(`rooms/${enc(room)}/event/${enc(rootB)}`), as(bob));
      expect(asBob.unsigned['m.relations']['m.thread'].current_user_participated).toBe(false);
      // /relations bundles its chunk too: reply1 has a reaction only (annotations are not bundled).
      const threadChunk = (await relations(alice, room, `${enc(root)}/m.thread`)).body.chunk;
      expect(threadChunk.map((e: any) => e.unsigned['m.relations'])).toEqual([undefined, undefined]);
    });

    it('drops a redacted child from its parent', async () => {
      const extra = await react(bob, room, rootB, '👀');
      expect(ids((await relations(bob, room, `${enc(rootB)}/m.annotation`)).body.chunk)).toEqual([extra]);
      await hs.ok('PUT', v3(`rooms/${enc(room)}/redact/${enc(extra)}/r${txn++}`), { ...as(bob), body: {} });
      expect(ids((await relations(bob, room, `${enc(rootB)}/m.annotation`)).body.chunk)).toEqual([]);
      expect(ids((await relations(bob, room, `${enc(rootB)}/m.thread`)).body.chunk)).toEqual([replyB]);
    });

    it('applies history visibility to the parent and to its children', async () => {
      const { room_id: hidden } = await hs.ok('POST', v3('createRoom'), {
        ...as(alice), body: { preset: 'public_chat', initial_state: [{ type: 'm.room.history_visibility', content: { history_visibility: 'joined' } }] },
      });
      const before = await text(alice, hidden, 'before carol');
      await react(alice, hidden, before, '1');
      await hs.ok('POST', v3(`rooms/${enc(hidden)}/join`), { ...as(carol), body: {} });
      const during = await text(alice, hidden, 'while carol is here');
      const carolReaction = await react(carol, hidden, during, '2');
      await hs.ok('POST', v3(`rooms/${enc(hidden)}/leave`), { ...as(carol), body: {} });
      const afterLeave = await react(alice, hidden, during, '3');

      // A parent from before carol joined is not found for her; alice sees it and its child.
      const notVisible = await relations(carol, hidden, enc(before));
      expect([notVisible.status, notVisible.body.errcode]).toEqual([404, 'M_NOT_FOUND']);
      expect((await relations(alice, hidden, enc(before))).body.chunk).toHaveLength(1);
      // Carol, departed, sees only the children from while she was joined.
      expect(ids((await relations(carol, hidden, enc(during))).body.chunk)).toEqual([carolReaction]);
      expect(ids((await relations(alice, hidden, enc(during))).body.chunk)).toEqual([afterLeave, carolReaction]);
      // Dave was never in the room: 403, as for /messages.
      const outsider = await relations(dave, hidden, enc(during));
      expect([outsider.status, outsider.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
      const outsiderThreads = await hs.call('GET', v1(`rooms/${enc(hidden)}/threads`), as(dave));
      expect([outsiderThreads.status, outsiderThreads.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
    });

    it('lists thread roots by latest activity with their thread summary', async () => {
      const all = await hs.ok('GET', v1(`rooms/${enc(room)}/threads`), as(bob));
      expect(ids(all.chunk)).toEqual([rootB, root]);
      expect(all.next_batch).toBeUndefined();
      const summary = all.chunk[1].unsigned['m.relations']['m.thread'];
      expect(summary).toMatchObject({ count: 2, current_user_participated: true });
      expect(summary.latest_event).toMatchObject({ event_id: reply2, sender: alice.user_id, content: { body: 'second reply' } });
      expect(all.chunk[0].unsigned['m.relations']['m.thread']).toMatchObject({ count: 1, current_user_participated: false, latest_event: { event_id: replyB } });

      // Bob replied only in the first thread; alice started both.
      const bobs = await hs.ok('GET', v1(`rooms/${enc(room)}/threads?include=participated`), as(bob));
      expect(ids(bobs.chunk)).toEqual([root]);
      const alices = await hs.ok('GET', v1(`rooms/${enc(room)}/threads?include=participated`), as(alice));
      expect(ids(alices.chunk)).toEqual([rootB, root]);

      const page1 = await hs.ok('GET', v1(`rooms/${enc(room)}/threads?limit=1`), as(bob));
      expect(ids(page1.chunk)).toEqual([rootB]);
      const page2 = await hs.ok('GET', v1(`rooms/${enc(room)}/threads?limit=1&from=${enc(page1.next_batch)}`), as(bob));
      expect(ids(page2.chunk)).toEqual([root]);
      expect(page2.next_batch).toBeUndefined();

      // A new reply moves its thread to the top.
      const reply3 = await threadReply(bob, room, root, 'third reply');
      const now = await hs.ok('GET', v1(`rooms/${enc(room)}/threads`), as(alice));
      expect(ids(now.chunk)).toEqual([root, rootB]);
      expect(now.chunk[0].unsigned['m.relations']['m.thread']).toMatchObject({ count: 3, current_user_participated: true, latest_event: { event_id: reply3 } });
    });

    it('refuses unknown events and rooms and bad parameters', async () => {
      const unknown = await relations(alice, room, enc('$nope'));
      expect([unknown.status, unknown.body.errcode]).toEqual([404, 'M_NOT_FOUND']);
      const { room_id: other } = await hs.ok('POST', v3('createRoom'), as(alice));
      const elsewhere = await relations(alice, other, enc(root));
      expect([elsewhere.status, elsewhere.body.errcode]).toEqual([404, 'M_NOT_FOUND']);
      const noRoom = await relations(alice, `!nowhere:${hs.serverName}`, enc(root));
      expect([noRoom.status, noRoom.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
      for (const query of ['dir=x', 'from=garbage', 'limit=-1', 'limit=abc', 'recurse=yes']) {
        const bad = await relations(alice, room, `${enc(root)}?${query}`);
        expect([query, bad.status, bad.body.errcode]).toEqual([query, 400, 'M_INVALID_PARAM']);
      }
      for (const query of ['include=mine', 'limit=0', 'from=garbage']) {
        const bad = await hs.call('GET', v1(`rooms/${enc(room)}/threads?${query}`), as(alice));
        expect([query, bad.status, bad.body.errcode]).toEqual([query, 400, 'M_INVALID_PARAM']);
      }
      expect((await hs.call('GET', v1(`rooms/${enc(room)}/relations/${enc(root)}`))).status).toBe(401);
      expect((await hs.call('GET', v1(`rooms/${enc(room)}/threads`))).status).toBe(401);
      expect(hs.validated).toBeGreaterThan(0);
    });
  });
}
