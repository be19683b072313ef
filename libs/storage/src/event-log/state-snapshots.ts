import type { Queryable } from '../db.js';
import { eventTypeNames, stateKeyNames } from './names.js';

/**
 * State snapshots (tables state_snapshots, state_snapshot_entries).
 *
 * A snapshot is its parent (its base) plus its own entries (the delta): a state change writes
 * one snapshot row and a few entries, sharing everything else with its ancestors.
 *
 * Bases are chosen as in a Fenwick tree, so that both reading and writing stay small however
 * large the room: along a line of history each snapshot has a number s (column chain_length:
 * its parent's + 1), and its base is the ancestor numbered s - lowbit(s) (lowbit: the lowest
 * set bit). Its delta holds the keys changed since that base, at most lowbit(s) of them, so a
 * state change costs O(log n) entries amortized (n: state changes in the room's history,
 * independent of the size of the state), and loading any state walks at most log2(s) + 1
 * snapshots in one recursive query. (Synapse's state_groups_state grew to 51 GB from full
 * copies; a plain delta chain would make reads linear instead.)
 */

/** One state entry by numeric ids. */
export interface StateEntryNids {
  typeNid: number;
  stateKeyNid: number;
  eventNid: number;
}

/** Loads a snapshot as numeric entries (the nearest entry along the chain wins). */
export async function loadSnapshotNids(db: Queryable, snapshotNid: number): Promise<StateEntryNids[]> {
  return loadChainEntries(db, snapshotNid, 0);
}

/** Entries of `from` and its bases down to (not including) the first with number <= stopAt. */
async function loadChainEntries(db: Queryable, from: number, stopAt: number): Promise<StateEntryNids[]> {
  const { rows } = await db.query<{ type_nid: number; state_key_nid: number; event_nid: number }>(
    `WITH RECURSIVE chain (snapshot_nid, parent_nid, lvl) AS (
       SELECT snapshot_nid, parent_nid, 0 FROM state_snapshots WHERE snapshot_nid = $1 AND ($2 = 0 OR chain_length > $2)
       UNION ALL
       SELECT s.snapshot_nid, s.parent_nid, c.lvl + 1 FROM state_snapshots s JOIN chain c ON s.snapshot_nid = c.parent_nid
       WHERE $2 = 0 OR s.chain_length > $2
     )
     SELECT DISTINCT ON (e.type_nid, e.state_key_nid) e.type_nid, e.state_key_nid, e.event_nid
     FROM chain c JOIN state_snapshot_entries e ON e.snapshot_nid = c.snapshot_nid
     ORDER BY e.type_nid, e.state_key_nid, c.lvl`,
    [from, stopAt],
  );
  return rows.map((r) => ({ typeNid: r.type_nid, stateKeyNid: r.state_key_nid, eventNid: r.event_nid }));
}

/** The base of the snapshot after `from`: the first snapshot along from's bases numbered <= target. */
async function findBase(db: Queryable, from: number, target: number): Promise<number | null> {
  const { rows } = await db.query<{ snapshot_nid: number }>(
    `WITH RECURSIVE chain (snapshot_nid, parent_nid, chain_length) AS (
       SELECT snapshot_nid, parent_nid, chain_length FROM state_snapshots WHERE snapshot_nid = $1
       UNION ALL
       SELECT s.snapshot_nid, s.parent_nid, s.chain_length FROM state_snapshots s JOIN chain c ON s.snapshot_nid = c.parent_nid
       WHERE c.chain_length > $2
     )
     SELECT snapshot_nid FROM chain WHERE chain_length <= $2 LIMIT 1`,
    [from, target],
  );
  return rows[0]?.snapshot_nid ?? null;
}

const lowbit = (n: number) => n & -n;

/**
 * Writes the snapshot of `from`'s state plus `changes`. With no changes it writes nothing
 * and returns `from` (which may be null: the empty state before a create event).
 */
export async function writeSnapshot(
  tx: Queryable,
  roomNid: number,
  from: number | null,
  changes: StateEntryNids[],
): Promise<number | null> {
  if (changes.length === 0) return from;
  let number = 1;
  let base: number | null = null;
  let entries = changes;
  if (from !== null) {
    const { rows } = await tx.query<{ chain_length: number }>('SELECT chain_length FROM state_snapshots WHERE snapshot_nid = $1', [from]);
    if (rows.length === 0) throw new Error(`state snapshot ${from} does not exist`);
    number = rows[0]!.chain_length + 1;
    const target = number - lowbit(number);
    // The keys changed between the base and `from`, then this change on top.
    const between = await loadChainEntries(tx, from, target);
    base = await findBase(tx, from, target);
    const merged = new Map<string, StateEntryNids>();
    for (const e of between) merged.set(`${e.typeNid}:${e.stateKeyNid}`, e);
    for (const e of changes) merged.set(`${e.typeNid}:${e.stateKeyNid}`, e);
    entries = [...merged.values()];
  }
  const { rows } = await tx.query<{ snapshot_nid: number }>(
    'INSERT INTO state_snapshots (room_nid, parent_nid, chain_length) VALUES ($1, $2, $3) RETURNING snapshot_nid',
    [roomNid, base, number],
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
