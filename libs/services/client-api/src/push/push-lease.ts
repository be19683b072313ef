import type { Queryable } from '@tessera/storage';

/**
 * The push sender lease (table push_sender_lease, migration client_api_push_sender_0001_lease):
 * one row that names the client-api replica sending push notifications, until it expires.
 * Each replica tries to take or renew it periodically; only the holder sends, so a
 * notification is pushed by one replica however many run. Times come from the database clock
 * (as fanout-sender's shard leases), so replicas with skewed clocks agree.
 */
const NOW_MS = `(extract(epoch FROM clock_timestamp()) * 1000)::bigint`;
const LEASE = 'push';

/** Takes the lease when it is free or expired, or renews it when `owner` holds it. True when `owner` holds it after the call. */
export async function acquirePushLease(db: Queryable, owner: string, ttlMs: number): Promise<boolean> {
  const { rows } = await db.query<{ owner: string }>(
    `INSERT INTO push_sender_lease (lease, owner, expires_at_ms) VALUES ($1, $2, ${NOW_MS} + $3::bigint)
     ON CONFLICT (lease) DO UPDATE SET owner = EXCLUDED.owner, expires_at_ms = EXCLUDED.expires_at_ms
       WHERE push_sender_lease.owner = EXCLUDED.owner OR push_sender_lease.expires_at_ms < ${NOW_MS}
     RETURNING owner`,
    [LEASE, owner, ttlMs],
  );
  return rows.length === 1 && rows[0]!.owner === owner;
}

/** Gives the lease up (a clean stop), so another replica takes over without waiting for expiry. */
export async function releasePushLease(db: Queryable, owner: string): Promise<void> {
  await db.query('DELETE FROM push_sender_lease WHERE lease = $1 AND owner = $2', [LEASE, owner]);
}

/** The current, unexpired holder (tests, operators). */
export async function pushLeaseHolder(db: Queryable): Promise<string | undefined> {
  const { rows } = await db.query<{ owner: string }>(`SELECT owner FROM push_sender_lease WHERE lease = $1 AND expires_at_ms >= ${NOW_MS}`, [LEASE]);
  return rows[0]?.owner;
}
