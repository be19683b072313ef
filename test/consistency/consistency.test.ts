/**
 * Eventual consistency between homeservers of ours (issue 6): two and three servers on
 * loopback, each with its own PostgreSQL database and NATS prefix, federating over HTTPS with a
 * test CA, driven through the client API over HTTP. No timing assertions: every wait is a poll
 * with a generous deadline.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFederationClient, readFederationEnvironment } from '@tessera/federation-client';
import { generateSigningKey } from '@tessera/protocol';
import { services, uniqueName } from '@tessera/testing';
import { buildRemotePdu } from '../federation/pdus.js';
import { converged, createFederationPki, enc, eventually, heal, partition, TestHomeserver, v3, type FederationPki } from './harness.js';

/** A bound for a whole scenario on a busy 2-core machine; the waits inside are polls. */
const TEST_TIMEOUT = 300_000;

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

  /** A user joins a room another server holds, through the client API's /join with a server_name hint. */
  async function join(roomId: string, [jhs, juser]: [TestHomeserver, string], via: TestHomeserver) {
    await jhs.ok('POST', v3(`join/${enc(roomId)}?server_name=${enc(via.serverName)}`), { token: jhs.token(juser), body: {} });
  }

  async function publicRoom(hs: TestHomeserver, creator: string, extra: Record<string, unknown> = {}): Promise<string> {
    return (await hs.ok<{ room_id: string }>('POST', v3('createRoom'), { token: hs.token(creator), body: { preset: 'public_chat', ...extra } })).room_id;
  }

  it('1. alice on hs1 creates a room and invites dan on hs2; dan joins; messages flow both ways; both hold the same state', async () => {
    const room = (await hs1.ok<{ room_id: string }>('POST', v3('createRoom'), { token: hs1.token(alice), body: { preset: 'private_chat', name: 'consistency' } })).room_id;
    await hs1.ok('POST', v3(`rooms/${enc(room)}/invite`), { token: hs1.token(alice), body: { user_id: dan } });
    // The invite reaches dan's /sync on hs2 (hs1 had hs2 sign it through /invite).
    let last: unknown;
    await eventually(() => `${dan} sees the invite in /sync (last /sync rooms: ${JSON.stringify(last)})`, async () => {
      const sync = await hs2.ok<any>('GET', v3('sync?timeout=0'), { token: hs2.token(dan) });
      last = sync.rooms;
      return Boolean(sync.rooms?.invite?.[room]);
    });
    await join(room, [hs2, dan], hs1);
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
  }, TEST_TIMEOUT);

  it('2. hs2 stopped; hs1 sends 100 messages and renames the room; hs2 restarted gets every event and the same state', async () => {
    const room = await publicRoom(hs1, alice, { name: 'before the outage' });
    await hs1.ok('POST', v3(`join/${enc(room)}`), { token: hs1.token(bob), body: {} });
    await join(room, [hs2, dan], hs1);
    await converged([hs1, hs2], room);
    await hs2.stop();
    const sent: string[] = [];
    let rename: Awaited<ReturnType<TestHomeserver['setState']>>;
    try {
      for (let i = 0; i < 100; i++) sent.push(await hs1.send(i % 2 === 0 ? alice : bob, room, `while hs2 is down ${i}`));
      rename = await hs1.setState(alice, room, 'm.room.name', '', { name: 'renamed while hs2 was down' });
      expect(rename.status).toBe(200);
      sent.push(rename.body.event_id);
    } finally {
      await hs2.restart();
    }
    await allSee([[hs2, dan]], room, sent);
    const state = await converged([hs1, hs2], room);
    expect(state.get('m.room.name\u0000')).toBe(rename.body.event_id);
  }, TEST_TIMEOUT);

  it('2b. a long outage: hs1 sends only the latest event of the room (catch-up mode) and hs2 fetches the gap itself', async () => {
    const room = await publicRoom(hs1, alice, { name: 'long outage' });
    await join(room, [hs2, dan], hs1);
    await converged([hs1, hs2], room);
    await hs2.stop();
    const sent: string[] = [];
    let rename: Awaited<ReturnType<TestHomeserver['setState']>>;
    try {
      // hs1's sender counts more than 20 undelivered PDUs for a server as a long outage. The gap
      // is longer than one get_missing_events answer (at most 100 events): hs2 pages backwards.
      process.env.FANOUT_CATCH_UP_AFTER = '20';
      await hs1.stop();
      await hs1.restart();
      for (let i = 0; i < 250; i++) sent.push(await hs1.send(alice, room, `during a long outage ${i}`));
      rename = await hs1.setState(alice, room, 'm.room.name', '', { name: 'renamed during a long outage' });
      expect(rename.status).toBe(200);
      sent.push(rename.body.event_id);
    } finally {
      delete process.env.FANOUT_CATCH_UP_AFTER;
      await hs2.restart();
    }
    const state = await converged([hs1, hs2], room);
    expect(state.get('m.room.name\u0000')).toBe(rename.body.event_id);
    await allSee([[hs2, dan]], room, sent);
    // hs1 pushed only the latest event in /send (hs2's record of applied transactions lists the
    // PDUs of each); the 250 messages came through hs2's own get_missing_events.
    const { rows } = await hs2.db.query<{ response: string }>('SELECT response FROM federation_inbound_txns WHERE origin = $1', [hs1.serverName]);
    const pushed = new Set(rows.flatMap((r) => Object.keys((JSON.parse(r.response) as { pdus?: object }).pdus ?? {})));
    expect(pushed.has(rename.body.event_id)).toBe(true);
    expect(sent.slice(0, 250).filter((id) => pushed.has(id))).toEqual([]);
  }, TEST_TIMEOUT);

  it('3. a partition where both sides act at once, incl. a ban against a power level change, converges on every server once healed', async () => {
    // Three servers in one room: alice (hs1, PL 100), dan (hs2, PL 50 with ban power), erin (hs3).
    const roomId = await publicRoom(hs1, alice, { power_level_content_override: { users: { [alice]: 100, [dan]: 50 }, ban: 50, kick: 50 } });
    await join(roomId, [hs2, dan], hs1);
    await join(roomId, [hs3, erin], hs1);
    await converged([hs1, hs2, hs3], roomId);

    partition([hs1], [hs2, hs3]);
    let pl: Awaited<ReturnType<TestHomeserver['setState']>>;
    let a: string;
    let d: string;
    try {
      // hs1's side: alice takes dan's power away. hs2's side, at the same time: dan bans erin.
      let ban: { status: number };
      [pl, ban] = await Promise.all([
        hs1.setState(alice, roomId, 'm.room.power_levels', '', { users: { [alice]: 100 }, ban: 50, kick: 50 }),
        hs2.call<object>('POST', v3(`rooms/${enc(roomId)}/ban`), { token: hs2.token(dan), body: { user_id: erin, reason: 'partition' } }),
      ]);
      expect(pl.status).toBe(200);
      expect(ban.status).toBe(200);
      a = await hs1.send(alice, roomId, 'alice during the partition');
      d = await hs2.send(dan, roomId, 'dan during the partition');
      // The sides really diverge: hs3 (dan's side) gets the ban, hs1 keeps its own view.
      const hs2View = await hs2.storedState(roomId);
      const banId = hs2View.get(`m.room.member\u0000${erin}`)!;
      await eventually('hs3 sees the ban from hs2 during the partition', async () => (await hs3.storedState(roomId)).get(`m.room.member\u0000${erin}`) === banId);
      const hs1View = await hs1.storedState(roomId);
      expect(hs1View.get('m.room.power_levels\u0000')).toBe(pl.body.event_id);
      expect(hs2View.get('m.room.power_levels\u0000')).not.toBe(pl.body.event_id);
      expect(hs1View.get(`m.room.member\u0000${erin}`)).not.toBe(banId);
    } finally {
      heal([hs1, hs2, hs3]);
    }
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
  }, TEST_TIMEOUT);

  it('4. a hostile sender: bad signatures, bad hashes and unauthorized state changes are refused and the room carries on', async () => {
    const roomId = await publicRoom(hs1, alice);
    await join(roomId, [hs2, dan], hs1);
    await join(roomId, [hs3, erin], hs1);
    const before = await converged([hs1, hs2, hs3], roomId);

    // hs3 turns hostile: it authenticates its transactions properly (its own key), but the PDUs are bad.
    const evil = createFederationClient(hs3.serverName, hs3.signingKey, readFederationEnvironment());
    try {
      const stranger = generateSigningKey('stranger');
      const msg = (body: string) => ({ type: 'm.room.message', sender: erin, content: { msgtype: 'm.text', body } });
      const forged = await buildRemotePdu(hs1.db, roomId, msg('signed with a key hs3 never published'), hs3.serverName, stranger);
      const impersonation = await buildRemotePdu(hs1.db, roomId, { ...msg('speaking for dan'), sender: dan }, hs3.serverName, hs3.signingKey);
      const hashed = await buildRemotePdu(hs1.db, roomId, msg('original text'), hs3.serverName, hs3.signingKey);
      const badHash = { ...hashed.pdu, content: { msgtype: 'm.text', body: 'altered after signing' } };
      const pl = (await hs1.storedState(roomId)).get('m.room.power_levels\u0000')!;
      const plContent = (await hs1.ok<any>('GET', v3(`rooms/${enc(roomId)}/event/${enc(pl)}`), { token: hs1.token(alice) })).content;
      const grab = await buildRemotePdu(hs1.db, roomId, { type: 'm.room.power_levels', stateKey: '', sender: erin, content: { ...plContent, users: { ...plContent.users, [erin]: 100 } } }, hs3.serverName, hs3.signingKey);
      const kick = await buildRemotePdu(hs1.db, roomId, { type: 'm.room.member', stateKey: alice, sender: erin, content: { membership: 'leave' } }, hs3.serverName, hs3.signingKey);
      for (const target of [hs1, hs2]) {
        const res = await evil.put<any>(target.serverName, `/_matrix/federation/v1/send/hostile-${uniqueName()}`, {
          origin: hs3.serverName, origin_server_ts: Date.now(), pdus: [forged.pdu, impersonation.pdu, badHash, grab.pdu, kick.pdu],
        });
        expect(res.pdus[forged.eventId].error).toBeTruthy();
        expect(res.pdus[impersonation.eventId].error).toBeTruthy();
        expect(res.pdus[grab.eventId].error).toBeTruthy();
        expect(res.pdus[kick.eventId].error).toBeTruthy();
        // Refused events are not in the timeline; the one with a bad hash is kept only redacted.
        expect(await target.hasEvents([forged.eventId])).toBe(false);
        expect(await target.hasEvents([impersonation.eventId])).toBe(false);
        expect(await target.hasEvents([grab.eventId])).toBe(false);
        expect(await target.hasEvents([kick.eventId])).toBe(false);
        const { rows } = await target.db.query<{ json: string }>('SELECT json FROM events WHERE event_id = $1', [hashed.eventId]);
        for (const r of rows) expect(JSON.parse(r.json).content).toEqual({});
      }
    } finally {
      evil.close();
    }

    // The room carries on: messages from every server reach every server, and the state is what it was.
    const sent = [await hs1.send(alice, roomId, 'still here'), await hs2.send(dan, roomId, 'me too'), await hs3.send(erin, roomId, 'sorry')];
    await allSee([[hs1, alice], [hs2, dan], [hs3, erin]], roomId, sent);
    const after = await converged([hs1, hs2, hs3], roomId);
    expect(after).toEqual(before);
  }, TEST_TIMEOUT);
});
