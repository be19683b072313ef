/**
 * Eventual consistency between homeservers of ours (issue 6): two and three servers on
 * loopback, each with its own PostgreSQL database and NATS prefix, federating over HTTPS with a
 * test CA, driven through the client API over HTTP. No timing assertions: every wait is a poll
 * with a generous deadline.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '@tessera/testing';
import { converged, createFederationPki, enc, eventually, heal, partition, TestHomeserver, v3, type FederationPki } from './harness.js';

describe.skipIf(!services.postgres || !services.nats)('eventual consistency between homeservers', () => {
  let pki: FederationPki;
  let hs1: TestHomeserver;
  let hs2: TestHomeserver;
  let hs3: TestHomeserver;
  let alice: string;
  let bob: string;
  let dan: string;
  let erin: string;

  beforeAll(async () => {
    pki = createFederationPki();
    [hs1, hs2, hs3] = await Promise.all([TestHomeserver.start(pki), TestHomeserver.start(pki), TestHomeserver.start(pki)]);
    alice = (await hs1.register('alice')).user_id;
    bob = (await hs1.register('bob')).user_id;
    dan = (await hs2.register('dan')).user_id;
    erin = (await hs3.register('erin')).user_id;
  }, 120_000);

  afterAll(async () => {
    for (const hs of [hs1, hs2, hs3]) await hs?.stop({ drop: true });
    pki?.dispose();
  });

  /** Every server can read each event through the client API (it is in its room's timeline). */
  async function allSee(servers: Array<[TestHomeserver, string]>, roomId: string, eventIds: string[], deadlineMs = 60_000) {
    for (const [hs, user] of servers) {
      let missing: string[] = [];
      await eventually(() => `${hs.serverName} has ${eventIds.length} events; missing ${missing.length}: ${missing.slice(0, 3).join(', ')}`, async () => {
        missing = [];
        for (const id of eventIds) {
          const r = await hs.call('GET', v3(`rooms/${enc(roomId)}/event/${enc(id)}`), { token: hs.token(user) });
          if (r.status !== 200) missing.push(id);
        }
        return missing.length === 0;
      }, deadlineMs);
    }
  }

  async function inviteAndJoin(roomId: string, inviter: [TestHomeserver, string], invitee: [TestHomeserver, string]) {
    const [ihs, iuser] = inviter;
    const [jhs, juser] = invitee;
    await ihs.ok('POST', v3(`rooms/${enc(roomId)}/invite`), { token: ihs.token(iuser), body: { user_id: juser } });
    // The invite reaches the invitee's /sync on its own server.
    await eventually(`${juser} sees the invite in /sync`, async () => {
      const sync = await jhs.ok<any>('GET', v3('sync?timeout=0'), { token: jhs.token(juser) });
      return Boolean(sync.rooms?.invite?.[roomId]);
    });
    const viaClientApi = await jhs.call('POST', v3(`join/${enc(roomId)}?server_name=${enc(ihs.serverName)}`), { token: jhs.token(juser), body: {} });
    // Until client-api's /join goes through make_join/send_join for a remote room (its
    // "TODO(federation)"), the join is made by the room-server operation /join will call.
    if (viaClientApi.status !== 200) {
      console.warn(`client-api /join of a remote room answered ${viaClientApi.status} ${JSON.stringify(viaClientApi.body)}; joining through roomserver.federation joinRemote instead`);
      await jhs.joinRemote(juser, roomId, ihs.serverName);
    }
  }

  let room: string;

  it('1. alice on hs1 creates a room and invites dan on hs2; dan joins; messages flow both ways; both hold the same state', async () => {
    room = (await hs1.ok<{ room_id: string }>('POST', v3('createRoom'), { token: hs1.token(alice), body: { preset: 'private_chat', name: 'consistency' } })).room_id;
    await inviteAndJoin(room, [hs1, alice], [hs2, dan]);
    const sent: string[] = [];
    for (let i = 0; i < 3; i++) {
      sent.push(await hs1.send(alice, room, `from alice ${i}`));
      sent.push(await hs2.send(dan, room, `from dan ${i}`));
    }
    await allSee([[hs1, alice], [hs2, dan]], room, sent);
    const state = await converged([hs1, hs2], room);
    expect(state.get(`m.room.member\u0000${dan}`)).toBeDefined();
    // The client API of both servers shows that same state.
    expect(await hs2.clientState(dan, room)).toEqual(await hs1.clientState(alice, room));
  });

  it('2. hs2 stopped; hs1 sends 100 messages and renames the room; hs2 restarted gets every event and the same state', async () => {
    await hs1.ok('POST', v3(`rooms/${enc(room)}/invite`), { token: hs1.token(alice), body: { user_id: bob } });
    await hs1.ok('POST', v3(`join/${enc(room)}`), { token: hs1.token(bob), body: {} });
    await converged([hs1, hs2], room);
    await hs2.stop();
    const sent: string[] = [];
    for (let i = 0; i < 100; i++) sent.push(await hs1.send(i % 2 === 0 ? alice : bob, room, `while hs2 is down ${i}`));
    const rename = await hs1.setState(alice, room, 'm.room.name', '', { name: 'renamed while hs2 was down' });
    expect(rename.status).toBe(200);
    sent.push(rename.body.event_id);
    await hs2.restart();
    await allSee([[hs2, dan]], room, sent);
    const state = await converged([hs1, hs2], room);
    expect(state.get('m.room.name\u0000')).toBe(rename.body.event_id);
  });

  it('3. a partition where both sides act at once, incl. a ban against a power level change, converges on every server once healed', async () => {
    // Three servers in one room: alice (hs1, PL 100), dan (hs2, PL 50 with ban power), erin (hs3).
    const roomId = (await hs1.ok<{ room_id: string }>('POST', v3('createRoom'), {
      token: hs1.token(alice),
      body: { preset: 'private_chat', power_level_content_override: { users: { [alice]: 100, [dan]: 50 }, ban: 50, kick: 50 } },
    })).room_id;
    await inviteAndJoin(roomId, [hs1, alice], [hs2, dan]);
    await inviteAndJoin(roomId, [hs1, alice], [hs3, erin]);
    await converged([hs1, hs2, hs3], roomId);

    partition([hs1], [hs2, hs3]);
    // hs1's side: alice takes dan's power away. hs2's side, at the same time: dan bans erin.
    const [pl, ban] = await Promise.all([
      hs1.setState(alice, roomId, 'm.room.power_levels', '', { users: { [alice]: 100 }, ban: 50, kick: 50 }),
      hs2.call<{}>('POST', v3(`rooms/${enc(roomId)}/ban`), { token: hs2.token(dan), body: { user_id: erin, reason: 'partition' } }),
    ]);
    expect(pl.status).toBe(200);
    expect(ban.status).toBe(200);
    const a = await hs1.send(alice, roomId, 'alice during the partition');
    const d = await hs2.send(dan, roomId, 'dan during the partition');
    heal([hs1, hs2, hs3]);
    // Something new on each side after healing makes each server pull what it missed.
    const a2 = await hs1.send(alice, roomId, 'alice after healing');
    await allSee([[hs1, alice], [hs2, dan]], roomId, [a, d, a2]);
    const state = await converged([hs1, hs2, hs3], roomId);
    // The power level change comes first in the resolution (it is a power event of higher power):
    // dan had no ban power left, so the ban is rejected and erin stays joined.
    expect(state.get('m.room.power_levels\u0000')).toBe(pl.body.event_id);
    const erinMember = state.get(`m.room.member\u0000${erin}`)!;
    const memberEvent = await hs1.ok<any>('GET', v3(`rooms/${enc(roomId)}/event/${enc(erinMember)}`), { token: hs1.token(alice) });
    expect(memberEvent.content.membership).toBe('join');
  });
});
