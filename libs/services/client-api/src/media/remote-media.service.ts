/**
 * Another server's media for our users: served from the cache (remote-media.store.ts) when it
 * was fetched before, else fetched over federation (remote-media.fetcher.ts) and kept. Media
 * never changes, so the cache is never revalidated. Concurrent requests for the same media in
 * this process share one fetch.
 *
 * The deprecated unauthenticated endpoints (/_matrix/media/v3) follow Synapse: allow_remote=false
 * answers 404 without asking; while enable_authenticated_media is on they are frozen for
 * remote media as for local media (404 for media fetched for the authenticated endpoints, and
 * nothing new is fetched for them).
 */
import { Inject, Injectable } from '@nestjs/common';
import type { Db } from '@tessera/storage';
import { MatrixError, notFound } from '../errors.js';
import { CLIENT_API_SETTINGS, type ClientApiSettings } from '../settings.js';
import { CLIENT_API_DB } from '../tokens.js';
import { isAnimatedImage } from '@tessera/protocol';
import { essenceOf } from './content-headers.js';
import { RemoteMediaFetcher } from './remote-media.fetcher.js';
import { remoteMediaStore, type RemoteMedia, type ThumbnailKey } from './remote-media.store.js';

/** Types a thumbnail may have (the spec's enum of the thumbnail's 200 response). */
const THUMBNAIL_TYPES = new Set(['image/jpeg', 'image/png', 'image/apng', 'image/gif', 'image/webp']);

export interface RemoteThumbnailRequest {
  width: number;
  height: number;
  method: 'crop' | 'scale';
  animated: boolean | undefined;
}

/** How the request reached us: the authenticated client v1 endpoints, or the legacy ones (with allow_remote). */
export interface RemoteAccess {
  authenticatedRequest: boolean;
  allowRemote: boolean;
}

@Injectable()
export class RemoteMediaService {
  private readonly inFlight = new Map<string, Promise<unknown>>();

  constructor(
    @Inject(CLIENT_API_DB) private readonly db: Db,
    @Inject(CLIENT_API_SETTINGS) private readonly settings: ClientApiSettings,
    @Inject(RemoteMediaFetcher) private readonly fetcher: RemoteMediaFetcher,
  ) {}

  async download(serverName: string, mediaId: string, timeoutMs: number, access: RemoteAccess): Promise<RemoteMedia> {
    this.checkAccess(access);
    const cached = await remoteMediaStore.get(this.db, serverName, mediaId);
    if (cached) {
      if (!access.authenticatedRequest && cached.authenticated && this.frozen) throw frozenOut();
      return cached;
    }
    if (!access.authenticatedRequest && this.frozen) throw frozenOut();
    return this.once(`d\u0000${serverName}\u0000${mediaId}`, async () => {
      const media = await this.fetcher.download(serverName, mediaId, timeoutMs, this.settings.media.maxUploadSize);
      await remoteMediaStore.put(this.db, serverName, mediaId, media, Date.now(), this.frozen);
      return media;
    });
  }

  /**
   * A thumbnail made by the remote, checked to be of a thumbnail type; `animated=false` never
   * gets an animated image, whatever the remote sent (as for local media).
   */
  async thumbnail(serverName: string, mediaId: string, request: RemoteThumbnailRequest, timeoutMs: number, access: RemoteAccess): Promise<{ essence: string; content: Uint8Array }> {
    this.checkAccess(access);
    if (!access.authenticatedRequest && this.frozen) throw frozenOut();
    const key: ThumbnailKey = { width: request.width, height: request.height, method: request.method, animated: request.animated === undefined ? '' : String(request.animated) };
    // Sizes beyond what the table holds are asked for, not kept.
    const cacheable = Number.isSafeInteger(key.width) && Number.isSafeInteger(key.height);
    const cached = cacheable ? await remoteMediaStore.getThumbnail(this.db, serverName, mediaId, key) : undefined;
    const thumbnail = cached ?? await this.once(`t\u0000${serverName}\u0000${mediaId}\u0000${JSON.stringify(key)}`, async () => {
      const fetched = await this.fetcher.thumbnail(serverName, mediaId, key, timeoutMs, this.settings.media.maxUploadSize);
      const essence = essenceOf(fetched.contentType ?? '');
      if (!THUMBNAIL_TYPES.has(essence)) {
        throw new MatrixError(502, 'M_UNKNOWN', `${serverName} answered the thumbnail of mxc://${serverName}/${mediaId} with ${fetched.contentType ?? 'no type'}, which is not an image type a thumbnail may have`);
      }
      if (cacheable) await remoteMediaStore.putThumbnail(this.db, serverName, mediaId, key, essence, fetched.content, Date.now());
      return { contentType: essence, content: fetched.content };
    });
    if (request.animated === false && isAnimatedImage(thumbnail.content, thumbnail.contentType)) {
      throw new MatrixError(400, 'M_UNKNOWN', 'This image is animated and this server cannot make a still thumbnail of it: ask with animated=true, or download it');
    }
    return { essence: thumbnail.contentType, content: thumbnail.content };
  }

  private get frozen(): boolean {
    return this.settings.media.enableAuthenticatedMedia;
  }

  /**
   * The legacy endpoints: allow_remote=false asks nothing of the remote; while they are frozen
   * they fetch nothing new either (cached unfrozen media is still served by download()).
   */
  private checkAccess(access: RemoteAccess): void {
    if (access.authenticatedRequest) return;
    if (!access.allowRemote) throw notFound('Media not found: it is remote and allow_remote is false');
  }

  private async once<T>(key: string, fetch: () => Promise<T>): Promise<T> {
    const running = this.inFlight.get(key) as Promise<T> | undefined;
    if (running) return running;
    const started = fetch().finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, started);
    return started;
  }
}

function frozenOut(): MatrixError {
  return notFound('Media not found: it is served only by the authenticated /_matrix/client/v1/media endpoints');
}
