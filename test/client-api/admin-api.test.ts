/**
 * Synapse's admin API (/_synapse/admin): users (list, details, create or modify, deactivate,
 * reset password, admin flag, devices, joined rooms, whois) and rooms (list, details, members,
 * state, block, delete), over real HTTP on PostgreSQL + Redis and on PGlite + the in-memory
 * store. Admin answers are not in the spec: the Synapse fields are checked here; client-server
 * answers are validated against the spec by the harness.
 */
import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '@tessera/testing';
import { ClientApiHarness } from './harness.js';

const SECRET = 'admin-api-shared-secret';
const PASSWORD = 'correct horse battery staple';

const setups = [
  { name: 'PostgreSQL + Redis', database: 'postgres' as const, redis: true, available: services.postgres && services.redis },
  { name: 'PGlite + in-memory store', database: 'pglite' as const, redis: false, available: true },
];

async function sharedSecretUser(hs: ClientApiHarness, username: string, admin = false) {
  const { body } = await hs.call('GET', '/_synapse/admin/v1/register');
  const mac = createHmac('sha1', SECRET).update(`${body.nonce}\x00${username}\x00${PASSWORD}\x00${admin ? 'admin' : 'notadmin'}`).digest('hex');
  const done = await hs.call('POST', '/_synapse/admin/v1/register', { body: { nonce: body.nonce, username, password: PASSWORD, admin, mac } });
  expect(done.status, JSON.stringify(done.body)).toBe(200);
  return done.body as { user_id: string; access_token: string; device_id: string };
}

for (const setup of setups) {
  describe.skipIf(!setup.available)(`Synapse admin API (${setup.name})`, () => {
    let hs: ClientApiHarness;
    let root: { user_id: string; access_token: string; device_id: string };
    let bob: { user_id: string; access_token: string; device_id: string };
    const uid = (local: string) => `@${local}:${hs.serverName}`;
    const enc = encodeURIComponent;
    const admin = (method: string, path: string, body?: unknown) => hs.call(method, `/_synapse/admin${path}`, { token: root.access_token, ...(body !== undefined ? { body } : {}) });
    const login = (user: string, password = PASSWORD) =>
      hs.call('POST', '/_matrix/client/v3/login', { body: { type: 'm.login.password', identifier: { type: 'm.id.user', user }, password } });
    const whoami = (token: string) => hs.call('GET', '/_matrix/client/v3/account/whoami', { token });

    beforeAll(async () => {
      hs = await ClientApiHarness.start({ database: setup.database, redis: setup.redis, config: { registration_shared_secret: SECRET } });
      root = await sharedSecretUser(hs, 'root', true);
      bob = await sharedSecretUser(hs, 'bob');
      await sharedSecretUser(hs, 'carol');
    });
    afterAll(async () => {
      await hs?.close();
    });

    it('refuses requests without a token (401) and from non-admins (403), answers the server version to anyone', async () => {
      const none = await hs.call('GET', '/_synapse/admin/v2/users');
      expect(none.status).toBe(401);
      expect(none.body.errcode).toBe('M_MISSING_TOKEN');
      for (const [method, path] of [['GET', '/v2/users'], ['GET', `/v2/users/${enc(uid('bob'))}`], ['GET', '/v1/rooms'], ['POST', `/v1/deactivate/${enc(uid('carol'))}`], ['DELETE', '/v2/rooms/!x:y']]) {
        const refused = await hs.call(method!, `/_synapse/admin${path}`, { token: bob.access_token, ...(method === 'GET' ? {} : { body: {} }) });
        expect(refused.status, path).toBe(403);
        expect(refused.body.errcode).toBe('M_FORBIDDEN');
      }
      const version = await hs.call('GET', '/_synapse/admin/v1/server_version');
      expect(version.status).toBe(200);
      expect(version.body.server_version).toEqual(expect.any(String));
    });

    it('lists, filters, orders and paginates users', async () => {
      const all = await admin('GET', '/v2/users');
      expect(all.status).toBe(200);
      expect(all.body.total).toBe(3);
      expect(all.body.users.map((u: { name: string }) => u.name)).toEqual([uid('bob'), uid('carol'), uid('root')]);
      expect(all.body.next_token).toBeUndefined();
      const rootEntry = all.body.users[2];
      expect(rootEntry).toMatchObject({ name: uid('root'), admin: true, deactivated: false, is_guest: false, erased: false, shadow_banned: false, locked: false, user_type: null, displayname: 'root', avatar_url: null });
      expect(rootEntry.creation_ts).toBeGreaterThan(Date.now() - 600_000); // milliseconds

      const page = await admin('GET', '/v2/users?limit=2');
      expect(page.body.users).toHaveLength(2);
      expect(page.body.next_token).toBe('2');
      const next = await admin('GET', `/v2/users?limit=2&from=${page.body.next_token}`);
      expect(next.body.users.map((u: { name: string }) => u.name)).toEqual([uid('root')]);
      expect(next.body.next_token).toBeUndefined();

      expect((await admin('GET', '/v2/users?name=car')).body.users.map((u: { name: string }) => u.name)).toEqual([uid('carol')]);
      expect((await admin('GET', `/v2/users?user_id=${enc('ob:')}`)).body.users.map((u: { name: string }) => u.name)).toEqual([uid('bob')]);
      expect((await admin('GET', '/v2/users?admins=true')).body.total).toBe(1);
      const backwards = await admin('GET', '/v2/users?order_by=name&dir=b');
      expect(backwards.body.users.map((u: { name: string }) => u.name)).toEqual([uid('root'), uid('carol'), uid('bob')]);
      const byCreation = await admin('GET', '/v2/users?order_by=creation_ts');
      expect(byCreation.body.users.map((u: { name: string }) => u.name)).toEqual([uid('root'), uid('bob'), uid('carol')]);

      expect((await admin('GET', '/v2/users?limit=-1')).status).toBe(400);
      expect((await admin('GET', '/v2/users?order_by=nonsense')).body.errcode).toBe('M_INVALID_PARAM');
      expect((await admin('GET', '/v2/users?deactivated=maybe')).status).toBe(400);
    });

    it('creates a user with PUT (201), modifies it (200); the new password logs in', async () => {
      const path = `/v2/users/${enc(uid('dave'))}`;
      const created = await admin('PUT', path, { password: 'first password', displayname: 'Dave', admin: false });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      expect(created.body).toMatchObject({ name: uid('dave'), displayname: 'Dave', avatar_url: null, admin: false, deactivated: false, threepids: [], external_ids: [], user_type: null, locked: false, is_guest: false });
      expect(created.body.creation_ts).toBeLessThan(Date.now() / 100); // seconds, as Synapse's single-user answer
      expect((await login('dave', 'first password')).status).toBe(200);

      const modified = await admin('PUT', path, { displayname: 'David', avatar_url: 'mxc://example.org/abc', password: 'second password', logout_devices: false });
      expect(modified.status).toBe(200);
      expect(modified.body).toMatchObject({ displayname: 'David', avatar_url: 'mxc://example.org/abc' });
      expect((await login('dave', 'first password')).status).toBe(403);
      const dave = await login('dave', 'second password');
      expect(dave.status).toBe(200);
      expect((await hs.call('GET', `/_matrix/client/v3/profile/${enc(uid('dave'))}`)).body).toMatchObject({ displayname: 'David' });

      const got = await admin('GET', path);
      expect(got.status).toBe(200);
      expect(got.body.name).toBe(uid('dave'));
      expect((await admin('GET', `/v2/users/${enc(uid('nobody'))}`)).status).toBe(404);
      expect((await admin('GET', `/v2/users/${enc('@x:elsewhere.test')}`)).status).toBe(400);
      expect((await admin('PUT', path, { admin: 'yes' })).status).toBe(400);

      // The admin flag.
      expect((await admin('GET', `/v1/users/${enc(uid('dave'))}/admin`)).body).toEqual({ admin: false });
      expect((await admin('PUT', `/v1/users/${enc(uid('dave'))}/admin`, { admin: true })).status).toBe(200);
      expect((await admin('GET', `/v1/users/${enc(uid('dave'))}/admin`)).body).toEqual({ admin: true });
      expect((await admin('PUT', `/v1/users/${enc(uid('dave'))}/admin`, { admin: false })).status).toBe(200);
      expect((await admin('PUT', `/v1/users/${enc(root.user_id)}/admin`, { admin: false })).status).toBe(400);

      // Devices, and deleting one ends its session.
      const devices = await admin('GET', `/v2/users/${enc(uid('dave'))}/devices`);
      expect(devices.status).toBe(200);
      expect(devices.body.total).toBe(devices.body.devices.length);
      expect(devices.body.devices).toContainEqual(expect.objectContaining({ device_id: dave.body.device_id, user_id: uid('dave'), dehydrated: false }));
      expect((await admin('DELETE', `/v2/users/${enc(uid('dave'))}/devices/${enc(dave.body.device_id)}`)).status).toBe(200);
      expect((await whoami(dave.body.access_token)).status).toBe(401);

      // whois through the admin prefix.
      const again = await login('dave', 'second password');
      const whois = await admin('GET', `/v1/whois/${enc(uid('dave'))}`);
      expect(whois.status).toBe(200);
      expect(Object.keys(whois.body.devices)).toContain(again.body.device_id);
    });

    it('reset_password logs the user out everywhere unless told not to', async () => {
      await admin('PUT', `/v2/users/${enc(uid('erin'))}`, { password: 'erin one' });
      const first = await login('erin', 'erin one');
      const kept = await admin('POST', `/v1/reset_password/${enc(uid('erin'))}`, { new_password: 'erin two', logout_devices: false });
      expect(kept.status).toBe(200);
      expect(kept.body).toEqual({});
      expect((await whoami(first.body.access_token)).status).toBe(200);
      expect((await login('erin', 'erin one')).status).toBe(403);

      const dropped = await admin('POST', `/v1/reset_password/${enc(uid('erin'))}`, { new_password: 'erin three' });
      expect(dropped.status).toBe(200);
      expect((await whoami(first.body.access_token)).status).toBe(401);
      expect((await admin('GET', `/v2/users/${enc(uid('erin'))}/devices`)).body).toEqual({ devices: [], total: 0 });
      expect((await login('erin', 'erin three')).status).toBe(200);
      expect((await admin('POST', `/v1/reset_password/${enc(uid('erin'))}`, {})).body.errcode).toBe('M_MISSING_PARAM');
    });

    it('deactivates a user: logged out, out of their rooms, cannot log in; erase clears the profile', async () => {
      await admin('PUT', `/v2/users/${enc(uid('frank'))}`, { password: PASSWORD, displayname: 'Frank' });
      const frank = await login('frank');
      const roomId = await hs.sharedRoom(bob, frank.body);
      expect((await admin('GET', `/v1/users/${enc(uid('frank'))}/joined_rooms`)).body).toEqual({ joined_rooms: [roomId], total: 1 });

      const done = await admin('POST', `/v1/deactivate/${enc(uid('frank'))}`, { erase: true });
      expect(done.status).toBe(200);
      expect(done.body).toEqual({ id_server_unbind_result: 'success' });
      expect((await whoami(frank.body.access_token)).status).toBe(401);
      const refused = await login('frank');
      expect(refused.status).toBe(403);
      expect(refused.body.errcode).toBe('M_USER_DEACTIVATED');
      expect((await admin('GET', `/v1/users/${enc(uid('frank'))}/joined_rooms`)).body).toEqual({ joined_rooms: [], total: 0 });
      const members = await hs.call('GET', `/_matrix/client/v3/rooms/${enc(roomId)}/joined_members`, { token: bob.access_token });
      expect(Object.keys(members.body.joined)).toEqual([bob.user_id]);

      const user = (await admin('GET', `/v2/users/${enc(uid('frank'))}`)).body;
      expect(user).toMatchObject({ deactivated: true, erased: true, displayname: null });
      // Deactivated users are listed only when asked.
      expect((await admin('GET', '/v2/users?name=frank')).body.total).toBe(0);
      expect((await admin('GET', '/v2/users?name=frank&deactivated=true')).body.total).toBe(1);
      expect((await admin('POST', `/v1/deactivate/${enc(uid('nobody'))}`, {})).status).toBe(404);

      // PUT deactivated: true takes the same path.
      await admin('PUT', `/v2/users/${enc(uid('gina'))}`, { password: PASSWORD });
      const gina = await login('gina');
      expect((await admin('PUT', `/v2/users/${enc(uid('gina'))}`, { deactivated: true })).body.deactivated).toBe(true);
      expect((await whoami(gina.body.access_token)).status).toBe(401);
    });

    it('lists rooms with search, order and pagination; room details, members and state', async () => {
      const make = async (token: string, body: Record<string, unknown>) => {
        const created = await hs.call('POST', '/_matrix/client/v3/createRoom', { token, body });
        expect(created.status, JSON.stringify(created.body)).toBe(200);
        return created.body.room_id as string;
      };
      const big = await make(root.access_token, { name: 'Zebra crossing', preset: 'public_chat', visibility: 'public', room_alias_name: 'zebra' });
      for (const user of [bob]) expect((await hs.call('POST', `/_matrix/client/v3/join/${enc(big)}`, { token: user.access_token, body: {} })).status).toBe(200);
      const small = await make(bob.access_token, { name: 'Aardvark club', initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }] });

      const byName = await admin('GET', '/v1/rooms?search_term=a');
      expect(byName.status).toBe(200);
      const names = byName.body.rooms.map((r: { name: string }) => r.name);
      expect(names.indexOf('Aardvark club')).toBeLessThan(names.indexOf('Zebra crossing'));
      expect(byName.body.offset).toBe(0);
      expect(byName.body.total_rooms).toBe(byName.body.rooms.length);

      const zebra = await admin('GET', '/v1/rooms?search_term=zebra');
      expect(zebra.body.total_rooms).toBe(1);
      expect(zebra.body.rooms[0]).toEqual({
        room_id: big, name: 'Zebra crossing', canonical_alias: `#zebra:${hs.serverName}`, joined_members: 2, joined_local_members: 2,
        version: expect.any(String), creator: root.user_id, encryption: null, federatable: true, public: true, join_rules: 'public',
        guest_access: expect.toBeOneOf([null, 'can_join', 'forbidden']), history_visibility: 'shared', state_events: expect.any(Number), room_type: null,
      });
      expect((await admin('GET', `/v1/rooms?search_term=${enc(small)}`)).body.rooms.map((r: { room_id: string }) => r.room_id)).toEqual([small]);

      const bySize = await admin('GET', '/v1/rooms?order_by=joined_members');
      const sizes = bySize.body.rooms.map((r: { joined_members: number }) => r.joined_members);
      expect(sizes).toEqual([...sizes].sort((a, b) => b - a));
      const ascending = await admin('GET', '/v1/rooms?order_by=joined_members&dir=b');
      expect(ascending.body.rooms.map((r: { joined_members: number }) => r.joined_members)).toEqual([...sizes].reverse());
      const paged = await admin('GET', '/v1/rooms?limit=1&order_by=name');
      expect(paged.body.rooms).toHaveLength(1);
      expect(paged.body.next_batch).toBe(1);
      const second = await admin('GET', '/v1/rooms?limit=1&from=1&order_by=name');
      expect(second.body.prev_batch).toBe(0);
      expect(second.body.offset).toBe(1);
      expect((await admin('GET', '/v1/rooms?search_term=')).status).toBe(400);
      expect((await admin('GET', '/v1/rooms?order_by=colour')).status).toBe(400);

      const details = await admin('GET', `/v1/rooms/${enc(small)}`);
      expect(details.status).toBe(200);
      expect(details.body).toMatchObject({
        room_id: small, name: 'Aardvark club', topic: null, avatar: null, encryption: 'm.megolm.v1.aes-sha2', creator: bob.user_id, public: false,
        joined_members: 1, joined_local_members: 1, joined_local_devices: 1, forgotten: false, tombstoned: false, replacement_room: null, room_type: null,
      });
      expect((await admin('GET', `/v1/rooms/${enc('!unknown:nowhere.test')}`)).status).toBe(404);

      const members = await admin('GET', `/v1/rooms/${enc(big)}/members`);
      expect(members.body).toEqual({ members: [bob.user_id, root.user_id].sort(), total: 2 });
      const state = await admin('GET', `/v1/rooms/${enc(big)}/state`);
      expect(state.body.state.map((e: { type: string }) => e.type)).toEqual(expect.arrayContaining(['m.room.create', 'm.room.power_levels', 'm.room.name', 'm.room.member']));
      const onlyName = await admin('GET', `/v1/rooms/${enc(big)}/state?type=m.room.name`);
      expect(onlyName.body.state).toEqual([expect.objectContaining({ type: 'm.room.name', state_key: '', content: { name: 'Zebra crossing' }, event_id: expect.any(String), sender: root.user_id })]);
    });

    it('deletes a room with block: local members are out, it leaves the directory, a join is refused', async () => {
      const created = await hs.call('POST', '/_matrix/client/v3/createRoom', { token: bob.access_token, body: { name: 'Doomed', preset: 'public_chat', visibility: 'public', room_alias_name: 'doomed' } });
      const roomId = created.body.room_id as string;
      const carol = await login('carol');
      expect((await hs.call('POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: carol.body.access_token, body: {} })).status).toBe(200);

      expect((await admin('DELETE', `/v2/rooms/${enc(roomId)}`, { block: 'yes' })).status).toBe(400);
      expect((await admin('DELETE', `/v2/rooms/${enc('!unknown:nowhere.test')}`, {})).status).toBe(404);
      const started = await admin('DELETE', `/v2/rooms/${enc(roomId)}`, { block: true });
      expect(started.status, JSON.stringify(started.body)).toBe(200);
      const deleteId = started.body.delete_id as string;
      expect(deleteId).toEqual(expect.any(String));

      let status: any;
      for (let i = 0; i < 100; i++) {
        status = (await admin('GET', `/v2/rooms/delete_status/${enc(deleteId)}`)).body;
        if (status.status !== 'active' && status.status !== 'scheduled') break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(status).toEqual({
        delete_id: deleteId, room_id: roomId, status: 'complete',
        shutdown_room: { kicked_users: [bob.user_id, carol.body.user_id].sort(), failed_to_kick_users: [], local_aliases: [], new_room_id: null },
      });
      const byRoom = await admin('GET', `/v2/rooms/${enc(roomId)}/delete_status`);
      expect(byRoom.body.results).toEqual([status]);

      expect((await admin('GET', `/v1/rooms/${enc(roomId)}/members`)).body).toEqual({ members: [], total: 0 });
      expect((await admin('GET', `/v1/users/${enc(bob.user_id)}/joined_rooms`)).body.joined_rooms).not.toContain(roomId);
      expect((await admin('GET', `/v1/rooms/${enc(roomId)}`)).body).toMatchObject({ public: false, joined_members: 0, forgotten: true });
      const directory = await hs.call('GET', '/_matrix/client/v3/publicRooms');
      expect(directory.body.chunk.map((r: { room_id: string }) => r.room_id)).not.toContain(roomId);
      // purge (the default) removed its local alias.
      expect((await hs.call('GET', `/_matrix/client/v3/directory/room/${enc(`#doomed:${hs.serverName}`)}`)).status).toBe(404);

      const join = await hs.call('POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: carol.body.access_token, body: {} });
      expect(join.status).toBe(403);
      expect(join.body.errcode).toBe('M_FORBIDDEN');
      expect((await admin('GET', `/v1/rooms/${enc(roomId)}/block`)).body).toEqual({ block: true, user_id: root.user_id });
    });

    it('deletes synchronously with v1, moving members and aliases to a new room', async () => {
      const created = await hs.call('POST', '/_matrix/client/v3/createRoom', { token: bob.access_token, body: { name: 'Old', preset: 'public_chat', room_alias_name: 'oldroom' } });
      const roomId = created.body.room_id as string;
      const done = await admin('DELETE', `/v1/rooms/${enc(roomId)}`, { new_room_user_id: root.user_id, message: 'Moved', purge: false });
      expect(done.status, JSON.stringify(done.body)).toBe(200);
      expect(done.body).toMatchObject({ kicked_users: [bob.user_id], failed_to_kick_users: [], local_aliases: [`#oldroom:${hs.serverName}`], new_room_id: expect.any(String) });
      const newRoom = done.body.new_room_id as string;
      expect((await admin('GET', `/v1/rooms/${enc(newRoom)}/members`)).body.members).toEqual([bob.user_id, root.user_id].sort());
      expect((await hs.call('GET', `/_matrix/client/v3/directory/room/${enc(`#oldroom:${hs.serverName}`)}`)).body.room_id).toBe(newRoom);
      // Not blocked: the old room can be joined again.
      expect((await admin('GET', `/v1/rooms/${enc(roomId)}/block`)).body).toEqual({ block: false });
      expect((await hs.call('POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: bob.access_token, body: {} })).status).toBe(200);
    });
  });
}
