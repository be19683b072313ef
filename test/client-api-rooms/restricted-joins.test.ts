/**
 * Restricted joins on one server (spec: Client-Server "Restricted rooms"): rooms whose join rule
 * is `restricted` (v8+) or `knock_restricted` (v10+) let members of an allowed room join without
 * an invite, the join naming a local user able to invite in join_authorised_via_users_server.
 * Over real HTTP against the whole homeserver; every JSON answer is validated against the spec.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '@tessera/testing';
import { enc, Homeserver, v3, type Backend, type Login } from './harness.js';

const backends: Array<{ backend: Backend; available: boolean }> = [
  { backend: 'embedded', available: true },
  { backend: 'postgres', available: services.postgres && services.nats && services.redis },
];

for (const { backend, available } of backends) {
  describe.skipIf(!available)(`restricted joins (${backend})`, () => {
    let hs: Homeserver;
    let owner: Login;
    let member: Login;
    let member2: Login;
    let outsider: Login;
    let space: string;
    const as = (l: Login) => ({ token: l.access_token });

    const createRoom = async (body: Record<string, unknown>) => (await hs.ok<{ room_id: string }>('POST', v3('createRoom'), { ...as(owner), body })).room_id;
    const restrictedRoom = (joinRule: 'restricted' | 'knock_restricted', extra: Record<string, unknown> = {}) => createRoom({
      preset: 'private_chat', room_version: '10', ...extra,
      initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: joinRule, allow: [{ type: 'm.room_membership', room_id: space }] } }],
    });
    const join = (who: Login, roomId: string) => hs.call('POST', v3(`join/${enc(roomId)}`), { ...as(who), body: {} });
    const memberEvent = (roomId: string, user: string) => hs.ok<Record<string, unknown>>('GET', v3(`rooms/${enc(roomId)}/state/m.room.member/${enc(user)}`), as(owner));
    /** The room's current state as event ids (ages change between reads). */
    const state = async (roomId: string, viewer = owner) =>
      (await hs.ok<Array<{ event_id: string }>>('GET', v3(`rooms/${enc(roomId)}/state`), as(viewer))).map((e) => e.event_id).sort();

    beforeAll(async () => {
      hs = await Homeserver.start(backend);
      owner = await hs.register('rjowner');
      member = await hs.register('rjmember');
      member2 = await hs.register('rjmember2');
      outsider = await hs.register('rjoutsider');
      space = await createRoom({ preset: 'public_chat', name: 'Space', creation_content: { type: 'm.space' } });
      for (const who of [member, member2]) expect((await join(who, space)).status).toBe(200);
    }, 120_000);
    afterAll(async () => hs?.close());

    it('lets a member of the allowed room join, the join naming a local user able to invite', async () => {
      const room = await restrictedRoom('restricted');
      const r = await hs.call('POST', v3(`rooms/${enc(room)}/join`), { ...as(member), body: {} });
      expect(r.status).toBe(200);
      expect(r.body).toEqual({ room_id: room });
      expect(await memberEvent(room, member.user_id)).toMatchObject({ membership: 'join', join_authorised_via_users_server: owner.user_id });
      const joined = await hs.ok<{ joined_rooms: string[] }>('GET', v3('joined_rooms'), as(member));
      expect(joined.joined_rooms).toContain(room);
      // Joined already: joins again without an authoriser.
      expect((await join(member, room)).status).toBe(200);
      expect((await memberEvent(room, member.user_id)).join_authorised_via_users_server).toBeUndefined();
      // A join -> join through the state API (a display name change) ignores an authoriser the client puts in (as Synapse; Complement).
      const rename = await hs.call('PUT', v3(`rooms/${enc(room)}/state/m.room.member/${enc(member.user_id)}`), {
        ...as(member), body: { membership: 'join', displayname: 'Renamed', join_authorised_via_users_server: 'unused' },
      });
      expect(rename.status).toBe(200);
      expect(await memberEvent(room, member.user_id)).toEqual({ membership: 'join', displayname: 'Renamed' });
    });

    it('refuses a user in none of the allowed rooms with 403 M_FORBIDDEN, and the room does not change', async () => {
      const room = await restrictedRoom('restricted');
      const before = await state(room);
      const r = await join(outsider, room);
      expect(r.status).toBe(403);
      expect(r.body.errcode).toBe('M_FORBIDDEN');
      expect(await state(room)).toEqual(before);
      // An invited user joins as in an invite-only room: no authoriser needed.
      await hs.ok('POST', v3(`rooms/${enc(room)}/invite`), { ...as(owner), body: { user_id: outsider.user_id } });
      expect((await join(outsider, room)).status).toBe(200);
      const event = await memberEvent(room, outsider.user_id);
      expect(event.membership).toBe('join');
      expect(event.join_authorised_via_users_server).toBeUndefined();
    });

    it('knock_restricted (v10): a member of the allowed room joins, anyone else may knock', async () => {
      const room = await restrictedRoom('knock_restricted');
      expect((await join(member, room)).status).toBe(200);
      expect(await memberEvent(room, member.user_id)).toMatchObject({ membership: 'join', join_authorised_via_users_server: owner.user_id });
      const refused = await join(outsider, room);
      expect(refused.status).toBe(403);
      expect(refused.body.errcode).toBe('M_FORBIDDEN');
      const knocked = await hs.call('POST', v3(`knock/${enc(room)}`), { ...as(outsider), body: { reason: 'please' } });
      expect(knocked.status).toBe(200);
      expect(await memberEvent(room, outsider.user_id)).toMatchObject({ membership: 'knock', reason: 'please' });
    });

    it('refuses with 403 and says why when no local user in the room may invite any more', async () => {
      const room = await restrictedRoom('restricted', { power_level_content_override: { invite: 50 } });
      // member (level 0) joins through the owner; then the owner, the only one able to invite, leaves.
      expect((await join(member, room)).status).toBe(200);
      await hs.ok('POST', v3(`rooms/${enc(room)}/leave`), { ...as(owner), body: {} });
      const before = await state(room, member);
      const r = await join(member2, room);
      expect(r.status).toBe(403);
      expect(r.body.errcode).toBe('M_FORBIDDEN');
      expect(r.body.error).toMatch(/may invite/);
      expect(await state(room, member)).toEqual(before);
    });
  });
}
