import type { Queryable } from '@tessera/storage';

/** An OpenGraph answer as served (string and integer values). */
export type OpenGraph = Record<string, string | number>;

/**
 * Previews already made (table url_previews), history-aware as Synapse's URL cache: each fetch
 * is a row valid from fetched_ts until expires_ts. Rows past expires_ts are deleted.
 */
export const urlPreviewStore = {
  /**
   * The preview to serve for `url` at `ts`: of the rows still valid `now`, the latest fetched at
   * or before `ts`, else the earliest fetched after it (the spec: "the server may return a newer
   * version if it does not have the requested version").
   */
  async find(db: Queryable, url: string, ts: number, now: number): Promise<OpenGraph | undefined> {
    const { rows } = await db.query<{ og: string }>(
      `(SELECT og, 0 AS rank, -fetched_ts AS t FROM url_previews WHERE url = $1 AND fetched_ts <= $2 AND expires_ts > $3 ORDER BY fetched_ts DESC LIMIT 1)
       UNION ALL
       (SELECT og, 1 AS rank, fetched_ts AS t FROM url_previews WHERE url = $1 AND fetched_ts > $2 AND expires_ts > $3 ORDER BY fetched_ts ASC LIMIT 1)
       ORDER BY rank, t LIMIT 1`,
      [url, ts, now],
    );
    return rows[0] ? (JSON.parse(rows[0].og) as OpenGraph) : undefined;
  },

  async insert(db: Queryable, url: string, fetchedTs: number, expiresTs: number, og: OpenGraph): Promise<void> {
    await db.query('INSERT INTO url_previews (url, fetched_ts, expires_ts, og) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING', [
      url,
      fetchedTs,
      expiresTs,
      JSON.stringify(og),
    ]);
  },

  /** Forgets previews no longer served. */
  async deleteExpired(db: Queryable, now: number): Promise<number> {
    const { rowCount } = await db.query('DELETE FROM url_previews WHERE expires_ts <= $1', [now]);
    return rowCount;
  },
};
