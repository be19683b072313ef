/**
 * Spaces (spec "Spaces"): GET /_matrix/client/v1/rooms/{roomId}/hierarchy and
 * GET /_matrix/client/v1/room_summary/{roomIdOrAlias}, over real HTTP against the whole
 * homeserver; every JSON answer is validated against the spec's OpenAPI document.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '@tessera/testing';
import { enc, Homeserver, v3, type Backend, type Login } from './harness.js';

const backends: Array<{ backend: Backend; available: boolean }> = [
  { backend: 'embedded', available: true },
  { backend: 'postgres', available: services.postgres && services.nats && services.redis },
];

const v1 = (path: string) => `/_matrix/client/v1/${path}`;

for (const { backend, available } of backends) {
  describe.skipIf(!available)(`spaces (${backend})`, () => {
    let hs: Homeserver;
    let owner: Login;
    let member: Login;
    let outsider: Login;
    let space: string;
    let sub: string;
    let publicRoom: string;
    let privateRoom: string;
    let restricted: string;
    let subChild: string;
    let notAChild: string;
    const as = (l: Login) => ({ token: l.access_token });

    const createRoom = async (who: Login, body: Record<string, unknown>) => (await hs.ok<{ room_id: string }>('POST', v3('createRoom'), { ...as(who), body })).room_id;
    const addChild = (parent: string, child: string, content: Record<string, unknown>) =>
      hs.ok('PUT', v3(`rooms/${enc(parent)}/state/m.space.child/${enc(child)}`), { ...as(owner), body: content });
    const hierarchy = (who: Login, roomId: string, query = '') => hs.call('GET', v1(`rooms/${enc(roomId)}/hierarchy${query ? `?${query}` : ''}`), as(who));
    const ids = (body: { rooms: Array<{ room_id: string }> }) => body.rooms.map((r) => r.room_id);

    beforeAll(async () => {
      hs = await Homeserver.start(backend);
      owner = await hs.register('spaceowner');
      member = await hs.register('spacemember');
      outsider = await hs.register('spaceoutsider');
      const via = { via: [hs.serverName] };
      space = await createRoom(owner, { preset: 'public_chat', name: 'The space', room_alias_name: 'thespace', creation_content: { type: 'm.space' } });
      sub = await createRoom(owner, { preset: 'public_chat', name: 'Sub space', creation_content: { type: 'm.space' } });
      publicRoom = await createRoom(owner, { preset: 'public_chat', name: 'Public', topic: 'Open to all' });
      privateRoom = await createRoom(owner, { preset: 'private_chat', name: 'Private' });
      restricted = await createRoom(owner, {
        preset: 'private_chat', name: 'Members of the space', room_version: '10',
        initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: space }] } }],
      });
      subChild = await createRoom(owner, { preset: 'public_chat', name: 'Deep' });
      notAChild = await createRoom(owner, { preset: 'public_chat', name: 'No via' });
      // Order: "a" before "b"; rooms without an order come after, by event time.
      await addChild(space, publicRoom, { ...via, order: 'b' });
      await addChild(space, privateRoom, { ...via, order: 'a' });
      await addChild(space, sub, { ...via, suggested: true });
      await addChild(space, restricted, via);
      await addChild(space, notAChild, { via: [] });
      await addChild(sub, subChild, { ...via, suggested: true });
      await hs.ok('POST', v3(`rooms/${enc(space)}/join`), { ...as(member), body: {} });
    }, 120_000);
    afterAll(async () => hs?.close());

    it('walks the tree depth first, children in their order, with their summaries and children_state', async () => {
      const r = await hierarchy(owner, space);
      expect(r.status).toBe(200);
      // privateRoom (order a), publicRoom (order b), then sub (and its child, depth first), then restricted.
      expect(ids(r.body)).toEqual([space, privateRoom, publicRoom, sub, subChild, restricted]);
      expect(r.body.next_batch).toBeUndefined();
      const root = r.body.rooms[0];
      expect(root).toMatchObject({ room_id: space, name: 'The space', room_type: 'm.space', join_rule: 'public', num_joined_members: 2, guest_can_join: false });
      expect(root.canonical_alias).toBe(`#thespace:${hs.serverName}`);
      expect(root.children_state.map((c: { state_key: string }) => c.state_key)).toEqual([privateRoom, publicRoom, sub, restricted]);
      expect(root.children_state[0]).toMatchObject({ type: 'm.space.child', sender: owner.user_id, content: { order: 'a' } });
      expect(typeof root.children_state[0].origin_server_ts).toBe('number');
      const pub = r.body.rooms.find((x: { room_id: string }) => x.room_id === publicRoom);
      expect(pub).toMatchObject({ name: 'Public', topic: 'Open to all', children_state: [] });
      expect(r.body.rooms.find((x: { room_id: string }) => x.room_id === restricted)).toMatchObject({ join_rule: 'restricted', allowed_room_ids: [space] });
    });

    it('leaves out the rooms the user may not see; a restricted room is shown to members of an allowed room', async () => {
      const asMember = await hierarchy(member, space);
      expect(asMember.status).toBe(200);
      expect(ids(asMember.body)).toEqual([space, publicRoom, sub, subChild, restricted]);
      // The outsider joined nothing: the restricted room is not theirs to see either.
      const asOutsider = await hierarchy(outsider, space);
      expect(ids(asOutsider.body)).toEqual([space, publicRoom, sub, subChild]);
      // A private space cannot be walked by someone outside it.
      const denied = await hierarchy(outsider, privateRoom);
      expect(denied.status).toBe(403);
      expect(denied.body.errcode).toBe('M_FORBIDDEN');
      const unknown = await hierarchy(outsider, `!nothing:${hs.serverName}`);
      expect(unknown.status).toBe(403);
    });

    it('applies suggested_only and max_depth, and paginates with stable tokens', async () => {
      expect(ids((await hierarchy(owner, space, 'suggested_only=true')).body)).toEqual([space, sub, subChild]);
      expect(ids((await hierarchy(owner, space, 'max_depth=0')).body)).toEqual([space]);
      expect(ids((await hierarchy(owner, space, 'max_depth=1')).body)).toEqual([space, privateRoom, publicRoom, sub, restricted]);

      const pages: string[] = [];
      let from: string | undefined;
      for (let i = 0; i < 10; i++) {
        const page = await hierarchy(owner, space, `limit=2${from ? `&from=${enc(from)}` : ''}`);
        expect(page.status).toBe(200);
        expect(page.body.rooms.length).toBeLessThanOrEqual(2);
        pages.push(...ids(page.body));
        from = page.body.next_batch;
        if (!from) break;
      }
      expect(pages).toEqual([space, privateRoom, publicRoom, sub, subChild, restricted]);

      const first = await hierarchy(owner, space, 'limit=1');
      const token = first.body.next_batch as string;
      const changed = await hierarchy(owner, space, `limit=1&from=${enc(token)}&suggested_only=true`);
      expect(changed.status).toBe(400);
      expect(changed.body.errcode).toBe('M_INVALID_PARAM');
      const bogus = await hierarchy(owner, space, 'from=nonsense');
      expect(bogus.status).toBe(400);
      const elsewhere = await hierarchy(owner, sub, `from=${enc(token)}`);
      expect(elsewhere.status).toBe(400);
      for (const bad of ['limit=0', 'max_depth=-1', 'suggested_only=maybe', 'limit=x']) {
        const r = await hierarchy(owner, space, bad);
        expect(r.status, bad).toBe(400);
      }
      const noToken = await hs.call('GET', v1(`rooms/${enc(space)}/hierarchy`));
      expect(noToken.status).toBe(401);
    });

    it('summarises a room by id or alias, with the membership of an authenticated user, and hides what they may not see', async () => {
      const byAlias = await hs.call('GET', v1(`room_summary/${enc(`#thespace:${hs.serverName}`)}`), as(member));
      expect(byAlias.status).toBe(200);
      expect(byAlias.body).toMatchObject({ room_id: space, name: 'The space', room_type: 'm.space', membership: 'join', num_joined_members: 2 });
      const outsiderView = await hs.call('GET', v1(`room_summary/${enc(publicRoom)}`), as(outsider));
      expect(outsiderView.body).toMatchObject({ room_id: publicRoom, membership: 'leave' });
      // Without a token: public rooms only, and no membership.
      const anonymous = await hs.call('GET', v1(`room_summary/${enc(publicRoom)}`));
      expect(anonymous.status).toBe(200);
      expect(anonymous.body.membership).toBeUndefined();
      const hidden = await hs.call('GET', v1(`room_summary/${enc(privateRoom)}`));
      expect(hidden.status).toBe(404);
      expect(hidden.body.errcode).toBe('M_NOT_FOUND');
      expect((await hs.call('GET', v1(`room_summary/${enc(privateRoom)}`), as(outsider))).status).toBe(404);
      expect((await hs.call('GET', v1(`room_summary/${enc(privateRoom)}`), as(owner))).body.membership).toBe('join');
      const badToken = await hs.call('GET', v1(`room_summary/${enc(publicRoom)}`), { token: 'not-a-token' });
      expect(badToken.status).toBe(401);
      expect((await hs.call('GET', v1('room_summary/nonsense'))).status).toBe(400);
    });
  });
}
