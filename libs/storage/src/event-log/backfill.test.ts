import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, services, type TestDatabase } from '@tessera/testing';
import { createDb } from '../create-db.js';
import type { Db } from '../db.js';
import { migrate } from '../migrate.js';
import { appendRoomBatch, internBatchNames, lockStreamCounter, readStreamCounter, saveStreamCounter, type AppendBatchInput } from './append.js';
import { appendBackfill, chooseBackwardExtremities, getBackwardExtremities, getEarliestHeldStateNid } from './backfill.js';
import { getCurrentState, getRoomMembers } from './current-state.js';
import { getEvent, getEventsSince, getRoomTimeline } from './events.js';
import { getForwardExtremities } from './forward-extremities.js';
import { eventLogMigrations } from './migrations.js';
import { getRoom } from './rooms.js';

describe('chooseBackwardExtremities', () => {
  it('names the prev events of the earliest events that are neither held nor among them, in order, once, at most max', () => {
    const earliest = [
      { eventId: '$a', prevEvents: ['$x', '$y'] },
      { eventId: '$b', prevEvents: ['$a', '$y', '$z'] },
      { eventId: '$c', prevEvents: ['$w'] },
    ];
    expect(chooseBackwardExtremities(earliest, new Set(['$w']))).toEqual(['$x', '$y', '$z']);
    expect(chooseBackwardExtremities(earliest, new Set(['$x', '$y', '$z', '$w']))).toEqual([]);
    expect(chooseBackwardExtremities(earliest, new Set(), 2)).toEqual(['$x', '$y']);
    // The create event cites nothing: a complete history has no extremity.
    expect(chooseBackwardExtremities([{ eventId: '$create', prevEvents: [] }], new Set())).toEqual([]);
  });
});

async function append(db: Db, batch: AppendBatchInput) {
  await internBatchNames(db, batch);
  return db.transaction(async (tx) => {
    const start = await lockStreamCounter(tx);
    const { result, nextPosition } = await appendRoomBatch(tx, batch, start + 1, db);
    await saveStreamCounter(tx, nextPosition - 1);
    return result;
  });
}

function ev(id: string, type: string, stateKey: string | null, prev: string[], depth: number, content: Record<string, unknown> = {}) {
  return {
    eventId: id,
    json: { type, state_key: stateKey ?? undefined, content, prev_events: prev, auth_events: [], depth, sender: '@a:x' },
    type, stateKey, sender: '@a:x', depth, originServerTs: depth, prevEvents: prev, authEvents: [],
  };
}

function suite(name: string, open: () => Promise<{ db: Db; cleanup: () => Promise<void> }>) {
  describe(name, () => {
    let db: Db;
    let cleanup: () => Promise<void>;
    beforeAll(async () => {
      ({ db, cleanup } = await open());
      await migrate(db, eventLogMigrations);
    });
    afterAll(async () => cleanup?.());

    it('stores backfilled events below every position, with no other effect, once', async () => {
      const room = `!bf${Math.random().toString(36).slice(2)}:x`;
      const id = (s: string) => `$${s}-${room}`;
      // As after a join over federation: the room's state as outliers, then the join, citing an
      // event not held here ($m2, the last message before it).
      await append(db, {
        roomId: room, roomVersion: '10', expectedSequence: 0,
        events: [
          { ...ev(id('c'), 'm.room.create', '', [], 1), outlier: true },
          { ...ev(id('a'), 'm.room.member', '@a:x', [id('c')], 2, { membership: 'join' }), outlier: true },
        ],
        currentStateChanges: [],
      });
      const joined = await append(db, {
        roomId: room, roomVersion: '10', expectedSequence: 1,
        events: [{ ...ev(id('j'), 'm.room.member', '@d:y', [id('m2')], 5, { membership: 'join' }), stateBefore: { base: null, changes: [['m.room.create', '', id('c')], ['m.room.member', '@a:x', id('a')]] } }],
        currentStateChanges: [['m.room.create', '', id('c')], ['m.room.member', '@a:x', id('a')], ['m.room.member', '@d:y', id('j')]],
      });
      const joinPos = joined.events[0]!.streamPos!;
      expect(await getBackwardExtremities(db, room)).toEqual([id('m2')]);
      expect(await getEarliestHeldStateNid(db, room)).toBe(joined.events[0]!.stateBeforeNid);

      const before = {
        room: await getRoom(db, room), counter: await readStreamCounter(db), state: await getCurrentState(db, room),
        extremities: await getForwardExtremities(db, room), members: await getRoomMembers(db, room),
      };
      const batch = {
        roomId: room,
        events: [
          ev(id('m1'), 'm.room.message', null, [id('a')], 3, { body: '1' }),
          ev(id('m2'), 'm.room.message', null, [id('m1')], 4, { body: '2' }),
          ev(id('a'), 'm.room.member', '@a:x', [id('c')], 2, { membership: 'join' }),
          { ...ev(id('bad'), 'm.room.message', null, [id('a')], 3), rejectedReason: 'not allowed' },
        ],
        outliers: [ev(id('pl'), 'm.room.power_levels', '', [id('a')], 3)],
      };
      const first = await appendBackfill(db, batch);
      // Most recent highest, all below every position held before.
      expect(first.stored.map((s) => s.eventId)).toEqual([id('m2'), id('m1'), id('a')]);
      const positions = first.stored.map((s) => s.streamPos);
      expect(positions.every((p) => p < 0)).toBe(true);
      expect([...positions].sort((a, b) => b - a)).toEqual(positions);
      expect(first.withoutPosition).toBe(2);
      expect((await getEvent(db, id('bad')))?.streamPos).toBeNull();
      expect((await getEvent(db, id('pl')))).toMatchObject({ streamPos: null, outlier: true });
      // The held outlier got its position in place.
      expect((await getEvent(db, id('a')))?.streamPos).toBe(positions[2]);

      // The timeline continues into them; nothing else moved.
      expect((await getRoomTimeline(db, room, { direction: 'b', limit: 10 })).map((e) => e.eventId)).toEqual([id('j'), id('m2'), id('m1'), id('a')]);
      expect(await getRoom(db, room)).toEqual(before.room);
      expect(await readStreamCounter(db)).toBe(before.counter);
      expect(await getCurrentState(db, room)).toEqual(before.state);
      expect(await getForwardExtremities(db, room)).toEqual(before.extremities);
      expect(await getRoomMembers(db, room)).toEqual(before.members);
      expect((await getEventsSince(db, 0, 1000)).some((e) => e.roomId === room && e.streamPos! < joinPos)).toBe(false);
      // The history is complete back to the create event ($a cites the create event, an outlier still).
      expect(await getBackwardExtremities(db, room)).toEqual([id('c')]);

      // Again, and twice at once: nothing is stored twice.
      const again = await Promise.all([appendBackfill(db, batch), appendBackfill(db, batch)]);
      expect(again.map((r) => r.stored.length)).toEqual([0, 0]);
      const last = await appendBackfill(db, { roomId: room, events: [ev(id('c'), 'm.room.create', '', [], 1)], outliers: [] });
      expect(last.stored[0]!.streamPos).toBeLessThan(positions[2]!);
      expect(await getBackwardExtremities(db, room)).toEqual([]);
      expect((await getRoomTimeline(db, room, { direction: 'b', limit: 10 })).map((e) => e.eventId)).toEqual([id('j'), id('m2'), id('m1'), id('a'), id('c')]);
    });

    it('gives concurrent backfills of different rooms distinct positions', async () => {
      const rooms = [0, 1, 2].map((i) => `!cc${i}${Math.random().toString(36).slice(2)}:x`);
      for (const room of rooms) {
        await append(db, {
          roomId: room, roomVersion: '10', expectedSequence: 0,
          events: [{ ...ev(`$j-${room}`, 'm.room.message', null, [`$p-${room}`], 5), stateBefore: { base: null, changes: [] } }],
          currentStateChanges: [],
        });
      }
      const results = await Promise.all(rooms.map((room) => appendBackfill(db, {
        roomId: room, events: [1, 2, 3].map((d) => ev(`$h${d}-${room}`, 'm.room.message', null, [], d)), outliers: [],
      })));
      const all = results.flatMap((r) => r.stored.map((s) => s.streamPos));
      expect(all).toHaveLength(9);
      expect(new Set(all).size).toBe(9);
    });

    it('refuses a room that is not held', async () => {
      await expect(appendBackfill(db, { roomId: '!nowhere:x', events: [ev('$n', 'm.room.message', null, [], 1)], outliers: [] })).rejects.toThrow(/not held here/);
    });
  });
}

suite('backfill on PGlite', async () => {
  const db = await createDb({});
  return { db, cleanup: () => db.close() };
});

describe.skipIf(!services.postgres)('PostgreSQL', () => {
  let tdb: TestDatabase;
  suite('backfill on PostgreSQL', async () => {
    tdb = await createTestDatabase();
    const db = await createDb({ url: tdb.url });
    return { db, cleanup: async () => { await db.close(); await tdb.drop(); } };
  });
});
