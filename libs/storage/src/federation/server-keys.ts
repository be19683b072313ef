import type { Queryable } from '../db.js';

/** A remote server's verify key as stored (table server_keys). */
export interface StoredServerKey {
  serverName: string;
  keyId: string;
  /** Unpadded base64 Ed25519 public key. */
  publicKeyBase64: string;
  /** Until when signatures by the key count (ms). */
  validUntilTs: number;
  /** Set for keys the server lists as old. */
  expiredTs: number | null;
  fetchedTs: number;
}

interface Row {
  server_name: string;
  key_id: string;
  public_key: string;
  valid_until_ts: number;
  expired_ts: number | null;
  fetched_ts: number;
}

export async function getStoredServerKey(db: Queryable, serverName: string, keyId: string): Promise<StoredServerKey | null> {
  const { rows } = await db.query<Row>('SELECT * FROM server_keys WHERE server_name = $1 AND key_id = $2', [serverName, keyId]);
  const r = rows[0];
  return r
    ? { serverName: r.server_name, keyId: r.key_id, publicKeyBase64: r.public_key, validUntilTs: r.valid_until_ts, expiredTs: r.expired_ts, fetchedTs: r.fetched_ts }
    : null;
}

/** Every stored key of a server (the notary answers from these). */
export async function getStoredServerKeys(db: Queryable, serverName: string): Promise<StoredServerKey[]> {
  const { rows } = await db.query<Row>('SELECT * FROM server_keys WHERE server_name = $1 ORDER BY key_id', [serverName]);
  return rows.map((r) => ({ serverName: r.server_name, keyId: r.key_id, publicKeyBase64: r.public_key, validUntilTs: r.valid_until_ts, expiredTs: r.expired_ts, fetchedTs: r.fetched_ts }));
}

/** Stores keys; a key already stored keeps the longer validity. */
export async function putStoredServerKeys(db: Queryable, keys: readonly StoredServerKey[]): Promise<void> {
  if (keys.length === 0) return;
  await db.query(
    `INSERT INTO server_keys (server_name, key_id, public_key, valid_until_ts, expired_ts, fetched_ts)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[])
     ON CONFLICT (server_name, key_id) DO UPDATE SET
       public_key = EXCLUDED.public_key,
       valid_until_ts = GREATEST(server_keys.valid_until_ts, EXCLUDED.valid_until_ts),
       expired_ts = EXCLUDED.expired_ts,
       fetched_ts = EXCLUDED.fetched_ts`,
    [
      keys.map((k) => k.serverName), keys.map((k) => k.keyId), keys.map((k) => k.publicKeyBase64),
      keys.map((k) => k.validUntilTs), keys.map((k) => k.expiredTs), keys.map((k) => k.fetchedTs),
    ],
  );
}

/** The last key document of a server, as it published it (for the notary). */
export async function getServerKeyDocument(db: Queryable, serverName: string): Promise<{ document: Record<string, unknown>; validUntilTs: number; fetchedTs: number } | null> {
  const { rows } = await db.query<{ document: string; valid_until_ts: number; fetched_ts: number }>(
    'SELECT document, valid_until_ts, fetched_ts FROM server_key_documents WHERE server_name = $1',
    [serverName],
  );
  const r = rows[0];
  return r ? { document: JSON.parse(r.document), validUntilTs: r.valid_until_ts, fetchedTs: r.fetched_ts } : null;
}

export async function putServerKeyDocument(db: Queryable, serverName: string, document: Record<string, unknown>, validUntilTs: number, fetchedTs: number): Promise<void> {
  await db.query(
    `INSERT INTO server_key_documents (server_name, document, valid_until_ts, fetched_ts) VALUES ($1, $2, $3, $4)
     ON CONFLICT (server_name) DO UPDATE SET document = EXCLUDED.document, valid_until_ts = EXCLUDED.valid_until_ts, fetched_ts = EXCLUDED.fetched_ts`,
    [serverName, JSON.stringify(document), validUntilTs, fetchedTs],
  );
}
