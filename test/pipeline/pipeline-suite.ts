/**
 * The pipeline suite, run on both runtimes (see harness.ts). Everything goes through the bus
 * as client-api and federation-ingress would; assertions read the event log.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BusError, ROOMSERVER_INPUT, requestForRoom,
  type CreateRoomReply, type EventIdReply, type InputPdusReply, type RoomServerRequest, type StreamEventNotification,
} from '@tessera/bus';
import { generateSigningKey, getRoomVersion, stateKey, type Pdu } from '@tessera/protocol';
import {
  getCurrentState, getEvent, getEvents, getForwardExtremities, getRoom, getRoomTimeline, getStateAfterEvent, getStateBeforeEvent,
} from '@tessera/storage';
import { buildLocalEvent, chooseAuthEvents } from '../../libs/services/room-server/src/event-builder.js';
import type { Pipeline } from './harness.js';

/** Registers nothing: for a case that does not apply to a runtime (not a skip). */
const notApplicable = ((..._args: unknown[]) => undefined) as unknown as typeof it;

async function ask<T>(p: Pipeline, req: RoomServerRequest, timeoutMs = 30_000): Promise<T> {
  // As client-api does: to the replica owning the room's partition.
  return requestForRoom<RoomServerRequest, T>(p.bus, ROOMSERVER_INPUT, 'roomId' in req ? req.roomId : undefined, req, { timeoutMs });
}

/** Straight to the plain subject's queue group: any replica decides (what happens while a partition has no owner). */
async function askAnyReplica<T>(p: Pipeline, req: RoomServerRequest, timeoutMs = 30_000): Promise<T> {
  return p.bus.request<RoomServerRequest, T>(ROOMSERVER_INPUT, req, { timeoutMs });
}

async function refusal(promise: Promise<unknown>): Promise<BusError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof BusError) return err;
    throw err;
  }
  throw new Error('expected a refusal, the operation succeeded');
}

function stateOf(triples: [string, string, string][]): Map<string, string> {
  return new Map(triples.map(([t, k, id]) => [stateKey(t, k), id]));
}

/** What must not move when an operation is refused. */
async function roomMark(p: Pipeline, roomId: string) {
  const room = await getRoom(p.db, roomId);
  const ext = await getForwardExtremities(p.db, roomId);
  return { sequence: room?.sequence, extremities: ext.map((e) => e.eventId).sort() };
}

/** Every prev_event of every timeline event is stored, and the extremities are exactly the childless timeline events. */
async function checkDag(p: Pipeline, roomId: string): Promise<void> {
  const { rows } = await p.db.query<{ event_id: string; json: string }>(
    `SELECT e.event_id, e.json FROM events e JOIN rooms r ON r.room_nid = e.room_nid
     WHERE r.room_id = $1 AND e.stream_pos IS NOT NULL`,
    [roomId],
  );
  const ids = new Set(rows.map((r) => r.event_id));
  const cited = new Set<string>();
  for (const r of rows) {
    const prevs = JSON.parse(r.json).prev_events as string[];
    for (const prev of prevs) {
      expect(ids.has(prev), `prev_event ${prev} of ${r.event_id} is stored`).toBe(true);
      cited.add(prev);
    }
  }
  const childless = [...ids].filter((id) => !cited.has(id)).sort();
  const ext = (await getForwardExtremities(p.db, roomId)).map((e) => e.eventId).sort();
  expect(ext).toEqual(childless);
}

export function pipelineSuite(name: string, open: () => Promise<Pipeline>, options: { realKills: boolean }) {
  describe(name, () => {
    let p: Pipeline;
    const alice = () => `@alice:${p.serverName}`;
    const bob = () => `@bob:${p.serverName}`;
    const carol = () => `@carol:${p.serverName}`;

    beforeAll(async () => {
      p = await open();
    }, 180_000);
    afterAll(async () => {
      await p?.close();
    });

    it('createRoom applies presets, name, topic, invites, initial state and power level overrides', async () => {
      const pub = await ask<CreateRoomReply>(p, {
        op: 'createRoom', sender: alice(), preset: 'public_chat', name: 'Lobby', topic: 'hello',
        invite: [bob()], initial_state: [{ type: 'm.room.encryption', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
        power_level_content_override: { events_default: 10 },
      });
      const state = stateOf(await getCurrentState(p.db, pub.roomId));
      const content = async (type: string, key = '') => (await getEvent(p.db, state.get(stateKey(type, key))!))!.json.content;
      expect(pub.roomVersion).toBe('10');
      expect(await content('m.room.join_rules')).toEqual({ join_rule: 'public' });
      expect(await content('m.room.history_visibility')).toEqual({ history_visibility: 'shared' });
      expect(state.has(stateKey('m.room.guest_access', ''))).toBe(false);
      expect(await content('m.room.name')).toEqual({ name: 'Lobby' });
      // The topic also in its rich form (spec v1.15 m.topic: text/plain), as Synapse writes it.
      expect(await content('m.room.topic')).toEqual({ topic: 'hello', 'm.topic': { 'm.text': [{ body: 'hello', mimetype: 'text/plain' }] } });
      expect((await content('m.room.member', bob())).membership).toBe('invite');
      expect((await content('m.room.power_levels')).events_default).toBe(10);
      expect((await content('m.room.power_levels')).users).toEqual({ [alice()]: 100 });
      // The spec's order: create, creator join, power levels, join rules, history visibility, initial state, name, topic, invites.
      const types = (await getEvents(p.db, pub.eventIds));
      expect(pub.eventIds.map((id) => types.get(id)!.type)).toEqual([
        'm.room.create', 'm.room.member', 'm.room.power_levels', 'm.room.join_rules', 'm.room.history_visibility',
        'm.room.encryption', 'm.room.name', 'm.room.topic', 'm.room.member',
      ]);

      const trusted = await ask<CreateRoomReply>(p, { op: 'createRoom', sender: alice(), preset: 'trusted_private_chat', invite: [bob()], is_direct: true });
      const ts = stateOf(await getCurrentState(p.db, trusted.roomId));
      const pl = (await getEvent(p.db, ts.get(stateKey('m.room.power_levels', ''))!))!.json.content;
      expect(pl.users[bob()]).toBe(100);
      expect((await getEvent(p.db, ts.get(stateKey('m.room.join_rules', ''))!))!.json.content.join_rule).toBe('invite');
      expect((await getEvent(p.db, ts.get(stateKey('m.room.guest_access', ''))!))!.json.content.guest_access).toBe('can_join');
      expect((await getEvent(p.db, ts.get(stateKey('m.room.member', bob()))!))!.json.content).toEqual({ membership: 'invite', is_direct: true });

      const v12 = await ask<CreateRoomReply>(p, { op: 'createRoom', sender: alice(), room_version: '12' });
      expect(v12.roomId).toBe(`!${v12.eventIds[0]!.slice(1)}`);
      expect((await refusal(ask(p, { op: 'createRoom', sender: alice(), room_version: '99' }))).code).toBe('M_UNSUPPORTED_ROOM_VERSION');
    });

    it('refuses unauthorized operations with the reason and changes nothing', async () => {
      const { roomId } = await ask<CreateRoomReply>(p, { op: 'createRoom', sender: alice(), preset: 'public_chat' });
      const before = await roomMark(p, roomId);
      const nonMember = await refusal(ask(p, { op: 'sendEvent', roomId, sender: carol(), type: 'm.room.message', content: { body: 'hi' } }));
      expect(nonMember.code).toBe('M_FORBIDDEN');
      expect(nonMember.message).toMatch(/not joined|not in the room|member/i);
      expect(await roomMark(p, roomId)).toEqual(before);

      await ask<EventIdReply>(p, { op: 'membership', action: 'join', roomId, sender: bob() });
      const joined = await roomMark(p, roomId);
      const pl = await refusal(ask(p, {
        op: 'sendEvent', roomId, sender: bob(), type: 'm.room.power_levels', stateKey: '', content: { users: { [bob()]: 100 } },
      }));
      expect(pl.code).toBe('M_FORBIDDEN');
      expect(await roomMark(p, roomId)).toEqual(joined);

      await ask<EventIdReply>(p, { op: 'membership', action: 'ban', roomId, sender: alice(), target: bob(), reason: 'spam' });
      const banned = await roomMark(p, roomId);
      const join = await refusal(ask(p, { op: 'membership', action: 'join', roomId, sender: bob() }));
      expect(join.code).toBe('M_FORBIDDEN');
      expect(join.message).toMatch(/ban/i);
      expect(await roomMark(p, roomId)).toEqual(banned);

      expect((await refusal(ask(p, { op: 'membership', action: 'unban', roomId, sender: alice(), target: carol() }))).code).toBe('M_FORBIDDEN');
      expect((await refusal(ask(p, { op: 'sendEvent', roomId: '!nope:x', sender: alice(), type: 'm.room.message', content: {} }))).code).toBe('M_NOT_FOUND');
      expect((await refusal(ask(p, { op: 'sendEvent', roomId, sender: alice(), type: 'm.room.message', content: { body: 'x'.repeat(70_000) } }))).code).toBe('M_TOO_LARGE');
      expect((await refusal(ask(p, { op: 'sendEvent', roomId, sender: 'nobody', type: 'm.room.message', content: {} } as RoomServerRequest))).code).toBe('M_BAD_JSON');
      expect(await roomMark(p, roomId)).toEqual(banned);
    });

    it('keeps the state before and after each event, and redaction removes content from storage', async () => {
      const { roomId } = await ask<CreateRoomReply>(p, { op: 'createRoom', sender: alice(), topic: 'first' });
      const msg1 = await ask<EventIdReply>(p, { op: 'sendEvent', roomId, sender: alice(), type: 'm.room.message', content: { body: 'secret' } });
      const topic = await ask<EventIdReply>(p, { op: 'sendEvent', roomId, sender: alice(), type: 'm.room.topic', stateKey: '', content: { topic: 'second' } });
      const before = stateOf((await getStateBeforeEvent(p.db, topic.eventId))!);
      const after = stateOf((await getStateAfterEvent(p.db, topic.eventId))!);
      expect(before.get(stateKey('m.room.topic', ''))).not.toBe(topic.eventId);
      expect(after.get(stateKey('m.room.topic', ''))).toBe(topic.eventId);
      expect(stateOf((await getStateBeforeEvent(p.db, msg1.eventId))!)).toEqual(stateOf((await getStateAfterEvent(p.db, msg1.eventId))!));

      const red = await ask<EventIdReply>(p, { op: 'redact', roomId, sender: alice(), redacts: msg1.eventId, reason: 'oops' });
      const stored = (await getEvent(p.db, msg1.eventId))!;
      expect(stored.json.content).toEqual({});
      expect(stored.redactedBy).toBe(red.eventId);
      const { rows } = await p.db.query<{ n: number }>("SELECT count(*) AS n FROM events WHERE json LIKE '%secret%'");
      expect(rows[0]!.n).toBe(0);
      await checkDag(p, roomId);
    });

    it('idempotent sends: the same client transaction id gives the same event', async () => {
      const { roomId } = await ask<CreateRoomReply>(p, { op: 'createRoom', sender: alice() });
      const send = () => ask<EventIdReply>(p, { op: 'sendEvent', roomId, sender: alice(), type: 'm.room.message', content: { body: 'once' }, txn: { deviceId: 'D1', txnId: 'tx-1' } });
      const [a, b] = await Promise.all([send(), send()]);
      const c = await send();
      expect(b.eventId).toBe(a.eventId);
      expect(c.eventId).toBe(a.eventId);
      const timeline = await getRoomTimeline(p.db, roomId, { direction: 'b', limit: 50 });
      expect(timeline.filter((e) => e.type === 'm.room.message')).toHaveLength(1);
    });

    it('200 concurrent sends through two replicas (half to the room\'s owner, half to any replica): each persisted once, authorized, DAG consistent, announced', async () => {
      const { roomId } = await ask<CreateRoomReply>(p, { op: 'createRoom', sender: alice(), preset: 'public_chat' });
      const seen = new Set<string>();
      const sub = await p.bus.subscribe<StreamEventNotification>('stream.events', (n) => {
        if (n.roomId === roomId) seen.add(n.eventId);
      });
      const ids = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          // Both replicas decide for the room at once: only the append sequence keeps them apart.
          (i % 2 === 0 ? ask<EventIdReply> : askAnyReplica<EventIdReply>)(p, { op: 'sendEvent', roomId, sender: alice(), type: 'm.room.message', content: { body: `m${i}` }, txn: { deviceId: 'D', txnId: `c${i}` } }, 120_000),
        ),
      );
      expect(new Set(ids.map((r) => r.eventId)).size).toBe(200);
      const stored = await getEvents(p.db, ids.map((r) => r.eventId));
      expect(stored.size).toBe(200);
      for (const e of stored.values()) {
        expect(e.rejectedReason).toBeNull();
        expect(e.softFailed).toBe(false);
        expect(e.streamPos).not.toBeNull();
      }
      const { rows } = await p.db.query<{ n: number; d: number }>(
        `SELECT count(*) AS n, count(DISTINCT e.json::jsonb -> 'content' ->> 'body') AS d FROM events e JOIN rooms r ON r.room_nid = e.room_nid
         WHERE r.room_id = $1 AND e.type_nid = (SELECT type_nid FROM event_types WHERE event_type = 'm.room.message')`,
        [roomId],
      );
      expect(rows[0]).toEqual({ n: 200, d: 200 });
      await checkDag(p, roomId);
      // Notifications are wake-ups: wait until the last one arrived (the bus is asynchronous).
      for (let i = 0; i < 100 && seen.size < 200; i++) await new Promise((r) => setTimeout(r, 50));
      await sub.unsubscribe();
      for (const r of ids) expect(seen.has(r.eventId)).toBe(true);
    }, 180_000);

    it('events from another server: forks resolved by state resolution, rejected and soft-failed events recorded', async () => {
      const remote = 'remote.test';
      const remoteKey = generateSigningKey();
      const dave = `@dave:${remote}`;
      const { roomId } = await ask<CreateRoomReply>(p, {
        op: 'createRoom', sender: alice(), preset: 'public_chat', power_level_content_override: { users: { [alice()]: 100, [dave]: 50 } },
      });
      const rv = getRoomVersion('10');
      const remoteEvent = async (type: string, content: Record<string, unknown>, sk: string | undefined, prevIds: string[], known?: Map<string, string>) => {
        const sender = dave;
        // A remote server cites auth events from the state it knows (by default, ours now).
        const state = known ?? stateOf(await getCurrentState(p.db, roomId));
        const auth = chooseAuthEvents({ type, sender, stateKey: sk, content }, state, rv);
        const prevs = await getEvents(p.db, prevIds);
        const built = buildLocalEvent(roomId, rv, { type, sender, stateKey: sk, content },
          prevIds.map((id) => ({ eventId: id, depth: prevs.get(id)!.depth })),
          auth.map((id) => ({ eventId: id, depth: 0 })), { serverName: remote, key: remoteKey }, Date.now());
        return built;
      };
      const input = (pdus: Pdu[]) => ask<InputPdusReply>(p, { op: 'inputPdus', roomId, roomVersion: '10', origin: remote, pdus });

      // A non-member's message is rejected, with the reason stored.
      let ext = (await getForwardExtremities(p.db, roomId)).map((e) => e.eventId);
      const intruder = await remoteEvent('m.room.message', { body: 'let me in' }, undefined, ext);
      const r0 = await input([intruder.pdu]);
      expect(r0.results[intruder.eventId]!.accepted).toBe(false);
      expect((await getEvent(p.db, intruder.eventId))!.rejectedReason).toMatch(/member|join/i);

      // dave joins; then two topic changes citing the same prev event: a fork.
      const join = await remoteEvent('m.room.member', { membership: 'join' }, dave, ext);
      expect((await input([join.pdu])).results[join.eventId]).toEqual({ accepted: true });
      const a = await remoteEvent('m.room.topic', { topic: 'A' }, '', [join.eventId]);
      const b = await remoteEvent('m.room.topic', { topic: 'B' }, '', [join.eventId]);
      const r1 = await input([a.pdu, b.pdu]);
      expect(r1.results[a.eventId]).toEqual({ accepted: true });
      expect(r1.results[b.eventId]).toEqual({ accepted: true });
      ext = (await getForwardExtremities(p.db, roomId)).map((e) => e.eventId).sort();
      expect(ext).toEqual([a.eventId, b.eventId].sort());
      const current = stateOf(await getCurrentState(p.db, roomId)).get(stateKey('m.room.topic', ''));
      expect([a.eventId, b.eventId]).toContain(current);
      // The next local event merges the fork.
      const merge = await ask<EventIdReply>(p, { op: 'sendEvent', roomId, sender: alice(), type: 'm.room.message', content: { body: 'merge' } });
      expect([...(await getEvent(p.db, merge.eventId))!.json.prev_events].sort()).toEqual(ext);
      expect((await getForwardExtremities(p.db, roomId)).map((e) => e.eventId)).toEqual([merge.eventId]);
      expect(stateOf((await getStateAfterEvent(p.db, merge.eventId))!).get(stateKey('m.room.topic', ''))).toBe(current);

      // alice bans dave; a message dave sends citing an event before the ban is soft-failed.
      const beforeBan = stateOf(await getCurrentState(p.db, roomId));
      await ask<EventIdReply>(p, { op: 'membership', action: 'ban', roomId, sender: alice(), target: dave });
      const late = await remoteEvent('m.room.message', { body: 'from the past' }, undefined, [merge.eventId], beforeBan);
      const r2 = await input([late.pdu]);
      expect(r2.results[late.eventId]).toEqual({ accepted: true, softFailed: true });
      const stored = (await getEvent(p.db, late.eventId))!;
      expect(stored.softFailed).toBe(true);
      expect(stored.streamPos).toBeNull();
      await checkDag(p, roomId);
    });

    // Only where room-server and persistence are processes of their own: in the embedded runtime
    // they share one process with the test, and killing it is not a case of this suite.
    (options.realKills ? it : notApplicable)('kill -9 of a room-server and of persistence mid-burst: no acknowledged event lost, no transaction applied twice', async () => {
      const { roomId } = await ask<CreateRoomReply>(p, { op: 'createRoom', sender: alice() });
      const total = 150;
      const acked = new Map<string, string>();
      // A client retries a failed send with the same transaction id, as clients do.
      const send = async (i: number) => {
        for (let attempt = 0; attempt < 60; attempt++) {
          try {
            const r = await ask<EventIdReply>(p, { op: 'sendEvent', roomId, sender: alice(), type: 'm.room.message', content: { body: `k${i}` }, txn: { deviceId: 'K', txnId: `k${i}` } }, 10_000);
            acked.set(`k${i}`, r.eventId);
            return;
          } catch (err) {
            if (!(err instanceof BusError) || err.code.startsWith('M_')) throw err;
            await new Promise((r) => setTimeout(r, 250));
          }
        }
        throw new Error(`send k${i} never succeeded`);
      };
      const burst = Promise.all(Array.from({ length: total }, (_, i) => send(i)));
      await new Promise((r) => setTimeout(r, 300));
      await p.killRoomServer(0);
      await new Promise((r) => setTimeout(r, 300));
      await p.killPersistence();
      await new Promise((r) => setTimeout(r, 500));
      await p.startPersistence();
      await p.startRoomServer(0);
      await burst;
      expect(acked.size).toBe(total);
      const stored = await getEvents(p.db, [...acked.values()]);
      expect(stored.size).toBe(total);
      const { rows } = await p.db.query<{ body: string; n: number }>(
        `SELECT e.json::jsonb -> 'content' ->> 'body' AS body, count(*) AS n FROM events e JOIN rooms r ON r.room_nid = e.room_nid
         WHERE r.room_id = $1 AND e.type_nid = (SELECT type_nid FROM event_types WHERE event_type = 'm.room.message')
         GROUP BY 1 HAVING count(*) > 1`,
        [roomId],
      );
      expect(rows).toEqual([]);
      await checkDag(p, roomId);
    }, 240_000);
  });
}
