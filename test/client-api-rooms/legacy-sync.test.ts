/**
 * The deprecated event stream and snapshot endpoints older clients and bridges still call:
 * GET /events (a long poll woken by the same notifications as /sync), /events/{eventId},
 * /initialSync and /rooms/{roomId}/initialSync. Real HTTP against the whole homeserver; every
 * JSON answer is validated against the spec's OpenAPI by the harness.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '@tessera/testing';
import { SyncNotifier } from '../../libs/services/client-api/src/sync/sync-notifier.js';
import { enc, Homeserver, v3, type Backend, type Login } from './harness.js';

const backends: Array<{ backend: Backend; available: boolean }> = [
  { backend: 'embedded', available: true },
  { backend: 'postgres', available: services.postgres && services.nats && services.redis },
];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** The events position of a /sync-style token. */
const eventsPos = (token: string) => Number(/^s(\d+)/.exec(token)![1]);

for (const { backend, available } of backends) {
  describe.skipIf(!available)(`legacy event stream and initialSync (${backend})`, () => {
    let hs: Homeserver;
    let alice: Login;
    let bob: Login;
    let carol: Login;
    let roomId: string;
    const as = (l: Login) => ({ token: l.access_token });
    const send = async (who: Login, room: string, body: string) =>
      (await hs.ok('PUT', v3(`rooms/${enc(room)}/send/m.room.message/${enc(`${Math.random()}`)}`), { ...as(who), body: { msgtype: 'm.text', body } })).event_id as string;
    const events = (who: Login, from: string | undefined, timeout: number) =>
      hs.ok('GET', v3(`events?${from !== undefined ? `from=${enc(from)}&` : ''}timeout=${timeout}`), as(who));
    const notifier = () => hs.clientApp.get(SyncNotifier);
    /** Until `count` more requests wait on the notifier than before. */
    const waitersAbove = async (before: number) => {
      while (notifier().waitingCount() <= before) await sleep(10);
    };

    beforeAll(async () => {
      hs = await Homeserver.start(backend);
      alice = await hs.register('alice');
      bob = await hs.register('bob');
      carol = await hs.register('carol');
      roomId = (await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { preset: 'private_chat', invite: [bob.user_id] } })).room_id;
      await hs.ok('POST', v3(`join/${enc(roomId)}`), { ...as(bob), body: {} });
    }, 120_000);
    afterAll(async () => hs?.close());

    describe('GET /events', () => {
      it('wakes a waiting poll on a new message in a joined room', async () => {
        const { end } = await hs.ok('GET', v3('initialSync?limit=0'), as(bob));
        const before = notifier().waitingCount();
        const poll = events(bob, end, 60_000);
        await waitersAbove(before);
        const eventId = await send(alice, roomId, 'wake up');
        const answer = await poll;
        expect(answer.start).toBe(end);
        expect(answer.chunk.map((e: any) => e.event_id)).toEqual([eventId]);
        expect(answer.chunk[0]).toMatchObject({ room_id: roomId, sender: alice.user_id, type: 'm.room.message', content: { body: 'wake up' } });
        expect(eventsPos(answer.end)).toBeGreaterThan(eventsPos(end));
        // Nothing after it yet: an immediate answer is empty and stays where it was.
        const again = await events(bob, answer.end, 0);
        expect(again.chunk).toEqual([]);
        expect(eventsPos(again.end)).toBe(eventsPos(answer.end));
      });

      it('times out with an empty chunk when nothing happens', async () => {
        const { end } = await hs.ok('GET', v3('initialSync?limit=0'), as(bob));
        const answer = await events(bob, end, 300);
        expect(answer).toEqual({ chunk: [], start: end, end: expect.any(String) });
        expect(eventsPos(answer.end)).toBe(eventsPos(end));
        // Without a token it starts from now.
        const now = await events(bob, undefined, 0);
        expect(now.chunk).toEqual([]);
        expect(eventsPos(now.start)).toBeGreaterThanOrEqual(eventsPos(end));
      });

      it('pages a backlog by limit and hands each event out once, with the user\'s own invites', async () => {
        const { end } = await hs.ok('GET', v3('initialSync?limit=0'), as(bob));
        const sent = [];
        for (let i = 0; i < 3; i++) sent.push(await send(alice, roomId, `backlog ${i}`));
        const other = (await hs.ok('POST', v3('createRoom'), { ...as(carol), body: { invite: [bob.user_id] } })).room_id as string;
        const first = await hs.ok('GET', v3(`events?from=${enc(end)}&timeout=0&limit=2`), as(bob));
        expect(first.chunk.map((e: any) => e.event_id)).toEqual(sent.slice(0, 2));
        const rest = await events(bob, first.end, 0);
        expect(rest.chunk.map((e: any) => e.event_id)[0]).toBe(sent[2]);
        // The invite to carol's room (a room bob is not in) reaches him; nothing else of that room does.
        const invite = rest.chunk.find((e: any) => e.room_id === other);
        expect(invite).toMatchObject({ type: 'm.room.member', state_key: bob.user_id, content: { membership: 'invite' } });
        expect(rest.chunk.filter((e: any) => e.room_id === other)).toHaveLength(1);
      });

      it('refuses a token not from this server', async () => {
        const r = await hs.call('GET', v3('events?from=nonsense&timeout=0'), as(bob));
        expect([r.status, r.body.errcode]).toEqual([400, 'M_INVALID_PARAM']);
        const r2 = await hs.call('GET', v3('events?timeout=soon'), as(bob));
        expect([r2.status, r2.body.errcode]).toEqual([400, 'M_INVALID_PARAM']);
        expect((await hs.call('GET', v3('events?timeout=0'))).status).toBe(401);
      });
    });

    describe('GET /initialSync and /rooms/{roomId}/initialSync', () => {
      it('snapshots joined and invited rooms: messages with tokens, state, account data, receipts, presence, visibility', async () => {
        const room = (await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { preset: 'public_chat', name: 'Snapshot' } })).room_id as string;
        await hs.ok('POST', v3(`join/${enc(room)}`), { ...as(bob), body: {} });
        await hs.ok('PUT', v3(`directory/list/room/${enc(room)}`), { ...as(alice), body: { visibility: 'public' } });
        const ids = [];
        for (let i = 0; i < 4; i++) ids.push(await send(alice, room, `snap ${i}`));
        await hs.ok('PUT', v3(`user/${enc(bob.user_id)}/rooms/${enc(room)}/tags/u.work`), { ...as(bob), body: { order: 0.5 } });
        await hs.ok('PUT', v3(`user/${enc(bob.user_id)}/account_data/org.example.global`), { ...as(bob), body: { a: 1 } });
        await hs.ok('POST', v3(`rooms/${enc(room)}/receipt/m.read/${enc(ids[3]!)}`), { ...as(bob), body: {} });
        await hs.ok('PUT', v3(`presence/${enc(alice.user_id)}/status`), { ...as(alice), body: { presence: 'online', status_msg: 'here' } });
        const invited = (await hs.ok('POST', v3('createRoom'), { ...as(carol), body: { invite: [bob.user_id] } })).room_id as string;

        const snap = await hs.ok('GET', v3('initialSync?limit=2'), as(bob));
        expect(snap.end).toMatch(/^s\d+/);
        expect(snap.account_data).toContainEqual({ type: 'org.example.global', content: { a: 1 } });
        expect(snap.presence).toContainEqual(expect.objectContaining({ type: 'm.presence', sender: alice.user_id, content: expect.objectContaining({ presence: 'online', status_msg: 'here' }) }));
        expect(snap.receipts).toContainEqual({ type: 'm.receipt', room_id: room, content: { [ids[3]!]: { 'm.read': { [bob.user_id]: { ts: expect.any(Number) } } } } });
        const info = snap.rooms.find((r: any) => r.room_id === room);
        expect(info).toMatchObject({ membership: 'join', visibility: 'public' });
        expect(info.messages.chunk.map((e: any) => e.event_id)).toEqual(ids.slice(2));
        expect(eventsPos(info.messages.end)).toBe(eventsPos(snap.end));
        expect(info.state.map((e: any) => e.type)).toEqual(expect.arrayContaining(['m.room.create', 'm.room.name', 'm.room.power_levels', 'm.room.member']));
        expect(info.state.find((e: any) => e.type === 'm.room.name').content).toEqual({ name: 'Snapshot' });
        expect(info.account_data).toContainEqual({ type: 'm.tag', content: { tags: { 'u.work': { order: 0.5 } } } });
        // messages.start pages back with /messages, right before the chunk.
        const older = await hs.ok('GET', v3(`rooms/${enc(room)}/messages?dir=b&limit=2&from=${enc(info.messages.start)}`), as(bob));
        expect(older.chunk.map((e: any) => e.event_id)).toEqual([ids[1], ids[0]]);
        const pending = snap.rooms.find((r: any) => r.room_id === invited);
        expect(pending).toMatchObject({ membership: 'invite', visibility: 'private', inviter: carol.user_id });
        expect(pending.invite).toMatchObject({ type: 'm.room.member', state_key: bob.user_id, room_id: invited, content: { membership: 'invite' } });
        expect(pending.messages).toBeUndefined();

        // The room alone: the same parts, with presence of its members and its receipts.
        const one = await hs.ok('GET', v3(`rooms/${enc(room)}/initialSync?limit=3`), as(bob));
        expect(one).toMatchObject({ room_id: room, membership: 'join' });
        expect(one.messages.chunk.map((e: any) => e.event_id)).toEqual(ids.slice(1));
        expect(one.presence).toContainEqual(expect.objectContaining({ type: 'm.presence', sender: alice.user_id }));
        expect(one.receipts).toEqual([{ type: 'm.receipt', room_id: room, content: expect.objectContaining({ [ids[3]!]: expect.any(Object) }) }]);
        expect(one.account_data).toContainEqual({ type: 'm.tag', content: { tags: { 'u.work': { order: 0.5 } } } });
        // The end of a snapshot feeds /events.
        const poll = await events(bob, one.messages.end, 0);
        expect(poll.chunk).toEqual([]);

        const bad = await hs.call('GET', v3('initialSync?archived=maybe'), as(bob));
        expect([bad.status, bad.body.errcode]).toEqual([400, 'M_INVALID_PARAM']);
      });

      it('lets anyone peek into a world_readable room, without a membership', async () => {
        const room = (await hs.ok('POST', v3('createRoom'), {
          ...as(alice),
          body: { preset: 'public_chat', initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'world_readable' } }] },
        })).room_id as string;
        const id = await send(alice, room, 'for the world');
        const peek = await hs.ok('GET', v3(`rooms/${enc(room)}/initialSync`), as(carol));
        expect(peek.membership).toBeUndefined();
        expect(peek.messages.chunk.map((e: any) => e.event_id)).toContain(id);
        expect((await hs.ok('GET', v3(`events/${enc(id)}`), as(carol))).event_id).toBe(id);
      });
    });

    describe('history visibility for a user who left', () => {
      it('shows the room up to the leave, never after it', async () => {
        const room = (await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { preset: 'private_chat', name: 'Before', invite: [bob.user_id] } })).room_id as string;
        await hs.ok('POST', v3(`join/${enc(room)}`), { ...as(bob), body: {} });
        const seen = await send(alice, room, 'while bob is here');
        const { end: beforeLeave } = await hs.ok('GET', v3('initialSync?limit=0'), as(bob));
        await hs.ok('POST', v3(`rooms/${enc(room)}/leave`), { ...as(bob), body: {} });
        const unseen = await send(alice, room, 'after bob left');
        await hs.ok('PUT', v3(`rooms/${enc(room)}/state/m.room.name/`), { ...as(alice), body: { name: 'After' } });

        // The room snapshot is the room as bob left it.
        const snap = await hs.ok('GET', v3(`rooms/${enc(room)}/initialSync`), as(bob));
        expect(snap.membership).toBe('leave');
        const chunkIds = snap.messages.chunk.map((e: any) => e.event_id);
        expect(chunkIds).toContain(seen);
        expect(chunkIds).not.toContain(unseen);
        const last = snap.messages.chunk[snap.messages.chunk.length - 1];
        expect(last).toMatchObject({ type: 'm.room.member', state_key: bob.user_id, content: { membership: 'leave' } });
        expect(snap.state.find((e: any) => e.type === 'm.room.name').content).toEqual({ name: 'Before' });
        expect(snap.state.find((e: any) => e.type === 'm.room.member' && e.state_key === bob.user_id).content.membership).toBe('leave');
        expect([snap.presence, snap.receipts]).toEqual([[], []]);

        // /events/{eventId}: what bob saw, not what came after.
        expect((await hs.ok('GET', v3(`events/${enc(seen)}`), as(bob))).content.body).toBe('while bob is here');
        const hidden = await hs.call('GET', v3(`events/${enc(unseen)}`), as(bob));
        expect([hidden.status, hidden.body.errcode]).toEqual([404, 'M_NOT_FOUND']);
        const unknown = await hs.call('GET', v3(`events/${enc('$nope:example.org')}`), as(bob));
        expect([unknown.status, unknown.body.errcode]).toEqual([404, 'M_NOT_FOUND']);

        // /initialSync: the room only with archived, and then cut at the leave.
        const current = await hs.ok('GET', v3('initialSync'), as(bob));
        expect(current.rooms.map((r: any) => r.room_id)).not.toContain(room);
        const archived = await hs.ok('GET', v3('initialSync?archived=true'), as(bob));
        const info = archived.rooms.find((r: any) => r.room_id === room);
        expect(info.membership).toBe('leave');
        expect(info.messages.chunk.map((e: any) => e.event_id)).not.toContain(unseen);
        expect(info.state.find((e: any) => e.type === 'm.room.name').content).toEqual({ name: 'Before' });

        // /events from before the leave: bob's own leave, nothing after it.
        const stream = await events(bob, beforeLeave, 0);
        const streamed = stream.chunk.filter((e: any) => e.room_id === room);
        expect(streamed.map((e: any) => [e.type, e.content.membership])).toEqual([['m.room.member', 'leave']]);

        // Someone never in the room sees nothing of it.
        const outsider = await hs.call('GET', v3(`rooms/${enc(room)}/initialSync`), as(carol));
        expect([outsider.status, outsider.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
        const outsiderEvent = await hs.call('GET', v3(`events/${enc(seen)}`), as(carol));
        expect([outsiderEvent.status, outsiderEvent.body.errcode]).toEqual([404, 'M_NOT_FOUND']);
      });
    });
  });
}
