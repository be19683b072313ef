import type { Queryable } from '@tessera/storage';

/** The streams client-api writes; each has one row in client_api_streams. */
export type ClientApiStream = 'account_data' | 'to_device' | 'device_lists' | 'receipts';

/**
 * Takes the next position of a stream. Call inside the transaction that writes the rows: the
 * row lock is held until commit, so positions become visible in increasing order.
 */
export async function nextStreamPosition(tx: Queryable, stream: ClientApiStream): Promise<number> {
  const { rows } = await tx.query<{ position: number }>(
    'UPDATE client_api_streams SET position = position + 1 WHERE name = $1 RETURNING position',
    [stream],
  );
  return rows[0].position;
}

export async function currentStreamPosition(db: Queryable, stream: ClientApiStream): Promise<number> {
  const { rows } = await db.query<{ position: number }>('SELECT position FROM client_api_streams WHERE name = $1', [stream]);
  return rows[0]?.position ?? 0;
}
