/**
 * Backfill: a user who joins a room over federation scrolls back through its history from
 * before the join. Two homeservers of ours on loopback (test/consistency/harness.ts), each with
 * every service, its own PostgreSQL database and NATS prefix, federating over HTTPS; every JSON
 * answer validated against the spec's OpenAPI document (TestHomeserver.call). hs2 holds only
 * the room's state and dan's join after the join; /messages backfills the rest from hs1
 * (GET /_matrix/federation/v1/backfill), checked, authorised and stored below every position.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getCurrentStateEvent, getEvent, getForwardExtremities, getRoom } from '@tessera/storage';
import { services } from '@tessera/testing';
import { createFederationPki, enc, TestHomeserver, v3, type FederationPki } from '../consistency/harness.js';

const TEST_TIMEOUT = 240_000;

interface ClientEvent {
  event_id: string;
  type: string;
  state_key?: string;
  sender: string;
  content: Record<string, any>;
}

interface MessagesPage {
  start: string;
  end?: string;
  chunk: ClientEvent[];
}

describe.skipIf(!services.postgres || !services.nats)('backfill over federation', () => {
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

  async function createRoom(historyVisibility: string): Promise<string> {
    return (await hs1.ok<{ room_id: string }>('POST', v3('createRoom'), {
      token: hs1.token(alice),
      body: { preset: 'public_chat', initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: historyVisibility } }] },
    })).room_id;
  }

  async function join(roomId: string): Promise<string> {
    const joined = await hs2.ok<{ room_id: string }>('POST', v3(`join/${enc(roomId)}?server_name=${enc(hs1.serverName)}`), { token: hs2.token(dan), body: {} });
    expect(joined.room_id).toBe(roomId);
    return (await getCurrentStateEvent(hs2.db, roomId, 'm.room.member', dan))!.eventId;
  }

  /** Every page of /messages backwards from the latest event, until the answer has no `end`. */
  async function paginateAll(roomId: string, limit: number): Promise<ClientEvent[]> {
    const all: ClientEvent[] = [];
    let from: string | undefined;
    for (let pages = 0; pages < 100; pages++) {
      const page = await hs2.ok<MessagesPage>('GET', v3(`rooms/${enc(roomId)}/messages?dir=b&limit=${limit}${from ? `&from=${enc(from)}` : ''}`), { token: hs2.token(dan) });
      expect(page.chunk.length).toBeLessThanOrEqual(limit);
      all.push(...page.chunk);
      if (page.end === undefined) return all;
      from = page.end;
    }
    throw new Error('/messages never ended');
  }

  async function headOnHs2(roomId: string) {
    return {
      state: [...(await hs2.storedState(roomId))].sort(),
      extremities: (await getForwardExtremities(hs2.db, roomId)).map((e) => e.eventId).sort(),
      sequence: (await getRoom(hs2.db, roomId))?.sequence,
      members: await hs2.ok('GET', v3(`rooms/${enc(roomId)}/joined_members`), { token: hs2.token(dan) }),
    };
  }

  it('pages back through the history from before the join, in order, once, up to the creation events', async () => {
    const roomId = await createRoom('shared');
    const sent: string[] = [];
    for (let i = 0; i < 60; i++) sent.push(await hs1.send(alice, roomId, `m${i}`));
    const joinId = await join(roomId);

    // Before: hs2 holds the join as its only timeline event; dan's /sync is at rest.
    const initial = await hs2.ok<{ next_batch: string }>('GET', v3('sync?timeout=0'), { token: hs2.token(dan) });
    const head = await headOnHs2(roomId);
    const since = initial.next_batch;
    const longPoll = hs2.ok<{ next_batch: string; rooms?: { join?: Record<string, { timeline?: { events?: unknown[] } }> } }>(
      'GET', v3(`sync?timeout=4000&since=${enc(since)}`), { token: hs2.token(dan) },
    );

    const events = await paginateAll(roomId, 20);
    const ids = events.map((e) => e.event_id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids[0]).toBe(joinId);
    const messages = events.filter((e) => e.type === 'm.room.message');
    expect(messages.map((e) => e.content.body)).toEqual(sent.map((_, i) => `m${59 - i}`));
    expect(messages.map((e) => e.event_id)).toEqual([...sent].reverse());
    // After the messages, the creation events, the create event last; nothing between the join and m59.
    const firstMessage = ids.indexOf(sent[59]!);
    expect(firstMessage).toBe(1);
    const creation = events.slice(ids.indexOf(sent[0]!) + 1);
    expect(creation.map((e) => e.type)).toEqual(expect.arrayContaining(['m.room.create', 'm.room.member', 'm.room.power_levels', 'm.room.join_rules', 'm.room.history_visibility']));
    expect(creation.every((e) => e.type !== 'm.room.message')).toBe(true);
    expect(creation[creation.length - 1]!.type).toBe('m.room.create');
    expect(events).toHaveLength(1 + 60 + creation.length);

    // Backfilled events are below every position; stored as timeline events of the room.
    const stored = await getEvent(hs2.db, sent[30]!);
    expect(stored?.streamPos).toBeLessThan(0);

    // A second pagination gives the same, without asking anyone again.
    const again = await paginateAll(roomId, 20);
    expect(again.map((e) => e.event_id)).toEqual(ids);

    // No /sync wake-up: the long poll ends at its timeout with no event of the room, at the same events position.
    const woke = await longPoll;
    expect(woke.rooms?.join?.[roomId]?.timeline?.events ?? []).toEqual([]);
    expect(woke.next_batch.split('_')[0]).toBe(since.split('_')[0]);
    // Current state, forward extremities, room sequence and members unchanged by the backfill.
    expect(await headOnHs2(roomId)).toEqual(head);

    // /event and /context on a backfilled event answer.
    const one = await hs2.ok<ClientEvent>('GET', v3(`rooms/${enc(roomId)}/event/${enc(sent[30]!)}`), { token: hs2.token(dan) });
    expect(one.content.body).toBe('m30');
    const context = await hs2.ok<{ event: ClientEvent; events_before: ClientEvent[]; events_after: ClientEvent[] }>(
      'GET', v3(`rooms/${enc(roomId)}/context/${enc(sent[30]!)}?limit=4`), { token: hs2.token(dan) },
    );
    expect(context.event.event_id).toBe(sent[30]);
    expect(context.events_before.map((e) => e.content.body)).toEqual(['m29', 'm28']);
    expect(context.events_after.map((e) => e.content.body)).toEqual(['m31', 'm32']);
  }, TEST_TIMEOUT);

  it('shows nothing from before the join when the history is visible to joined members only', async () => {
    const roomId = await createRoom('joined');
    const sent: string[] = [];
    for (let i = 0; i < 15; i++) sent.push(await hs1.send(alice, roomId, `secret ${i}`));
    const joinId = await join(roomId);
    const after = await hs2.send(dan, roomId, 'hello');

    const events = await paginateAll(roomId, 10);
    const ids = events.map((e) => e.event_id);
    expect(ids.slice(0, 2)).toEqual([after, joinId]);
    expect(events.filter((e) => e.type === 'm.room.message').map((e) => e.content.body)).toEqual(['hello']);
    // The history was backfilled (stored), only not shown.
    const stored = await getEvent(hs2.db, sent[14]!);
    expect(stored?.streamPos).toBeLessThan(0);
  }, TEST_TIMEOUT);

  it('stores no PDU whose signature fails, and the redacted form of one whose content hash fails', async () => {
    const roomId = await createRoom('shared');
    const sent: string[] = [];
    for (let i = 0; i < 5; i++) sent.push(await hs1.send(alice, roomId, `b${i}`));
    // hs1 turns into a server that serves a forged signature (b2) and altered content (b1).
    const forge = async (eventId: string, change: (json: Record<string, any>) => void) => {
      const { rows } = await hs1.db.query<{ json: string }>('SELECT json FROM events WHERE event_id = $1', [eventId]);
      const json = JSON.parse(rows[0]!.json) as Record<string, any>;
      change(json);
      await hs1.db.query('UPDATE events SET json = $2 WHERE event_id = $1', [eventId, JSON.stringify(json)]);
    };
    await forge(sent[2]!, (json) => {
      const sigs = json.signatures[hs1.serverName] as Record<string, string>;
      for (const k of Object.keys(sigs)) sigs[k] = Buffer.alloc(64, 7).toString('base64').replace(/=+$/, '');
    });
    await forge(sent[1]!, (json) => {
      json.content.body = 'altered';
    });
    await join(roomId);

    const events = await paginateAll(roomId, 20);
    const bodies = events.filter((e) => e.type === 'm.room.message').map((e) => e.content.body);
    expect(bodies).toEqual(['b4', 'b3', undefined, 'b0']);
    expect(await getEvent(hs2.db, sent[2]!)).toBeNull();
    expect(await getEvent(hs2.db, sent[3]!)).toMatchObject({ streamPos: expect.any(Number) });
    const redacted = await getEvent(hs2.db, sent[1]!);
    expect(redacted?.json.content).toEqual({});
    expect(events.some((e) => e.event_id === sent[2])).toBe(false);
  }, TEST_TIMEOUT);

  it('answers with what it has when no server in the room answers', async () => {
    const roomId = await createRoom('shared');
    for (let i = 0; i < 3; i++) await hs1.send(alice, roomId, `c${i}`);
    const joinId = await join(roomId);
    await hs1.stop();
    try {
      const page = await hs2.ok<MessagesPage>('GET', v3(`rooms/${enc(roomId)}/messages?dir=b&limit=10`), { token: hs2.token(dan) });
      expect(page.chunk.map((e) => e.event_id)).toEqual([joinId]);
      expect(page.end).toBeUndefined();
    } finally {
      await hs1.restart();
    }
  }, TEST_TIMEOUT);
});
