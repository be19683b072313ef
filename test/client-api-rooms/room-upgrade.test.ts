/**
 * POST /rooms/{roomId}/upgrade on the whole homeserver (PGlite + in-process bus, and
 * PostgreSQL + NATS + Redis): the new room's predecessor and copied state, bans, aliases and
 * directory listing moved, the old room tombstoned and silenced; refusals that change nothing;
 * upgrades to and from room version 12 (privileged creators).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '@tessera/testing';
import { enc, Homeserver, v3, type Backend, type Login } from './harness.js';

const backends: Array<{ backend: Backend; available: boolean }> = [
  { backend: 'embedded', available: true },
  { backend: 'postgres', available: services.postgres && services.nats && services.redis },
];

interface StateEvent {
  type: string;
  state_key: string;
  sender: string;
  event_id: string;
  content: Record<string, any>;
}

for (const { backend, available } of backends) {
  describe.skipIf(!available)(`room upgrades (${backend})`, () => {
    let hs: Homeserver;
    let alice: Login;
    let bob: Login;
    let carol: Login;
    let dave: Login;
    const as = (l: Login) => ({ token: l.access_token });
    const state = async (roomId: string, who: Login = alice) => (await hs.ok('GET', v3(`rooms/${enc(roomId)}/state`), as(who))) as StateEvent[];
    /** State event ids only (unsigned.age changes between reads). */
    const stateIds = async (roomId: string) => (await state(roomId)).map((e) => e.event_id).sort();
    const stateOf = async (roomId: string, type: string, key = '', who: Login = alice) => (await state(roomId, who)).find((e) => e.type === type && e.state_key === key);
    const putState = (who: Login, roomId: string, type: string, content: unknown, key = '') =>
      hs.ok('PUT', v3(`rooms/${enc(roomId)}/state/${enc(type)}/${enc(key)}`), { ...as(who), body: content });
    const upgrade = (who: Login, roomId: string, body: unknown) => hs.call('POST', v3(`rooms/${enc(roomId)}/upgrade`), { ...as(who), body });
    const join = (who: Login, roomId: string) => hs.ok('POST', v3(`join/${enc(roomId)}`), { ...as(who), body: {} });
    const powerLevels = async (roomId: string) => (await stateOf(roomId, 'm.room.power_levels'))!.content;
    /** The room's events of a type, oldest first (the state API shows only the current one). */
    const eventsOfType = async (roomId: string, type: string) => {
      const { rows } = await hs.db.query<{ json: any }>(
        `SELECT e.json FROM events e JOIN rooms r ON r.room_nid = e.room_nid JOIN event_types t ON t.type_nid = e.type_nid
         WHERE r.room_id = $1 AND t.event_type = $2 ORDER BY e.stream_pos`,
        [roomId, type],
      );
      return rows.map((r) => (typeof r.json === 'string' ? JSON.parse(r.json) : r.json) as StateEvent);
    };

    const lastEvent = async (roomId: string) =>
      (await hs.db.query<{ event_id: string }>(
        'SELECT e.event_id FROM events e JOIN rooms r ON r.room_nid = e.room_nid WHERE r.room_id = $1 ORDER BY e.stream_pos DESC LIMIT 1',
        [roomId],
      )).rows[0]!.event_id;

    beforeAll(async () => {
      hs = await Homeserver.start(backend);
      alice = await hs.register('alice');
      bob = await hs.register('bob');
      carol = await hs.register('carol');
      dave = await hs.register('dave');
    }, 120_000);
    afterAll(async () => hs?.close());

    it('replaces a room: predecessor, copied state, bans, aliases, directory listing, tombstone, silenced old room', async () => {
      const oldRoom = (await hs.ok('POST', v3('createRoom'), {
        ...as(alice),
        body: { preset: 'public_chat', visibility: 'public', room_version: '10', name: 'Lobby', topic: 'Talk here', room_alias_name: 'upgrade-lobby' },
      })).room_id as string;
      const main = `#upgrade-lobby:${hs.serverName}`;
      const alt = `#upgrade-alt:${hs.serverName}`;
      await hs.ok('PUT', v3(`directory/room/${enc(alt)}`), { ...as(alice), body: { room_id: oldRoom } });
      await putState(alice, oldRoom, 'm.room.canonical_alias', { alias: main, alt_aliases: [alt] });
      await putState(alice, oldRoom, 'm.room.avatar', { url: 'mxc://example.org/avatar' });
      await putState(alice, oldRoom, 'm.room.encryption', { algorithm: 'm.megolm.v1.aes-sha2' });
      await putState(alice, oldRoom, 'm.room.server_acl', { allow: ['*'], deny: ['evil.example'], allow_ip_literals: false });
      await putState(alice, oldRoom, 'm.room.history_visibility', { history_visibility: 'joined' });
      await putState(alice, oldRoom, 'm.room.guest_access', { guest_access: 'forbidden' });
      await putState(alice, oldRoom, 'org.example.custom', { kept: false });
      await join(bob, oldRoom);
      await join(dave, oldRoom);
      const pl = await powerLevels(oldRoom);
      await putState(alice, oldRoom, 'm.room.power_levels', { ...pl, users: { ...pl.users, [bob.user_id]: 50 } });
      await hs.ok('POST', v3(`rooms/${enc(oldRoom)}/ban`), { ...as(alice), body: { user_id: carol.user_id, reason: 'spam' } });
      const oldLevels = await powerLevels(oldRoom);
      const lastBefore = await lastEvent(oldRoom);

      const reply = await upgrade(alice, oldRoom, { new_version: '11' });
      expect(reply.status, JSON.stringify(reply.body)).toBe(200);
      const newRoom = reply.body.replacement_room as string;
      expect(newRoom).not.toBe(oldRoom);

      // The new room: version, predecessor (its event_id the old room's last event before the upgrade).
      const create = (await stateOf(newRoom, 'm.room.create'))!;
      expect(create.content.room_version).toBe('11');
      expect(create.content.predecessor).toEqual({ room_id: oldRoom, event_id: lastBefore });
      expect(create.sender).toBe(alice.user_id);
      const now = await state(newRoom);
      const content = (type: string) => now.find((e) => e.type === type && e.state_key === '')?.content;
      expect(content('m.room.name')).toEqual({ name: 'Lobby' });
      expect(content('m.room.topic')).toMatchObject({ topic: 'Talk here' });
      expect(content('m.room.avatar')).toEqual({ url: 'mxc://example.org/avatar' });
      expect(content('m.room.encryption')).toEqual({ algorithm: 'm.megolm.v1.aes-sha2' });
      expect(content('m.room.server_acl')).toEqual({ allow: ['*'], deny: ['evil.example'], allow_ip_literals: false });
      expect(content('m.room.join_rules')).toEqual({ join_rule: 'public' });
      expect(content('m.room.history_visibility')).toEqual({ history_visibility: 'joined' });
      expect(content('m.room.guest_access')).toEqual({ guest_access: 'forbidden' });
      expect(content('m.room.power_levels')).toEqual(oldLevels);
      expect(content('org.example.custom')).toBeUndefined();
      // Bans carry over with their content; other memberships do not.
      expect(now.find((e) => e.type === 'm.room.member' && e.state_key === carol.user_id)?.content).toEqual({ membership: 'ban', reason: 'spam' });
      expect(now.filter((e) => e.type === 'm.room.member').map((e) => [e.state_key, e.content.membership]).sort()).toEqual(
        [[alice.user_id, 'join'], [carol.user_id, 'ban']].sort(),
      );

      // The old room: tombstone, silenced (events_default and invite to 50), canonical alias emptied.
      const tombstone = (await stateOf(oldRoom, 'm.room.tombstone'))!;
      expect(tombstone.content).toEqual({ body: 'This room has been replaced', replacement_room: newRoom });
      expect(tombstone.sender).toBe(alice.user_id);
      expect(await powerLevels(oldRoom)).toEqual({ ...oldLevels, events_default: 50, invite: 50 });
      // dave (users_default 0) can no longer speak there; bob (50, a moderator) still can.
      const speak = await hs.call('PUT', v3(`rooms/${enc(oldRoom)}/send/m.room.message/t1`), { ...as(dave), body: { msgtype: 'm.text', body: 'hello?' } });
      expect([speak.status, speak.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
      await hs.ok('PUT', v3(`rooms/${enc(oldRoom)}/send/m.room.message/t2`), { ...as(bob), body: { msgtype: 'm.text', body: 'moving on' } });
      expect((await stateOf(oldRoom, 'm.room.canonical_alias'))!.content).toEqual({});

      // Aliases and the canonical alias move; the directory listing moves.
      expect(await hs.ok('GET', v3(`directory/room/${enc(main)}`))).toEqual({ room_id: newRoom, servers: [hs.serverName] });
      expect(await hs.ok('GET', v3(`directory/room/${enc(alt)}`))).toEqual({ room_id: newRoom, servers: [hs.serverName] });
      expect(content('m.room.canonical_alias')).toEqual({ alias: main, alt_aliases: [alt] });
      expect(await hs.ok('GET', v3(`directory/list/room/${enc(oldRoom)}`))).toEqual({ visibility: 'private' });
      expect(await hs.ok('GET', v3(`directory/list/room/${enc(newRoom)}`))).toEqual({ visibility: 'public' });

      // bob follows the tombstone into the public replacement room.
      await join(bob, newRoom);
      expect((await hs.ok('GET', v3('joined_rooms'), as(bob))).joined_rooms).toEqual(expect.arrayContaining([oldRoom, newRoom]));
    });

    it('raises the upgrading user for the copy only, then restores the old levels', async () => {
      const oldRoom = (await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { preset: 'private_chat', invite: [bob.user_id], room_version: '9' } })).room_id as string;
      await join(bob, oldRoom);
      const pl = await powerLevels(oldRoom);
      // bob (50) may send the tombstone, but not every copied event (history_visibility needs 100).
      const levels = { ...pl, users: { ...pl.users, [bob.user_id]: 50 }, events: { ...pl.events, 'm.room.tombstone': 50 } };
      await putState(alice, oldRoom, 'm.room.power_levels', levels);
      await putState(alice, oldRoom, 'm.room.history_visibility', { history_visibility: 'invited' });

      const reply = await upgrade(bob, oldRoom, { new_version: '10' });
      expect(reply.status, JSON.stringify(reply.body)).toBe(200);
      const newRoom = reply.body.replacement_room as string;
      const levelEvents = await eventsOfType(newRoom, 'm.room.power_levels');
      expect(levelEvents.map((e) => e.content.users[bob.user_id])).toEqual([100, 50]);
      expect(levelEvents.at(-1)!.content).toEqual(levels);
      expect((await stateOf(newRoom, 'm.room.history_visibility', '', bob))!).toMatchObject({ sender: bob.user_id, content: { history_visibility: 'invited' } });
      expect((await stateOf(oldRoom, 'm.room.tombstone', '', bob))!.content.replacement_room).toBe(newRoom);
      // bob may not change the old room's power levels (100): the upgrade stands without silencing it, as in Synapse.
      expect(await powerLevels(oldRoom)).toEqual(levels);
    });

    it('refuses users without the power (or not in the room), unknown versions and rooms, changing nothing', async () => {
      const oldRoom = (await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { preset: 'public_chat', room_version: '10' } })).room_id as string;
      await join(bob, oldRoom);
      const before = await stateIds(oldRoom);
      const bobRooms = (await hs.ok('GET', v3('joined_rooms'), as(bob))).joined_rooms;
      const roomCount = async () => Number((await hs.db.query<{ n: string | number }>('SELECT COUNT(*) AS n FROM rooms')).rows[0]!.n);
      const rooms = await roomCount();

      const weak = await upgrade(bob, oldRoom, { new_version: '11' });
      expect([weak.status, weak.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
      const outsider = await upgrade(dave, oldRoom, { new_version: '11' });
      expect([outsider.status, outsider.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
      const unknownVersion = await upgrade(alice, oldRoom, { new_version: '999' });
      expect([unknownVersion.status, unknownVersion.body.errcode]).toEqual([400, 'M_UNSUPPORTED_ROOM_VERSION']);
      const noVersion = await upgrade(alice, oldRoom, {});
      expect([noVersion.status, noVersion.body.errcode]).toEqual([400, 'M_MISSING_PARAM']);
      const badVersion = await upgrade(alice, oldRoom, { new_version: 11 });
      expect([badVersion.status, badVersion.body.errcode]).toEqual([400, 'M_BAD_JSON']);
      const badCreators = await upgrade(alice, oldRoom, { new_version: '12', additional_creators: ['bob'] });
      expect([badCreators.status, badCreators.body.errcode]).toEqual([400, 'M_INVALID_PARAM']);
      const unknownRoom = await upgrade(alice, `!nowhere:${hs.serverName}`, { new_version: '11' });
      expect([unknownRoom.status, unknownRoom.body.errcode]).toEqual([404, 'M_NOT_FOUND']);
      expect((await hs.call('POST', v3(`rooms/${enc(oldRoom)}/upgrade`), { body: { new_version: '11' } })).status).toBe(401);

      expect(await stateIds(oldRoom)).toEqual(before);
      expect((await hs.ok('GET', v3('joined_rooms'), as(bob))).joined_rooms).toEqual(bobRooms);
      expect(await roomCount()).toBe(rooms);
    });

    it('upgrades to v12: creators out of the power levels, additional creators, no predecessor event_id', async () => {
      const oldRoom = (await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { preset: 'private_chat', invite: [bob.user_id], room_version: '11' } })).room_id as string;
      await join(bob, oldRoom);
      const pl = await powerLevels(oldRoom);
      await putState(alice, oldRoom, 'm.room.power_levels', { ...pl, users: { ...pl.users, [bob.user_id]: 100, [dave.user_id]: 50 } });

      const reply = await upgrade(alice, oldRoom, { new_version: '12', additional_creators: [bob.user_id] });
      expect(reply.status, JSON.stringify(reply.body)).toBe(200);
      const newRoom = reply.body.replacement_room as string;
      expect(newRoom).not.toContain(':'); // v12 room ids are the create event's hash.
      const create = (await stateOf(newRoom, 'm.room.create'))!;
      expect(create.content).toEqual({ room_version: '12', predecessor: { room_id: oldRoom }, additional_creators: [bob.user_id] });
      const levels = await powerLevels(newRoom);
      expect(levels.users).toEqual({ [dave.user_id]: 50 });
      expect(await eventsOfType(newRoom, 'm.room.power_levels')).toHaveLength(1);
      expect((await stateOf(oldRoom, 'm.room.tombstone'))!.content.replacement_room).toBe(newRoom);
      // bob is a creator of the new room: unlimited power once joined (the room is invite-only: alice invites).
      await hs.ok('POST', v3(`rooms/${enc(newRoom)}/invite`), { ...as(alice), body: { user_id: bob.user_id } });
      await join(bob, newRoom);
      await putState(bob, newRoom, 'm.room.name', { name: 'by a creator' });

      // additional_creators is ignored when the new version has none.
      const other = await upgrade(alice, newRoom, { new_version: '11', additional_creators: [carol.user_id] });
      expect(other.status, JSON.stringify(other.body)).toBe(200);
      expect((await stateOf(other.body.replacement_room, 'm.room.create'))!.content.additional_creators).toBeUndefined();
    });

    it('upgrades from v12: creators are not carried over; the upgrading creator keeps the top level below v12', async () => {
      const oldRoom = (await hs.ok('POST', v3('createRoom'), {
        ...as(alice),
        body: { preset: 'private_chat', invite: [bob.user_id], room_version: '12', creation_content: { additional_creators: [bob.user_id] } },
      })).room_id as string;
      await join(bob, oldRoom);
      const pl = await powerLevels(oldRoom);
      await putState(alice, oldRoom, 'm.room.power_levels', { ...pl, users: { ...pl.users, [dave.user_id]: 50 } });

      // v12 to v12: additional creators must be asked for again.
      const same = await upgrade(bob, oldRoom, { new_version: '12' });
      expect(same.status, JSON.stringify(same.body)).toBe(200);
      const v12Room = same.body.replacement_room as string;
      expect((await stateOf(v12Room, 'm.room.create', '', bob))!.content).toEqual({ room_version: '12', predecessor: { room_id: oldRoom } });
      expect((await stateOf(v12Room, 'm.room.power_levels', '', bob))!.content.users).toEqual({ [dave.user_id]: 50 });

      // v12 to v11: bob, a creator with no entry in users, keeps the top level in the new room.
      const down = await upgrade(bob, v12Room, { new_version: '11' });
      expect(down.status, JSON.stringify(down.body)).toBe(200);
      const v11Room = down.body.replacement_room as string;
      const levels = (await stateOf(v11Room, 'm.room.power_levels', '', bob))!.content;
      expect(levels.users).toEqual({ [bob.user_id]: 100, [dave.user_id]: 50 });
      expect((await stateOf(v11Room, 'm.room.create', '', bob))!.content.predecessor.room_id).toBe(v12Room);
      expect((await stateOf(v12Room, 'm.room.tombstone', '', bob))!.content.replacement_room).toBe(v11Room);
    });

    it('carries a space type and its children', async () => {
      const space = (await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { creation_content: { type: 'm.space' }, room_version: '10' } })).room_id as string;
      const child = `!child:${hs.serverName}`;
      const gone = `!gone:${hs.serverName}`;
      await putState(alice, space, 'm.space.child', { via: [hs.serverName] }, child);
      await putState(alice, space, 'm.space.child', {}, gone);
      const reply = await upgrade(alice, space, { new_version: '11' });
      expect(reply.status, JSON.stringify(reply.body)).toBe(200);
      const now = await state(reply.body.replacement_room);
      expect(now.find((e) => e.type === 'm.room.create')!.content.type).toBe('m.space');
      expect(now.filter((e) => e.type === 'm.space.child').map((e) => [e.state_key, e.content])).toEqual([[child, { via: [hs.serverName] }]]);
    });
  });
}
