import type { Queryable } from '../db.js';

/** Client transaction ids (table client_txns): (user, device, txn id) -> the event it produced. */
export async function findClientTxn(db: Queryable, userId: string, deviceId: string, txnId: string): Promise<string | null> {
  const { rows } = await db.query<{ event_id: string }>(
    'SELECT event_id FROM client_txns WHERE user_id = $1 AND device_id = $2 AND txn_id = $3',
    [userId, deviceId, txnId],
  );
  return rows[0]?.event_id ?? null;
}
