/**
 * What Complement expects of two servers, reproduced with two homeservers of ours
 * (test/consistency/harness.ts). Invites (federation_rooms_invite_test.go, direct_messaging_test.go):
 * - createRoom's invites of users of the other server are sent there (PUT /v2/invite);
 * - the inviter's kick of an invited user of the other server reaches that server, which
 *   records the rescission (the server holds only the invite, not the room);
 * - someone else's kick is not taken as a rescission there: the invite stands;
 * - an invite rejected after every local user left the room still reaches the inviting side;
 * - the join of an invited DM user carries unsigned.prev_content (is_direct) and prev_sender;
 * - the embedded server's client port answers the federation and key APIs as well, so that
 *   unknown paths there are 404 and known ones with another method 405 (unknown_endpoints_test.go);
 * - a restricted room is shown in the federation hierarchy only to a server known to be in one
 *   of its allowed rooms (restricted_room_hierarchy_test.go);
 * - a join or knock received through send_join/send_knock is sent on to the room's other servers
 *   (knocking_test.go: the knock of a user of hs2 reaches Complement's server through hs1);
 * - a to-device message for a server that is down survives a restart of the sending server
 *   (federation_to_device_test.go, "stopped server");
 * - v12_test.go: bad additional_creators, a creator's power level in the override and a second
 *   m.room.create are 400; invite_state carries the create event in full (MSC4311).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '@tessera/testing';
import { createFederationPki, enc, eventually, heal, partition, TestHomeserver, v3, type FederationPki } from '../consistency/harness.js';

const TEST_TIMEOUT = 120_000;
const INCLUDE_LEAVE = JSON.stringify({ room: { include_leave: true } });

describe.skipIf(!services.postgres || !services.nats)('Complement: two servers', () => {
  let pki: FederationPki;
  let hs1: TestHomeserver;
  let hs2: TestHomeserver;
  let alice: string;
  let alice2: string;
  let bob: string;

  beforeAll(async () => {
    pki = createFederationPki();
    [hs1, hs2] = await Promise.all([TestHomeserver.start(pki), TestHomeserver.start(pki)]);
    alice = (await hs1.register('alice')).user_id;
    alice2 = (await hs1.register('alice2')).user_id;
    bob = (await hs2.register('bob')).user_id;
  }, 120_000);

  afterAll(async () => {
    for (const hs of [hs1, hs2]) await hs?.stop({ drop: true });
    pki?.dispose();
  });

  async function sync(hs: TestHomeserver, user: string, filter?: string): Promise<any> {
    const q = filter ? `?filter=${enc(filter)}` : '';
    return hs.ok('GET', v3(`sync${q}`), { token: hs.token(user) });
  }

  const invitedTo = async (roomId: string) => (await sync(hs2, bob)).rooms?.invite?.[roomId] !== undefined;
  const leftFrom = async (hs: TestHomeserver, user: string, roomId: string) => (await sync(hs, user, INCLUDE_LEAVE)).rooms?.leave?.[roomId] !== undefined;

  async function createRoom(hs: TestHomeserver, user: string, body: Record<string, unknown>): Promise<string> {
    return (await hs.ok<{ room_id: string }>('POST', v3('createRoom'), { token: hs.token(user), body })).room_id;
  }

  it('the inviter rescinds an invite of a user of the other server: that user sees it left', async () => {
    const roomId = await createRoom(hs1, alice, { preset: 'private_chat', invite: [bob] });
    await eventually('bob is invited', () => invitedTo(roomId));
    await hs1.ok('POST', v3(`rooms/${enc(roomId)}/kick`), { token: hs1.token(alice), body: { user_id: bob, reason: 'testing' } });
    await eventually('bob sees the invite rescinded', () => leftFrom(hs2, bob, roomId));
    expect(await invitedTo(roomId)).toBe(false);
  }, TEST_TIMEOUT);

  it('a kick by someone other than the inviter is not a rescission on the invitee\'s server', async () => {
    const roomId = await createRoom(hs1, alice, { preset: 'private_chat', invite: [alice2] });
    await hs1.ok('POST', v3(`rooms/${enc(roomId)}/join`), { token: hs1.token(alice2), body: {} });
    await hs1.ok('POST', v3(`rooms/${enc(roomId)}/invite`), { token: hs1.token(alice2), body: { user_id: bob } });
    await eventually('bob is invited', () => invitedTo(roomId));
    await hs1.ok('POST', v3(`rooms/${enc(roomId)}/kick`), { token: hs1.token(alice), body: { user_id: bob, reason: 'testing' } });
    // A later rescission by the inviter in another room arrives: the kick above had its chance.
    const other = await createRoom(hs1, alice, { preset: 'private_chat', invite: [bob] });
    await eventually('bob is invited to the other room', () => invitedTo(other));
    await hs1.ok('POST', v3(`rooms/${enc(other)}/kick`), { token: hs1.token(alice), body: { user_id: bob } });
    await eventually('the other invite is rescinded', () => leftFrom(hs2, bob, other));
    expect(await invitedTo(roomId)).toBe(true);
  }, TEST_TIMEOUT);

  it('an invite is rejected after every user of the inviting server left the room', async () => {
    const roomId = await createRoom(hs1, alice, { preset: 'private_chat', invite: [bob] });
    await eventually('bob is invited', () => invitedTo(roomId));
    await hs1.ok('POST', v3(`rooms/${enc(roomId)}/leave`), { token: hs1.token(alice), body: {} });
    await hs2.ok('POST', v3(`rooms/${enc(roomId)}/leave`), { token: hs2.token(bob), body: {} });
    await eventually('bob sees the room left', () => leftFrom(hs2, bob, roomId));
  }, TEST_TIMEOUT);

  it('answers the federation and key APIs on the client port too, with their 404 and 405 (unknown_endpoints_test.go)', async () => {
    const expectUnrecognized = async (method: string, path: string, status: number) => {
      const r = await fetch(`http://127.0.0.1:${hs1.clientPort}${path}`, { method, headers: { authorization: `Bearer ${hs1.token(alice)}` } });
      expect(r.status, `${method} ${path}`).toBe(status);
      expect(((await r.json()) as { errcode?: string }).errcode, `${method} ${path}`).toBe('M_UNRECOGNIZED');
    };
    await expectUnrecognized('GET', '/_matrix/unknown', 404);
    await expectUnrecognized('GET', '/_matrix/client/v1/unknown', 404);
    await expectUnrecognized('PUT', '/_matrix/client/v3/login', 405);
    await expectUnrecognized('GET', '/_matrix/federation/unknown', 404);
    await expectUnrecognized('GET', '/_matrix/federation/v1/unknown', 404);
    await expectUnrecognized('PUT', '/_matrix/federation/v1/version', 405);
    await expectUnrecognized('GET', '/_matrix/key/unknown', 404);
    await expectUnrecognized('GET', '/_matrix/key/v2/unknown', 404);
    await expectUnrecognized('PUT', '/_matrix/key/v2/query', 405);
    await expectUnrecognized('GET', '/_matrix/media/v3/unknown', 404);
    await expectUnrecognized('PATCH', '/_matrix/media/v3/upload', 405);
    const version = await fetch(`http://127.0.0.1:${hs1.clientPort}/_matrix/federation/v1/version`);
    expect(version.status).toBe(200);
    expect(((await version.json()) as { server?: unknown }).server).toBeDefined();
    // A signed request reaches federation-ingress's authentication through the client port.
    const profile = await fetch(`http://127.0.0.1:${hs1.clientPort}/_matrix/federation/v1/query/profile?user_id=${enc(alice)}`);
    expect(profile.status).toBe(401);
  }, TEST_TIMEOUT);

  it('shows a restricted room of hs2 in a space of hs1 only once hs2 knows hs1 is in the space (TestRestrictedRoomsSpacesSummaryFederation)', async () => {
    const bobby = (await hs1.register('bobby')).user_id;
    const charlie = (await hs2.register('charlie')).user_id;
    const space = await createRoom(hs1, alice, {
      preset: 'public_chat', name: 'Space', creation_content: { type: 'm.space' },
      initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'world_readable' } }],
    });
    const room = await createRoom(hs2, charlie, {
      preset: 'public_chat', name: 'Room', room_version: '8',
      initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: space, via: [hs1.serverName] }] } }],
    });
    expect((await hs1.setState(alice, space, 'm.space.child', room, { via: [hs2.serverName] })).status).toBe(200);
    const rooms = async (hs: TestHomeserver, user: string) =>
      (await hs.ok<{ rooms: Array<{ room_id: string }> }>('GET', `/_matrix/client/v1/rooms/${enc(space)}/hierarchy`, { token: hs.token(user) })).rooms.map((r) => r.room_id).sort();
    expect(await rooms(hs1, alice)).toEqual([space]);
    expect(await rooms(hs1, bobby)).toEqual([space]);
    await hs2.ok('POST', v3(`join/${enc(space)}?server_name=${enc(hs1.serverName)}`), { token: hs2.token(charlie), body: {} });
    await eventually('alice sees the restricted room', async () => JSON.stringify(await rooms(hs1, alice)) === JSON.stringify([space, room].sort()));
    expect(await rooms(hs1, bobby)).toEqual([space]);
  }, TEST_TIMEOUT);

  it('refuses bad v12 creators with 400, and a second m.room.create (v12_test.go)', async () => {
    const create = (body: Record<string, unknown>) => hs1.call('POST', v3('createRoom'), { token: hs1.token(alice), body: { room_version: '12', preset: 'public_chat', ...body } });
    for (const additional of ['not-an-array', ['@foo:example.com', 42], ['@foo:example.com', 'not-a-user-id'], ['@invalid:dom$ain$.com']]) {
      expect((await create({ creation_content: { additional_creators: additional } })).status, JSON.stringify(additional)).toBe(400);
    }
    expect((await create({ creation_content: { additional_creators: ['@foo:example.com', '@bar:baz.code'] } })).status).toBe(200);
    expect((await create({ invite: [alice2], power_level_content_override: { users: { [alice]: 100 } } })).status).toBe(400);
    for (const version of ['11', '12']) {
      const roomId = await createRoom(hs1, alice, { room_version: version });
      expect((await hs1.setState(alice, roomId, 'm.room.create', '', { room_version: version, entropy: 100 })).status).toBe(400);
    }
  }, TEST_TIMEOUT);

  it('gives the invitee the create event in full in invite_state, on this server and the other (TestMSC4311FullCreateEventOnStrippedState)', async () => {
    const roomId = await createRoom(hs1, alice, { room_version: '12', preset: 'public_chat' });
    for (const [hs, user] of [[hs1, alice2], [hs2, bob]] as const) {
      await hs1.ok('POST', v3(`rooms/${enc(roomId)}/invite`), { token: hs1.token(alice), body: { user_id: user } });
      let create: any;
      await eventually(`${user} is invited`, async () => {
        const events: any[] = (await sync(hs, user)).rooms?.invite?.[roomId]?.invite_state?.events ?? [];
        create = events.find((e) => e.type === 'm.room.create');
        return create !== undefined;
      });
      expect(create.origin_server_ts, user).toEqual(expect.any(Number));
      expect(create.content.room_version).toBe('12');
    }
  }, TEST_TIMEOUT);

  it('sends joins and knocks it got through send_join and send_knock on to the other servers of the room (knocking_test.go)', async () => {
    const hs3 = await TestHomeserver.start(pki);
    try {
      const carol = (await hs3.register('carol')).user_id;
      const dora = (await hs3.register('dora')).user_id;
      // roomId: public, for carol's join; knockRoom: knockable, hs3 not in it, for dora's knock.
      const [roomId, knockRoom] = [await createRoom(hs1, alice, { preset: 'public_chat', room_version: '7' }), await createRoom(hs1, alice, { preset: 'public_chat', room_version: '7' })];
      for (const r of [roomId, knockRoom]) {
        await hs2.ok('POST', v3(`join/${enc(r)}?server_name=${enc(hs1.serverName)}`), { token: hs2.token(bob), body: {} });
        await eventually('hs1 sees bob joined', async () => (await hs1.storedState(r)).has(`m.room.member\u0000${bob}`));
      }
      const membershipOnHs2 = async (r: string, user: string) => {
        const reply = await hs2.call<{ membership?: string }>('GET', v3(`rooms/${enc(r)}/state/m.room.member/${enc(user)}`), { token: hs2.token(bob) });
        return reply.status === 200 ? reply.body.membership : undefined;
      };
      await hs3.ok('POST', v3(`join/${enc(roomId)}?server_name=${enc(hs1.serverName)}`), { token: hs3.token(carol), body: {} });
      await eventually('hs2 gets carol\'s join from hs1', async () => (await membershipOnHs2(roomId, carol)) === 'join');
      expect((await hs1.setState(alice, knockRoom, 'm.room.join_rules', '', { join_rule: 'knock' })).status).toBe(200);
      await hs3.ok('POST', v3(`knock/${enc(knockRoom)}?server_name=${enc(hs1.serverName)}`), { token: hs3.token(dora), body: { reason: 'let me in' } });
      await eventually('hs2 gets dora\'s knock from hs1', async () => (await membershipOnHs2(knockRoom, dora)) === 'knock');
    } finally {
      await hs3.stop({ drop: true });
    }
  }, TEST_TIMEOUT);

  it('delivers a to-device message to a user of a server that was down, even when the sender restarted meanwhile (TestToDeviceMessagesOverFederation)', async () => {
    const bobToken = hs2.token(bob);
    const since = (await sync(hs2, bob)).next_batch as string;
    await hs2.stop();
    try {
      await hs1.ok('PUT', v3(`sendToDevice/my.test.type/${Date.now()}`), { token: hs1.token(alice), body: { messages: { [bob]: { '*': { my_key: 'my_value' } } } } });
      await new Promise((r) => setTimeout(r, 1000));
      await hs1.stop();
      await hs1.restart();
    } finally {
      await hs2.restart();
    }
    await eventually('bob gets the to-device message', async () => {
      const r = await hs2.ok<any>('GET', v3(`sync?since=${enc(since)}&timeout=1000`), { token: bobToken });
      return (r.to_device?.events ?? []).some((e: any) => e.type === 'my.test.type' && e.sender === alice && e.content.my_key === 'my_value');
    });
  }, TEST_TIMEOUT);

  it('orders an event of a partitioned server after what was sent meanwhile in sync, and /messages back from prev_batch (TestNetworkPartitionOrdering)', async () => {
    const bobby = (await hs1.register('bobby2')).user_id;
    const charlie = (await hs2.register('charlie2')).user_id;
    const roomId = await createRoom(hs2, charlie, { preset: 'public_chat' });
    for (const u of [alice, bobby]) await hs1.ok('POST', v3(`join/${enc(roomId)}?server_name=${enc(hs2.serverName)}`), { token: hs1.token(u), body: {} });
    await eventually('hs2 sees both joins', async () => (await hs2.storedState(roomId)).has(`m.room.member\u0000${bobby}`));
    const filter = enc(JSON.stringify({ room: { timeline: { limit: 4 } } }));
    const since = (await hs1.ok<any>('GET', v3(`sync?filter=${filter}`), { token: hs1.token(bobby) })).next_batch;
    partition([hs1], [hs2]);
    let onePrime: string;
    const sent: string[] = [];
    try {
      onePrime = await hs2.send(charlie, roomId, "Event 1'");
      for (let i = 1; i <= 4; i++) sent.push(await hs1.send(alice, roomId, `event ${i}`));
    } finally {
      heal([hs1, hs2]);
    }
    await eventually("hs1 gets 1'", () => hs1.hasEvents([onePrime]));
    for (let i = 5; i <= 7; i++) sent.push(await hs1.send(alice, roomId, `event ${i}`));
    const res = await hs1.ok<any>('GET', v3(`sync?filter=${filter}&since=${enc(since)}`), { token: hs1.token(bobby) });
    const timeline = res.rooms.join[roomId].timeline;
    expect(timeline.events.map((e: any) => e.event_id)).toEqual([onePrime, ...sent.slice(4)]);
    const back = await hs1.ok<any>('GET', v3(`rooms/${enc(roomId)}/messages?dir=b&limit=4&from=${enc(timeline.prev_batch)}`), { token: hs1.token(bobby) });
    expect(back.chunk.map((e: any) => e.event_id)).toEqual(sent.slice(0, 4).reverse());
  }, TEST_TIMEOUT);

  it('the join of an invited DM user carries the invite as unsigned.prev_content and prev_sender', async () => {
    const roomId = await createRoom(hs1, alice, { preset: 'private_chat', name: 'Invites room', invite: [bob], is_direct: true });
    await eventually('bob is invited', () => invitedTo(roomId));
    await hs2.ok('POST', v3(`join/${enc(roomId)}`), { token: hs2.token(bob), body: {} });
    let join: any;
    await eventually('bob sees his join', async () => {
      const events: any[] = (await sync(hs2, bob)).rooms?.join?.[roomId]?.timeline?.events ?? [];
      join = events.find((e) => e.type === 'm.room.member' && e.state_key === bob && e.content.membership === 'join');
      return join !== undefined;
    });
    expect(join.unsigned?.prev_content?.membership).toBe('invite');
    expect(join.unsigned?.prev_content?.is_direct).toBe(true);
    expect(join.unsigned?.prev_sender).toBe(alice);
  }, TEST_TIMEOUT);
});
