import { randomInt } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Inject, Injectable } from '@nestjs/common';
import { isValidServerName } from '@tessera/protocol';
import type { Db } from '@tessera/storage';
import { MatrixError, forbidden, invalidParam, notFound } from '../errors.js';
import { CLIENT_API_SETTINGS, type ClientApiSettings } from '../settings.js';
import { CLIENT_API_DB } from '../tokens.js';
import { isAnimatedImage } from '@tessera/protocol';
import { essenceOf } from './content-headers.js';
import { mediaStore, type MediaInfo, type MediaUpload } from './media.store.js';
import { RemoteMediaService } from './remote-media.service.js';
import type { RemoteMedia } from './remote-media.store.js';

/** The spec's media-id alphabet (security considerations: only these, so no path tricks). */
const MEDIA_ID = /^[A-Za-z0-9_-]+$/;
const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
/** As Synapse: 24 random letters (about 137 bits). */
const ID_LENGTH = 24;

/** timeout_ms of downloads and thumbnails: the spec's default, and Synapse's maximum. */
export const DEFAULT_WAIT_MS = 20_000;
export const MAX_WAIT_MS = 60_000;
/** How often a download waiting for an async upload looks again (the row may be filled by another replica). */
const WAIT_POLL_MS = 500;

/** Content types the thumbnail endpoint may answer with (the spec's enum of its 200 response). */
const THUMBNAIL_TYPES = new Set(['image/jpeg', 'image/png', 'image/apng', 'image/gif', 'image/webp']);

export interface ServedMedia {
  info: MediaInfo;
  content: Uint8Array;
}

export interface ThumbnailRequest {
  /** Desired size and method; without an image library they only have to be valid (see thumbnail()). */
  width: number;
  height: number;
  method: 'crop' | 'scale';
  animated: boolean | undefined;
}

/**
 * The content repository for local media: uploads (direct, and async through a reserved id),
 * downloads and thumbnails, all in the database (media.store.ts), so any replica serves any
 * media. Remote media (another server's mxc://) is fetched over federation and cached by
 * RemoteMediaService.
 */
@Injectable()
export class MediaService {
  constructor(
    @Inject(CLIENT_API_DB) private readonly db: Db,
    @Inject(CLIENT_API_SETTINGS) private readonly settings: ClientApiSettings,
    @Inject(RemoteMediaService) private readonly remote: RemoteMediaService,
  ) {}

  get maxUploadSize(): number {
    return this.settings.media.maxUploadSize;
  }

  /** POST /media/v3/upload: a new media id with these bytes. */
  async upload(userId: string, upload: MediaUpload): Promise<string> {
    this.checkSize(upload);
    const mediaId = newMediaId();
    await mediaStore.insertUploaded(this.db, mediaId, userId, upload, Date.now(), this.settings.media.enableAuthenticatedMedia);
    return this.mxcUri(mediaId);
  }

  /**
   * POST /media/v1/create: reserves a media id for a later PUT. A user holds at most
   * maxPendingUploads unexpired reservations (spec: 429 M_LIMIT_EXCEEDED beyond, retry when
   * the oldest expires).
   */
  async create(userId: string): Promise<{ content_uri: string; unused_expires_at: number }> {
    const now = Date.now();
    const { unusedExpiryMs, maxPendingUploads } = this.settings.media;
    await mediaStore.deleteExpiredReservations(this.db, now - unusedExpiryMs);
    const pending = await mediaStore.pendingOf(this.db, userId, now - unusedExpiryMs);
    if (pending.count >= maxPendingUploads) {
      const retryAfterMs = Math.max(0, (pending.oldestCreatedTs ?? now) + unusedExpiryMs - now);
      throw new MatrixError(429, 'M_LIMIT_EXCEEDED', `Too many pending uploads: upload to your ${pending.count} created media ids first`, {
        retry_after_ms: retryAfterMs,
      });
    }
    const mediaId = newMediaId();
    await mediaStore.reserve(this.db, mediaId, userId, now, this.settings.media.enableAuthenticatedMedia);
    return { content_uri: this.mxcUri(mediaId), unused_expires_at: now + unusedExpiryMs };
  }

  /** PUT /media/v3/upload/{serverName}/{mediaId}: the bytes of a reserved id, once, by its creator, before it expires. */
  async uploadReserved(userId: string, serverName: string, mediaId: string, upload: MediaUpload): Promise<void> {
    if (serverName !== this.settings.serverName) throw notFound(`${serverName} is not this server: create the media id here first`);
    const info = MEDIA_ID.test(mediaId) ? await mediaStore.info(this.db, mediaId) : undefined;
    if (!info) throw notFound('Unknown media id: create one with POST /_matrix/media/v1/create');
    if (info.userId !== userId) throw forbidden('Only the user who created this media id can upload to it');
    if (info.uploadedTs !== null) throw cannotOverwrite();
    const reservedSince = Date.now() - this.settings.media.unusedExpiryMs;
    if (info.createdTs < reservedSince) throw notFound('This media id expired before its upload: create a new one');
    this.checkSize(upload);
    if (!(await mediaStore.fillReserved(this.db, mediaId, userId, upload, Date.now(), reservedSince))) {
      // Another request filled it between the checks and the write.
      throw cannotOverwrite();
    }
  }

  /**
   * The media with its bytes, for a download. An id reserved but not uploaded yet is waited
   * for up to timeoutMs (spec: then 504 M_NOT_YET_UPLOADED). `authenticatedRequest` false:
   * the deprecated /_matrix/media endpoints, which do not serve frozen media (404, as Synapse).
   * Another server's media comes from RemoteMediaService (`allowRemote`: the legacy endpoints'
   * allow_remote parameter).
   */
  async download(serverName: string, mediaId: string, timeoutMs: number, authenticatedRequest: boolean, allowRemote = true): Promise<ServedMedia> {
    if (this.isRemote(serverName, mediaId)) {
      const media = await this.remote.download(serverName, mediaId, timeoutMs, { authenticatedRequest, allowRemote });
      return { info: remoteInfo(mediaId, media), content: media.content };
    }
    const info = await this.awaitUploaded(serverName, mediaId, timeoutMs, authenticatedRequest);
    const content = await mediaStore.content(this.db, mediaId);
    if (!content) throw notFound('Media not found');
    return { info, content };
  }

  /**
   * A thumbnail. Without an image library nothing is resized: an image in a type a thumbnail
   * may have (the spec's jpeg, png, apng, gif, webp) is answered with the original, which is
   * never smaller than the requested size unless the original is (spec: then the original
   * is what to return). Other content cannot be thumbnailed: 400 M_UNKNOWN, as Synapse.
   * `animated=false` must not get an animated image: an animated original is refused then.
   */
  async thumbnail(serverName: string, mediaId: string, request: ThumbnailRequest, timeoutMs: number, authenticatedRequest: boolean, allowRemote = true): Promise<ServedMedia & { essence: string }> {
    if (this.isRemote(serverName, mediaId)) {
      const { essence, content } = await this.remote.thumbnail(serverName, mediaId, request, timeoutMs, { authenticatedRequest, allowRemote });
      return { info: remoteInfo(mediaId, { contentType: essence, uploadName: null, content }), content, essence };
    }
    const { info, content } = await this.download(serverName, mediaId, timeoutMs, authenticatedRequest);
    const essence = essenceOf(info.contentType ?? '');
    if (!THUMBNAIL_TYPES.has(essence)) {
      throw new MatrixError(400, 'M_UNKNOWN', `Cannot generate thumbnails for ${info.contentType ?? 'content without a type'} (thumbnails are of jpeg, png, gif and webp images)`);
    }
    if (request.animated === false && isAnimatedImage(content, essence)) {
      throw new MatrixError(400, 'M_UNKNOWN', 'This image is animated and this server cannot make a still thumbnail of it: ask with animated=true, or download it');
    }
    return { info, content, essence };
  }

  private async awaitUploaded(serverName: string, mediaId: string, timeoutMs: number, authenticatedRequest: boolean): Promise<MediaInfo> {
    if (!isValidServerName(serverName)) throw invalidParam(`"${serverName}" is not a valid server name`);
    if (serverName !== this.settings.serverName) {
      throw notFound(`Media of ${serverName} is not available: this server does not fetch remote media yet`);
    }
    if (!MEDIA_ID.test(mediaId)) throw notFound('Media not found');
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const info = await mediaStore.info(this.db, mediaId);
      if (!info) throw notFound('Media not found');
      // As Synapse: the freeze is judged once the content is there; media still awaiting its
      // upload answers 504 M_NOT_YET_UPLOADED on the deprecated endpoints too.
      if (info.uploadedTs !== null) {
        if (!authenticatedRequest && info.authenticated && this.settings.media.enableAuthenticatedMedia) {
          throw notFound('Media not found: it is served only by the authenticated /_matrix/client/v1/media endpoints');
        }
        return info;
      }
      const now = Date.now();
      if (info.createdTs < now - this.settings.media.unusedExpiryMs) throw notFound('Media not found: its id expired without an upload');
      if (now >= deadline) throw new MatrixError(504, 'M_NOT_YET_UPLOADED', 'Content has not yet been uploaded');
      await sleep(Math.min(WAIT_POLL_MS, deadline - now));
    }
  }

  /** Whether the media is another server's (validated first: a bad name is 400, a bad id 404). */
  private isRemote(serverName: string, mediaId: string): boolean {
    if (!isValidServerName(serverName)) throw invalidParam(`"${serverName}" is not a valid server name`);
    if (serverName === this.settings.serverName) return false;
    if (!MEDIA_ID.test(mediaId)) throw notFound('Media not found');
    return true;
  }

  private checkSize(upload: MediaUpload): void {
    // Normally refused earlier, while reading the body (the route's body limit is the same).
    if (upload.content.byteLength > this.settings.media.maxUploadSize) {
      throw new MatrixError(413, 'M_TOO_LARGE', `Cannot upload files larger than ${this.settings.media.maxUploadSize} bytes`);
    }
  }

  private mxcUri(mediaId: string): string {
    return `mxc://${this.settings.serverName}/${mediaId}`;
  }
}

/** What the download headers need of fetched remote media. */
function remoteInfo(mediaId: string, media: RemoteMedia): MediaInfo {
  return {
    mediaId,
    userId: '',
    createdTs: 0,
    uploadedTs: 0,
    contentType: media.contentType,
    uploadName: media.uploadName,
    contentLength: media.content.byteLength,
    authenticated: true,
  };
}

function cannotOverwrite(): MatrixError {
  return new MatrixError(409, 'M_CANNOT_OVERWRITE_MEDIA', 'This media id already has content');
}

function newMediaId(): string {
  let id = '';
  for (let i = 0; i < ID_LENGTH; i++) id += ID_ALPHABET[randomInt(ID_ALPHABET.length)];
  return id;
}
