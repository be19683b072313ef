import { afterEach, describe, expect, it } from 'vitest';
import {
  createInProcessBus, DUPLICATE_TXN, PERSISTENCE_APPEND_MANY, STALE_SEQUENCE, STREAM_EVENTS,
  type AppendManyReply, type AppendManyRequest, type AppendRequest, type BusTransport, type StreamEventNotification,
} from '@tessera/bus';
import { createDb, eventLogMigrations, lockStreamCounter, migrate, saveStreamCounter, type Db } from '@tessera/storage';
import { createTestDatabase, services } from '@tessera/testing';
import { EventWriter } from './event-writer.js';

const ROOMS = 40;
const SENDS_PER_ROOM = 6;

function create(roomId: string): AppendRequest {
  const id = `$create-${roomId}`;
  return {
    roomId, roomVersion: '10', expectedSequence: 0,
    events: [{
      eventId: id, type: 'm.room.create', stateKey: '', sender: '@a:x', depth: 1, originServerTs: 1, prevEvents: [], authEvents: [],
      json: { type: 'm.room.create', state_key: '', content: {}, sender: '@a:x', depth: 1 }, stateBefore: { base: null, changes: [] },
    }],
    currentStateChanges: [['m.room.create', '', id]],
  };
}

function message(roomId: string, n: number, prev: string): AppendRequest {
  const id = `$m${n}-${roomId}`;
  return {
    roomId, roomVersion: '10', expectedSequence: n,
    events: [{
      eventId: id, type: 'm.room.message', stateKey: null, sender: '@a:x', depth: n + 1, originServerTs: 1, prevEvents: [prev], authEvents: [],
      json: { type: 'm.room.message', content: { body: `m${n}` }, sender: '@a:x', depth: n + 1 }, stateBefore: { base: { afterEvent: prev }, changes: [] },
    }],
    currentStateChanges: [],
    clientTxn: { userId: '@a:x', deviceId: 'D', txnId: `${roomId}-${n}`, eventId: id },
  };
}

/** Another writer of stream positions (as out-of-band memberships are): takes one position under the counter lock. */
async function interfere(db: Db): Promise<void> {
  await db.transaction(async (tx) => saveStreamCounter(tx, (await lockStreamCounter(tx)) + 1));
}

function suite(name: string, skip: boolean, open: () => Promise<{ db: Db; close: () => Promise<void> }>) {
  describe.skipIf(skip)(`EventWriter, pipelined group commit (${name})`, () => {
    let cleanup: Array<() => Promise<void>> = [];
    afterEach(async () => {
      for (const c of cleanup.reverse()) await c();
      cleanup = [];
    });

    it('concurrent appends in many rooms while another writer takes positions: every append committed once, commit order = position order, notifications chained', async () => {
      const { db, close } = await open();
      await migrate(db, eventLogMigrations);
      const bus: BusTransport = createInProcessBus();
      const writer = new EventWriter(db, bus);
      await writer.start();
      cleanup.push(close, () => bus.close(), () => writer.stop());
      const seen: StreamEventNotification[] = [];
      await bus.subscribe<StreamEventNotification>(STREAM_EVENTS, (n) => void seen.push(n));

      const rooms = Array.from({ length: ROOMS }, (_, i) => `!room${i}:x`);
      // Each room's sends one after another (as a room's decider does), all rooms at once, and
      // the other writer taking a position now and then.
      let interfering = true;
      const other = (async () => {
        let taken = 0;
        while (interfering) {
          await interfere(db);
          taken++;
          await new Promise((r) => setTimeout(r, 5));
        }
        return taken;
      })();
      await Promise.all(rooms.map(async (roomId) => {
        await writer.append(create(roomId));
        let prev = `$create-${roomId}`;
        for (let n = 1; n <= SENDS_PER_ROOM; n++) {
          const reply = await writer.append(message(roomId, n, prev));
          expect(reply.sequence).toBe(n + 1);
          prev = reply.events[0]!.eventId;
        }
      }));
      interfering = false;
      const taken = await other;
      expect(taken).toBeGreaterThan(0);

      const { rows } = await db.query<{ n: number; distinct_pos: number; max_pos: number }>(
        'SELECT count(*) AS n, count(DISTINCT stream_pos) AS distinct_pos, max(stream_pos) AS max_pos FROM events',
      );
      expect(rows[0]!.n).toBe(ROOMS * (SENDS_PER_ROOM + 1));
      expect(rows[0]!.distinct_pos).toBe(ROOMS * (SENDS_PER_ROOM + 1));
      // The counter covers every committed position (readers stop there).
      const counter = (await db.query<{ position: number }>('SELECT position FROM stream_counter')).rows[0]!.position;
      expect(counter).toBeGreaterThanOrEqual(rows[0]!.max_pos);

      // Every committed event announced once, in position order; each notification's
      // previousPosition is behind it and not before the one announced just before it.
      for (let i = 0; i < 100 && seen.length < ROOMS * (SENDS_PER_ROOM + 1); i++) await new Promise((r) => setTimeout(r, 20));
      expect(seen).toHaveLength(ROOMS * (SENDS_PER_ROOM + 1));
      for (let i = 1; i < seen.length; i++) {
        expect(seen[i]!.position).toBeGreaterThan(seen[i - 1]!.position);
        expect(seen[i]!.previousPosition).toBeGreaterThanOrEqual(seen[i - 1]!.position);
        expect(seen[i]!.previousPosition).toBeLessThan(seen[i]!.position);
      }
      // Without the other writer the chain has no holes: previousPosition is the position announced before.
      const holes = seen.slice(1).filter((n, i) => n.previousPosition !== seen[i]!.position).length;
      expect(holes).toBeLessThanOrEqual(taken);

      // A stale request and a repeated client transaction are refused alone and change nothing.
      const room = rooms[0]!;
      await expect(writer.append(message(room, 1, `$create-${room}`))).rejects.toMatchObject({ name: 'StaleSequenceError' });
      const again = message(room, SENDS_PER_ROOM + 1, `$m${SENDS_PER_ROOM}-${room}`);
      again.clientTxn = { ...again.clientTxn!, txnId: `${room}-1` };
      await expect(writer.append(again)).rejects.toMatchObject({ name: 'DuplicateClientTxnError', eventId: `$m1-${room}` });
      expect((await db.query<{ n: number }>('SELECT count(*) AS n FROM events')).rows[0]!.n).toBe(ROOMS * (SENDS_PER_ROOM + 1));
    }, 120_000);

    it('persistence.append-many: several rooms in one message, each appended or refused on its own', async () => {
      const { db, close } = await open();
      await migrate(db, eventLogMigrations);
      const bus: BusTransport = createInProcessBus();
      const writer = new EventWriter(db, bus);
      await writer.start();
      cleanup.push(close, () => bus.close(), () => writer.stop());
      const seen: StreamEventNotification[] = [];
      await bus.subscribe<StreamEventNotification>(STREAM_EVENTS, (n) => void seen.push(n));
      const many = (appends: AppendRequest[]) => bus.request<AppendManyRequest, AppendManyReply>(PERSISTENCE_APPEND_MANY, { appends });

      const created = await many(['!a:x', '!b:x', '!c:x'].map(create));
      expect(created.outcomes.map((o) => o.ok)).toEqual([true, true, true]);
      const duplicateTxn = message('!c:x', 1, '$create-!c:x');
      duplicateTxn.clientTxn = { ...duplicateTxn.clientTxn!, txnId: '!a:x-1' };
      const mixed = await many([
        message('!a:x', 1, '$create-!a:x'),
        message('!b:x', 5, '$create-!b:x'), // stale: the room is at sequence 1
        duplicateTxn, // the transaction id the first append of this message records
      ]);
      expect(mixed.outcomes[0]).toMatchObject({ ok: true, reply: { sequence: 2, events: [{ eventId: '$m1-!a:x', duplicate: false }] } });
      expect(mixed.outcomes[1]).toMatchObject({ ok: false, error: { code: STALE_SEQUENCE } });
      expect(mixed.outcomes[2]).toMatchObject({ ok: false, error: { code: DUPLICATE_TXN } });
      const stored = await db.query<{ event_id: string }>('SELECT event_id FROM events ORDER BY stream_pos');
      expect(stored.rows.map((r) => r.event_id)).toEqual(['$create-!a:x', '$create-!b:x', '$create-!c:x', '$m1-!a:x']);
      for (let i = 0; i < 100 && seen.length < 4; i++) await new Promise((r) => setTimeout(r, 10));
      expect(seen.map((n) => n.eventId)).toEqual(stored.rows.map((r) => r.event_id));
      // A malformed message is refused whole.
      await expect(bus.request(PERSISTENCE_APPEND_MANY, { appends: 'nope' })).rejects.toMatchObject({ code: 'M_BAD_JSON' });
    });
  });
}

suite('PostgreSQL', !services.postgres, async () => {
  const database = await createTestDatabase();
  const db = await createDb({ url: database.url });
  return {
    db,
    close: async () => {
      await db.close();
      await database.drop();
    },
  };
});

suite('PGlite', false, async () => {
  const db = await createDb({});
  return { db, close: () => db.close() };
});
