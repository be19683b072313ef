import type { Queryable } from '@tessera/storage';

/** What is known of a local media item, without its bytes. */
export interface MediaInfo {
  mediaId: string;
  userId: string;
  createdTs: number;
  /** null: reserved by POST /media/v1/create, bytes not uploaded yet. */
  uploadedTs: number | null;
  contentType: string | null;
  uploadName: string | null;
  contentLength: number | null;
  /** Uploaded while the unauthenticated endpoints were frozen: served by /client/v1/media only. */
  authenticated: boolean;
}

export interface MediaUpload {
  contentType: string;
  uploadName: string | null;
  content: Uint8Array;
}

interface MediaRow {
  media_id: string;
  user_id: string;
  created_ts: number;
  uploaded_ts: number | null;
  content_type: string | null;
  upload_name: string | null;
  content_length: number | null;
  authenticated: boolean;
}

const INFO_COLUMNS = 'media_id, user_id, created_ts, uploaded_ts, content_type, upload_name, content_length, authenticated';

function toInfo(row: MediaRow): MediaInfo {
  return {
    mediaId: row.media_id,
    userId: row.user_id,
    createdTs: row.created_ts,
    uploadedTs: row.uploaded_ts,
    contentType: row.content_type,
    uploadName: row.upload_name,
    contentLength: row.content_length,
    authenticated: row.authenticated,
  };
}

/** Local media (table local_media): metadata and bytes in one row, reads of metadata never load the bytes. */
export const mediaStore = {
  async insertUploaded(db: Queryable, mediaId: string, userId: string, upload: MediaUpload, now: number, authenticated: boolean): Promise<void> {
    await db.query(
      `INSERT INTO local_media (media_id, user_id, created_ts, uploaded_ts, content_type, upload_name, content_length, content, authenticated)
       VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8)`,
      [mediaId, userId, now, upload.contentType, upload.uploadName, upload.content.byteLength, upload.content, authenticated],
    );
  },

  /** Reserves a media id for a later upload (POST /media/v1/create). */
  async reserve(db: Queryable, mediaId: string, userId: string, now: number, authenticated: boolean): Promise<void> {
    await db.query('INSERT INTO local_media (media_id, user_id, created_ts, authenticated) VALUES ($1, $2, $3, $4)', [mediaId, userId, now, authenticated]);
  },

  /**
   * Stores the bytes of a reserved id, only if it is still waiting for them, belongs to the
   * user and was reserved at or after `reservedSince`: false when another upload won the race
   * (or the id expired meanwhile).
   */
  async fillReserved(db: Queryable, mediaId: string, userId: string, upload: MediaUpload, now: number, reservedSince: number): Promise<boolean> {
    const { rowCount } = await db.query(
      `UPDATE local_media SET uploaded_ts = $3, content_type = $4, upload_name = $5, content_length = $6, content = $7
       WHERE media_id = $1 AND user_id = $2 AND uploaded_ts IS NULL AND created_ts >= $8`,
      [mediaId, userId, now, upload.contentType, upload.uploadName, upload.content.byteLength, upload.content, reservedSince],
    );
    return rowCount > 0;
  },

  async info(db: Queryable, mediaId: string): Promise<MediaInfo | undefined> {
    const { rows } = await db.query<MediaRow>(`SELECT ${INFO_COLUMNS} FROM local_media WHERE media_id = $1`, [mediaId]);
    return rows[0] && toInfo(rows[0]);
  },

  async content(db: Queryable, mediaId: string): Promise<Uint8Array | undefined> {
    const { rows } = await db.query<{ content: Uint8Array | null }>('SELECT content FROM local_media WHERE media_id = $1', [mediaId]);
    return rows[0]?.content ?? undefined;
  },

  /** The user's reserved ids still waiting for their bytes (created at or after `since`), and the oldest one's creation. */
  async pendingOf(db: Queryable, userId: string, since: number): Promise<{ count: number; oldestCreatedTs: number | null }> {
    const { rows } = await db.query<{ count: number; oldest: number | null }>(
      'SELECT count(*) AS count, min(created_ts) AS oldest FROM local_media WHERE user_id = $1 AND uploaded_ts IS NULL AND created_ts >= $2',
      [userId, since],
    );
    return { count: rows[0]?.count ?? 0, oldestCreatedTs: rows[0]?.oldest ?? null };
  },

  /** Forgets reserved ids that expired without an upload (they can never be filled). */
  async deleteExpiredReservations(db: Queryable, createdBefore: number): Promise<number> {
    const { rowCount } = await db.query('DELETE FROM local_media WHERE uploaded_ts IS NULL AND created_ts < $1', [createdBefore]);
    return rowCount;
  },
};
