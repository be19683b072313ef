import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, services, type TestDatabase } from '@tessera/testing';
import { createDb } from '../create-db.js';
import type { Db } from '../db.js';
import { migrate } from '../migrate.js';
import {
  appendRoomBatch, internBatchNames, lockStreamCounter, saveStreamCounter, StaleSequenceError, DuplicateClientTxnError,
  type AppendBatchInput, type AppendBatchResult,
} from './append.js';
import { eventLogMigrations } from './migrations.js';
import { getCurrentState, getMembershipChangesSince, getRoomMembers, getUserMemberships } from './current-state.js';
import { getEvent, getEventsSince, getRoomMessagesTopological, getRoomTimeline, getStateAfterEvent, getStateBeforeEvent } from './events.js';
import { getForwardExtremities } from './forward-extremities.js';
import { getRoom, getRoomHead, getRoomHeads } from './rooms.js';
import { loadSnapshot, loadSnapshots } from './state-snapshots.js';
import { findClientTxn } from './client-txns.js';
import { getMaxStreamPosition } from './consumer-cursors.js';

async function append(db: Db, batch: AppendBatchInput): Promise<AppendBatchResult> {
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
    type, stateKey, sender: '@a:x', depth, originServerTs: 1, prevEvents: prev, authEvents: [],
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

    it('appends, keeps state as snapshots, extremities, current state and memberships', async () => {
      const room = '!r:x';
      const r1 = await append(db, {
        roomId: room, roomVersion: '10', expectedSequence: 0,
        events: [
          { ...ev('$c', 'm.room.create', '', [], 1), stateBefore: { base: null, changes: [] } },
          { ...ev('$m', 'm.room.member', '@a:x', ['$c'], 2, { membership: 'join' }), stateBefore: { base: { afterEvent: '$c' }, changes: [] } },
        ],
        currentStateChanges: [['m.room.create', '', '$c'], ['m.room.member', '@a:x', '$m']],
      });
      expect(r1.sequence).toBe(1);
      expect(r1.events.map((e) => e.streamPos)).toEqual([1, 2]);
      const r2 = await append(db, {
        roomId: room, roomVersion: '10', expectedSequence: 1,
        events: [{ ...ev('$msg', 'm.room.message', null, ['$m'], 3, { body: 'hi' }), stateBefore: { base: { afterEvent: '$m' }, changes: [] } }],
        currentStateChanges: [],
        clientTxn: { userId: '@a:x', deviceId: 'D', txnId: 't1', eventId: '$msg' },
      });
      expect(r2.events[0]!.stateBeforeNid).toBe(r1.events[1]!.stateAfterNid);
      expect((await getForwardExtremities(db, room)).map((e) => e.eventId)).toEqual(['$msg']);
      expect(new Set(await getCurrentState(db, room))).toEqual(new Set([['m.room.create', '', '$c'], ['m.room.member', '@a:x', '$m']]));
      expect(await getStateBeforeEvent(db, '$m')).toEqual([['m.room.create', '', '$c']]);
      expect((await getStateAfterEvent(db, '$msg'))?.length).toBe(2);
      expect(await findClientTxn(db, '@a:x', 'D', 't1')).toBe('$msg');
      expect(await getRoomMembers(db, room)).toEqual(['@a:x']);
      expect((await getUserMemberships(db, '@a:x'))[0]).toMatchObject({ roomId: room, membership: 'join', eventId: '$m', streamPos: 2 });
      expect(await getMembershipChangesSince(db, '@a:x', 2)).toEqual([]);
      expect((await getEventsSince(db, 1, 10)).map((e) => e.eventId)).toEqual(['$m', '$msg']);
      expect((await getRoomTimeline(db, room, { direction: 'b', limit: 2 })).map((e) => e.eventId)).toEqual(['$msg', '$m']);
      expect((await getRoomMessagesTopological(db, room, { direction: 'f', from: { depth: 1, streamPos: 1 }, limit: 5 })).map((e) => e.eventId)).toEqual(['$m', '$msg']);
      expect(await getMaxStreamPosition(db)).toBe(3);

      // A stale sequence changes nothing.
      await expect(append(db, {
        roomId: room, roomVersion: '10', expectedSequence: 1,
        events: [{ ...ev('$late', 'm.room.message', null, ['$m'], 3), stateBefore: { base: { afterEvent: '$m' }, changes: [] } }],
        currentStateChanges: [],
      })).rejects.toBeInstanceOf(StaleSequenceError);
      expect(await getEvent(db, '$late')).toBeNull();
      // A reused client transaction id is refused and names the first event.
      const dup = append(db, {
        roomId: room, roomVersion: '10', expectedSequence: 2,
        events: [{ ...ev('$again', 'm.room.message', null, ['$msg'], 4), stateBefore: { base: { afterEvent: '$msg' }, changes: [] } }],
        currentStateChanges: [],
        clientTxn: { userId: '@a:x', deviceId: 'D', txnId: 't1', eventId: '$again' },
      });
      await expect(dup).rejects.toBeInstanceOf(DuplicateClientTxnError);
      expect((await getRoom(db, room))?.sequence).toBe(2);
      expect(await getMaxStreamPosition(db)).toBe(3);
    });

    it('keeps snapshot chains logarithmic and deltas small, and loads the full state', async () => {
      const room = '!chain:x';
      await append(db, {
        roomId: room, roomVersion: '10', expectedSequence: 0,
        events: [{ ...ev('$cc', 'm.room.create', '', [], 1), stateBefore: { base: null, changes: [] } }],
        currentStateChanges: [['m.room.create', '', '$cc']],
      });
      let prev = '$cc';
      const n = 100;
      for (let i = 0; i < n; i++) {
        const id = `$s${i}`;
        await append(db, {
          roomId: room, roomVersion: '10', expectedSequence: i + 1,
          events: [{ ...ev(id, 'm.room.member', `@u${i}:x`, [prev], i + 2, { membership: 'join' }), stateBefore: { base: { afterEvent: prev }, changes: [] } }],
          currentStateChanges: [['m.room.member', `@u${i}:x`, id]],
        });
        prev = id;
      }
      const after = await getStateAfterEvent(db, prev);
      expect(after?.length).toBe(n + 1);
      const { rows } = await db.query<{ nid: number }>('SELECT state_after_nid AS nid FROM events WHERE event_id = $1', [prev]);
      const walk = await db.query<{ n: number }>(
        `WITH RECURSIVE c (nid) AS (SELECT $1::bigint UNION ALL SELECT s.parent_nid FROM state_snapshots s JOIN c ON s.snapshot_nid = c.nid WHERE s.parent_nid IS NOT NULL)
         SELECT count(*) AS n FROM c`,
        [rows[0]!.nid],
      );
      expect(walk.rows[0]!.n).toBeLessThanOrEqual(Math.ceil(Math.log2(n + 1)) + 1);
      // Entries written for n state changes: O(n log n), far below the n^2/2 of full copies.
      const entries = await db.query<{ n: number }>(
        'SELECT count(*) AS n FROM state_snapshot_entries e JOIN state_snapshots s ON s.snapshot_nid = e.snapshot_nid JOIN rooms r ON r.room_nid = s.room_nid WHERE r.room_id = $1',
        [room],
      );
      expect(entries.rows[0]!.n).toBeLessThanOrEqual((n + 1) * Math.ceil(Math.log2(n + 1)));
      // Every intermediate state is still exact.
      expect((await getStateAfterEvent(db, '$s41'))?.length).toBe(43);
      expect((await getStateBeforeEvent(db, '$s64'))?.length).toBe(65);
      expect((await getRoomMembers(db, room)).length).toBe(n);

      // Several snapshots at once (deep chains, shallow ones) equal the one-at-a-time loads.
      const nids = (await db.query<{ nid: number }>(
        "SELECT state_after_nid AS nid FROM events WHERE event_id = ANY($1::text[])", [['$cc', '$s0', '$s41', prev]],
      )).rows.map((r) => r.nid);
      const many = await loadSnapshots(db, [...nids, 999_999_999]);
      expect(many.has(999_999_999)).toBe(false);
      for (const nid of nids) expect(new Set(many.get(nid))).toEqual(new Set(await loadSnapshot(db, nid)));
      expect(many.get(rows[0]!.nid)?.length).toBe(n + 1);

      // Room heads of several rooms in one read: each as getRoomHead reads it; unknown rooms absent.
      const heads = await getRoomHeads(db, [room, '!r:x', '!none:x']);
      expect(heads.get(room)).toEqual(await getRoomHead(db, room));
      expect(heads.get(room)!.sequence).toBe(n + 1);
      expect(heads.get('!r:x')).toEqual(await getRoomHead(db, '!r:x'));
      expect(heads.has('!none:x')).toBe(false);
    });
  });
}

suite('event log on PGlite', async () => {
  const db = await createDb({});
  return { db, cleanup: () => db.close() };
});

describe.skipIf(!services.postgres)('PostgreSQL', () => {
  let tdb: TestDatabase;
  suite('event log on PostgreSQL', async () => {
    tdb = await createTestDatabase();
    const db = await createDb({ url: tdb.url });
    return { db, cleanup: async () => { await db.close(); await tdb.drop(); } };
  });
});
