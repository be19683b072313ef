import type { Queryable } from '@tessera/storage';

/**
 * Full-text matching at query time over a bounded window of the event log. No index and no
 * trigger: the append path (persistence) pays nothing for search. A window is the newest
 * `size` events (any type) of the searched rooms below a stream position; the JSON of the
 * message/name/topic events among them is parsed and matched with PostgreSQL's text search
 * ('simple' configuration: lower-cased words, no stemming, so any language's words match as
 * written). The same SQL runs on PGlite.
 */

export interface WindowQuery {
  roomIds: readonly string[];
  /** Only events at stream positions below this. */
  before: number;
  size: number;
  types: readonly string[];
  senders?: readonly string[];
  notSenders?: readonly string[];
  containsUrl?: boolean;
  /** A to_tsquery expression (see tsQueryOf). */
  tsQuery: string;
  /** Also match texts containing this (case-insensitively): for scripts written without spaces. */
  substring?: string;
}

export interface WindowMatch {
  eventId: string;
  roomId: string;
  sender: string;
  streamPos: number;
  rank: number;
  /** The searched text (body, name or topic), for the highlights. */
  text: string;
}

export interface SearchWindow {
  matches: WindowMatch[];
  /** How many events the window holds (fewer than `size`: the rooms' history ends here). */
  scanned: number;
  /** The lowest stream position in the window: the next window's `before`. */
  lowest: number | null;
}

// Three steps, each bounded by the window size, and fenced with MATERIALIZED so that the
// planner never runs the text match over more than the window:
// 1. bound: the positions of the newest `size` events per room (index (room_nid, stream_pos)),
//    merged to the newest `size` overall: the window's lowest position;
// 2. win: the window's events, one range scan of the same index;
// 3. the JSON of its message/name/topic events parsed and matched.
const WINDOW_SQL = `
WITH searched AS MATERIALIZED (
  SELECT room_nid FROM rooms WHERE room_id = ANY($1::text[])
),
bound AS MATERIALIZED (
  SELECT p.stream_pos
  FROM searched r
  CROSS JOIN LATERAL (
    SELECT e.stream_pos FROM events e
    WHERE e.room_nid = r.room_nid AND e.stream_pos < $2
    ORDER BY e.room_nid DESC, e.stream_pos DESC LIMIT $3
  ) p
  ORDER BY p.stream_pos DESC LIMIT $3
),
stats AS MATERIALIZED (
  SELECT count(*) AS scanned, min(stream_pos) AS lowest FROM bound
),
win AS MATERIALIZED (
  SELECT e.event_id, e.room_nid, e.type_nid, e.sender, e.stream_pos, e.json
  FROM events e
  WHERE e.room_nid IN (SELECT room_nid FROM searched)
    AND e.stream_pos >= (SELECT lowest FROM stats) AND e.stream_pos < $2
    AND e.type_nid IN (SELECT type_nid FROM event_types WHERE event_type = ANY($4::text[]))
    AND e.redacted_by IS NULL AND e.rejected_reason IS NULL AND NOT e.soft_failed
    AND ($5::text[] IS NULL OR e.sender = ANY($5::text[]))
    AND ($6::text[] IS NULL OR NOT (e.sender = ANY($6::text[])))
),
docs AS MATERIALIZED (
  SELECT w.event_id, r.room_id, w.sender, w.stream_pos,
         CASE t.event_type WHEN 'm.room.message' THEN j.c ->> 'body' WHEN 'm.room.name' THEN j.c ->> 'name' ELSE j.c ->> 'topic' END AS doc
  FROM win w
  JOIN rooms r ON r.room_nid = w.room_nid
  JOIN event_types t ON t.type_nid = w.type_nid
  CROSS JOIN LATERAL (SELECT (w.json::jsonb) -> 'content' AS c) j
  WHERE ($7::boolean IS NULL OR (jsonb_typeof(j.c -> 'url') = 'string') = $7::boolean)
),
matched AS (
  SELECT d.event_id, d.room_id, d.sender, d.stream_pos, d.doc, ts_rank(v.vec, q.query) AS rank
  FROM docs d
  CROSS JOIN LATERAL (SELECT to_tsvector('simple', coalesce(d.doc, '')) AS vec) v
  CROSS JOIN (SELECT to_tsquery('simple', $8) AS query) q
  WHERE v.vec @@ q.query OR ($9::text IS NOT NULL AND strpos(lower(coalesce(d.doc, '')), lower($9::text)) > 0)
)
SELECT s.scanned, s.lowest, m.event_id, m.room_id, m.sender, m.stream_pos, m.doc, m.rank
FROM stats s
LEFT JOIN matched m ON TRUE`;

interface Row {
  scanned: number;
  lowest: number | null;
  event_id: string | null;
  room_id: string;
  sender: string;
  stream_pos: number;
  doc: string | null;
  rank: number;
}

export async function searchWindow(db: Queryable, q: WindowQuery): Promise<SearchWindow> {
  const { rows } = await db.query<Row>(WINDOW_SQL, [
    [...q.roomIds], q.before, q.size, [...q.types],
    q.senders ? [...q.senders] : null, q.notSenders ? [...q.notSenders] : null, q.containsUrl ?? null, q.tsQuery, q.substring ?? null,
  ]);
  const first = rows[0];
  return {
    scanned: Number(first?.scanned ?? 0),
    lowest: first?.lowest === null || first?.lowest === undefined ? null : Number(first.lowest),
    matches: rows
      .filter((r) => r.event_id !== null)
      .map((r) => ({ eventId: r.event_id!, roomId: r.room_id, sender: r.sender, streamPos: Number(r.stream_pos), rank: Number(r.rank), text: r.doc ?? '' })),
  };
}

/** The words of a search term as PostgreSQL's 'simple' configuration splits and lower-cases them (the highlights). */
export async function searchTermWords(db: Queryable, term: string): Promise<string[]> {
  const { rows } = await db.query<{ lexeme: string }>("SELECT lexeme FROM unnest(to_tsvector('simple', $1))", [term]);
  return rows.map((r) => r.lexeme);
}

/**
 * The to_tsquery expression for these words: each as a quoted prefix (`'word':*`, so
 * "mart" finds "martians", as Synapse matches prefixes), all of them required.
 */
export function tsQueryOf(words: readonly string[]): string {
  return words.map((w) => `'${w.replace(/\\/g, '\\\\').replace(/'/g, "''")}':*`).join(' & ');
}
