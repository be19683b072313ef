import type { Queryable } from '../db.js';

/**
 * Numeric ids for event types and state keys (tables event_types, event_state_keys).
 * A name's nid never changes once assigned, so each Db keeps a process-wide cache. Interning
 * runs in its own statement (not inside the appending transaction), so a rolled-back append
 * never leaves a cached nid that does not exist.
 */
interface NameCache {
  types: Map<string, number>;
  typeNames: Map<number, string>;
  keys: Map<string, number>;
  keyNames: Map<number, string>;
}

const caches = new WeakMap<object, NameCache>();

function cacheFor(db: object): NameCache {
  let c = caches.get(db);
  if (!c) {
    c = { types: new Map(), typeNames: new Map(), keys: new Map(), keyNames: new Map() };
    caches.set(db, c);
  }
  return c;
}

async function intern(
  db: Queryable,
  names: Iterable<string>,
  forward: Map<string, number>,
  back: Map<number, string>,
  table: 'event_types' | 'event_state_keys',
): Promise<Map<string, number>> {
  const wanted = [...new Set(names)];
  const missing = wanted.filter((n) => !forward.has(n));
  if (missing.length > 0) {
    const [nidCol, nameCol] = table === 'event_types' ? ['type_nid', 'event_type'] : ['state_key_nid', 'state_key'];
    await db.query(`INSERT INTO ${table} (${nameCol}) SELECT unnest($1::text[]) ON CONFLICT (${nameCol}) DO NOTHING`, [missing]);
    const { rows } = await db.query<{ nid: number; name: string }>(
      `SELECT ${nidCol} AS nid, ${nameCol} AS name FROM ${table} WHERE ${nameCol} = ANY($1::text[])`,
      [missing],
    );
    for (const r of rows) {
      forward.set(r.name, r.nid);
      back.set(r.nid, r.name);
    }
  }
  return new Map(wanted.map((n) => [n, forward.get(n)!]));
}

/** Assigns (or finds) nids for event types. `cacheKey` is the Db the cache belongs to. */
export function internEventTypes(db: Queryable, types: Iterable<string>, cacheKey: object = db): Promise<Map<string, number>> {
  const c = cacheFor(cacheKey);
  return intern(db, types, c.types, c.typeNames, 'event_types');
}

export function internStateKeys(db: Queryable, keys: Iterable<string>, cacheKey: object = db): Promise<Map<string, number>> {
  const c = cacheFor(cacheKey);
  return intern(db, keys, c.keys, c.keyNames, 'event_state_keys');
}

async function names(
  db: Queryable,
  nids: Iterable<number>,
  back: Map<number, string>,
  forward: Map<string, number>,
  table: 'event_types' | 'event_state_keys',
): Promise<Map<number, string>> {
  const wanted = [...new Set(nids)];
  const missing = wanted.filter((n) => !back.has(n));
  if (missing.length > 0) {
    const [nidCol, nameCol] = table === 'event_types' ? ['type_nid', 'event_type'] : ['state_key_nid', 'state_key'];
    const { rows } = await db.query<{ nid: number; name: string }>(
      `SELECT ${nidCol} AS nid, ${nameCol} AS name FROM ${table} WHERE ${nidCol} = ANY($1::bigint[])`,
      [missing],
    );
    for (const r of rows) {
      back.set(r.nid, r.name);
      forward.set(r.name, r.nid);
    }
  }
  return new Map(wanted.map((n) => [n, back.get(n)!]));
}

export function eventTypeNames(db: Queryable, nids: Iterable<number>, cacheKey: object = db): Promise<Map<number, string>> {
  const c = cacheFor(cacheKey);
  return names(db, nids, c.typeNames, c.types, 'event_types');
}

export function stateKeyNames(db: Queryable, nids: Iterable<number>, cacheKey: object = db): Promise<Map<number, string>> {
  const c = cacheFor(cacheKey);
  return names(db, nids, c.keyNames, c.keys, 'event_state_keys');
}
