import type { Queryable } from '../db.js';

/**
 * Inbound federation transactions already applied (table federation_inbound_txns): the
 * answer of PUT /send/{txnId} per (origin, txnId), so that a retry is answered the same and
 * applied once.
 */
export async function getInboundTxnResponse(db: Queryable, origin: string, txnId: string): Promise<Record<string, unknown> | null> {
  const { rows } = await db.query<{ response: string }>('SELECT response FROM federation_inbound_txns WHERE origin = $1 AND txn_id = $2', [origin, txnId]);
  return rows[0] ? (JSON.parse(rows[0].response) as Record<string, unknown>) : null;
}

/** Records the answer; returns false if another request recorded one first. */
export async function saveInboundTxnResponse(db: Queryable, origin: string, txnId: string, response: Record<string, unknown>): Promise<boolean> {
  const { rowCount } = await db.query(
    `INSERT INTO federation_inbound_txns (origin, txn_id, response, received_ts) VALUES ($1, $2, $3, $4)
     ON CONFLICT (origin, txn_id) DO NOTHING`,
    [origin, txnId, JSON.stringify(response), Date.now()],
  );
  return rowCount > 0;
}
