/**
 * Restricted joins over federation (spec: Server-Server "Restricted rooms", make_join and
 * send_join): rooms held on hs1 whose join rules allow members of a space; users of hs2 join
 * them through hs1, which names one of its users as the authoriser and signs the join. Two
 * homeservers of ours on loopback (test/consistency/harness.ts); client answers are validated
 * against the spec by TestHomeserver.call, federation answers with validateResponse. Also the
 * deprecated v1 send_join, send_leave and invite.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFederationClient, FederationError, readFederationEnvironment, type FederationClient } from '@tessera/federation-client';
import { computeEventId, getRoomVersion, hashAndSignEvent, type Pdu } from '@tessera/protocol';
import { getEvent } from '@tessera/storage';
import { services, validateResponse } from '@tessera/testing';
import { createFederationPki, enc, eventually, TestHomeserver, v3, type FederationPki } from '../consistency/harness.js';

const TEST_TIMEOUT = 180_000;
const F = '/_matrix/federation';

describe.skipIf(!services.postgres || !services.nats)('restricted joins over federation', () => {
  let pki: FederationPki;
  let hs1: TestHomeserver;
  let hs2: TestHomeserver;
  let alice: string;
  let dan: string;
  let erin: string;
  let frank: string;
  let space: string;
  /** Signed as hs2: what hs2's room-server would send to hs1. */
  let asHs2: FederationClient;

  beforeAll(async () => {
    pki = createFederationPki();
    [hs1, hs2] = await Promise.all([TestHomeserver.start(pki), TestHomeserver.start(pki)]);
    alice = (await hs1.register('alice')).user_id;
    dan = (await hs2.register('dan')).user_id;
    erin = (await hs2.register('erin')).user_id;
    frank = (await hs2.register('frank')).user_id;
    asHs2 = createFederationClient(hs2.serverName, hs2.signingKey, readFederationEnvironment());
    space = await createRoom({ preset: 'public_chat', name: 'Space', creation_content: { type: 'm.space' } });
    for (const user of [dan, frank]) await joinVia(hs2, user, space);
  }, 120_000);

  afterAll(async () => {
    asHs2?.close();
    for (const hs of [hs1, hs2]) await hs?.stop({ drop: true });
    pki?.dispose();
  });

  async function createRoom(body: Record<string, unknown>): Promise<string> {
    return (await hs1.ok<{ room_id: string }>('POST', v3('createRoom'), { token: hs1.token(alice), body })).room_id;
  }

  function restrictedRoom(allowed: string): Promise<string> {
    return createRoom({
      preset: 'private_chat', room_version: '10',
      initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: allowed }] } }],
    });
  }

  async function joinVia(hs: TestHomeserver, user: string, roomId: string) {
    return hs.call('POST', v3(`join/${enc(roomId)}?via=${enc(hs1.serverName)}`), { token: hs.token(user), body: {} });
  }

  async function stateIds(hs: TestHomeserver, roomId: string): Promise<string[]> {
    return [...(await hs.storedState(roomId)).values()].sort();
  }

  /** A federation error's status and body, the body checked against the spec's definition for that status. */
  async function refusal(template: string, call: Promise<unknown>): Promise<{ status?: number; errcode?: string }> {
    const err = await call.then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(FederationError);
    const e = err as FederationError;
    validateResponse('server-server', 'GET', template, e.status!, e.body);
    return { status: e.status, errcode: e.errcode };
  }

  /** make_join as hs2 for `user`, the template completed and signed by hs2 (as its room-server does). */
  async function signedJoin(roomId: string, user: string): Promise<{ pdu: Pdu; eventId: string; template: Record<string, any> }> {
    const made = await asHs2.get<{ event: Record<string, any>; room_version: string }>(hs1.serverName, `${F}/v1/make_join/${enc(roomId)}/${enc(user)}`, { query: { ver: ['10'] } });
    validateResponse('server-server', 'GET', '/_matrix/federation/v1/make_join/{roomId}/{userId}', 200, made);
    const rv = getRoomVersion(made.room_version);
    const pdu = hashAndSignEvent({ ...made.event, origin_server_ts: Date.now() } as Pdu, hs2.serverName, hs2.signingKey, rv);
    return { pdu, eventId: computeEventId(pdu, rv), template: made.event };
  }

  it('a user of hs2 who joined the space joins the restricted room through hs1, which authorises and signs the join', async () => {
    const room = await restrictedRoom(space);
    const joined = await joinVia(hs2, dan, room);
    expect(joined.status, JSON.stringify(joined.body)).toBe(200);
    expect(joined.body).toEqual({ room_id: room });

    // Accepted on both servers: the same event, naming alice, signed by both.
    const eventId = (await hs1.storedState(room)).get(`m.room.member\u0000${dan}`)!;
    expect((await hs2.storedState(room)).get(`m.room.member\u0000${dan}`)).toBe(eventId);
    for (const hs of [hs1, hs2]) {
      const stored = await getEvent(hs.db, eventId);
      expect(stored?.json.content).toMatchObject({ membership: 'join', join_authorised_via_users_server: alice });
      expect(Object.keys(stored?.json.signatures ?? {}).sort()).toEqual([hs1.serverName, hs2.serverName].sort());
      expect(await hs.hasEvents([eventId])).toBe(true);
    }

    // Messages flow both ways.
    const fromDan = await hs2.send(dan, room, 'hello from hs2');
    const fromAlice = await hs1.send(alice, room, 'hello from hs1');
    await eventually(`hs1 has ${fromDan}`, () => hs1.hasEvents([fromDan]));
    await eventually(`hs2 has ${fromAlice}`, () => hs2.hasEvents([fromAlice]));
  }, TEST_TIMEOUT);

  it('a user of hs2 who is not in the space is refused with 403, and nothing changes', async () => {
    const room = await restrictedRoom(space);
    const before = await stateIds(hs1, room);
    const r = await joinVia(hs2, erin, room);
    expect(r.status).toBe(403);
    expect(r.body.errcode).toBe('M_FORBIDDEN');
    expect(await stateIds(hs1, room)).toEqual(before);
    const joined = await hs2.ok<{ joined_rooms: string[] }>('GET', v3('joined_rooms'), { token: hs2.token(erin) });
    expect(joined.joined_rooms).not.toContain(room);

    // make_join says the same over federation; a room allowing only rooms hs1 is not in cannot be authorised by hs1.
    const makeJoin = '/_matrix/federation/v1/make_join/{roomId}/{userId}';
    expect(await refusal(makeJoin, asHs2.get(hs1.serverName, `${F}/v1/make_join/${enc(room)}/${enc(erin)}`, { query: { ver: ['10'] } })))
      .toEqual({ status: 403, errcode: 'M_FORBIDDEN' });
    const elsewhere = await restrictedRoom(`!unknown:${hs2.serverName}`);
    expect(await refusal(makeJoin, asHs2.get(hs1.serverName, `${F}/v1/make_join/${enc(elsewhere)}/${enc(dan)}`, { query: { ver: ['10'] } })))
      .toEqual({ status: 400, errcode: 'M_UNABLE_TO_AUTHORISE_JOIN' });
  }, TEST_TIMEOUT);

  it('a room whose allowed space only hs2 is in: hs1 cannot authorise; once hs2 is in the room it authorises the join itself', async () => {
    const hs2Space = (await hs2.ok<{ room_id: string }>('POST', v3('createRoom'), { token: hs2.token(dan), body: { preset: 'public_chat', creation_content: { type: 'm.space' } } })).room_id;
    const room = await restrictedRoom(hs2Space);
    // hs1 is not in the space: the make_join error is passed through to the client.
    const refused = await joinVia(hs2, dan, room);
    expect(refused.status).toBe(400);
    expect(refused.body.errcode).toBe('M_UNABLE_TO_AUTHORISE_JOIN');

    // erin, invited, joins: hs2 is now a resident, and its own users may authorise.
    await hs1.ok('POST', v3(`rooms/${enc(room)}/invite`), { token: hs1.token(alice), body: { user_id: erin } });
    await eventually(`${erin} is invited on hs2`, async () => {
      const sync = await hs2.ok<any>('GET', v3('sync?timeout=0'), { token: hs2.token(erin) });
      return Boolean(sync.rooms?.invite?.[room]);
    });
    expect((await joinVia(hs2, erin, room)).status).toBe(200);
    const joined = await joinVia(hs2, dan, room);
    expect(joined.status, JSON.stringify(joined.body)).toBe(200);
    const eventId = (await hs2.storedState(room)).get(`m.room.member\u0000${dan}`)!;
    expect((await getEvent(hs2.db, eventId))?.json.content).toMatchObject({ membership: 'join', join_authorised_via_users_server: erin });
    await eventually(`hs1 accepts ${dan}'s join`, async () => (await hs1.storedState(room)).get(`m.room.member\u0000${dan}`) === eventId && hs1.hasEvents([eventId]));
  }, TEST_TIMEOUT);

  it('hs2 is in the room but none of its users may invite: its user joins through hs1 instead', async () => {
    const room = await createRoom({
      preset: 'private_chat', room_version: '10', power_level_content_override: { invite: 50 },
      initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: space }] } }],
    });
    expect((await joinVia(hs2, dan, room)).status).toBe(200);
    // dan (level 0) cannot vouch for frank; alice on hs1 can.
    const joined = await hs2.call('POST', v3(`rooms/${enc(room)}/join`), { token: hs2.token(frank), body: {} });
    expect(joined.status, JSON.stringify(joined.body)).toBe(200);
    await eventually(`hs1 and hs2 agree on ${frank}'s join`, async () => {
      const onHs1 = (await hs1.storedState(room)).get(`m.room.member\u0000${frank}`);
      return onHs1 !== undefined && onHs1 === (await hs2.storedState(room)).get(`m.room.member\u0000${frank}`);
    });
    const eventId = (await hs1.storedState(room)).get(`m.room.member\u0000${frank}`)!;
    expect((await getEvent(hs1.db, eventId))?.json.content).toMatchObject({ membership: 'join', join_authorised_via_users_server: alice });
    const fromFrank = await hs2.send(frank, room, 'made it');
    await eventually(`hs1 has ${fromFrank}`, () => hs1.hasEvents([fromFrank]));
  }, TEST_TIMEOUT);

  it('v1 send_join answers [200, body] with the join signed by hs1; v1 send_leave answers [200, {}]', async () => {
    const room = await restrictedRoom(space);
    const { pdu, eventId, template } = await signedJoin(room, frank);
    expect(template.content).toEqual({ membership: 'join', join_authorised_via_users_server: alice });

    const answer = await asHs2.put<unknown[]>(hs1.serverName, `${F}/v1/send_join/${enc(room)}/${enc(eventId)}`, pdu);
    validateResponse('server-server', 'PUT', '/_matrix/federation/v1/send_join/{roomId}/{eventId}', 200, answer);
    expect(answer[0]).toBe(200);
    const body = answer[1] as { state: Pdu[]; auth_chain: Pdu[]; event: Pdu };
    expect(body.state.length).toBeGreaterThan(0);
    expect(body.auth_chain.length).toBeGreaterThan(0);
    expect(computeEventId(body.event, getRoomVersion('10'))).toBe(eventId);
    expect(body.event.signatures?.[hs2.serverName]).toEqual(pdu.signatures?.[hs2.serverName]);
    expect(Object.keys(body.event.signatures?.[hs1.serverName] ?? {})).toHaveLength(1);
    expect((await hs1.storedState(room)).get(`m.room.member\u0000${frank}`)).toBe(eventId);

    const made = await asHs2.get<{ event: Record<string, any> }>(hs1.serverName, `${F}/v1/make_leave/${enc(room)}/${enc(frank)}`);
    const leave = hashAndSignEvent({ ...made.event, origin_server_ts: Date.now() } as Pdu, hs2.serverName, hs2.signingKey, getRoomVersion('10'));
    const leaveId = computeEventId(leave, getRoomVersion('10'));
    const left = await asHs2.put<unknown[]>(hs1.serverName, `${F}/v1/send_leave/${enc(room)}/${enc(leaveId)}`, leave);
    validateResponse('server-server', 'PUT', '/_matrix/federation/v1/send_leave/{roomId}/{eventId}', 200, left);
    expect(left).toEqual([200, {}]);
    expect((await hs1.storedState(room)).get(`m.room.member\u0000${frank}`)).toBe(leaveId);
  }, TEST_TIMEOUT);

  it('send_join refuses a join naming an hs1 user for a user who is not in the space', async () => {
    const room = await restrictedRoom(space);
    // The template hs1 would give dan, sent for erin: hs1 checks the conditions before it signs.
    const { template } = await signedJoin(room, dan);
    const forged = hashAndSignEvent({ ...template, sender: erin, state_key: erin, origin_server_ts: Date.now() } as Pdu, hs2.serverName, hs2.signingKey, getRoomVersion('10'));
    const forgedId = computeEventId(forged, getRoomVersion('10'));
    const before = await stateIds(hs1, room);
    const err = await asHs2.put(hs1.serverName, `${F}/v2/send_join/${enc(room)}/${enc(forgedId)}`, forged).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(FederationError);
    expect((err as FederationError).status).toBe(403);
    validateResponse('server-server', 'PUT', '/_matrix/federation/v2/send_join/{roomId}/{eventId}', 403, (err as FederationError).body);
    expect(await stateIds(hs1, room)).toEqual(before);
  }, TEST_TIMEOUT);

  it('v1 invite: the body is the event, the answer [200, {event}] with the invitee server\'s signature', async () => {
    const room = await createRoom({ preset: 'private_chat', room_version: '2' });
    await hs1.ok('POST', v3(`rooms/${enc(room)}/invite`), { token: hs1.token(alice), body: { user_id: erin } });
    const inviteId = (await hs1.storedState(room)).get(`m.room.member\u0000${erin}`)!;
    const stored = await getEvent(hs1.db, inviteId);
    const asHs1 = createFederationClient(hs1.serverName, hs1.signingKey, readFederationEnvironment());
    try {
      const answer = await asHs1.put<unknown[]>(hs2.serverName, `${F}/v1/invite/${enc(room)}/${enc(inviteId)}`, {
        ...stored!.json, unsigned: { invite_room_state: [{ type: 'm.room.join_rules', state_key: '', sender: alice, content: { join_rule: 'invite' } }] },
      });
      validateResponse('server-server', 'PUT', '/_matrix/federation/v1/invite/{roomId}/{eventId}', 200, answer);
      expect(answer[0]).toBe(200);
      const event = (answer[1] as { event: Pdu }).event;
      expect(event.event_id).toBe(inviteId);
      expect(Object.keys(event.signatures ?? {}).sort()).toEqual([hs1.serverName, hs2.serverName].sort());
    } finally {
      asHs1.close();
    }
    await eventually(`${erin} sees the invite`, async () => {
      const sync = await hs2.ok<any>('GET', v3('sync?timeout=0'), { token: hs2.token(erin) });
      return Boolean(sync.rooms?.invite?.[room]);
    });
  }, TEST_TIMEOUT);
});
