import type { Queryable } from '../db.js';

/**
 * Shard leases of fanout-sender replicas, in PostgreSQL (works the same on PGlite in the
 * embedded mode). Times come from the database clock, so replicas on machines with skewed
 * clocks agree on who holds what.
 */
const NOW_MS = `(extract(epoch FROM clock_timestamp()) * 1000)::bigint`;

/** Announces a live replica until now + ttl; drops replicas whose announcement ran out. Returns the live replicas. */
export async function heartbeatReplica(db: Queryable, replicaId: string, ttlMs: number): Promise<string[]> {
  await db.query(
    `INSERT INTO fanout_replicas (replica_id, expires_at_ms) VALUES ($1, ${NOW_MS} + $2)
     ON CONFLICT (replica_id) DO UPDATE SET expires_at_ms = EXCLUDED.expires_at_ms`,
    [replicaId, ttlMs],
  );
  await db.query(`DELETE FROM fanout_replicas WHERE expires_at_ms < ${NOW_MS}`);
  const { rows } = await db.query<{ replica_id: string }>('SELECT replica_id FROM fanout_replicas ORDER BY replica_id');
  return rows.map((r) => r.replica_id);
}

/**
 * Takes or renews leases on `shards` for `owner`: a shard is granted when it is free, expired
 * or already ours. Returns the shards held after the call.
 */
export async function acquireShardLeases(db: Queryable, owner: string, shards: number[], ttlMs: number): Promise<number[]> {
  if (shards.length === 0) return [];
  const { rows } = await db.query<{ shard: number }>(
    `INSERT INTO fanout_shard_leases (shard, owner, expires_at_ms) SELECT s, $1, ${NOW_MS} + $3 FROM unnest($2::int[]) AS s
     ON CONFLICT (shard) DO UPDATE SET owner = EXCLUDED.owner, expires_at_ms = EXCLUDED.expires_at_ms
       WHERE fanout_shard_leases.owner = EXCLUDED.owner OR fanout_shard_leases.expires_at_ms < ${NOW_MS}
     RETURNING shard`,
    [owner, shards, ttlMs],
  );
  return rows.map((r) => r.shard).sort((a, b) => a - b);
}

/** Gives shards up at once (rebalancing, or a clean stop), so another replica need not wait for expiry. */
export async function releaseShardLeases(db: Queryable, owner: string, shards?: number[]): Promise<void> {
  if (shards === undefined) await db.query('DELETE FROM fanout_shard_leases WHERE owner = $1', [owner]);
  else if (shards.length > 0) await db.query('DELETE FROM fanout_shard_leases WHERE owner = $1 AND shard = ANY($2::int[])', [owner, shards]);
}

export async function removeReplica(db: Queryable, replicaId: string): Promise<void> {
  await db.query('DELETE FROM fanout_replicas WHERE replica_id = $1', [replicaId]);
}

/** Current lease holders by shard (for tests and operators). */
export async function shardLeaseOwners(db: Queryable): Promise<Map<number, string>> {
  const { rows } = await db.query<{ shard: number; owner: string }>(`SELECT shard, owner FROM fanout_shard_leases WHERE expires_at_ms >= ${NOW_MS}`);
  return new Map(rows.map((r) => [r.shard, r.owner]));
}
