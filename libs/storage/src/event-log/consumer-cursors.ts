import type { Queryable } from '../db.js';

/**
 * Consumer cursors (table consumer_cursors): how far a consumer (sync, fanout-sender, ...)
 * has processed the stream. A consumer reads events with position > its cursor
 * (getEventsSince) and saves the last position it handled.
 */
export async function getConsumerCursor(db: Queryable, consumer: string): Promise<number> {
  const { rows } = await db.query<{ position: number }>('SELECT position FROM consumer_cursors WHERE consumer = $1', [consumer]);
  return rows[0]?.position ?? 0;
}

/** Moves the cursor forward (never back: a late, out-of-order save is ignored). */
export async function saveConsumerCursor(db: Queryable, consumer: string, position: number): Promise<void> {
  await db.query(
    `INSERT INTO consumer_cursors (consumer, position) VALUES ($1, $2)
     ON CONFLICT (consumer) DO UPDATE SET position = GREATEST(consumer_cursors.position, EXCLUDED.position)`,
    [consumer, position],
  );
}

/** The highest stream position committed: every event at or below it is readable. */
export async function getMaxStreamPosition(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ position: number }>('SELECT position FROM stream_counter WHERE id = 1');
  return rows[0]?.position ?? 0;
}
