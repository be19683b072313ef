import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '@tessera/testing';
import { AccountDataService, ReceiptsService } from '@tessera/client-api-service';
import { ClientApiHarness } from './harness.js';

const setups = [
  { name: 'PostgreSQL + Redis', database: 'postgres' as const, redis: true, available: services.postgres && services.redis },
  { name: 'PGlite + in-memory store', database: 'pglite' as const, redis: false, available: true },
];

for (const setup of setups) {
  describe.skipIf(!setup.available)(`user data over HTTP (${setup.name})`, () => {
    let hs: ClientApiHarness;
    let alice: { user_id: string; access_token: string; device_id: string };
    let bob: { user_id: string; access_token: string; device_id: string };
    const room = '!room:example.org';

    beforeAll(async () => {
      hs = await ClientApiHarness.start({ database: setup.database, redis: setup.redis });
      alice = await hs.register('alice');
      bob = await hs.register('bob');
    });
    afterAll(async () => {
      await hs?.close();
    });

    it('reports capabilities', async () => {
      const { status, body } = await hs.call('GET', '/_matrix/client/v3/capabilities', { token: alice.access_token });
      expect(status).toBe(200);
      expect(body.capabilities['m.change_password']).toEqual({ enabled: true });
      expect(body.capabilities['m.room_versions'].default).toBe('10');
      expect(Object.keys(body.capabilities['m.room_versions'].available)).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12']);
      expect(body.capabilities['m.set_displayname']).toEqual({ enabled: true });
      expect(body.capabilities['m.set_avatar_url']).toEqual({ enabled: true });
      expect(body.capabilities['m.3pid_changes']).toEqual({ enabled: false });
    });

    it('reads and writes profiles, only one’s own', async () => {
      const initial = await hs.call('GET', `/_matrix/client/v3/profile/${encodeURIComponent(alice.user_id)}`);
      expect(initial.body).toEqual({ displayname: 'alice' });
      expect((await hs.call('PUT', `/_matrix/client/v3/profile/${encodeURIComponent(alice.user_id)}/displayname`, { token: alice.access_token, body: { displayname: 'Alice A.' } })).status).toBe(200);
      expect((await hs.call('PUT', `/_matrix/client/v3/profile/${encodeURIComponent(alice.user_id)}/avatar_url`, { token: alice.access_token, body: { avatar_url: 'mxc://example.org/abc' } })).status).toBe(200);
      const name = await hs.call('GET', `/_matrix/client/v3/profile/${encodeURIComponent(alice.user_id)}/displayname`);
      expect(name.body).toEqual({ displayname: 'Alice A.' });
      const full = await hs.call('GET', `/_matrix/client/r0/profile/${encodeURIComponent(alice.user_id)}`);
      expect(full.body).toEqual({ displayname: 'Alice A.', avatar_url: 'mxc://example.org/abc' });

      const other = await hs.call('PUT', `/_matrix/client/v3/profile/${encodeURIComponent(alice.user_id)}/displayname`, { token: bob.access_token, body: { displayname: 'hacked' } });
      expect(other).toMatchObject({ status: 403, body: { errcode: 'M_FORBIDDEN' } });
      const badType = await hs.call('PUT', `/_matrix/client/v3/profile/${encodeURIComponent(alice.user_id)}/displayname`, { token: alice.access_token, body: { displayname: 7 } });
      expect(badType.body.errcode).toBe('M_BAD_JSON');
      const noAuth = await hs.call('PUT', `/_matrix/client/v3/profile/${encodeURIComponent(alice.user_id)}/displayname`, { body: { displayname: 'x' } });
      expect(noAuth.body.errcode).toBe('M_MISSING_TOKEN');
      expect((await hs.call('GET', `/_matrix/client/v3/profile/${encodeURIComponent(alice.user_id)}/displayname`)).body.displayname).toBe('Alice A.');
      const unknown = await hs.call('GET', `/_matrix/client/v3/profile/${encodeURIComponent(`@nobody:${hs.serverName}`)}`);
      expect(unknown).toMatchObject({ status: 404, body: { errcode: 'M_NOT_FOUND' } });
    });

    it('stores global and room account data and reports it by stream position', async () => {
      const accountData = hs.nest.get(AccountDataService);
      const start = await accountData.currentPosition();
      const path = `/_matrix/client/v3/user/${encodeURIComponent(alice.user_id)}/account_data/org.example.settings`;
      expect((await hs.call('GET', path, { token: alice.access_token })).status).toBe(404);
      expect((await hs.call('PUT', path, { token: alice.access_token, body: { theme: 'dark' } })).status).toBe(200);
      expect((await hs.call('GET', path, { token: alice.access_token })).body).toEqual({ theme: 'dark' });
      const roomPath = `/_matrix/client/v3/user/${encodeURIComponent(alice.user_id)}/rooms/${encodeURIComponent(room)}/account_data/org.example.room`;
      expect((await hs.call('PUT', roomPath, { token: alice.access_token, body: { pinned: true } })).status).toBe(200);
      expect((await hs.call('GET', roomPath, { token: alice.access_token })).body).toEqual({ pinned: true });

      expect((await hs.call('GET', path, { token: bob.access_token })).status).toBe(403);
      const managed = await hs.call('PUT', `/_matrix/client/v3/user/${encodeURIComponent(alice.user_id)}/account_data/m.push_rules`, { token: alice.access_token, body: {} });
      expect(managed).toMatchObject({ status: 405, body: { errcode: 'M_BAD_JSON' } });
      const notObject = await hs.call('PUT', path, { token: alice.access_token, body: [1] });
      expect(notObject.body.errcode).toBe('M_BAD_JSON');
      expect((await hs.call('GET', path, { token: alice.access_token })).body).toEqual({ theme: 'dark' });
      const badRoom = await hs.call('PUT', `/_matrix/client/v3/user/${encodeURIComponent(alice.user_id)}/rooms/notaroom/account_data/x`, { token: alice.access_token, body: {} });
      expect(badRoom.body.errcode).toBe('M_INVALID_PARAM');

      const changes = await accountData.getAccountDataSince(alice.user_id, start);
      expect(changes.global).toEqual([{ type: 'org.example.settings', content: { theme: 'dark' } }]);
      expect(changes.rooms).toEqual({ [room]: [{ type: 'org.example.room', content: { pinned: true } }] });
      expect(changes.position).toBeGreaterThan(start);
      const none = await accountData.getAccountDataSince(alice.user_id, changes.position);
      expect(none).toEqual({ position: changes.position, global: [], rooms: {} });
      expect((await accountData.getAccountDataSince(bob.user_id, start)).global).toEqual([]);
    });

    it('tags rooms through m.tag account data', async () => {
      const base = `/_matrix/client/v3/user/${encodeURIComponent(alice.user_id)}/rooms/${encodeURIComponent(room)}/tags`;
      expect((await hs.call('PUT', `${base}/m.favourite`, { token: alice.access_token, body: { order: 0.5 } })).status).toBe(200);
      expect((await hs.call('PUT', `${base}/u.work`, { token: alice.access_token, body: {} })).status).toBe(200);
      expect((await hs.call('GET', base, { token: alice.access_token })).body).toEqual({ tags: { 'm.favourite': { order: 0.5 }, 'u.work': {} } });
      expect((await hs.call('DELETE', `${base}/u.work`, { token: alice.access_token })).status).toBe(200);
      expect((await hs.call('GET', base, { token: alice.access_token })).body).toEqual({ tags: { 'm.favourite': { order: 0.5 } } });
    });

    it('creates and reads filters, validated', async () => {
      const base = `/_matrix/client/v3/user/${encodeURIComponent(alice.user_id)}/filter`;
      const filter = { room: { timeline: { limit: 10, types: ['m.room.message'] }, state: { lazy_load_members: true } }, presence: { not_types: ['*'] } };
      const created = await hs.call('POST', base, { token: alice.access_token, body: filter });
      expect(created.status).toBe(200);
      const read = await hs.call('GET', `${base}/${created.body.filter_id}`, { token: alice.access_token });
      expect(read.body).toEqual(filter);
      expect((await hs.call('GET', `/_matrix/client/v3/user/${encodeURIComponent(bob.user_id)}/filter/${created.body.filter_id}`, { token: bob.access_token })).status).toBe(404);
      expect((await hs.call('GET', `${base}/${created.body.filter_id}`, { token: bob.access_token })).status).toBe(403);
      const bad = await hs.call('POST', base, { token: alice.access_token, body: { room: { timeline: { limit: 'ten' } } } });
      expect(bad.body.errcode).toBe('M_BAD_JSON');
      expect((await hs.call('GET', `${base}/99999999`, { token: alice.access_token })).status).toBe(404);
    });

    it('serves the default push rules and the user’s changes', async () => {
      const { body } = await hs.call('GET', '/_matrix/client/v3/pushrules/global/', { token: alice.access_token });
      expect(body.override.map((r: { rule_id: string }) => r.rule_id)).toEqual([
        '.m.rule.master', '.m.rule.suppress_notices', '.m.rule.invite_for_me', '.m.rule.member_event', '.m.rule.is_user_mention',
        '.m.rule.contains_display_name', '.m.rule.is_room_mention', '.m.rule.roomnotif', '.m.rule.tombstone', '.m.rule.reaction',
        '.m.rule.room.server_acl', '.m.rule.suppress_edits',
      ]);
      expect(body.underride.map((r: { rule_id: string }) => r.rule_id)).toEqual([
        '.m.rule.call', '.m.rule.encrypted_room_one_to_one', '.m.rule.room_one_to_one', '.m.rule.message', '.m.rule.encrypted',
      ]);
      expect(body.content[0]).toMatchObject({ rule_id: '.m.rule.contains_user_name', pattern: 'alice' });
      expect(body.override[2].conditions).toContainEqual({ kind: 'event_match', key: 'state_key', pattern: alice.user_id });

      const rule = '/_matrix/client/v3/pushrules/global/room/' + encodeURIComponent(room);
      expect((await hs.call('PUT', rule, { token: alice.access_token, body: { actions: ['notify'] } })).status).toBe(200);
      expect((await hs.call('GET', rule, { token: alice.access_token })).body).toMatchObject({ rule_id: room, default: false, enabled: true, actions: ['notify'] });
      expect((await hs.call('PUT', `${rule}/enabled`, { token: alice.access_token, body: { enabled: false } })).status).toBe(200);
      expect((await hs.call('GET', `${rule}/enabled`, { token: alice.access_token })).body).toEqual({ enabled: false });
      expect((await hs.call('PUT', '/_matrix/client/v3/pushrules/global/override/.m.rule.master/enabled', { token: alice.access_token, body: { enabled: true } })).status).toBe(200);
      expect((await hs.call('GET', '/_matrix/client/v3/pushrules/global/override/.m.rule.master', { token: alice.access_token })).body.enabled).toBe(true);
      expect((await hs.call('PUT', '/_matrix/client/v3/pushrules/global/underride/.m.rule.message/actions', { token: alice.access_token, body: { actions: [] } })).status).toBe(200);
      expect((await hs.call('GET', '/_matrix/client/v3/pushrules/global/underride/.m.rule.message/actions', { token: alice.access_token })).body).toEqual({ actions: [] });

      const content = '/_matrix/client/v3/pushrules/global/content/';
      expect((await hs.call('PUT', `${content}cats`, { token: alice.access_token, body: { actions: ['notify'], pattern: 'cat*' } })).status).toBe(200);
      expect((await hs.call('PUT', `${content}dogs?before=cats`, { token: alice.access_token, body: { actions: ['notify'], pattern: 'dog*' } })).status).toBe(200);
      const all = await hs.call('GET', '/_matrix/client/v3/pushrules/', { token: alice.access_token });
      expect(all.body.global.content.map((r: { rule_id: string }) => r.rule_id)).toEqual(['dogs', 'cats', '.m.rule.contains_user_name']);
      expect((await hs.call('PUT', `${content}birds`, { token: alice.access_token, body: { actions: ['notify'] } })).body.errcode).toBe('M_MISSING_PARAM');
      expect((await hs.call('PUT', `${content}.m.rule.mine`, { token: alice.access_token, body: { actions: ['notify'], pattern: 'x' } })).status).toBe(400);
      expect((await hs.call('PUT', `${content}fish`, { token: alice.access_token, body: { actions: ['explode'], pattern: 'x' } })).body.errcode).toBe('M_BAD_JSON');
      expect((await hs.call('DELETE', `${content}cats`, { token: alice.access_token })).status).toBe(200);
      expect((await hs.call('GET', `${content}cats`, { token: alice.access_token })).status).toBe(404);
      expect((await hs.call('DELETE', `${content}cats`, { token: alice.access_token })).status).toBe(404);

      // Bob's rules are his own.
      const bobs = await hs.call('GET', '/_matrix/client/v3/pushrules/global/', { token: bob.access_token });
      expect(bobs.body.override[0].enabled).toBe(false);
      expect(bobs.body.room).toEqual([]);
      // m.push_rules account data follows every change, for /sync.
      const pushRules = await hs.nest.get(AccountDataService).get(alice.user_id, '', 'm.push_rules');
      expect((pushRules as any).global.override[0].enabled).toBe(true);
    });

    it('stores receipts and read markers for /sync', async () => {
      const receipts = hs.nest.get(ReceiptsService);
      const room = await hs.sharedRoom(alice, bob);
      const [event1, event2, event3] = [await hs.send(alice, room, 'one'), await hs.send(alice, room, 'two'), await hs.send(bob, room, 'three')];
      const start = await receipts.currentPosition();
      const base = `/_matrix/client/v3/rooms/${encodeURIComponent(room)}`;
      expect((await hs.call('POST', `${base}/receipt/m.read/${encodeURIComponent(event1)}`, { token: alice.access_token, body: {} })).status).toBe(200);
      expect((await hs.call('POST', `${base}/receipt/m.read.private/${encodeURIComponent(event2)}`, { token: alice.access_token, body: {} })).status).toBe(200);
      expect((await hs.call('POST', `${base}/receipt/m.read/${encodeURIComponent(event3)}`, { token: bob.access_token, body: { thread_id: 'main' } })).status).toBe(200);
      expect((await hs.call('POST', `${base}/read_markers`, { token: bob.access_token, body: { 'm.fully_read': event3, 'm.read': event3 } })).status).toBe(200);
      expect((await hs.call('POST', `${base}/receipt/m.bogus/${encodeURIComponent(event1)}`, { token: alice.access_token, body: {} })).body.errcode).toBe('M_INVALID_PARAM');

      // Not in the room, or no such event: refused, nothing stored.
      const carol = await hs.register('carol');
      expect((await hs.call('POST', `${base}/receipt/m.read/${encodeURIComponent(event1)}`, { token: carol.access_token, body: {} })).status).toBe(403);
      expect((await hs.call('POST', `${base}/receipt/m.read/${encodeURIComponent('$nosuchevent')}`, { token: alice.access_token, body: {} })).status).toBe(404);

      const seenByAlice = await receipts.getReceiptsSince([room], start, alice.user_id);
      expect(seenByAlice.rooms[room]).toMatchObject({
        [event1]: { 'm.read': { [alice.user_id]: { ts: expect.any(Number) } } },
        [event2]: { 'm.read.private': { [alice.user_id]: { ts: expect.any(Number) } } },
        [event3]: { 'm.read': { [bob.user_id]: { ts: expect.any(Number) } } },
      });
      expect(Object.keys(seenByAlice.rooms[room]!)).toHaveLength(3);
      expect(seenByAlice.rooms[room]![event3]!['m.read']![bob.user_id]!.thread_id).toBeUndefined();
      const seenByBob = await receipts.getReceiptsSince([room], start, bob.user_id);
      expect(seenByBob.rooms[room]![event2]).toBeUndefined();
      expect((await receipts.getReceiptsSince([room], seenByBob.position, bob.user_id)).rooms).toEqual({});
      const fullyRead = await hs.nest.get(AccountDataService).get(bob.user_id, room, 'm.fully_read');
      expect(fullyRead).toEqual({ event_id: event3 });
    });
  });
}
