import type { Queryable } from '../db.js';

/**
 * EDUs that must not be lost while their server is down or this sender restarts: to-device
 * messages (Synapse keeps them in its device federation outbox likewise; Complement's
 * TestToDeviceMessagesOverFederation restarts the sending server before the other is back).
 * fanout-sender writes a row when it queues one, deletes it once delivered, and reloads a
 * destination's rows when its queue starts.
 */
export interface PendingEdu {
  id: number;
  edu: { edu_type: string; content: Record<string, unknown> };
}

export async function savePendingEdu(db: Queryable, serverName: string, edu: PendingEdu['edu']): Promise<number> {
  const { rows } = await db.query<{ id: string | number }>('INSERT INTO fanout_pending_edus (server_name, edu) VALUES ($1, $2) RETURNING id', [serverName, JSON.stringify(edu)]);
  return Number(rows[0]!.id);
}

/** The server's pending EDUs, oldest first. */
export async function loadPendingEdus(db: Queryable, serverName: string): Promise<PendingEdu[]> {
  const { rows } = await db.query<{ id: string | number; edu: PendingEdu['edu'] | string }>(
    'SELECT id, edu FROM fanout_pending_edus WHERE server_name = $1 ORDER BY id', [serverName],
  );
  return rows.map((r) => ({ id: Number(r.id), edu: typeof r.edu === 'string' ? JSON.parse(r.edu) : r.edu }));
}

export async function deletePendingEdus(db: Queryable, ids: number[]): Promise<void> {
  if (ids.length > 0) await db.query('DELETE FROM fanout_pending_edus WHERE id = ANY($1::bigint[])', [ids]);
}

export async function destinationsWithPendingEdus(db: Queryable): Promise<string[]> {
  const { rows } = await db.query<{ server_name: string }>('SELECT DISTINCT server_name FROM fanout_pending_edus');
  return rows.map((r) => r.server_name);
}
