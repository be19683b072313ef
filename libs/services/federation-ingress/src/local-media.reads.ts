/**
 * Reads of client-api's local_media table (the content repository; client-api owns and writes
 * it) for the federation media endpoints. A deployment whose database lacks the table (no
 * client-api yet) has no media: undefined.
 */
import type { Queryable } from '@tessera/storage';

export interface LocalMediaRow {
  createdTs: number;
  /** null: reserved by POST /_matrix/media/v1/create, bytes not uploaded yet. */
  uploadedTs: number | null;
  contentType: string | null;
  uploadName: string | null;
}

const UNDEFINED_TABLE = '42P01';

function isMissingTable(err: unknown): boolean {
  return (err as { code?: string }).code === UNDEFINED_TABLE || /does not exist/.test((err as Error).message);
}

export async function getLocalMediaInfo(db: Queryable, mediaId: string): Promise<LocalMediaRow | undefined> {
  try {
    const { rows } = await db.query<{ created_ts: number; uploaded_ts: number | null; content_type: string | null; upload_name: string | null }>(
      'SELECT created_ts, uploaded_ts, content_type, upload_name FROM local_media WHERE media_id = $1',
      [mediaId],
    );
    const row = rows[0];
    return row && { createdTs: Number(row.created_ts), uploadedTs: row.uploaded_ts === null ? null : Number(row.uploaded_ts), contentType: row.content_type, uploadName: row.upload_name };
  } catch (err) {
    if (isMissingTable(err)) return undefined;
    throw err;
  }
}

export async function getLocalMediaContent(db: Queryable, mediaId: string): Promise<Uint8Array | undefined> {
  try {
    const { rows } = await db.query<{ content: Uint8Array | null }>('SELECT content FROM local_media WHERE media_id = $1', [mediaId]);
    return rows[0]?.content ?? undefined;
  } catch (err) {
    if (isMissingTable(err)) return undefined;
    throw err;
  }
}
