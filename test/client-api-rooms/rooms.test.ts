import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '@tessera/testing';
import { enc, Homeserver, v3, type Backend, type Login } from './harness.js';

const backends: Array<{ backend: Backend; available: boolean }> = [
  { backend: 'embedded', available: true },
  { backend: 'postgres', available: services.postgres && services.nats && services.redis },
];

for (const { backend, available } of backends) {
  describe.skipIf(!available)(`rooms, directory and sync (${backend})`, () => {
    let hs: Homeserver;
    let alice: Login;
    let bob: Login;
    let carol: Login;
    const as = (l: Login) => ({ token: l.access_token });

    beforeAll(async () => {
      hs = await Homeserver.start(backend);
      alice = await hs.register('alice');
      bob = await hs.register('bob');
      carol = await hs.register('carol');
    }, 120_000);
    afterAll(async () => hs?.close());

    const send = (who: Login, roomId: string, body: string, txn = `${Math.random()}`) =>
      hs.ok('PUT', v3(`rooms/${enc(roomId)}/send/m.room.message/${enc(txn)}`), { ...as(who), body: { msgtype: 'm.text', body } });

    it('creates rooms with presets, alias, topic and visibility; refuses bad requests', async () => {
      const created = await hs.ok('POST', v3('createRoom'), {
        ...as(alice),
        body: { preset: 'public_chat', visibility: 'public', name: 'Lobby', topic: 'Say hi', room_alias_name: 'lobby', creation_content: { 'm.federate': true } },
      });
      const roomId = created.room_id as string;
      expect(await hs.ok('GET', v3(`directory/room/${enc(`#lobby:${hs.serverName}`)}`))).toEqual({ room_id: roomId, servers: [hs.serverName] });
      expect(await hs.ok('GET', v3(`rooms/${enc(roomId)}/state/m.room.topic`), as(alice))).toEqual({ topic: 'Say hi', 'm.topic': { 'm.text': [{ body: 'Say hi', mimetype: 'text/plain' }] } });
      expect(await hs.ok('GET', v3(`rooms/${enc(roomId)}/state/m.room.join_rules/`), as(alice))).toEqual({ join_rule: 'public' });
      expect(await hs.ok('GET', v3(`directory/list/room/${enc(roomId)}`))).toEqual({ visibility: 'public' });
      // The creator's join carries their profile, as every other join does (as Synapse).
      await hs.ok('PUT', v3(`profile/${enc(alice.user_id)}/avatar_url`), { ...as(alice), body: { avatar_url: 'mxc://example.org/alice' } });
      const withAvatar = (await hs.ok('POST', v3('createRoom'), { ...as(alice), body: {} })).room_id as string;
      const creatorJoin = await hs.ok('GET', v3(`rooms/${enc(withAvatar)}/state/m.room.member/${enc(alice.user_id)}`), as(alice));
      const profile = await hs.ok('GET', v3(`profile/${enc(alice.user_id)}`));
      expect(creatorJoin).toEqual({ membership: 'join', displayname: profile.displayname, avatar_url: 'mxc://example.org/alice' });

      const taken = await hs.call('POST', v3('createRoom'), { ...as(bob), body: { room_alias_name: 'lobby' } });
      expect(taken.status).toBe(400);
      expect(taken.body.errcode).toBe('M_ROOM_IN_USE');
      const version = await hs.call('POST', v3('createRoom'), { ...as(bob), body: { room_version: '999' } });
      expect([version.status, version.body.errcode]).toEqual([400, 'M_UNSUPPORTED_ROOM_VERSION']);
      const badName = await hs.call('POST', v3('createRoom'), { ...as(bob), body: { name: 42 } });
      expect([badName.status, badName.body.errcode]).toEqual([400, 'M_BAD_JSON']);
      const notJson = await hs.call('POST', v3('createRoom'), { ...as(bob), rawBody: '{nope' });
      expect([notJson.status, notJson.body.errcode]).toEqual([400, 'M_NOT_JSON']);
      // Nothing was created by the refused requests.
      expect((await hs.ok('GET', v3('joined_rooms'), as(bob))).joined_rooms).toEqual([]);

      const overridden = await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { power_level_content_override: { events_default: 50 }, room_version: '11' } });
      const power = await hs.ok('GET', v3(`rooms/${enc(overridden.room_id)}/state/m.room.power_levels`), as(alice));
      expect(power.events_default).toBe(50);
      const create = await hs.ok('GET', v3(`rooms/${enc(overridden.room_id)}/state/m.room.create`), as(alice));
      expect(create.room_version).toBe('11');
    });

    it('lists and searches the public room directory, with pagination', async () => {
      for (const name of ['Gardening club', 'Chess club', 'Quiet corner']) {
        await hs.ok('POST', v3('createRoom'), { ...as(carol), body: { visibility: 'public', preset: 'public_chat', name } });
      }
      const all = await hs.ok('GET', v3('publicRooms'));
      expect(all.chunk.length).toBeGreaterThanOrEqual(4);
      const clubs = await hs.ok('POST', v3('publicRooms'), { ...as(bob), body: { filter: { generic_search_term: 'CLUB' } } });
      expect(clubs.chunk.map((r: any) => r.name).sort()).toEqual(['Chess club', 'Gardening club']);
      const page1 = await hs.ok('GET', v3('publicRooms?limit=2'));
      expect(page1.chunk).toHaveLength(2);
      const page2 = await hs.ok('GET', v3(`publicRooms?limit=2&since=${page1.next_batch}`));
      expect(page2.chunk.map((r: any) => r.room_id)).not.toContain(page1.chunk[0].room_id);
      const badSince = await hs.call('GET', v3('publicRooms?since=zzz'));
      expect(badSince.body.errcode).toBe('M_INVALID_PARAM');
    });

    it('manages aliases and directory visibility with permissions', async () => {
      const { room_id } = await hs.ok('POST', v3('createRoom'), as(alice));
      const alias = `#side:${hs.serverName}`;
      await hs.ok('PUT', v3(`directory/room/${enc(alias)}`), { ...as(alice), body: { room_id } });
      const again = await hs.call('PUT', v3(`directory/room/${enc(alias)}`), { ...as(alice), body: { room_id } });
      expect(again.status).toBe(409);
      expect((await hs.ok('GET', v3(`rooms/${enc(room_id)}/aliases`), as(alice))).aliases).toEqual([alias]);
      expect((await hs.call('GET', v3(`rooms/${enc(room_id)}/aliases`), as(bob))).status).toBe(403);
      expect((await hs.call('DELETE', v3(`directory/room/${enc(alias)}`), as(bob))).status).toBe(403);
      expect((await hs.call('PUT', v3(`directory/list/room/${enc(room_id)}`), { ...as(bob), body: { visibility: 'public' } })).status).toBe(403);
      await hs.ok('PUT', v3(`directory/list/room/${enc(room_id)}`), { ...as(alice), body: { visibility: 'public' } });
      expect(await hs.ok('GET', v3(`directory/list/room/${enc(room_id)}`))).toEqual({ visibility: 'public' });
      const badAlias = await hs.call('PUT', v3(`rooms/${enc(room_id)}/state/m.room.canonical_alias`), { ...as(alice), body: { alias: `#nowhere:${hs.serverName}` } });
      expect(badAlias.body.errcode).toBe('M_BAD_ALIAS');
      await hs.ok('PUT', v3(`rooms/${enc(room_id)}/state/m.room.canonical_alias`), { ...as(alice), body: { alias } });
      await hs.ok('DELETE', v3(`directory/room/${enc(alias)}`), as(alice));
      expect((await hs.call('GET', v3(`directory/room/${enc(alias)}`))).status).toBe(404);
    });

    it('invites, joins by alias, kicks, bans, unbans, leaves and forgets', async () => {
      const { room_id } = await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { preset: 'private_chat', room_alias_name: 'members' } });
      const denied = await hs.call('POST', v3(`join/${enc(room_id)}`), { ...as(bob), body: {} });
      expect([denied.status, denied.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
      await hs.ok('POST', v3(`rooms/${enc(room_id)}/invite`), { ...as(alice), body: { user_id: bob.user_id } });
      const missing = await hs.call('POST', v3(`rooms/${enc(room_id)}/invite`), { ...as(alice), body: {} });
      expect(missing.body.errcode).toBe('M_MISSING_PARAM');
      expect(await hs.ok('POST', v3(`join/${enc(`#members:${hs.serverName}`)}?server_name=${hs.serverName}`), { ...as(bob), body: {} })).toEqual({ room_id });
      expect((await hs.ok('GET', v3('joined_rooms'), as(bob))).joined_rooms).toContain(room_id);
      const joined = await hs.ok('GET', v3(`rooms/${enc(room_id)}/joined_members`), as(bob));
      expect(Object.keys(joined.joined).sort()).toEqual([alice.user_id, bob.user_id].sort());

      await hs.ok('POST', v3(`rooms/${enc(room_id)}/kick`), { ...as(alice), body: { user_id: bob.user_id, reason: 'test' } });
      const members = await hs.ok('GET', v3(`rooms/${enc(room_id)}/members?membership=leave`), as(alice));
      expect(members.chunk.map((e: any) => e.state_key)).toEqual([bob.user_id]);
      await hs.ok('POST', v3(`rooms/${enc(room_id)}/ban`), { ...as(alice), body: { user_id: carol.user_id } });
      const banned = await hs.call('POST', v3(`rooms/${enc(room_id)}/join`), { ...as(carol), body: {} });
      expect(banned.status).toBe(403);
      await hs.ok('POST', v3(`rooms/${enc(room_id)}/unban`), { ...as(alice), body: { user_id: carol.user_id } });
      const notMember = await hs.ok('GET', v3(`rooms/${enc(room_id)}/members?not_membership=leave`), as(alice));
      expect(notMember.chunk.map((e: any) => e.state_key)).toEqual([alice.user_id]);

      const stillIn = await hs.call('POST', v3(`rooms/${enc(room_id)}/forget`), { ...as(alice), body: {} });
      expect(stillIn.status).toBe(400);
      await hs.ok('POST', v3(`rooms/${enc(room_id)}/forget`), { ...as(bob), body: {} });
      const sync = await hs.ok('GET', v3(`sync?filter=${enc(JSON.stringify({ room: { include_leave: true } }))}`), as(bob));
      expect(sync.rooms?.leave?.[room_id]).toBeUndefined();
    });

    it('sends idempotently per device, enforces size and permissions, redacts', async () => {
      const { room_id } = await hs.ok('POST', v3('createRoom'), as(alice));
      const a = await send(alice, room_id, 'once', 'txn-1');
      const b = await send(alice, room_id, 'twice', 'txn-1');
      expect(b.event_id).toBe(a.event_id);
      const huge = await hs.call('PUT', v3(`rooms/${enc(room_id)}/send/m.room.message/big`), { ...as(alice), body: { msgtype: 'm.text', body: 'x'.repeat(70_000) } });
      expect([huge.status, huge.body.errcode]).toEqual([413, 'M_TOO_LARGE']);
      const outsider = await hs.call('PUT', v3(`rooms/${enc(room_id)}/send/m.room.message/x`), { ...as(bob), body: { body: 'hi' } });
      expect([outsider.status, outsider.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
      const notObject = await hs.call('PUT', v3(`rooms/${enc(room_id)}/send/m.room.message/y`), { ...as(alice), body: [1] });
      expect(notObject.body.errcode).toBe('M_BAD_JSON');

      const event = await hs.ok('GET', v3(`rooms/${enc(room_id)}/event/${enc(a.event_id)}`), as(alice));
      expect(event.content.body).toBe('once');
      expect(event.unsigned.transaction_id).toBe('txn-1');
      expect((await hs.call('GET', v3(`rooms/${enc(room_id)}/event/${enc('$nope')}`), as(alice))).status).toBe(404);
      const r = await hs.ok('PUT', v3(`rooms/${enc(room_id)}/redact/${enc(a.event_id)}/r1`), { ...as(alice), body: { reason: 'oops' } });
      const redacted = await hs.ok('GET', v3(`rooms/${enc(room_id)}/event/${enc(a.event_id)}`), as(alice));
      expect(redacted.content).toEqual({});
      expect(redacted.unsigned.redacted_because.event_id).toBe(r.event_id);
      const state = await hs.ok('GET', v3(`rooms/${enc(room_id)}/state`), as(alice));
      expect(state.map((e: any) => e.type)).toEqual(expect.arrayContaining(['m.room.create', 'm.room.member', 'm.room.power_levels']));
      expect((await hs.call('GET', v3(`rooms/${enc(room_id)}/state`), as(bob))).status).toBe(403);
      expect((await hs.call('GET', v3(`rooms/${enc(room_id)}/state/m.room.name`), as(alice))).status).toBe(404);
    });

    it('paginates /messages both ways and applies filters and history visibility', async () => {
      const { room_id } = await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { preset: 'public_chat', initial_state: [{ type: 'm.room.history_visibility', content: { history_visibility: 'joined' } }] } });
      for (let i = 0; i < 25; i++) await send(alice, room_id, `before ${i}`);
      await hs.ok('POST', v3(`join/${enc(room_id)}`), { ...as(bob), body: {} });
      for (let i = 0; i < 5; i++) await send(alice, room_id, `after ${i}`);

      const bodies: string[] = [];
      let from: string | undefined;
      for (let page = 0; page < 10; page++) {
        const res: any = await hs.ok('GET', v3(`rooms/${enc(room_id)}/messages?dir=b&limit=4${from ? `&from=${from}` : ''}`), as(alice));
        bodies.push(...res.chunk.filter((e: any) => e.type === 'm.room.message').map((e: any) => e.content.body));
        if (!res.end) break;
        from = res.end;
      }
      expect(bodies.slice(0, 6)).toEqual(['after 4', 'after 3', 'after 2', 'after 1', 'after 0', 'before 24']);
      expect(bodies.length).toBeGreaterThanOrEqual(30);

      // bob joined with history "joined": he sees nothing from before his join.
      const bobView = await hs.ok('GET', v3(`rooms/${enc(room_id)}/messages?dir=b&limit=50&filter=${enc(JSON.stringify({ types: ['m.room.message'] }))}`), as(bob));
      expect(bobView.chunk.map((e: any) => e.content.body)).toEqual(['after 4', 'after 3', 'after 2', 'after 1', 'after 0']);

      const forward = await hs.ok('GET', v3(`rooms/${enc(room_id)}/messages?dir=f&limit=3&filter=${enc(JSON.stringify({ types: ['m.room.message'] }))}`), as(alice));
      expect(forward.chunk.map((e: any) => e.content.body)).toEqual(['before 0', 'before 1', 'before 2']);
      const next = await hs.ok('GET', v3(`rooms/${enc(room_id)}/messages?dir=f&limit=2&from=${forward.end}&filter=${enc(JSON.stringify({ types: ['m.room.message'] }))}`), as(alice));
      expect(next.chunk.map((e: any) => e.content.body)).toEqual(['before 3', 'before 4']);

      const lazy = await hs.ok('GET', v3(`rooms/${enc(room_id)}/messages?dir=b&limit=3&filter=${enc(JSON.stringify({ lazy_load_members: true }))}`), as(bob));
      expect(lazy.state.map((e: any) => e.state_key)).toEqual([alice.user_id]);

      const noDir = await hs.call('GET', v3(`rooms/${enc(room_id)}/messages`), as(alice));
      expect(noDir.status).toBe(400);
      const outsider = await hs.call('GET', v3(`rooms/${enc(room_id)}/messages?dir=b`), as(carol));
      expect(outsider.status).toBe(403);

      const target = bobView.chunk[2];
      const context = await hs.ok('GET', v3(`rooms/${enc(room_id)}/context/${enc(target.event_id)}?limit=2`), as(bob));
      expect(context.event.event_id).toBe(target.event_id);
      expect(context.events_before).toHaveLength(1);
      expect(context.events_after).toHaveLength(1);
    });

    it('syncs initial and incremental rooms, invites, leaves, ephemeral data and account data', async () => {
      const { room_id } = await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { name: 'Sync room', invite: [bob.user_id] } });
      const bobInitial = await hs.ok('GET', v3('sync'), as(bob));
      const invite = bobInitial.rooms.invite[room_id];
      expect(invite.invite_state.events.map((e: any) => e.type)).toEqual(expect.arrayContaining(['m.room.create', 'm.room.name', 'm.room.member']));

      const aliceInitial = await hs.ok('GET', v3(`sync?filter=${enc(JSON.stringify({ room: { timeline: { limit: 2 } } }))}`), as(alice));
      const room = aliceInitial.rooms.join[room_id];
      expect(room.timeline.limited).toBe(true);
      expect(room.timeline.events).toHaveLength(2);
      expect(room.state.events.map((e: any) => e.type)).toContain('m.room.create');
      expect(room.summary['m.joined_member_count']).toBe(1);
      expect(room.summary['m.invited_member_count']).toBe(1);
      expect(room.summary['m.heroes']).toEqual([bob.user_id]);

      // A long-polling incremental sync wakes for bob's join.
      const waiting = hs.ok('GET', v3(`sync?since=${aliceInitial.next_batch}&timeout=20000`), as(alice));
      await hs.ok('POST', v3(`rooms/${enc(room_id)}/join`), { ...as(bob), body: {} });
      const woke = await waiting;
      expect(woke.rooms.join[room_id].timeline.events.map((e: any) => [e.type, e.state_key])).toEqual([['m.room.member', bob.user_id]]);
      expect(woke.rooms.join[room_id].timeline.limited).toBe(false);

      const bobJoined = await hs.ok('GET', v3(`sync?since=${bobInitial.next_batch}&filter=${enc(JSON.stringify({ room: { timeline: { limit: 2 } } }))}`), as(bob));
      // Newly joined: the state up to the (limited) timeline in full.
      expect(bobJoined.rooms.join[room_id].timeline.limited).toBe(true);
      expect(bobJoined.rooms.join[room_id].state.events.map((e: any) => e.type)).toContain('m.room.create');

      // Typing, receipts, account data.
      const m = await send(bob, room_id, 'hello alice', 'sync-1');
      await hs.ok('PUT', v3(`rooms/${enc(room_id)}/typing/${enc(bob.user_id)}`), { ...as(bob), body: { typing: true, timeout: 10000 } });
      await hs.ok('POST', v3(`rooms/${enc(room_id)}/receipt/m.read/${enc(m.event_id)}`), { ...as(bob), body: {} });
      await hs.ok('PUT', v3(`user/${enc(alice.user_id)}/rooms/${enc(room_id)}/account_data/org.example.note`), { ...as(alice), body: { n: 1 } });
      const later = await hs.ok('GET', v3(`sync?since=${woke.next_batch}`), as(alice));
      const joined = later.rooms.join[room_id];
      expect(joined.timeline.events.map((e: any) => e.content.body)).toEqual(['hello alice']);
      const ephemeral = Object.fromEntries(joined.ephemeral.events.map((e: any) => [e.type, e.content]));
      expect(ephemeral['m.typing'].user_ids).toEqual([bob.user_id]);
      expect(ephemeral['m.receipt'][m.event_id]['m.read'][bob.user_id].ts).toEqual(expect.any(Number));
      expect(joined.account_data.events).toEqual([{ type: 'org.example.note', content: { n: 1 } }]);
      expect(joined.unread_notifications.notification_count).toBe(1);

      // The sender's own device sees its transaction id.
      const bobLater = await hs.ok('GET', v3(`sync?since=${bobJoined.next_batch}`), as(bob));
      const own = bobLater.rooms.join[room_id].timeline.events.find((e: any) => e.event_id === m.event_id);
      expect(own.unsigned.transaction_id).toBe('sync-1');

      // Leaving shows the room under leave.
      await hs.ok('POST', v3(`rooms/${enc(room_id)}/leave`), { ...as(bob), body: {} });
      const left = await hs.ok('GET', v3(`sync?since=${bobLater.next_batch}`), as(bob));
      expect(left.rooms.leave[room_id].timeline.events.at(-1).content.membership).toBe('leave');

      // Nothing new: a short timeout returns an empty response with a usable token.
      const quiet = await hs.ok('GET', v3(`sync?since=${left.next_batch}&timeout=50`), as(bob));
      expect(quiet.rooms).toBeUndefined();
      const bad = await hs.call('GET', v3('sync?since=garbage'), as(bob));
      expect(bad.body.errcode).toBe('M_INVALID_PARAM');
      const badFilter = await hs.call('GET', v3('sync?filter=999999'), as(bob));
      expect(badFilter.status).toBe(400);
    });

    it('uses a stored filter with lazy-loaded members and full_state', async () => {
      const { room_id } = await hs.ok('POST', v3('createRoom'), { ...as(carol), body: { preset: 'public_chat' } });
      await hs.ok('POST', v3(`join/${enc(room_id)}`), { ...as(alice), body: {} });
      await send(carol, room_id, 'from carol');
      const { filter_id } = await hs.ok('POST', v3(`user/${enc(alice.user_id)}/filter`), {
        ...as(alice),
        body: { room: { rooms: [room_id], timeline: { limit: 1 }, state: { lazy_load_members: true } } },
      });
      const sync = await hs.ok('GET', v3(`sync?filter=${filter_id}`), as(alice));
      expect(Object.keys(sync.rooms.join)).toEqual([room_id]);
      const members = sync.rooms.join[room_id].state.events.filter((e: any) => e.type === 'm.room.member').map((e: any) => e.state_key).sort();
      expect(members).toEqual([alice.user_id, carol.user_id].sort());
      const full = await hs.ok('GET', v3(`sync?filter=${filter_id}&since=${sync.next_batch}&full_state=true`), as(alice));
      expect(full.rooms.join[room_id].state.events.some((e: any) => e.type === 'm.room.create')).toBe(true);
    });
  });
}
