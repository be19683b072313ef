/**
 * URL previews (spec "Content Repository", GET /_matrix/client/v1/media/preview_url), as
 * Synapse makes them: the page is fetched (preview-fetcher.ts: IP policy, size cap, deadline,
 * bounded redirects), its OpenGraph data read (open-graph.ts), and its og:image downloaded into
 * the local media store so the answer names it by an mxc:// URI with its type, size and
 * dimensions. A URL that is itself an image is previewed as that image. Other types: JSON gives
 * {} (no oEmbed here), the rest are refused with 502 M_UNKNOWN, as Synapse.
 *
 * Previews are kept in the database for cacheMs (url-preview.store.ts), so every replica serves
 * them; concurrent requests for one URL in one process share one fetch. As Synapse, a preview is
 * served for an hour from its fetch (Synapse does not read Cache-Control either) and then fetched
 * anew; expired rows are deleted when a new preview is stored and every cleanupIntervalMs. The
 * og:image of an expired preview stays in the local media store (Synapse deletes its URL-cache
 * media files too; here they are ordinary local media, left to the media retention, if any).
 */
import { randomInt } from 'node:crypto';
import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { LOGGER } from '@tessera/http';
import type { Db } from '@tessera/storage';
import type { Logger } from 'pino';
import { invalidParam } from '../../errors.js';
import { CLIENT_API_SETTINGS, type ClientApiSettings } from '../../settings.js';
import { CLIENT_API_DB } from '../../tokens.js';
import { essenceOf } from '../content-headers.js';
import { mediaStore } from '../media.store.js';
import { imageDimensions } from './image-dimensions.js';
import { decodeHtml, parseOpenGraph } from './open-graph.js';
import { PreviewFetcher, type Fetched } from './preview-fetcher.js';
import { URL_PREVIEW_SETTINGS, type UrlPreviewSettings } from './url-preview-settings.js';
import { urlPreviewStore, type OpenGraph } from './url-preview.store.js';

/** Longer keys or values are dropped from an answer (Synapse's OG_TAG_NAME_MAXLEN and OG_TAG_VALUE_MAXLEN). */
const MAX_KEY_LENGTH = 50;
const MAX_VALUE_LENGTH = 1000;
/** Longest URL previewed: a longer one is no link anyone posted. */
const MAX_URL_LENGTH = 4096;
/** og:image:* keys that describe the image: dropped with it when it cannot be fetched. */
const IMAGE_DETAILS = ['og:image:width', 'og:image:height', 'og:image:type', 'og:image:secure_url', 'og:image:url'];
const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

const isImage = (contentType: string) => contentType.toLowerCase().startsWith('image/');
const isHtml = (contentType: string) => /^(text\/html|application\/xhtml)/i.test(contentType);
const isJson = (contentType: string) => contentType.toLowerCase().startsWith('application/json');

@Injectable()
export class UrlPreviewService implements OnModuleInit, OnModuleDestroy {
  private fetcherInstance: PreviewFetcher | undefined;
  private cleanupTimer: NodeJS.Timeout | undefined;
  private cleaning: Promise<void> | undefined;
  /** Fetches under way in this process, by URL: a burst of requests for a new link makes one fetch. */
  private readonly inFlight = new Map<string, Promise<OpenGraph>>();

  constructor(
    @Inject(CLIENT_API_DB) private readonly db: Db,
    @Inject(CLIENT_API_SETTINGS) private readonly clientApi: ClientApiSettings,
    @Inject(URL_PREVIEW_SETTINGS) private readonly settings: UrlPreviewSettings,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    if (settings.enabled) this.fetcherInstance = this.makeFetcher();
  }

  get enabled(): boolean {
    return this.settings.enabled;
  }

  onModuleInit(): void {
    if (!this.settings.enabled || this.settings.cleanupIntervalMs <= 0) return;
    this.cleanupTimer = setInterval(() => {
      // One sweep at a time; several replicas may sweep together (the delete is idempotent).
      if (this.cleaning) return;
      this.cleaning = urlPreviewStore
        .deleteExpired(this.db, Date.now())
        .then(() => undefined)
        .catch((err: unknown) => this.logger.warn({ err }, 'cleanup of expired url previews failed; retrying at the next interval'))
        .finally(() => (this.cleaning = undefined));
    }, this.settings.cleanupIntervalMs);
    this.cleanupTimer.unref();
  }

  async onModuleDestroy(): Promise<void> {
    if (this.cleanupTimer) clearInterval(this.cleanupTimer);
    this.cleanupTimer = undefined;
    this.fetcherInstance?.close();
    // The database closes after the modules: let a sweep under way finish first.
    await this.cleaning;
  }

  /** The preview of `url` for `userId` (who owns the media of its image), as it was at `ts` if still known. */
  async preview(userId: string, url: string, ts: number | undefined): Promise<OpenGraph> {
    checkUrl(url);
    // Before the cache: a URL blacklisted since it was previewed is refused too.
    this.fetcher.checkUrl(url);
    const now = Date.now();
    const cached = await urlPreviewStore.find(this.db, url, ts ?? now, now);
    if (cached) return cached;
    let running = this.inFlight.get(url);
    if (!running) {
      running = this.make(userId, url).finally(() => this.inFlight.delete(url));
      this.inFlight.set(url, running);
    }
    return running;
  }

  private async make(userId: string, url: string): Promise<OpenGraph> {
    const fetchedTs = Date.now();
    const page = await this.fetcher.fetch(url, this.settings.maxSize, (type) => isHtml(type) || isImage(type) || isJson(type));
    const type = page.contentType ?? '';
    let og: OpenGraph;
    if (isImage(type)) {
      og = { ...(page.fileName ? { 'og:description': page.fileName } : {}), ...(await this.storeImage(userId, page)) };
    } else if (isHtml(type)) {
      og = await this.fromHtml(userId, page);
    } else {
      // JSON (oEmbed is not done here) or no Content-Type at all: nothing to show.
      og = {};
    }
    og = pruned(og);
    await urlPreviewStore.deleteExpired(this.db, fetchedTs);
    await urlPreviewStore.insert(this.db, url, fetchedTs, fetchedTs + this.settings.cacheMs, og);
    return og;
  }

  private async fromHtml(userId: string, page: Fetched): Promise<OpenGraph> {
    const og: OpenGraph = parseOpenGraph(decodeHtml(page.body, page.contentType));
    const declared = { width: integerOf(og['og:image:width']), height: integerOf(og['og:image:height']) };
    const imageUrl = og['og:image'];
    delete og['og:image'];
    for (const key of IMAGE_DETAILS) delete og[key];
    if (typeof imageUrl !== 'string' || imageUrl.trim() === '') return og;
    let absolute: URL;
    try {
      absolute = new URL(imageUrl.trim(), page.url);
    } catch {
      return og;
    }
    if (absolute.protocol !== 'http:' && absolute.protocol !== 'https:') return og;
    try {
      const image = await this.fetcher.fetch(absolute.toString(), this.settings.maxSize, isImage);
      if (!isImage(image.contentType ?? '')) return og;
      const stored = await this.storeImage(userId, image);
      // The page's own dimensions when the image's header did not say.
      if (stored['og:image:width'] === undefined && declared.width !== undefined && declared.height !== undefined) {
        stored['og:image:width'] = declared.width;
        stored['og:image:height'] = declared.height;
      }
      return { ...og, ...stored };
    } catch (err) {
      // As Synapse: a preview without its image is still a preview.
      this.logger.debug({ err, image: absolute.toString() }, 'url preview: image not fetched');
      return og;
    }
  }

  /** Stores a fetched image as local media of `userId`: its mxc:// URI, type, size and, when its header says, dimensions. */
  private async storeImage(userId: string, image: Fetched): Promise<OpenGraph> {
    const contentType = essenceOf(image.contentType ?? '');
    const mediaId = newMediaId();
    await mediaStore.insertUploaded(
      this.db,
      mediaId,
      userId,
      { contentType, uploadName: image.fileName, content: image.body },
      Date.now(),
      this.clientApi.media.enableAuthenticatedMedia,
    );
    const og: OpenGraph = { 'og:image': `mxc://${this.clientApi.serverName}/${mediaId}`, 'og:image:type': contentType, 'matrix:image:size': image.body.byteLength };
    const dimensions = imageDimensions(image.body);
    if (dimensions) {
      og['og:image:width'] = dimensions.width;
      og['og:image:height'] = dimensions.height;
    }
    return og;
  }

  private get fetcher(): PreviewFetcher {
    this.fetcherInstance ??= this.makeFetcher();
    return this.fetcherInstance;
  }

  private makeFetcher(): PreviewFetcher {
    try {
      return new PreviewFetcher({
        allowedCidrs: this.settings.allowedCidrs,
        blockedCidrs: this.settings.blockedCidrs,
        urlBlacklist: this.settings.urlBlacklist,
        timeoutMs: this.settings.timeoutMs,
        maxRedirects: this.settings.maxRedirects,
      });
    } catch (err) {
      throw new Error(`url_preview_ip_range_whitelist / url_preview_ip_range_blacklist: ${(err as Error).message}`);
    }
  }
}

function checkUrl(url: string): void {
  if (url.length > MAX_URL_LENGTH) throw invalidParam(`query parameter "url" is longer than ${MAX_URL_LENGTH} characters`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalidParam(`query parameter "url" must be an absolute http or https URL, got ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw invalidParam(`query parameter "url" must be an http or https URL: ${parsed.protocol} URLs are not previewed`);
  }
}

/** Overlong keys and values dropped (a page cannot make the answer huge). */
function pruned(og: OpenGraph): OpenGraph {
  const kept: OpenGraph = {};
  for (const [key, value] of Object.entries(og)) {
    if (key.length > MAX_KEY_LENGTH || String(value).length > MAX_VALUE_LENGTH) continue;
    kept[key] = value;
  }
  return kept;
}

function integerOf(value: string | number | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = typeof value === 'number' ? value : /^\s*\d{1,9}\s*$/.test(value) ? Number(value) : NaN;
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/** As local media ids (media.service.ts): 24 random letters. */
function newMediaId(): string {
  let id = '';
  for (let i = 0; i < 24; i++) id += ID_ALPHABET[randomInt(ID_ALPHABET.length)];
  return id;
}
