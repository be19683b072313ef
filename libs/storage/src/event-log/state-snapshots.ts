import type { Queryable } from '../db.js';
import { eventTypeNames, stateKeyNames } from './names.js';

/**
 * State snapshots (tables state_snapshots, state_snapshot_entries).
 *
 * A snapshot is its parent plus its own entries: a state change writes one snapshot row and
 * the changed (type_nid, state_key_nid) -> event_nid entries, sharing everything else with
 * its ancestors. The delta chain is bounded by MAX_CHAIN_LENGTH: a snapshot that would go
 * deeper is written in full, so loading any state is one recursive query over at most that
 * many snapshots.
 */
export const MAX_CHAIN_LENGTH = 32;

/** One state entry by numeric ids. */
export interface StateEntryNids {
  typeNid: number;
  stateKeyNid: number;
  eventNid: number;
}

/** Loads a snapshot as numeric entries (the nearest entry along the chain wins). */
export async function loadSnapshotNids(db: Queryable, snapshotNid: number): Promise<StateEntryNids[]> {
  const { rows } = await db.query<{ type_nid: number; state_key_nid: number; event_nid: number }>(
    `WITH RECURSIVE chain (snapshot_nid, parent_nid, lvl) AS (
       SELECT snapshot_nid, parent_nid, 0 FROM state_snapshots WHERE snapshot_nid = $1
       UNION ALL
       SELECT s.snapshot_nid, s.parent_nid, c.lvl + 1 FROM state_snapshots s JOIN chain c ON s.snapshot_nid = c.parent_nid
     )
     SELECT DISTINCT ON (e.type_nid, e.state_key_nid) e.type_nid, e.state_key_nid, e.event_nid
     FROM chain c JOIN state_snapshot_entries e ON e.snapshot_nid = c.snapshot_nid
     ORDER BY e.type_nid, e.state_key_nid, c.lvl`,
    [snapshotNid],
  );
  return rows.map((r) => ({ typeNid: r.type_nid, stateKeyNid: r.state_key_nid, eventNid: r.event_nid }));
}

/**
 * Writes a snapshot = parent + changes. With no changes it writes nothing and returns the
 * parent (which may be null: the empty state before a create event).
 */
export async function writeSnapshot(
  tx: Queryable,
  roomNid: number,
  parentNid: number | null,
  changes: StateEntryNids[],
): Promise<number | null> {
  if (changes.length === 0) return parentNid;
  let chainLength = 0;
  let entries = changes;
  let parent = parentNid;
  if (parentNid !== null) {
    const { rows } = await tx.query<{ chain_length: number }>('SELECT chain_length FROM state_snapshots WHERE snapshot_nid = $1', [parentNid]);
    if (rows.length === 0) throw new Error(`state snapshot ${parentNid} does not exist`);
    chainLength = rows[0]!.chain_length + 1;
    if (chainLength > MAX_CHAIN_LENGTH) {
      // Compact: a full snapshot, so no chain grows past the bound.
      const merged = new Map<string, StateEntryNids>();
      for (const e of await loadSnapshotNids(tx, parentNid)) merged.set(`${e.typeNid}:${e.stateKeyNid}`, e);
      for (const e of changes) merged.set(`${e.typeNid}:${e.stateKeyNid}`, e);
      entries = [...merged.values()];
      parent = null;
      chainLength = 0;
    }
  }
  const { rows } = await tx.query<{ snapshot_nid: number }>(
    'INSERT INTO state_snapshots (room_nid, parent_nid, chain_length) VALUES ($1, $2, $3) RETURNING snapshot_nid',
    [roomNid, parent, chainLength],
  );
  const snapshotNid = rows[0]!.snapshot_nid;
  // Last change wins when a key appears twice in `changes`.
  const dedup = new Map<string, StateEntryNids>();
  for (const e of entries) dedup.set(`${e.typeNid}:${e.stateKeyNid}`, e);
  const list = [...dedup.values()];
  await tx.query(
    `INSERT INTO state_snapshot_entries (snapshot_nid, type_nid, state_key_nid, event_nid)
     SELECT $1, t, k, e FROM unnest($2::bigint[], $3::bigint[], $4::bigint[]) AS u (t, k, e)`,
    [snapshotNid, list.map((e) => e.typeNid), list.map((e) => e.stateKeyNid), list.map((e) => e.eventNid)],
  );
  return snapshotNid;
}

/** A state as [type, state_key, event_id] triples. */
export type StateTriple = [type: string, stateKey: string, eventId: string];

/** Converts numeric entries to (type, state_key, event_id) triples. */
export async function entriesToTriples(db: Queryable, entries: StateEntryNids[], cacheKey: object = db): Promise<StateTriple[]> {
  if (entries.length === 0) return [];
  const [types, keys, ids] = await Promise.all([
    eventTypeNames(db, entries.map((e) => e.typeNid), cacheKey),
    stateKeyNames(db, entries.map((e) => e.stateKeyNid), cacheKey),
    eventIdsForNids(db, entries.map((e) => e.eventNid)),
  ]);
  return entries.map((e) => [types.get(e.typeNid)!, keys.get(e.stateKeyNid)!, ids.get(e.eventNid)!]);
}

export async function eventIdsForNids(db: Queryable, nids: number[]): Promise<Map<number, string>> {
  if (nids.length === 0) return new Map();
  const { rows } = await db.query<{ event_nid: number; event_id: string }>(
    'SELECT event_nid, event_id FROM events WHERE event_nid = ANY($1::bigint[])',
    [[...new Set(nids)]],
  );
  return new Map(rows.map((r) => [r.event_nid, r.event_id]));
}

/** Loads a snapshot as triples; null (no snapshot) is the empty state. */
export async function loadSnapshot(db: Queryable, snapshotNid: number | null, cacheKey: object = db): Promise<StateTriple[]> {
  if (snapshotNid === null) return [];
  return entriesToTriples(db, await loadSnapshotNids(db, snapshotNid), cacheKey);
}
