import type { Queryable } from '@tessera/storage';

/** Another server's media as fetched over federation. */
export interface RemoteMedia {
  contentType: string | null;
  uploadName: string | null;
  content: Uint8Array;
}

export interface CachedRemoteMedia extends RemoteMedia {
  fetchedTs: number;
  /** Fetched while the unauthenticated endpoints were frozen: served by /client/v1/media only. */
  authenticated: boolean;
}

/** A thumbnail as the remote made it, under the parameters it was asked with. */
export interface ThumbnailKey {
  width: number;
  height: number;
  method: 'crop' | 'scale';
  /** 'true', 'false', or '' when the request did not say. */
  animated: string;
}

/**
 * The cache of remote media (tables remote_media and remote_media_thumbnails): media never
 * changes, so a row once written is served for good. Concurrent fetches of the same media
 * write the same bytes; the first row stays.
 */
export const remoteMediaStore = {
  async get(db: Queryable, serverName: string, mediaId: string): Promise<CachedRemoteMedia | undefined> {
    const { rows } = await db.query<{ content_type: string | null; upload_name: string | null; content: Uint8Array; fetched_ts: number; authenticated: boolean }>(
      'SELECT content_type, upload_name, content, fetched_ts, authenticated FROM remote_media WHERE server_name = $1 AND media_id = $2',
      [serverName, mediaId],
    );
    const row = rows[0];
    return row && { contentType: row.content_type, uploadName: row.upload_name, content: row.content, fetchedTs: Number(row.fetched_ts), authenticated: row.authenticated };
  },

  async put(db: Queryable, serverName: string, mediaId: string, media: RemoteMedia, now: number, authenticated: boolean): Promise<void> {
    await db.query(
      `INSERT INTO remote_media (server_name, media_id, fetched_ts, content_type, upload_name, content_length, content, authenticated)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (server_name, media_id) DO NOTHING`,
      [serverName, mediaId, now, media.contentType, media.uploadName, media.content.byteLength, media.content, authenticated],
    );
  },

  async getThumbnail(db: Queryable, serverName: string, mediaId: string, key: ThumbnailKey): Promise<{ contentType: string; content: Uint8Array } | undefined> {
    const { rows } = await db.query<{ content_type: string; content: Uint8Array }>(
      `SELECT content_type, content FROM remote_media_thumbnails
       WHERE server_name = $1 AND media_id = $2 AND width = $3 AND height = $4 AND method = $5 AND animated = $6`,
      [serverName, mediaId, key.width, key.height, key.method, key.animated],
    );
    return rows[0] && { contentType: rows[0].content_type, content: rows[0].content };
  },

  async putThumbnail(db: Queryable, serverName: string, mediaId: string, key: ThumbnailKey, contentType: string, content: Uint8Array, now: number): Promise<void> {
    await db.query(
      `INSERT INTO remote_media_thumbnails (server_name, media_id, width, height, method, animated, fetched_ts, content_type, content)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (server_name, media_id, width, height, method, animated) DO NOTHING`,
      [serverName, mediaId, key.width, key.height, key.method, key.animated, now, contentType, content],
    );
  },
};
