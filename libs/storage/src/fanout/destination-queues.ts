import type { Queryable } from '../db.js';

/**
 * The outbound PDU queues: event_destinations rows (written by persistence) not yet delivered,
 * and each destination's delivery state in fanout_destinations (written by fanout-sender).
 * Everything a sender holds in memory can be rebuilt from these tables, so a restart loses
 * nothing.
 */

export interface DestinationState {
  serverName: string;
  /** Every PDU for this server at or below this stream position was delivered (or skipped by catch-up). */
  sentPosition: number;
  failures: number;
  /** Do not try before this time (ms since epoch). */
  retryAtMs: number;
}

export interface QueuedPdu {
  streamPos: number;
  roomNid: number;
  /** The event as stored: the PDU as it is sent over federation. */
  pdu: Record<string, unknown>;
}

/** Servers with undelivered PDUs, optionally only those queued in (after, upTo]. */
export async function destinationsWithPendingPdus(db: Queryable, range?: { after: number; upTo: number }): Promise<string[]> {
  const { rows } = range
    ? await db.query<{ server_name: string }>(
        'SELECT DISTINCT server_name FROM event_destinations WHERE stream_pos > $1 AND stream_pos <= $2',
        [range.after, range.upTo],
      )
    : await db.query<{ server_name: string }>('SELECT DISTINCT server_name FROM event_destinations');
  return rows.map((r) => r.server_name);
}

export async function loadDestinationState(db: Queryable, serverName: string): Promise<DestinationState> {
  const { rows } = await db.query<{ sent_position: number; failures: number; retry_at_ms: number }>(
    'SELECT sent_position, failures, retry_at_ms FROM fanout_destinations WHERE server_name = $1',
    [serverName],
  );
  const r = rows[0];
  return { serverName, sentPosition: r?.sent_position ?? 0, failures: r?.failures ?? 0, retryAtMs: r?.retry_at_ms ?? 0 };
}

/** Delivery state of many servers in one query (a fanout wakes hundreds of queues at once). */
export async function loadDestinationStates(db: Queryable, serverNames: string[]): Promise<Map<string, DestinationState>> {
  const out = new Map<string, DestinationState>(serverNames.map((serverName) => [serverName, { serverName, sentPosition: 0, failures: 0, retryAtMs: 0 }]));
  if (serverNames.length === 0) return out;
  const { rows } = await db.query<{ server_name: string; sent_position: number; failures: number; retry_at_ms: number }>(
    'SELECT server_name, sent_position, failures, retry_at_ms FROM fanout_destinations WHERE server_name = ANY($1::text[])',
    [serverNames],
  );
  for (const r of rows) out.set(r.server_name, { serverName: r.server_name, sentPosition: r.sent_position, failures: r.failures, retryAtMs: r.retry_at_ms });
  return out;
}

/** The oldest undelivered PDUs for a server, in stream order. */
export async function nextPdus(db: Queryable, serverName: string, after: number, limit: number): Promise<QueuedPdu[]> {
  const { rows } = await db.query<{ stream_pos: number; room_nid: number; json: string }>(
    `SELECT d.stream_pos, d.room_nid, e.json FROM event_destinations d JOIN events e ON e.stream_pos = d.stream_pos
     WHERE d.server_name = $1 AND d.stream_pos > $2 ORDER BY d.stream_pos LIMIT $3`,
    [serverName, after, limit],
  );
  return rows.map((r) => ({ streamPos: r.stream_pos, roomNid: r.room_nid, pdu: JSON.parse(r.json) as Record<string, unknown> }));
}

export interface NextPdusRequest {
  serverName: string;
  /** Read PDUs above this stream position. */
  after: number;
  limit: number;
}

/**
 * nextPdus for many servers in one query (a fanout wakes hundreds of queues at once). An event
 * queued for several servers is read and parsed once; the servers' lists share its object.
 */
export async function nextPdusForMany(db: Queryable, requests: readonly NextPdusRequest[]): Promise<Map<string, QueuedPdu[]>> {
  const out = new Map<string, QueuedPdu[]>(requests.map((r) => [r.serverName, []]));
  if (requests.length === 0) return out;
  const { rows } = await db.query<{ server_name: string; stream_pos: number; room_nid: number }>(
    `SELECT q.server_name, d.stream_pos, d.room_nid
     FROM unnest($1::text[], $2::bigint[], $3::int[]) AS q(server_name, after, lim)
     CROSS JOIN LATERAL (
       SELECT stream_pos, room_nid FROM event_destinations
       WHERE server_name = q.server_name AND stream_pos > q.after ORDER BY stream_pos LIMIT q.lim
     ) d`,
    [requests.map((r) => r.serverName), requests.map((r) => r.after), requests.map((r) => r.limit)],
  );
  if (rows.length === 0) return out;
  const positions = [...new Set(rows.map((r) => Number(r.stream_pos)))];
  const events = await db.query<{ stream_pos: number; json: string }>('SELECT stream_pos, json FROM events WHERE stream_pos = ANY($1::bigint[])', [positions]);
  const pdus = new Map(events.rows.map((e) => [Number(e.stream_pos), JSON.parse(e.json) as Record<string, unknown>]));
  for (const r of rows) {
    const pdu = pdus.get(Number(r.stream_pos));
    if (pdu) out.get(r.server_name)!.push({ streamPos: Number(r.stream_pos), roomNid: r.room_nid, pdu });
  }
  for (const list of out.values()) list.sort((a, b) => a.streamPos - b.streamPos);
  return out;
}

/** How many PDUs wait for a server, counting at most `cap` (enough to decide on catch-up). */
export async function countPendingPdus(db: Queryable, serverName: string, after: number, cap: number): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM (SELECT 1 FROM event_destinations WHERE server_name = $1 AND stream_pos > $2 LIMIT $3) q`,
    [serverName, after, cap],
  );
  return rows[0]?.n ?? 0;
}

/**
 * Catch-up after a long outage: only the newest undelivered PDU of each room, up to `upTo`.
 * The remote fetches what lies between with get_missing_events.
 */
export async function latestPduPerRoom(db: Queryable, serverName: string, after: number, upTo: number): Promise<QueuedPdu[]> {
  const { rows } = await db.query<{ stream_pos: number; room_nid: number; json: string }>(
    `SELECT q.stream_pos, q.room_nid, e.json FROM (
       SELECT DISTINCT ON (room_nid) stream_pos, room_nid FROM event_destinations
       WHERE server_name = $1 AND stream_pos > $2 AND stream_pos <= $3 ORDER BY room_nid, stream_pos DESC
     ) q JOIN events e ON e.stream_pos = q.stream_pos ORDER BY q.stream_pos`,
    [serverName, after, upTo],
  );
  return rows.map((r) => ({ streamPos: r.stream_pos, roomNid: r.room_nid, pdu: JSON.parse(r.json) as Record<string, unknown> }));
}

/** The highest queued position for a server (0 when nothing waits). */
export async function lastPendingPosition(db: Queryable, serverName: string): Promise<number> {
  const { rows } = await db.query<{ p: number | null }>('SELECT max(stream_pos) AS p FROM event_destinations WHERE server_name = $1', [serverName]);
  return rows[0]?.p ?? 0;
}

/** The server has everything up to `position`: move its cursor (never back) and drop its delivered rows. */
export async function markDelivered(db: Queryable, serverName: string, position: number, nowMs: number): Promise<void> {
  // One statement: this runs once per transaction per destination, the hot path of a fanout.
  await db.query(
    `WITH delivered AS (DELETE FROM event_destinations WHERE server_name = $1 AND stream_pos <= $2)
     INSERT INTO fanout_destinations (server_name, sent_position, failures, retry_at_ms, last_error, last_success_ms)
     VALUES ($1, $2, 0, 0, NULL, $3)
     ON CONFLICT (server_name) DO UPDATE SET sent_position = GREATEST(fanout_destinations.sent_position, EXCLUDED.sent_position),
       failures = 0, retry_at_ms = 0, last_error = NULL, last_success_ms = EXCLUDED.last_success_ms`,
    [serverName, position, nowMs],
  );
}

/**
 * markDelivered for many servers in one statement (the deliveries of a fanout end at about
 * the same time). A server named twice keeps its highest position.
 */
export async function markDeliveredMany(db: Queryable, deliveries: ReadonlyArray<{ serverName: string; position: number }>, nowMs: number): Promise<void> {
  const highest = new Map<string, number>();
  for (const d of deliveries) highest.set(d.serverName, Math.max(highest.get(d.serverName) ?? d.position, d.position));
  if (highest.size === 0) return;
  await db.query(
    `WITH input AS (SELECT * FROM unnest($1::text[], $2::bigint[]) AS t(server_name, position)),
     delivered AS (DELETE FROM event_destinations d USING input i WHERE d.server_name = i.server_name AND d.stream_pos <= i.position)
     INSERT INTO fanout_destinations (server_name, sent_position, failures, retry_at_ms, last_error, last_success_ms)
     SELECT server_name, position, 0, 0, NULL, $3 FROM input
     ON CONFLICT (server_name) DO UPDATE SET sent_position = GREATEST(fanout_destinations.sent_position, EXCLUDED.sent_position),
       failures = 0, retry_at_ms = 0, last_error = NULL, last_success_ms = EXCLUDED.last_success_ms`,
    [[...highest.keys()], [...highest.values()], nowMs],
  );
}

export async function markFailed(db: Queryable, serverName: string, failures: number, retryAtMs: number, error: string): Promise<void> {
  await db.query(
    `INSERT INTO fanout_destinations (server_name, failures, retry_at_ms, last_error) VALUES ($1, $2, $3, $4)
     ON CONFLICT (server_name) DO UPDATE SET failures = EXCLUDED.failures, retry_at_ms = EXCLUDED.retry_at_ms, last_error = EXCLUDED.last_error`,
    [serverName, failures, retryAtMs, error.slice(0, 1000)],
  );
}
