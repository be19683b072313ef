/**
 * The Client-Server API reaching other servers (issues 5 and 6): two homeservers of ours on
 * loopback, each with every service, its own PostgreSQL database and NATS prefix, federating
 * over HTTPS with a test CA (test/consistency/harness.ts). Everything is driven through the
 * client API over HTTP, and every JSON answer is validated against the spec's OpenAPI document
 * (TestHomeserver.call). Waits are polls with generous deadlines, never timing assertions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFederationClient, readFederationEnvironment } from '@tessera/federation-client';
import { getEvent } from '@tessera/storage';
import { services } from '@tessera/testing';
import { createFederationPki, enc, eventually, TestHomeserver, v3, type FederationPki } from '../consistency/harness.js';

const TEST_TIMEOUT = 180_000;
/** Nothing listens on port 1 of loopback: a server name that cannot be reached. */
const UNREACHABLE = '127.0.0.1:1';

describe.skipIf(!services.postgres || !services.nats)('the client API over federation', () => {
  let pki: FederationPki;
  let hs1: TestHomeserver;
  let hs2: TestHomeserver;
  let alice: string;
  let dan: string;

  beforeAll(async () => {
    pki = createFederationPki();
    [hs1, hs2] = await Promise.all([TestHomeserver.start(pki), TestHomeserver.start(pki)]);
    alice = (await hs1.register('alice')).user_id;
    dan = (await hs2.register('dan')).user_id;
  }, 120_000);

  afterAll(async () => {
    for (const hs of [hs1, hs2]) await hs?.stop({ drop: true });
    pki?.dispose();
  });

  async function createRoom(body: Record<string, unknown>): Promise<string> {
    return (await hs1.ok<{ room_id: string }>('POST', v3('createRoom'), { token: hs1.token(alice), body })).room_id;
  }

  /** The membership of `user` in `roomId` as `viewer` on `hs` reads it from the room state. */
  async function membershipOn(hs: TestHomeserver, viewer: string, roomId: string, user: string): Promise<string | undefined> {
    const r = await hs.call<{ membership?: string }>('GET', v3(`rooms/${enc(roomId)}/state/m.room.member/${enc(user)}`), { token: hs.token(viewer) });
    return r.status === 200 ? r.body.membership : undefined;
  }

  async function joinedRooms(hs: TestHomeserver, user: string): Promise<string[]> {
    return (await hs.ok<{ joined_rooms: string[] }>('GET', v3('joined_rooms'), { token: hs.token(user) })).joined_rooms;
  }

  /** The room is held on both servers and messages flow both ways through it. */
  async function messagesFlow(roomId: string): Promise<void> {
    const fromDan = await hs2.send(dan, roomId, 'hello from hs2');
    const fromAlice = await hs1.send(alice, roomId, 'hello from hs1');
    await eventually(`hs1 has ${fromDan}`, () => hs1.hasEvents([fromDan]));
    await eventually(`hs2 has ${fromAlice}`, () => hs2.hasEvents([fromAlice]));
  }

  it('resolves an alias of the other server and joins the room by that alias', async () => {
    const roomId = await createRoom({ preset: 'public_chat', room_alias_name: 'lobby', name: 'Lobby' });
    const alias = `#lobby:${hs1.serverName}`;

    const resolved = await hs2.ok<{ room_id: string; servers: string[] }>('GET', v3(`directory/room/${enc(alias)}`));
    expect(resolved.room_id).toBe(roomId);
    expect(resolved.servers).toContain(hs1.serverName);

    const joined = await hs2.ok<{ room_id: string }>('POST', v3(`join/${enc(alias)}`), { token: hs2.token(dan), body: {} });
    expect(joined.room_id).toBe(roomId);
    expect(await joinedRooms(hs2, dan)).toContain(roomId);
    await eventually(`hs1 sees ${dan} joined`, async () => (await membershipOn(hs1, alice, roomId, dan)) === 'join');
    // Once joined, the alias's server lists the joining server too.
    const again = await hs1.ok<{ servers: string[] }>('GET', v3(`directory/room/${enc(alias)}`));
    expect(again.servers).toEqual([hs1.serverName, hs2.serverName]);
    await messagesFlow(roomId);

    // An alias of hs2 for the room may be named in the canonical alias on hs1 (hs1 asks hs2);
    // one that hs2 does not have is refused with M_BAD_ALIAS.
    const remoteAlias = `#lobby-on-hs2:${hs2.serverName}`;
    await hs2.ok('PUT', v3(`directory/room/${enc(remoteAlias)}`), { token: hs2.token(dan), body: { room_id: roomId } });
    const named = await hs1.setState(alice, roomId, 'm.room.canonical_alias', '', { alias, alt_aliases: [remoteAlias] });
    expect(named.status).toBe(200);
    const bad = await hs1.setState(alice, roomId, 'm.room.canonical_alias', '', { alias, alt_aliases: [`#not-there:${hs2.serverName}`] });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ errcode: 'M_BAD_ALIAS' });
  }, TEST_TIMEOUT);

  it('lists the public rooms of the other server, with search', async () => {
    await createRoom({ preset: 'public_chat', visibility: 'public', name: 'Gardening on hs1', topic: 'tomatoes' });
    await createRoom({ preset: 'public_chat', visibility: 'public', name: 'Chess on hs1' });
    const all = await hs2.ok<{ chunk: Array<{ name?: string }> }>('GET', v3(`publicRooms?server=${enc(hs1.serverName)}`), { token: hs2.token(dan) });
    expect(all.chunk.map((r) => r.name)).toEqual(expect.arrayContaining(['Gardening on hs1', 'Chess on hs1']));
    const found = await hs2.ok<{ chunk: Array<{ name?: string }> }>('POST', v3(`publicRooms?server=${enc(hs1.serverName)}`), {
      token: hs2.token(dan), body: { filter: { generic_search_term: 'tomato' } },
    });
    expect(found.chunk.map((r) => r.name)).toEqual(['Gardening on hs1']);
    const down = await hs2.call('GET', v3(`publicRooms?server=${enc(UNREACHABLE)}`), { token: hs2.token(dan) });
    expect(down.status).toBe(502);
    expect(down.body.errcode).toBe('M_UNKNOWN');
  }, TEST_TIMEOUT);

  it('joins by room id with the server_name (and via) hints, through /join and /rooms/{roomId}/join', async () => {
    const first = await createRoom({ preset: 'public_chat', name: 'by id' });
    const viaServerName = await hs2.ok<{ room_id: string }>('POST', v3(`join/${enc(first)}?server_name=${enc(hs1.serverName)}`), { token: hs2.token(dan), body: {} });
    expect(viaServerName.room_id).toBe(first);
    await eventually(`hs1 sees ${dan} joined ${first}`, async () => (await membershipOn(hs1, alice, first, dan)) === 'join');
    await messagesFlow(first);

    // via (spec v1.12+), the first hint unreachable: the next one is asked.
    const second = await createRoom({ preset: 'public_chat' });
    const viaVia = await hs2.ok<{ room_id: string }>('POST', v3(`rooms/${enc(second)}/join?via=${enc(UNREACHABLE)}&via=${enc(hs1.serverName)}`), {
      token: hs2.token(dan), body: { reason: 'curious' },
    });
    expect(viaVia.room_id).toBe(second);
    const member = await hs2.ok<{ membership: string; reason?: string }>('GET', v3(`rooms/${enc(second)}/state/m.room.member/${enc(dan)}`), { token: hs2.token(dan) });
    expect(member).toMatchObject({ membership: 'join', reason: 'curious' });
    expect(await joinedRooms(hs2, dan)).toEqual(expect.arrayContaining([first, second]));
  }, TEST_TIMEOUT);

  it('joins a room version 12 room (whose id names no server) with a via hint', async () => {
    const roomId = await createRoom({ preset: 'public_chat', room_version: '12' });
    const joined = await hs2.ok<{ room_id: string }>('POST', v3(`join/${enc(roomId)}?via=${enc(hs1.serverName)}`), { token: hs2.token(dan), body: {} });
    expect(joined.room_id).toBe(roomId);
    await messagesFlow(roomId);
  }, TEST_TIMEOUT);

  it('walks a space held on the other server: its hierarchy and room summaries come over federation', async () => {
    const v1 = (path: string) => `/_matrix/client/v1/${path}`;
    const space = await createRoom({ preset: 'public_chat', name: 'Remote space', creation_content: { type: 'm.space' } });
    const child = await createRoom({ preset: 'public_chat', name: 'Remote child', topic: 'over there' });
    const hidden = await createRoom({ preset: 'private_chat', name: 'Invite only' });
    for (const [room, order] of [[child, 'a'], [hidden, 'b']] as const) {
      expect((await hs1.setState(alice, space, 'm.space.child', room, { via: [hs1.serverName], order })).status).toBe(200);
    }
    // As with Synapse, the root must be a room the user's server can see: dan joins the space;
    // its children, held on hs1 only, are learnt from hs1's federation hierarchy API.
    await hs2.ok('POST', v3(`join/${enc(space)}?via=${enc(hs1.serverName)}`), { token: hs2.token(dan), body: {} });
    const tree = await hs2.ok<{ rooms: Array<Record<string, any>> }>('GET', v1(`rooms/${enc(space)}/hierarchy`), { token: hs2.token(dan) });
    expect(tree.rooms.map((r) => r.room_id)).toEqual([space, child]);
    expect(tree.rooms[1]).toMatchObject({ name: 'Remote child', topic: 'over there', join_rule: 'public', num_joined_members: 1 });
    expect(tree.rooms[0].children_state.map((c: { state_key: string }) => c.state_key)).toEqual([child, hidden]);

    const summary = await hs2.ok<Record<string, unknown>>('GET', v1(`room_summary/${enc(child)}?via=${enc(hs1.serverName)}`), { token: hs2.token(dan) });
    expect(summary).toMatchObject({ room_id: child, name: 'Remote child', membership: 'leave' });
    const private404 = await hs2.call('GET', v1(`room_summary/${enc(hidden)}?via=${enc(hs1.serverName)}`), { token: hs2.token(dan) });
    expect(private404.status).toBe(404);
  }, TEST_TIMEOUT);

  it('refuses joins it cannot make with the right errors, and changes nothing', async () => {
    // An invite-only room: the resident server refuses make_join.
    const privateRoom = await createRoom({ preset: 'private_chat' });
    const refused = await hs2.call('POST', v3(`join/${enc(privateRoom)}?server_name=${enc(hs1.serverName)}`), { token: hs2.token(dan), body: {} });
    expect(refused.status).toBe(403);
    expect(refused.body.errcode).toBe('M_FORBIDDEN');

    // A room the named server does not know.
    const unknownRoom = `!nosuchroom:${hs1.serverName}`;
    const unknown = await hs2.call('POST', v3(`join/${enc(unknownRoom)}`), { token: hs2.token(dan), body: {} });
    expect(unknown.status).toBe(404);
    expect(unknown.body.errcode).toBe('M_NOT_FOUND');

    // A room version 12 id names no server: without hints there is nobody to ask.
    const v12 = await createRoom({ preset: 'public_chat', room_version: '12' });
    const noHints = await hs2.call('POST', v3(`join/${enc(v12)}`), { token: hs2.token(dan), body: {} });
    expect(noHints.status).toBe(404);
    expect(noHints.body.errcode).toBe('M_NOT_FOUND');

    // An alias nobody has, on the other server.
    const noAlias = await hs2.call('POST', v3(`join/${enc(`#nothing-here:${hs1.serverName}`)}`), { token: hs2.token(dan), body: {} });
    expect(noAlias.status).toBe(404);
    expect(noAlias.body.errcode).toBe('M_NOT_FOUND');
    const lookup = await hs2.call('GET', v3(`directory/room/${enc(`#nothing-here:${hs1.serverName}`)}`));
    expect(lookup.status).toBe(404);
    expect(lookup.body.errcode).toBe('M_NOT_FOUND');

    // A server that cannot be reached: M_UNKNOWN saying so.
    const down = await hs2.call('POST', v3(`join/${enc(`!room:${UNREACHABLE}`)}`), { token: hs2.token(dan), body: {} });
    expect(down.body.errcode).toBe('M_UNKNOWN');
    expect(down.status).toBe(502);
    expect(down.body.error).toContain(UNREACHABLE);
    const downAlias = await hs2.call('GET', v3(`directory/room/${enc(`#room:${UNREACHABLE}`)}`));
    expect(downAlias.status).toBe(502);
    expect(downAlias.body.errcode).toBe('M_UNKNOWN');

    // A bad hint is refused before anything is asked.
    const badHint = await hs2.call('POST', v3(`join/${enc(privateRoom)}?via=${enc('not a server')}`), { token: hs2.token(dan), body: {} });
    expect(badHint.status).toBe(400);
    expect(badHint.body.errcode).toBe('M_INVALID_PARAM');

    expect(await joinedRooms(hs2, dan)).not.toEqual(expect.arrayContaining([privateRoom]));
    expect(await joinedRooms(hs2, dan)).not.toEqual(expect.arrayContaining([v12]));
    expect(await membershipOn(hs1, alice, privateRoom, dan)).toBeUndefined();
  }, TEST_TIMEOUT);

  it('reads the profile of a user of the other server', async () => {
    await hs2.ok('PUT', v3(`profile/${enc(dan)}/displayname`), { token: hs2.token(dan), body: { displayname: 'Dan of hs2' } });
    expect(await hs1.ok('GET', v3(`profile/${enc(dan)}`))).toEqual({ displayname: 'Dan of hs2' });
    expect(await hs1.ok('GET', v3(`profile/${enc(dan)}/displayname`))).toEqual({ displayname: 'Dan of hs2' });

    const noAvatar = await hs1.call('GET', v3(`profile/${enc(dan)}/avatar_url`));
    expect(noAvatar.status).toBe(404);
    expect(noAvatar.body.errcode).toBe('M_NOT_FOUND');
    const nobody = await hs1.call('GET', v3(`profile/${enc(`@nobody:${hs2.serverName}`)}`));
    expect(nobody.status).toBe(404);
    expect(nobody.body.errcode).toBe('M_NOT_FOUND');
    const unreachable = await hs1.call('GET', v3(`profile/${enc(`@someone:${UNREACHABLE}`)}`));
    expect(unreachable.status).toBe(502);
    expect(unreachable.body.errcode).toBe('M_UNKNOWN');
  }, TEST_TIMEOUT);

  it('queries and claims the keys of users of the other server; unreachable servers are listed in failures', async () => {
    const login = await hs2.ok<{ device_id: string }>('GET', v3('account/whoami'), { token: hs2.token(dan) });
    const deviceId = login.device_id;
    const deviceKeys = {
      user_id: dan,
      device_id: deviceId,
      algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
      keys: { [`curve25519:${deviceId}`]: 'curve25519publickeyofdan', [`ed25519:${deviceId}`]: 'ed25519publickeyofdan' },
      signatures: { [dan]: { [`ed25519:${deviceId}`]: 'signatureofdan' } },
    };
    const oneTimeKey = { key: 'onetimekeyofdan', signatures: { [dan]: { [`ed25519:${deviceId}`]: 'otksignature' } } };
    await hs2.ok('POST', v3('keys/upload'), { token: hs2.token(dan), body: { device_keys: deviceKeys, one_time_keys: { 'signed_curve25519:AAAAAQ': oneTimeKey } } });

    const stranger = `@someone:${UNREACHABLE}`;
    const query = await hs1.ok<any>('POST', v3('keys/query'), { token: hs1.token(alice), body: { device_keys: { [dan]: [], [stranger]: [] }, timeout: 5000 } });
    expect(query.device_keys[dan][deviceId]).toMatchObject(deviceKeys);
    expect(query.device_keys[stranger]).toBeUndefined();
    expect(Object.keys(query.failures)).toEqual([UNREACHABLE]);

    const only = await hs1.ok<any>('POST', v3('keys/query'), { token: hs1.token(alice), body: { device_keys: { [dan]: ['NOSUCHDEVICE'] } } });
    expect(only.device_keys[dan]).toEqual({});
    expect(only.failures).toEqual({});

    const claim = await hs1.ok<any>('POST', v3('keys/claim'), {
      token: hs1.token(alice), body: { one_time_keys: { [dan]: { [deviceId]: 'signed_curve25519' }, [stranger]: { DEVICE: 'signed_curve25519' } }, timeout: 5000 },
    });
    expect(claim.one_time_keys).toEqual({ [dan]: { [deviceId]: { 'signed_curve25519:AAAAAQ': oneTimeKey } } });
    expect(Object.keys(claim.failures)).toEqual([UNREACHABLE]);
    // The key was claimed on dan's server: it is gone.
    const counts = await hs2.ok<any>('POST', v3('keys/upload'), { token: hs2.token(dan), body: {} });
    expect(counts.one_time_key_counts.signed_curve25519 ?? 0).toBe(0);
    const again = await hs1.ok<any>('POST', v3('keys/claim'), { token: hs1.token(alice), body: { one_time_keys: { [dan]: { [deviceId]: 'signed_curve25519' } } } });
    expect(again.one_time_keys).toEqual({});
  }, TEST_TIMEOUT);

  /**
   * Delivers alice's invite of dan to hs2 again, as hs1's room-server did before appending it
   * (PUT /v2/invite, signed as hs1, from the Decider's beforeAppend hook): a second delivery of
   * the same event is harmless, and the test checks the stored invite hs1 sent.
   */
  async function deliverInvite(roomId: string, invitee: string): Promise<void> {
    const state = await hs1.storedState(roomId);
    const inviteId = state.get(`m.room.member\u0000${invitee}`)!;
    const stored = await getEvent(hs1.db, inviteId);
    expect(stored?.json.content?.membership).toBe('invite');
    const client = createFederationClient(hs1.serverName, hs1.signingKey, readFederationEnvironment());
    try {
      await client.put(hs2.serverName, `/_matrix/federation/v2/invite/${enc(roomId)}/${enc(inviteId)}`, {
        event: stored!.json, room_version: '10', invite_room_state: [],
      });
    } finally {
      client.close();
    }
  }

  it('rejects an invite to a room held on the other server', async () => {
    const roomId = await createRoom({ preset: 'private_chat', name: 'secret' });
    await hs1.ok('POST', v3(`rooms/${enc(roomId)}/invite`), { token: hs1.token(alice), body: { user_id: dan } });
    await deliverInvite(roomId, dan);
    await eventually(`${dan} sees the invite in /sync`, async () => {
      const sync = await hs2.ok<any>('GET', v3('sync?timeout=0'), { token: hs2.token(dan) });
      return Boolean(sync.rooms?.invite?.[roomId]);
    });

    await hs2.ok('POST', v3(`rooms/${enc(roomId)}/leave`), { token: hs2.token(dan), body: { reason: 'no thanks' } });
    await eventually(`hs1 sees ${dan}'s rejection`, async () => (await membershipOn(hs1, alice, roomId, dan)) === 'leave');
    const member = await hs1.ok<{ reason?: string }>('GET', v3(`rooms/${enc(roomId)}/state/m.room.member/${enc(dan)}`), { token: hs1.token(alice) });
    expect(member.reason).toBe('no thanks');
    const sync = await hs2.ok<any>('GET', v3('sync?timeout=0'), { token: hs2.token(dan) });
    expect(sync.rooms?.invite?.[roomId]).toBeUndefined();
    expect(await joinedRooms(hs2, dan)).not.toContain(roomId);
    // Leaving again changes nothing.
    await hs2.ok('POST', v3(`rooms/${enc(roomId)}/leave`), { token: hs2.token(dan), body: {} });
  }, TEST_TIMEOUT);

  it('knocks on a room held on the other server, and retracts the knock', async () => {
    const roomId = await createRoom({ preset: 'private_chat', initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'knock' } }] });
    const knocked = await hs2.ok<{ room_id: string }>('POST', v3(`knock/${enc(roomId)}?via=${enc(hs1.serverName)}`), { token: hs2.token(dan), body: { reason: 'let me in' } });
    expect(knocked.room_id).toBe(roomId);
    await eventually(`hs1 sees ${dan}'s knock`, async () => (await membershipOn(hs1, alice, roomId, dan)) === 'knock');

    await hs2.ok('POST', v3(`rooms/${enc(roomId)}/leave`), { token: hs2.token(dan), body: {} });
    await eventually(`hs1 sees ${dan}'s knock retracted`, async () => (await membershipOn(hs1, alice, roomId, dan)) === 'leave');
  }, TEST_TIMEOUT);
});
