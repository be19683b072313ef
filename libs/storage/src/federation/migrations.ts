/**
 * Schema owned by the federation side: remote servers' verify keys (the KeyRing's persistent
 * cache) and the inbound transactions already applied (PUT /send/{txnId} is idempotent).
 * Applied by federation-ingress and room-server at startup (both fetch keys).
 */
import type { Migration } from '../migrate.js';

export const federationMigrations: Migration[] = [
  {
    id: 'federation_0001_keys_and_txns',
    sql: `
CREATE TABLE IF NOT EXISTS server_keys (
  server_name TEXT NOT NULL,
  key_id TEXT NOT NULL,
  public_key TEXT NOT NULL,
  valid_until_ts BIGINT NOT NULL,
  expired_ts BIGINT,
  fetched_ts BIGINT NOT NULL,
  PRIMARY KEY (server_name, key_id)
);

-- The last key document each server published (as fetched, its signatures kept): the notary
-- (/_matrix/key/v2/query) serves it countersigned.
CREATE TABLE IF NOT EXISTS server_key_documents (
  server_name TEXT PRIMARY KEY,
  document TEXT NOT NULL,
  valid_until_ts BIGINT NOT NULL,
  fetched_ts BIGINT NOT NULL
);

-- One row per (origin, txn id) applied: a retried transaction gets the same answer and is not
-- applied twice.
CREATE TABLE IF NOT EXISTS federation_inbound_txns (
  origin TEXT NOT NULL,
  txn_id TEXT NOT NULL,
  response TEXT NOT NULL,
  received_ts BIGINT NOT NULL,
  PRIMARY KEY (origin, txn_id)
);
`,
  },
];
