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

/** A stored snapshot row with its own entries (its delta). Snapshots never change once written. */
interface SnapshotNode {
  parentNid: number | null;
  chainLength: number;
  entries: StateEntryNids[];
}

/**
 * Snapshot nodes already read or written by this process, per Db (like the name caches). A node
 * written by a transaction that rolled back stays here harmlessly: identity values are never
 * reused, so nothing will ever cite its nid.
 */
const MAX_CACHED_NODES = 20_000;
const nodeCaches = new WeakMap<object, Map<number, SnapshotNode>>();

function nodeCache(key: object): Map<number, SnapshotNode> {
  let c = nodeCaches.get(key);
  if (!c) {
    c = new Map();
    nodeCaches.set(key, c);
  }
  return c;
}

function remember(cache: Map<number, SnapshotNode>, nid: number, node: SnapshotNode): void {
  cache.delete(nid);
  cache.set(nid, node);
  if (cache.size > MAX_CACHED_NODES) cache.delete(cache.keys().next().value as number);
}

/** The chain of nodes from `from` down to its root, from the cache or in one query. */
async function chainOf(db: Queryable, from: number, cache: Map<number, SnapshotNode>): Promise<Array<[number, SnapshotNode]>> {
  const chain: Array<[number, SnapshotNode]> = [];
  let nid: number | null = from;
  while (nid !== null) {
    const node = cache.get(nid);
    if (!node) break;
    chain.push([nid, node]);
    nid = node.parentNid;
  }
  if (nid === null) return chain;
  const { rows } = await db.query<{ snapshot_nid: number; parent_nid: number | null; chain_length: number; type_nid: number | null; state_key_nid: number | null; event_nid: number | null }>(
    `WITH RECURSIVE chain (snapshot_nid, parent_nid, chain_length, lvl) AS (
       SELECT snapshot_nid, parent_nid, chain_length, 0 FROM state_snapshots WHERE snapshot_nid = $1
       UNION ALL
       SELECT s.snapshot_nid, s.parent_nid, s.chain_length, c.lvl + 1 FROM state_snapshots s JOIN chain c ON s.snapshot_nid = c.parent_nid
     )
     SELECT c.snapshot_nid, c.parent_nid, c.chain_length, e.type_nid, e.state_key_nid, e.event_nid
     FROM chain c LEFT JOIN state_snapshot_entries e ON e.snapshot_nid = c.snapshot_nid
     ORDER BY c.lvl`,
    [nid],
  );
  if (rows.length === 0) throw new Error(`state snapshot ${nid} does not exist`);
  const loaded = new Map<number, SnapshotNode>();
  for (const r of rows) {
    let node = loaded.get(r.snapshot_nid);
    if (!node) {
      node = { parentNid: r.parent_nid, chainLength: r.chain_length, entries: [] };
      loaded.set(r.snapshot_nid, node);
      chain.push([r.snapshot_nid, node]);
    }
    if (r.type_nid !== null) node.entries.push({ typeNid: r.type_nid, stateKeyNid: r.state_key_nid!, eventNid: r.event_nid! });
  }
  for (const [n, node] of loaded) remember(cache, n, node);
  return chain;
}

const lowbit = (n: number) => n & -n;
const entryKey = (e: StateEntryNids) => `${e.typeNid}:${e.stateKeyNid}`;

/**
 * Writes the snapshot of `from`'s state plus `changes`. With no changes it writes nothing
 * and returns `from` (which may be null: the empty state before a create event).
 * One statement when `from`'s chain is cached (the usual case in persistence), two otherwise.
 */
export async function writeSnapshot(
  tx: Queryable,
  roomNid: number,
  from: number | null,
  changes: StateEntryNids[],
  cacheKey: object = tx,
): Promise<number | null> {
  if (changes.length === 0) return from;
  const cache = nodeCache(cacheKey);
  let number = 1;
  let base: number | null = null;
  const merged = new Map<string, StateEntryNids>();
  if (from !== null) {
    const chain = await chainOf(tx, from, cache);
    number = chain[0]![1].chainLength + 1;
    const target = number - lowbit(number);
    // The keys changed between the base (the first ancestor numbered <= target) and `from`,
    // nearest first, then this change on top.
    for (const [nid, node] of chain) {
      if (node.chainLength <= target) {
        base = nid;
        break;
      }
      for (const e of node.entries) if (!merged.has(entryKey(e))) merged.set(entryKey(e), e);
    }
  }
  // Last change wins when a key appears twice in `changes`.
  for (const e of changes) merged.set(entryKey(e), e);
  const list = [...merged.values()];
  const { rows } = await tx.query<{ snapshot_nid: number }>(
    `WITH s AS (
       INSERT INTO state_snapshots (room_nid, parent_nid, chain_length) VALUES ($1, $2, $3) RETURNING snapshot_nid
     ), e AS (
       INSERT INTO state_snapshot_entries (snapshot_nid, type_nid, state_key_nid, event_nid)
       SELECT s.snapshot_nid, t, k, v FROM s, unnest($4::bigint[], $5::bigint[], $6::bigint[]) AS u (t, k, v)
     )
     SELECT snapshot_nid FROM s`,
    [roomNid, base, number, list.map((e) => e.typeNid), list.map((e) => e.stateKeyNid), list.map((e) => e.eventNid)],
  );
  const snapshotNid = rows[0]!.snapshot_nid;
  remember(cache, snapshotNid, { parentNid: base, chainLength: number, entries: list });
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

/**
 * Loads several snapshots as triples in one statement (chains walked, names and event ids
 * resolved in the database): a reader serving many rooms at once pays one round trip.
 * A snapshot without entries (the empty state, as loadSnapshot says) or unknown is absent.
 */
export async function loadSnapshots(db: Queryable, snapshotNids: readonly number[]): Promise<Map<number, StateTriple[]>> {
  const out = new Map<number, StateTriple[]>();
  if (snapshotNids.length === 0) return out;
  const { rows } = await db.query<{ root: number; event_type: string; state_key: string; event_id: string }>(
    `WITH RECURSIVE chain (root, snapshot_nid, parent_nid, lvl) AS (
       SELECT snapshot_nid, snapshot_nid, parent_nid, 0 FROM state_snapshots WHERE snapshot_nid = ANY($1::bigint[])
       UNION ALL
       SELECT c.root, s.snapshot_nid, s.parent_nid, c.lvl + 1 FROM state_snapshots s JOIN chain c ON s.snapshot_nid = c.parent_nid
     ), entries AS (
       SELECT DISTINCT ON (c.root, e.type_nid, e.state_key_nid) c.root, e.type_nid, e.state_key_nid, e.event_nid
       FROM chain c JOIN state_snapshot_entries e ON e.snapshot_nid = c.snapshot_nid
       ORDER BY c.root, e.type_nid, e.state_key_nid, c.lvl
     )
     SELECT x.root, t.event_type, k.state_key, ev.event_id
     FROM entries x JOIN event_types t ON t.type_nid = x.type_nid
       JOIN event_state_keys k ON k.state_key_nid = x.state_key_nid JOIN events ev ON ev.event_nid = x.event_nid`,
    [[...new Set(snapshotNids)]],
  );
  for (const r of rows) {
    const triples = out.get(r.root) ?? [];
    triples.push([r.event_type, r.state_key, r.event_id]);
    out.set(r.root, triples);
  }
  return out;
}
