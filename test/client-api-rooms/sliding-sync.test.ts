/**
 * Simplified sliding sync (MSC4186, the unstable org.matrix.simplified_msc3575 endpoint Element X
 * uses): lists by activity with ranges and counts, incremental responses with only changed
 * rooms, required_state patterns, timelines and /messages from prev_batch, subscriptions,
 * invites, the long poll, the to_device and e2ee extensions, unknown pos. Real HTTP against
 * the whole homeserver.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from 'matrix-js-sdk';
import { logger } from 'matrix-js-sdk/lib/logger.js';
import { SlidingSync, SlidingSyncEvent, SlidingSyncState } from 'matrix-js-sdk/lib/sliding-sync.js';
import { services } from '@tessera/testing';
import { SlidingSyncService } from '../../libs/services/client-api/src/sliding-sync/sliding-sync.service.js';
import { enc, Homeserver, v3, type Backend, type Login } from './harness.js';

const backends: Array<{ backend: Backend; available: boolean }> = [
  { backend: 'embedded', available: true },
  { backend: 'postgres', available: services.postgres && services.nats && services.redis },
];

const SLIDING = '/_matrix/client/unstable/org.matrix.simplified_msc3575/sync';
type Json = Record<string, any>;

for (const { backend, available } of backends) {
  describe.skipIf(!available)(`simplified sliding sync (${backend})`, () => {
    let hs: Homeserver;
    const as = (l: Login) => ({ token: l.access_token });

    beforeAll(async () => {
      hs = await Homeserver.start(backend);
    }, 120_000);
    afterAll(async () => hs?.close());

    const slide = (who: Login, body: Json, query: { pos?: string; timeout?: number } = {}) => {
      const q = [query.pos ? `pos=${enc(query.pos)}` : '', query.timeout !== undefined ? `timeout=${query.timeout}` : ''].filter(Boolean).join('&');
      return hs.ok<Json>('POST', `${SLIDING}${q ? `?${q}` : ''}`, { ...as(who), body });
    };
    const text = (who: Login, roomId: string, body: string) =>
      hs.ok<{ event_id: string }>('PUT', v3(`rooms/${enc(roomId)}/send/m.room.message/${Math.random()}`), { ...as(who), body: { msgtype: 'm.text', body } });
    const createRoom = async (who: Login, body: Json = {}) => (await hs.ok<{ room_id: string }>('POST', v3('createRoom'), { ...as(who), body: { preset: 'private_chat', ...body } })).room_id;
    const join = (who: Login, roomId: string) => hs.ok('POST', v3(`rooms/${enc(roomId)}/join`), { ...as(who), body: {} });
    const bodies = (room: Json) => (room.timeline as Json[]).filter((e) => e.type === 'm.room.message').map((e) => e.content.body);
    const stateKeys = (room: Json, type: string) => (room.required_state as Json[]).filter((e) => e.type === type).map((e) => e.state_key).sort();

    it('/versions advertises simplified sliding sync', async () => {
      const versions = await hs.ok<Json>('GET', '/_matrix/client/versions');
      expect(versions.unstable_features['org.matrix.simplified_msc3575']).toBe(true);
    });

    it('lists the most recent rooms within the range with the count, then sends only rooms that changed', async () => {
      const alice = await hs.register('listalice');
      const rooms: string[] = [];
      for (let i = 0; i < 5; i++) rooms.push(await createRoom(alice, { name: `room ${i}` }));
      for (const roomId of rooms) await text(alice, roomId, `hello ${roomId}`);
      const list = { all: { ranges: [[0, 2]], timeline_limit: 1, required_state: [['m.room.name', '']] } };

      const first = await slide(alice, { lists: list });
      expect(first.lists.all.count).toBe(5);
      const newestFirst = [rooms[4], rooms[3], rooms[2]];
      expect(Object.keys(first.rooms)).toEqual(newestFirst);
      const stamps = newestFirst.map((r) => first.rooms[r].bump_stamp as number);
      expect([...stamps].sort((a, b) => b - a)).toEqual(stamps);
      for (const [i, roomId] of newestFirst.entries()) {
        const room = first.rooms[roomId];
        expect(room).toMatchObject({ initial: true, membership: 'join', name: `room ${4 - i}`, joined_count: 1, invited_count: 0, notification_count: 0, highlight_count: 0, lists: ['all'] });
        expect(bodies(room)).toEqual([`hello ${roomId}`]);
        expect(room.required_state.map((e: Json) => e.type)).toEqual(['m.room.name']);
      }

      // A message in the third room: it alone is sent, not initial, and now bumps the others.
      await text(alice, rooms[2]!, 'news');
      const second = await slide(alice, { lists: list }, { pos: first.pos });
      expect(Object.keys(second.rooms)).toEqual([rooms[2]]);
      const moved = second.rooms[rooms[2]!];
      expect(moved.initial).toBeUndefined();
      expect(bodies(moved)).toEqual(['news']);
      expect(moved.name).toBeUndefined(); // unchanged fields are not sent again
      expect(moved.required_state).toEqual([]);
      expect(moved.num_live).toBe(1);
      expect(moved.bump_stamp).toBeGreaterThan(stamps[0]!);
      expect(second.lists.all.count).toBe(5);

      // A message in the oldest room brings it into the range: new to the connection, so sent in full.
      await text(alice, rooms[0]!, 'back to the top');
      const third = await slide(alice, { lists: list }, { pos: second.pos });
      expect(Object.keys(third.rooms)).toEqual([rooms[0]]);
      expect(third.rooms[rooms[0]!]).toMatchObject({ initial: true, name: 'room 0' });

      // Nothing new: an immediate answer with no rooms.
      const idle = await slide(alice, { lists: list }, { pos: third.pos });
      expect(idle.rooms).toEqual({});

      // Growing the range sends the rooms not sent yet.
      const grown = await slide(alice, { lists: { all: { ...list.all, ranges: [[0, 4]] } } }, { pos: idle.pos });
      expect(Object.keys(grown.rooms)).toEqual([rooms[1]]);
    });

    it('required_state: wildcards, $ME, $LAZY (the timeline senders, each member once)', async () => {
      const alice = await hs.register('statealice');
      const bob = await hs.register('statebob');
      const carol = await hs.register('statecarol');
      const roomId = await createRoom(alice, { preset: 'public_chat', name: 'state room', topic: 'a topic' });
      await join(bob, roomId);
      await join(carol, roomId);
      await text(bob, roomId, 'from bob');

      const all = await slide(alice, { room_subscriptions: { [roomId]: { timeline_limit: 1, required_state: [['*', '*']] } } });
      const full = all.rooms[roomId];
      expect(stateKeys(full, 'm.room.member')).toEqual([alice.user_id, bob.user_id, carol.user_id].sort());
      for (const type of ['m.room.create', 'm.room.power_levels', 'm.room.join_rules', 'm.room.name', 'm.room.topic']) expect(stateKeys(full, type)).toEqual(['']);

      const typeWildcard = await slide(alice, { room_subscriptions: { [roomId]: { timeline_limit: 0, required_state: [['m.room.member', '*']] } } });
      expect(typeWildcard.rooms[roomId].required_state.every((e: Json) => e.type === 'm.room.member')).toBe(true);
      expect(typeWildcard.rooms[roomId].required_state).toHaveLength(3);
      expect(typeWildcard.rooms[roomId].timeline).toEqual([]);

      const me = await slide(alice, { room_subscriptions: { [roomId]: { timeline_limit: 1, required_state: [['m.room.member', '$ME'], ['m.room.create', '']] } } });
      expect(stateKeys(me.rooms[roomId], 'm.room.member')).toEqual([alice.user_id]);
      expect(stateKeys(me.rooms[roomId], 'm.room.create')).toEqual(['']);

      const lazyConfig = { room_subscriptions: { [roomId]: { timeline_limit: 1, required_state: [['m.room.member', '$LAZY'], ['m.room.topic', '']] } } };
      const lazy = await slide(alice, lazyConfig);
      expect(stateKeys(lazy.rooms[roomId], 'm.room.member')).toEqual([bob.user_id]);
      expect(stateKeys(lazy.rooms[roomId], 'm.room.topic')).toEqual(['']);

      // Incremental: carol's membership comes with her message; bob's, already sent, does not come again.
      await text(carol, roomId, 'from carol');
      await text(bob, roomId, 'bob again');
      const next = await slide(alice, { room_subscriptions: { [roomId]: { timeline_limit: 5, required_state: lazyConfig.room_subscriptions[roomId]!.required_state } } }, { pos: lazy.pos });
      // timeline_limit grew: the room is sent again in full (initial), with the senders of its 5 events.
      expect(next.rooms[roomId].initial).toBe(true);
      const again = await slide(alice, { room_subscriptions: { [roomId]: { timeline_limit: 5, required_state: lazyConfig.room_subscriptions[roomId]!.required_state } } }, { pos: next.pos });
      expect(again.rooms).toEqual({});
      await text(carol, roomId, 'carol again');
      const delta = await slide(alice, { room_subscriptions: { [roomId]: { timeline_limit: 5, required_state: lazyConfig.room_subscriptions[roomId]!.required_state } } }, { pos: again.pos });
      expect(bodies(delta.rooms[roomId])).toEqual(['carol again']);
      expect(delta.rooms[roomId].required_state).toEqual([]); // carol's membership was sent already

      // The MSC's current object form: include everything, exclude members, lazy members besides.
      const objectForm = await slide(alice, {
        room_subscriptions: { [roomId]: { timeline_limit: 1, required_state: { include: [{}], exclude: [{ type: 'm.room.member' }], lazy_members: true } } },
      });
      expect(stateKeys(objectForm.rooms[roomId], 'm.room.member')).toEqual([carol.user_id]);
      expect(stateKeys(objectForm.rooms[roomId], 'm.room.create')).toEqual(['']);
    });

    it('timeline_limit, limited and prev_batch, and /messages continues from prev_batch', async () => {
      const alice = await hs.register('timelinealice');
      const roomId = await createRoom(alice);
      for (let i = 1; i <= 6; i++) await text(alice, roomId, `m${i}`);
      const res = await slide(alice, { room_subscriptions: { [roomId]: { timeline_limit: 3, required_state: [] } } });
      const room = res.rooms[roomId];
      expect(bodies(room)).toEqual(['m4', 'm5', 'm6']);
      expect(room.limited).toBe(true);
      expect(room.prev_batch).toEqual(expect.any(String));
      const older = await hs.ok<Json>('GET', v3(`rooms/${enc(roomId)}/messages?dir=b&limit=2&from=${enc(room.prev_batch)}`), as(alice));
      expect(older.chunk.map((e: Json) => e.content.body)).toEqual(['m3', 'm2']);

      // The pos is a token /messages takes too (MSC4186).
      const sincePos = await hs.ok<Json>('GET', v3(`rooms/${enc(roomId)}/messages?dir=b&limit=1&from=${enc(res.pos)}`), as(alice));
      expect(sincePos.chunk.map((e: Json) => e.content.body)).toEqual(['m6']);

      const unlimited = await slide(alice, { room_subscriptions: { [roomId]: { timeline_limit: 50, required_state: [] } } });
      expect(unlimited.rooms[roomId].limited).toBe(false);
      expect(bodies(unlimited.rooms[roomId])).toEqual(['m1', 'm2', 'm3', 'm4', 'm5', 'm6']);
    });

    it('room_subscriptions send a room outside every list range; rooms the user cannot see are ignored', async () => {
      const alice = await hs.register('subalice');
      const bob = await hs.register('subbob');
      const old = await createRoom(alice, { name: 'old' });
      await createRoom(alice, { name: 'new' });
      const notMine = await createRoom(bob, { name: 'secret' });
      const res = await slide(alice, {
        lists: { top: { ranges: [[0, 0]], timeline_limit: 1, required_state: [] } },
        room_subscriptions: { [old]: { timeline_limit: 1, required_state: [['m.room.name', '']] }, [notMine]: { timeline_limit: 1, required_state: [] } },
      });
      expect(Object.keys(res.rooms)).toHaveLength(2);
      expect(res.rooms[old]).toMatchObject({ initial: true, name: 'old' });
      expect(res.rooms[old].lists).toBeUndefined();
      expect(res.rooms[notMine]).toBeUndefined();

      // A subscription lasts for the connection (matrix-js-sdk sends each one once) until unsubscribe_rooms.
      await text(alice, old, 'still subscribed');
      const kept = await slide(alice, {}, { pos: res.pos });
      expect(Object.keys(kept.rooms)).toEqual([old]);
      expect(bodies(kept.rooms[old])).toEqual(['still subscribed']);
      const dropped = await slide(alice, { unsubscribe_rooms: [old] }, { pos: kept.pos });
      await text(alice, old, 'nobody listens');
      const after = await slide(alice, {}, { pos: dropped.pos });
      expect(after.rooms).toEqual({});
    });

    it('an invite appears with its invite_state, in is_invite lists', async () => {
      const alice = await hs.register('invitealice');
      const bob = await hs.register('invitebob');
      await createRoom(alice, { name: 'mine' });
      const lists = {
        all: { ranges: [[0, 10]], timeline_limit: 1, required_state: [] },
        invites: { ranges: [[0, 10]], timeline_limit: 1, required_state: [], filters: { is_invite: true } },
      };
      const first = await slide(alice, { lists });
      expect(first.lists).toEqual({ all: { count: 1 }, invites: { count: 0 } });

      const roomId = await createRoom(bob, { name: 'come in', invite: [alice.user_id], is_direct: true });
      const next = await slide(alice, { lists }, { pos: first.pos, timeout: 5_000 });
      expect(next.lists).toEqual({ all: { count: 2 }, invites: { count: 1 } });
      const invite = next.rooms[roomId];
      expect(invite).toMatchObject({ initial: true, membership: 'invite', is_dm: true, lists: ['all', 'invites'] });
      const state = invite.invite_state as Json[];
      expect(state.find((e) => e.type === 'm.room.name')?.content).toEqual({ name: 'come in' });
      expect(state.find((e) => e.type === 'm.room.member' && e.state_key === alice.user_id)).toMatchObject({ sender: bob.user_id, content: { membership: 'invite' } });
      expect(invite.timeline).toBeUndefined();

      // Sent once: with nothing new, the next answer (after a short wait) has no rooms.
      const quiet = await slide(alice, { lists }, { pos: next.pos, timeout: 200 });
      expect(quiet.rooms).toEqual({});

      // Joining sends the room in full, as a joined room.
      await join(alice, roomId);
      const joined = await slide(alice, { lists }, { pos: quiet.pos });
      expect(joined.rooms[roomId]).toMatchObject({ initial: true, membership: 'join', name: 'come in', joined_count: 2 });
      expect(joined.lists.invites.count).toBe(0);

      // Leaving: the room is sent once more, up to the leave, then drops out of the list.
      await hs.ok('POST', v3(`rooms/${enc(roomId)}/leave`), { ...as(alice), body: {} });
      await text(bob, roomId, 'after alice left');
      const left = await slide(alice, { lists }, { pos: joined.pos });
      expect(left.rooms[roomId]).toMatchObject({ membership: 'leave' });
      expect(left.rooms[roomId].initial).toBeUndefined();
      expect(left.rooms[roomId].timeline.map((e: Json) => e.content.membership)).toEqual(['leave']);
      expect(left.lists.all.count).toBe(2);
      const gone = await slide(alice, { lists }, { pos: left.pos });
      expect(gone.lists.all.count).toBe(1);
      expect(gone.rooms).toEqual({});
    });

    it('long-polls: a request with a timeout waits and is woken by a message', async () => {
      const alice = await hs.register('pollalice');
      const bob = await hs.register('pollbob');
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      await join(bob, roomId);
      const lists = { all: { ranges: [[0, 10]], timeline_limit: 5, required_state: [] } };
      const first = await slide(alice, { lists });

      const started = Date.now();
      const polling = slide(alice, { lists }, { pos: first.pos, timeout: 20_000 });
      await new Promise((resolve) => setTimeout(resolve, 400));
      await text(bob, roomId, 'wake up');
      const woken = await polling;
      const waited = Date.now() - started;
      expect(waited).toBeGreaterThanOrEqual(350);
      expect(waited).toBeLessThan(15_000);
      expect(bodies(woken.rooms[roomId])).toEqual(['wake up']);
      expect(woken.rooms[roomId].num_live).toBe(1);

      // A short timeout with nothing new answers empty when it runs out.
      const t0 = Date.now();
      const quiet = await slide(alice, { lists }, { pos: woken.pos, timeout: 300 });
      expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
      expect(quiet.rooms).toEqual({});
    });

    it('to_device and e2ee extensions: a message delivered until acknowledged by since; key counts and device list changes', async () => {
      const alice = await hs.register('e2eealice');
      const bob = await hs.register('e2eebob');
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      await join(bob, roomId);
      await hs.ok('POST', v3('keys/upload'), { ...as(alice), body: { one_time_keys: { 'signed_curve25519:AAAA': { key: 'k1', signatures: {} } } } });
      await hs.ok('PUT', v3(`sendToDevice/m.room_key_request/${Math.random()}`), {
        ...as(bob),
        body: { messages: { [alice.user_id]: { [alice.device_id]: { action: 'request', request_id: 'r1' } } } },
      });

      const extensions = { to_device: { enabled: true }, e2ee: { enabled: true } };
      const first = await slide(alice, { extensions });
      expect(first.extensions.to_device.events).toEqual([{ type: 'm.room_key_request', sender: bob.user_id, content: { action: 'request', request_id: 'r1' } }]);
      expect(first.extensions.e2ee.device_one_time_keys_count).toEqual({ signed_curve25519: 1 });
      expect(first.extensions.e2ee.device_unused_fallback_key_types).toEqual([]);
      const nextBatch = first.extensions.to_device.next_batch as string;

      // Not acknowledged (no since): delivered again. Acknowledged: gone.
      const retry = await slide(alice, { extensions }, { pos: first.pos });
      expect(retry.extensions.to_device.events).toHaveLength(1);
      const acked = await slide(alice, { extensions: { ...extensions, to_device: { enabled: true, since: nextBatch } } }, { pos: retry.pos });
      expect(acked.extensions.to_device.events).toEqual([]);

      // Bob's new keys are a device list change for alice, who shares a room with him.
      await hs.ok('POST', v3('keys/upload'), {
        ...as(bob),
        body: { device_keys: { user_id: bob.user_id, device_id: bob.device_id, algorithms: ['m.megolm.v1.aes-sha2'], keys: { [`ed25519:${bob.device_id}`]: 'k' }, signatures: {} } },
      });
      const changed = await slide(alice, { extensions: { ...extensions, to_device: { enabled: true, since: acked.extensions.to_device.next_batch } } }, { pos: acked.pos, timeout: 5_000 });
      expect(changed.extensions.e2ee.device_lists.changed).toContain(bob.user_id);
      expect(changed.extensions.to_device.events).toEqual([]);
    });

    it('account_data, receipts and typing extensions', async () => {
      const alice = await hs.register('extalice');
      const bob = await hs.register('extbob');
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      await join(bob, roomId);
      await hs.ok('PUT', v3(`user/${enc(alice.user_id)}/account_data/org.example.global`), { ...as(alice), body: { a: 1 } });
      await hs.ok('PUT', v3(`user/${enc(alice.user_id)}/rooms/${enc(roomId)}/account_data/m.tag`), { ...as(alice), body: { tags: { 'm.favourite': {} } } });
      const extensions = { account_data: { enabled: true }, receipts: { enabled: true }, typing: { enabled: true } };
      const lists = { all: { ranges: [[0, 10]], timeline_limit: 1, required_state: [] } };
      const first = await slide(alice, { lists, extensions });
      expect(first.extensions.account_data.global).toContainEqual({ type: 'org.example.global', content: { a: 1 } });
      expect(first.extensions.account_data.rooms[roomId]).toEqual([{ type: 'm.tag', content: { tags: { 'm.favourite': {} } } }]);

      const { event_id } = await text(bob, roomId, 'read me');
      await hs.ok('POST', v3(`rooms/${enc(roomId)}/receipt/m.read/${enc(event_id)}`), { ...as(bob), body: {} });
      await hs.ok('PUT', v3(`rooms/${enc(roomId)}/typing/${enc(bob.user_id)}`), { ...as(bob), body: { typing: true, timeout: 30_000 } });
      const next = await slide(alice, { lists, extensions }, { pos: first.pos });
      expect(next.extensions.receipts.rooms[roomId]).toEqual({ type: 'm.receipt', content: { [event_id]: { 'm.read': { [bob.user_id]: expect.objectContaining({ ts: expect.any(Number) }) } } } });
      expect(next.extensions.typing.rooms[roomId]).toEqual({ type: 'm.typing', content: { user_ids: [bob.user_id] } });
      expect(next.extensions.account_data.global).toEqual([]);
    });

    it('list filters spaces (direct children of joined spaces), tags and not_tags (not_tags winning)', async () => {
      const alice = await hs.register('filteralice');
      const bob = await hs.register('filterbob');
      const server = alice.user_id.split(':').slice(1).join(':');
      const space = await createRoom(alice, { name: 'space', creation_content: { type: 'm.space' } });
      const [a, b, c, d] = [await createRoom(alice, { name: 'a' }), await createRoom(alice, { name: 'b' }), await createRoom(alice, { name: 'c' }), await createRoom(alice, { name: 'd' })];
      const child = (spaceId: string, roomId: string, content: Json, who = alice) =>
        hs.ok('PUT', v3(`rooms/${enc(spaceId)}/state/m.space.child/${enc(roomId)}`), { ...as(who), body: content });
      await child(space, a!, { via: [server] });
      await child(space, b!, { via: [server] });
      await child(space, b!, {}); // removed: no longer a child
      await child(space, d!, { via: [] }); // no via: not a child
      // A space alice is not joined to names c: ignored.
      const bobSpace = await createRoom(bob, { creation_content: { type: 'm.space' } });
      await child(bobSpace, c!, { via: [server] }, bob);
      const tag = (roomId: string, name: string) => hs.ok('PUT', v3(`user/${enc(alice.user_id)}/rooms/${enc(roomId)}/tags/${enc(name)}`), { ...as(alice), body: {} });
      await tag(b!, 'm.favourite');
      await tag(c!, 'm.favourite');
      await tag(c!, 'u.work');

      const config = { ranges: [[0, 20]], timeline_limit: 0, required_state: [] };
      const lists = {
        inSpace: { ...config, filters: { spaces: [space] } },
        notMine: { ...config, filters: { spaces: [bobSpace, '!unknown:nowhere'] } },
        fav: { ...config, filters: { tags: ['m.favourite'] } },
        favNotWork: { ...config, filters: { tags: ['m.favourite', 'u.none'], not_tags: ['u.work'] } },
        rest: { ...config, filters: { not_tags: ['m.favourite'], not_room_types: ['m.space'] } },
      };
      const first = await slide(alice, { lists });
      expect(first.lists).toEqual({ inSpace: { count: 1 }, notMine: { count: 0 }, fav: { count: 2 }, favNotWork: { count: 1 }, rest: { count: 2 } });
      expect(first.rooms[a!].lists).toEqual(['inSpace', 'rest']);
      expect(first.rooms[b!].lists).toEqual(['fav', 'favNotWork']);
      expect(first.rooms[c!].lists).toEqual(['fav']);

      // A new tag and a new child are seen by the next request of the connection.
      await tag(d!, 'm.favourite');
      await child(space, c!, { via: [server] });
      const next = await slide(alice, { lists }, { pos: first.pos, timeout: 5_000 });
      expect(next.lists).toEqual({ inSpace: { count: 2 }, notMine: { count: 0 }, fav: { count: 3 }, favNotWork: { count: 2 }, rest: { count: 1 } });
    });

    it('kicked and banned rooms are listed even when never sent on the connection; left ones, bans without a join and forgotten ones are not', async () => {
      const alice = await hs.register('kickalice');
      const bob = await hs.register('kickbob');
      const room = async (name: string) => createRoom(bob, { preset: 'public_chat', name });
      const [kicked, banned, left, bannedOnly, forgotten] = [await room('kicked'), await room('banned'), await room('left'), await room('banned only'), await room('forgotten')];
      for (const r of [kicked, banned, left, forgotten]) await join(alice, r!);
      const mine = await createRoom(alice, { name: 'mine' });
      const lists = { all: { ranges: [[0, 20]], timeline_limit: 3, required_state: [['m.room.name', '']] } };
      const before = await slide(alice, { lists });
      expect(before.lists.all.count).toBe(5);

      await text(bob, kicked!, 'before the kick');
      await hs.ok('POST', v3(`rooms/${enc(kicked!)}/kick`), { ...as(bob), body: { user_id: alice.user_id, reason: 'out' } });
      await text(bob, kicked!, 'after the kick');
      await hs.ok('POST', v3(`rooms/${enc(banned!)}/ban`), { ...as(bob), body: { user_id: alice.user_id } });
      await hs.ok('POST', v3(`rooms/${enc(left!)}/leave`), { ...as(alice), body: {} });
      await hs.ok('POST', v3(`rooms/${enc(bannedOnly!)}/ban`), { ...as(bob), body: { user_id: alice.user_id } });
      await hs.ok('POST', v3(`rooms/${enc(forgotten!)}/kick`), { ...as(bob), body: { user_id: alice.user_id } });
      await hs.ok('POST', v3(`rooms/${enc(forgotten!)}/forget`), { ...as(alice), body: {} });

      // A new connection (nothing sent on it): the kick and the ban are there, as of when they happened.
      const fresh = await slide(alice, { conn_id: 'fresh', lists });
      expect(fresh.lists.all.count).toBe(3);
      expect(Object.keys(fresh.rooms).sort()).toEqual([kicked, banned, mine].sort());
      expect(fresh.rooms[kicked!]).toMatchObject({ initial: true, membership: 'leave', name: 'kicked' });
      expect(bodies(fresh.rooms[kicked!])).toEqual(['before the kick']);
      expect(fresh.rooms[kicked!].timeline.at(-1)).toMatchObject({ type: 'm.room.member', state_key: alice.user_id, sender: bob.user_id, content: { membership: 'leave' } });
      expect(fresh.rooms[banned!]).toMatchObject({ initial: true, membership: 'ban' });
      // They stay in the list, sent once.
      await text(bob, kicked!, 'more after the kick');
      const again = await slide(alice, { conn_id: 'fresh', lists }, { pos: fresh.pos });
      expect(again.lists.all.count).toBe(3);
      expect(again.rooms).toEqual({});

      // The connection that had them: the left room goes once (as before) and then out of the list; the kick and the ban stay.
      const after = await slide(alice, { lists }, { pos: before.pos });
      expect(after.rooms[left!]).toMatchObject({ membership: 'leave' });
      expect(after.rooms[kicked!]).toMatchObject({ membership: 'leave' });
      expect(after.rooms[banned!]).toMatchObject({ membership: 'ban' });
      const later = await slide(alice, { lists }, { pos: after.pos });
      expect(later.lists.all.count).toBe(3);
    });

    it('ignored users: their messages are left out of timelines (their state events are not), their invites out of the lists', async () => {
      const alice = await hs.register('ignalice');
      const bob = await hs.register('ignbob');
      const carol = await hs.register('igncarol');
      const roomId = await createRoom(bob, { preset: 'public_chat', name: 'with bob' });
      await join(alice, roomId);
      await join(carol, roomId);
      await hs.ok('PUT', v3(`user/${enc(alice.user_id)}/account_data/m.ignored_user_list`), { ...as(alice), body: { ignored_users: { [bob.user_id]: {} } } });
      await text(carol, roomId, 'carol 1');
      await text(bob, roomId, 'bob 1');
      await hs.ok('PUT', v3(`rooms/${enc(roomId)}/state/m.room.topic/`), { ...as(bob), body: { topic: 'set by bob' } });
      await text(carol, roomId, 'carol 2');
      const fromBob = await createRoom(bob, { invite: [alice.user_id] });
      const fromCarol = await createRoom(carol, { invite: [alice.user_id] });

      const lists = { all: { ranges: [[0, 20]], timeline_limit: 10, required_state: [['m.room.topic', '']] }, invites: { ranges: [[0, 20]], timeline_limit: 0, required_state: [], filters: { is_invite: true } } };
      const first = await slide(alice, { lists });
      expect(bodies(first.rooms[roomId])).toEqual(['carol 1', 'carol 2']);
      expect(first.rooms[roomId].timeline.some((e: Json) => e.type === 'm.room.topic' && e.sender === bob.user_id)).toBe(true);
      expect(first.lists.invites.count).toBe(1);
      expect(first.rooms[fromCarol]).toMatchObject({ membership: 'invite' });
      expect(first.rooms[fromBob]).toBeUndefined();

      await text(bob, roomId, 'bob 2');
      await text(carol, roomId, 'carol 3');
      const next = await slide(alice, { lists }, { pos: first.pos });
      expect(bodies(next.rooms[roomId])).toEqual(['carol 3']);

      // No longer ignored: bob's invite comes.
      await hs.ok('PUT', v3(`user/${enc(alice.user_id)}/account_data/m.ignored_user_list`), { ...as(alice), body: { ignored_users: {} } });
      const unignored = await slide(alice, { lists }, { pos: next.pos });
      expect(unignored.lists.invites.count).toBe(2);
      expect(unignored.rooms[fromBob]).toMatchObject({ membership: 'invite' });
    });

    it('a long poll woken by nothing of its own goes back to waiting without a pass; its own room still wakes it', async () => {
      const service = hs.clientApp.get(SlidingSyncService);
      const alice = await hs.register('quietalice');
      const other = await hs.register('quietother');
      await createRoom(alice); // a room of her own, quiet
      const shared = await createRoom(alice, { preset: 'public_chat' });
      await join(other, shared);
      const elsewhere = await createRoom(other);
      // No typing extension: typing in a shared room, and presence (not part of sliding sync), are nothing for this connection.
      const lists = { all: { ranges: [[0, 10]], timeline_limit: 5, required_state: [] } };
      const first = await slide(alice, { lists });

      const { passes, quietWakes } = service.stats;
      const polling = slide(alice, { lists }, { pos: first.pos, timeout: 2_000 });
      await new Promise((resolve) => setTimeout(resolve, 150));
      for (let i = 0; i < 5; i++) {
        await text(other, elsewhere, `elsewhere ${i}`);
        await hs.ok('PUT', v3(`rooms/${enc(shared)}/typing/${enc(other.user_id)}`), { ...as(other), body: { typing: i % 2 === 0, timeout: 5_000 } });
        await hs.ok('PUT', v3(`presence/${enc(other.user_id)}/status`), { ...as(other), body: { presence: i % 2 === 0 ? 'unavailable' : 'online' } });
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const quiet = await polling;
      expect(quiet.rooms).toEqual({});
      // A pass when it came and one when its time ran out; the wake-ups in between (typing and presence in a shared room) none.
      expect(service.stats.passes - passes).toBeLessThanOrEqual(3);
      expect(service.stats.quietWakes - quietWakes).toBeGreaterThanOrEqual(5);

      const waiting = slide(alice, { lists }, { pos: quiet.pos, timeout: 20_000 });
      await new Promise((resolve) => setTimeout(resolve, 200));
      await text(other, elsewhere, 'still elsewhere');
      await text(other, shared, 'in the shared room');
      expect(bodies((await waiting).rooms[shared])).toEqual(['in the shared room']);
    });

    it('is not rate limited (as Synapse: neither /sync nor sliding sync are)', async () => {
      const alice = await hs.register('ratealice');
      let pos = (await slide(alice, {})).pos as string;
      const statuses: number[] = [];
      for (let i = 0; i < 40; i++) {
        const reply = await hs.call('POST', `${SLIDING}?pos=${enc(pos)}`, { ...as(alice), body: {} });
        statuses.push(reply.status);
        if (reply.status === 200) pos = reply.body.pos;
      }
      expect(statuses.every((s) => s === 200)).toBe(true);
    });

    it('answers an unknown or foreign pos with 400 M_UNKNOWN_POS', async () => {
      const alice = await hs.register('posalice');
      const bob = await hs.register('posbob');
      const junk = await hs.call('POST', `${SLIDING}?pos=nonsense`, { ...as(alice), body: {} });
      expect(junk.status).toBe(400);
      expect(junk.body.errcode).toBe('M_UNKNOWN_POS');
      const unknown = await hs.call('POST', `${SLIDING}?pos=${enc('s1_0_0_0_0_0_0~abcdefgh1')}`, { ...as(alice), body: {} });
      expect(unknown.body.errcode).toBe('M_UNKNOWN_POS');
      const own = await slide(alice, {});
      const foreign = await hs.call('POST', `${SLIDING}?pos=${enc(own.pos)}`, { ...as(bob), body: {} });
      expect(foreign.status).toBe(400);
      expect(foreign.body.errcode).toBe('M_UNKNOWN_POS');
      // A new connection under the same conn_id makes the old one's pos unknown.
      await slide(alice, {});
      expect((await hs.call('POST', `${SLIDING}?pos=${enc(own.pos)}`, { ...as(alice), body: {} })).body.errcode).toBe('M_UNKNOWN_POS');
      // Other conn_ids are other connections.
      const other = await slide(alice, { conn_id: 'notifications' });
      expect((await hs.call('POST', `${SLIDING}?pos=${enc(other.pos)}`, { ...as(alice), body: { conn_id: 'notifications' } })).status).toBe(200);
      // A pos may be used again (a retried request).
      expect((await hs.call('POST', `${SLIDING}?pos=${enc(other.pos)}`, { ...as(alice), body: { conn_id: 'notifications' } })).status).toBe(200);

      const bad = await hs.call('POST', SLIDING, { ...as(alice), body: { lists: { x: { ranges: [[3, 1]], timeline_limit: 1 } } } });
      expect(bad.status).toBe(400);
      expect(bad.body.errcode).toBe('M_INVALID_PARAM');
      const unauthenticated = await hs.call('POST', SLIDING, { body: {} });
      expect(unauthenticated.status).toBe(401);

      // CORS as every client endpoint (a browser's preflight, and the answer itself).
      const preflight = await fetch(`${hs.base}${SLIDING}`, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' } });
      expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
      const answer = await fetch(`${hs.base}${SLIDING}`, { method: 'POST', headers: { authorization: `Bearer ${alice.access_token}`, 'content-type': 'application/json' }, body: '{}' });
      expect(answer.status).toBe(200);
      expect(answer.headers.get('access-control-allow-origin')).toBe('*');
    });
  });
}

describe('simplified sliding sync with matrix-js-sdk 37 (SlidingSync)', () => {
  let hs: Homeserver;
  beforeAll(async () => {
    (logger as unknown as { setLevel?: (level: string) => void }).setLevel?.('error');
    hs = await Homeserver.start('embedded');
  }, 120_000);
  afterAll(async () => hs?.close());

  it('runs a sync loop: lists, a subscription sent once, a message arriving through the long poll', async () => {
    const alice = await hs.register('sdkalice');
    const token = { token: alice.access_token };
    const rooms: string[] = [];
    for (let i = 0; i < 3; i++) rooms.push((await hs.ok('POST', v3('createRoom'), { ...token, body: { name: `sdk ${i}` } })).room_id);
    const client = createClient({ baseUrl: hs.base, userId: alice.user_id, accessToken: alice.access_token, deviceId: alice.device_id });
    const sliding = new SlidingSync(
      hs.base,
      new Map([['all', { ranges: [[0, 1]], timeline_limit: 1, required_state: [['m.room.name', '']] }]]),
      { timeline_limit: 5, required_state: [['m.room.member', '$LAZY']] },
      client,
      5_000,
    );
    const seen: Array<{ roomId: string; data: Json }> = [];
    const errors: unknown[] = [];
    let completed = 0;
    sliding.on(SlidingSyncEvent.RoomData, (roomId: string, data: Json) => void seen.push({ roomId, data }));
    sliding.on(SlidingSyncEvent.Lifecycle, (state: SlidingSyncState, _resp: unknown, err?: unknown) => {
      if (err) errors.push(err);
      if (state === SlidingSyncState.Complete) completed++;
    });
    const until = async (what: () => boolean) => {
      for (let i = 0; i < 200 && !what(); i++) await new Promise((resolve) => setTimeout(resolve, 25));
      expect(what()).toBe(true);
    };
    const loop = sliding.start();
    try {
      await until(() => completed >= 1);
      expect(sliding.getListData('all')?.joinedCount).toBe(3);
      expect(seen.map((s) => s.roomId).sort()).toEqual([rooms[1], rooms[2]].sort());

      // A subscription, which the SDK sends once: the oldest room comes with its config.
      sliding.modifyRoomSubscriptions(new Set([rooms[0]!]));
      await until(() => seen.some((s) => s.roomId === rooms[0]));
      expect(seen.find((s) => s.roomId === rooms[0])!.data.initial).toBe(true);

      // A message in the subscribed room wakes the long poll the SDK has waiting.
      const before = seen.length;
      await hs.ok('PUT', v3(`rooms/${enc(rooms[0]!)}/send/m.room.message/sdk1`), { ...token, body: { msgtype: 'm.text', body: 'via the sdk' } });
      await until(() => seen.slice(before).some((s) => s.roomId === rooms[0] && s.data.timeline.some((e: Json) => e.content?.body === 'via the sdk')));
      expect(errors).toEqual([]);
    } finally {
      sliding.stop();
      await loop.catch(() => undefined);
    }
  });
});
