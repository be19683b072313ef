import type { Queryable } from '../db.js';

/** Client transaction ids (table client_txns): (user, device, txn id) -> the event it produced. */
export async function findClientTxn(db: Queryable, userId: string, deviceId: string, txnId: string): Promise<string | null> {
  const { rows } = await db.query<{ event_id: string }>(
    'SELECT event_id FROM client_txns WHERE user_id = $1 AND device_id = $2 AND txn_id = $3',
    [userId, deviceId, txnId],
  );
  return rows[0]?.event_id ?? null;
}

/** Many lookups in one query: key JSON.stringify([userId, deviceId, txnId]) -> event id, for the ones found. */
export async function findClientTxns(
  db: Queryable,
  txns: ReadonlyArray<{ userId: string; deviceId: string; txnId: string }>,
): Promise<Map<string, string>> {
  if (txns.length === 0) return new Map();
  const { rows } = await db.query<{ user_id: string; device_id: string; txn_id: string; event_id: string }>(
    `SELECT c.user_id, c.device_id, c.txn_id, c.event_id FROM client_txns c
     JOIN unnest($1::text[], $2::text[], $3::text[]) AS u (user_id, device_id, txn_id)
       ON c.user_id = u.user_id AND c.device_id = u.device_id AND c.txn_id = u.txn_id`,
    [txns.map((t) => t.userId), txns.map((t) => t.deviceId), txns.map((t) => t.txnId)],
  );
  return new Map(rows.map((r) => [JSON.stringify([r.user_id, r.device_id, r.txn_id]), r.event_id]));
}
