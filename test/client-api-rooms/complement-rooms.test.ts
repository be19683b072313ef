/**
 * Regression tests for what the Complement csapi tests expect of rooms and /sync, found by
 * reading them against this server (tests/csapi/txnid_test.go, rooms_state_test.go,
 * membership_on_events_test.go, rooms_members_local_test.go, sync_test.go,
 * room_upgrade_test.go): transaction ids scoped per endpoint, idempotent state and joins,
 * unsigned.membership, the presence of newly seen users in an incremental sync, and push
 * rules carried into an upgraded room.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '@tessera/testing';
import { enc, Homeserver, v3, type Backend, type Login } from './harness.js';

const backends: Array<{ backend: Backend; available: boolean }> = [
  { backend: 'embedded', available: true },
  { backend: 'postgres', available: services.postgres && services.nats && services.redis },
];

for (const { backend, available } of backends) {
  describe.skipIf(!available)(`Complement csapi expectations (${backend})`, () => {
    let hs: Homeserver;
    let alice: Login;
    let bob: Login;
    const as = (l: Login) => ({ token: l.access_token });
    const createRoom = async (who: Login, body: Record<string, unknown> = { preset: 'public_chat' }) =>
      (await hs.ok('POST', v3('createRoom'), { ...as(who), body })).room_id as string;
    const send = async (who: Login, roomId: string, txn: string, body: string, type = 'm.room.message') =>
      (await hs.ok('PUT', v3(`rooms/${enc(roomId)}/send/${enc(type)}/${enc(txn)}`), { ...as(who), body: { msgtype: 'm.text', body } })).event_id as string;
    const join = (who: Login, roomId: string) => hs.ok('POST', v3(`join/${enc(roomId)}`), { ...as(who), body: {} });
    const sync = (who: Login, since?: string) => hs.ok('GET', v3(`sync?timeout=0${since ? `&since=${enc(since)}` : ''}`), as(who));
    const setPresence = (who: Login, presence: string) => hs.ok('PUT', v3(`presence/${enc(who.user_id)}/status`), { ...as(who), body: { presence } });
    /** Syncs (with the token moving on) until `check` holds, as Complement's MustSyncUntil. */
    const syncUntil = async (who: Login, since: string | undefined, check: (body: any) => boolean) => {
      const seen: any[] = [];
      for (let i = 0; i < 20; i++) {
        const body = await sync(who, since);
        seen.push(body);
        if (check(body)) return body.next_batch as string;
        since = body.next_batch;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`sync never matched: ${JSON.stringify(seen.slice(-3))}`);
    };
    const presenceSenders = (body: any) => ((body.presence?.events ?? []) as Array<{ sender: string }>).map((e) => e.sender);

    beforeAll(async () => {
      hs = await Homeserver.start(backend);
      alice = await hs.register('alice');
      bob = await hs.register('bob');
    }, 60_000);

    afterAll(async () => {
      await hs?.close();
    });

    it('scopes transaction ids to the endpoint: the same txn id in another room (or for another type) is another event (txnid_test.go)', async () => {
      const room1 = await createRoom(alice, {});
      const room2 = await createRoom(alice, {});
      const first = await send(alice, room1, 'abc', 'first');
      expect(await send(alice, room1, 'abc', 'first')).toBe(first);
      expect(await send(alice, room1, 'abc', 'second')).toBe(first);
      const other = await send(alice, room2, 'abc', 'first');
      expect(other).not.toBe(first);
      expect(await send(alice, room1, 'abc', 'first', 'm.other.type')).not.toBe(first);
      // The client's own txn id is what unsigned.transaction_id shows (GET /event and /sync).
      const event = await hs.ok('GET', v3(`rooms/${enc(room1)}/event/${enc(first)}`), as(alice));
      expect(event.unsigned.transaction_id).toBe('abc');
      const body = await sync(alice);
      const echoed = body.rooms.join[room2].timeline.events.find((e: any) => e.event_id === other);
      expect(echoed.unsigned.transaction_id).toBe('abc');
      // A redaction with a txn id already used by a send is its own request too.
      const redaction = await hs.ok('PUT', v3(`rooms/${enc(room1)}/redact/${enc(first)}/abc`), { ...as(alice), body: {} });
      expect(redaction.event_id).not.toBe(first);
    });

    it('setting the same state twice, or joining twice, gives the same event (rooms_state_test.go)', async () => {
      const roomId = await createRoom(bob, { preset: 'public_chat', visibility: 'public' });
      const put = () => hs.ok('PUT', v3(`rooms/${enc(roomId)}/state/a.test.state.type/`), { ...as(bob), body: { a_key: 'a_value' } });
      const firstId = (await put()).event_id;
      expect((await put()).event_id).toBe(firstId);
      // Other content, or another sender, is a new event.
      const changed = await hs.ok('PUT', v3(`rooms/${enc(roomId)}/state/a.test.state.type/`), { ...as(bob), body: { a_key: 'b_value' } });
      expect(changed.event_id).not.toBe(firstId);

      await join(alice, roomId);
      const memberId = async () =>
        ((await hs.ok('GET', v3(`rooms/${enc(roomId)}/state`), as(alice))) as any[]).find((e) => e.type === 'm.room.member' && e.state_key === alice.user_id).event_id;
      const firstJoin = await memberId();
      await join(alice, roomId);
      expect(await memberId()).toBe(firstJoin);
    });

    it('gives each timeline event unsigned.membership: the requester\'s membership at it (membership_on_events_test.go)', async () => {
      const carol = await hs.register('carol-membership');
      const roomId = await createRoom(alice);
      const pre = await send(alice, roomId, 'pre', 'prejoin');
      await join(carol, roomId);
      const post = await send(alice, roomId, 'post', 'postjoin');
      const body = await sync(carol);
      const timeline = body.rooms.join[roomId].timeline.events as any[];
      expect(timeline.map((e) => e.event_id)).toEqual(expect.arrayContaining([pre, post]));
      let seenJoin = false;
      for (const e of timeline) {
        if (e.type === 'm.room.member' && e.state_key === carol.user_id) seenJoin = true;
        expect(e.unsigned.membership, JSON.stringify(e)).toBe(seenJoin ? 'join' : 'leave');
      }
      const messages = await hs.ok('GET', v3(`rooms/${enc(roomId)}/messages?dir=b&limit=50`), as(carol));
      const byId = new Map((messages.chunk as any[]).map((e) => [e.event_id, e.unsigned.membership]));
      expect(byId.get(pre)).toBe('leave');
      expect(byId.get(post)).toBe('join');
      const event = await hs.ok('GET', v3(`rooms/${enc(roomId)}/event/${enc(post)}`), as(carol));
      expect(event.unsigned.membership).toBe('join');
    });

    it('tells the presence of newly joined members, and of the members of a newly joined room, in an incremental sync (sync_test.go, rooms_members_local_test.go)', async () => {
      const dave = await hs.register('dave-presence');
      const erin = await hs.register('erin-presence');
      await setPresence(dave, 'online');
      await setPresence(erin, 'online');
      const roomId = await createRoom(dave);
      const erinSince = (await sync(erin)).next_batch as string;
      const daveSince = (await sync(dave)).next_batch as string;
      await join(erin, roomId);
      // The existing member sees the new member's presence, set before the token.
      const daveNext = await syncUntil(dave, daveSince, (b) => presenceSenders(b).includes(erin.user_id));
      // The new member sees the presence of the room's members.
      const erinNext = await syncUntil(erin, erinSince, (b) => presenceSenders(b).includes(dave.user_id));
      // Once only.
      expect(presenceSenders(await sync(dave, daveNext))).not.toContain(erin.user_id);
      expect(presenceSenders(await sync(erin, erinNext))).not.toContain(dave.user_id);
    });

    it('carries a user\'s push rules for a room into the room that replaced it (room_upgrade_test.go)', async () => {
      const frank = await hs.register('frank-upgrade');
      const roomRules = async (who: Login) => ((await hs.ok('GET', v3('pushrules/'), as(who))).global.room as any[]).map((r) => [r.rule_id, r.actions[0]]);
      const roomId = await createRoom(alice, { preset: 'public_chat', room_version: '10' });
      await join(frank, roomId);
      for (const who of [alice, frank]) await hs.ok('PUT', v3(`pushrules/global/room/${enc(roomId)}`), { ...as(who), body: { actions: ['dont_notify'] } });

      const upgraded = (await hs.ok('POST', v3(`rooms/${enc(roomId)}/upgrade`), { ...as(alice), body: { new_version: '11' } })).replacement_room as string;
      await join(frank, upgraded);
      for (const who of [alice, frank]) {
        expect(await roomRules(who)).toEqual(expect.arrayContaining([[roomId, 'dont_notify'], [upgraded, 'dont_notify']]));
      }
      // Told by /sync as m.push_rules account data.
      const rules = (await sync(frank)).account_data.events.find((e: any) => e.type === 'm.push_rules');
      expect((rules.content.global.room as any[]).map((r) => r.rule_id)).toEqual(expect.arrayContaining([roomId, upgraded]));

      // An upgrade made by hand: a room naming the old one as predecessor, and a tombstone.
      const manual = await createRoom(alice, { preset: 'public_chat', room_version: '11', creation_content: { predecessor: { room_id: upgraded } } });
      await hs.ok('PUT', v3(`rooms/${enc(upgraded)}/state/m.room.tombstone/`), { ...as(alice), body: { body: 'replaced', replacement_room: manual } });
      await join(frank, manual);
      for (const who of [alice, frank]) expect(await roomRules(who)).toEqual(expect.arrayContaining([[manual, 'dont_notify']]));
      // Someone without rules for the old room gets none.
      await join(bob, manual);
      expect((await roomRules(bob)).map(([id]) => id)).not.toContain(manual);
    });
    it('a left room shows the state as it was left, even with an empty timeline (sync_archive_test.go TestArchivedRoomsHistory)', async () => {
      const gus = await hs.register('gus-archive');
      const roomId = await createRoom(alice);
      await join(gus, roomId);
      const put = (value: string) => hs.ok('PUT', v3(`rooms/${enc(roomId)}/state/a.madeup.test.state/`), { ...as(alice), body: { my_key: value } });
      await put('before');
      await hs.ok('POST', v3(`rooms/${enc(roomId)}/leave`), { ...as(gus), body: {} });
      await send(alice, roomId, 'after-msg', 'after');
      await put('after');
      const filter = JSON.stringify({ room: { timeline: { limit: 0 }, include_leave: true } });
      const room = (await hs.ok('GET', v3(`sync?timeout=0&filter=${enc(filter)}`), as(gus))).rooms.leave[roomId];
      expect(room.timeline.events).toEqual([]);
      expect(room.state.events.find((e: any) => e.type === 'a.madeup.test.state').content.my_key).toBe('before');
      expect(room.state.events.find((e: any) => e.type === 'm.room.member' && e.state_key === gus.user_id).content.membership).toBe('leave');
    });

    it('an invite received and rejected since the token shows in the leave section (sync_test.go TestTentativeEventualJoiningAfterRejecting)', async () => {
      const hal = await hs.register('hal-reject');
      const roomId = await createRoom(alice);
      const since = (await sync(hal)).next_batch as string;
      await hs.ok('POST', v3(`rooms/${enc(roomId)}/invite`), { ...as(alice), body: { user_id: hal.user_id } });
      await hs.ok('POST', v3(`rooms/${enc(roomId)}/leave`), { ...as(hal), body: {} });
      const left = await hs.ok('GET', v3(`sync?timeout=0&full_state=true&since=${enc(since)}`), as(hal));
      expect(left.rooms.leave[roomId]).toBeDefined();
      await join(hal, roomId);
      const joined = await hs.ok('GET', v3(`sync?timeout=0&full_state=true&since=${enc(left.next_batch)}`), as(hal));
      expect(joined.rooms.leave?.[roomId]).toBeUndefined();
      expect(joined.rooms.join[roomId]).toBeDefined();
    });

    it('tells a user\'s unthreaded receipt over their threaded one on the same event (thread_notifications_test.go, MSC4102)', async () => {
      const roomId = await createRoom(alice);
      await join(bob, roomId);
      const root = await send(alice, roomId, 'msc4102-a', 'root');
      const reply = (await hs.ok('PUT', v3(`rooms/${enc(roomId)}/send/m.room.message/msc4102-b`), {
        ...as(alice), body: { msgtype: 'm.text', body: 'reply', 'm.relates_to': { event_id: root, rel_type: 'm.thread' } },
      })).event_id as string;
      await hs.ok('POST', v3(`rooms/${enc(roomId)}/receipt/m.read/${enc(reply)}`), { ...as(alice), body: {} });
      await hs.ok('POST', v3(`rooms/${enc(roomId)}/receipt/m.read/${enc(reply)}`), { ...as(alice), body: { thread_id: root } });
      for (const who of [alice, bob]) {
        const receipt = (await sync(who)).rooms.join[roomId].ephemeral.events.find((e: any) => e.type === 'm.receipt');
        expect(receipt.content[reply]['m.read'][alice.user_id]).toEqual({ ts: expect.any(Number) });
      }
    });

    it('GET of a push rule of a kind this server has not is 404 (thread_notifications_test.go probes MSC4306 rules)', async () => {
      const reply = await hs.call('GET', v3('pushrules/global/postcontent/.io.element.msc4306.rule.subscribed_thread'), as(alice));
      expect([reply.status, reply.body.errcode]).toEqual([404, 'M_NOT_FOUND']);
      const put = await hs.call('PUT', v3('pushrules/global/postcontent/some.rule'), { ...as(alice), body: { actions: [] } });
      expect(put.status).toBe(400);
    });
  });
}
