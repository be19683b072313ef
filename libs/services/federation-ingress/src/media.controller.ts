/**
 * GET /_matrix/federation/v1/media/download/{mediaId} and .../media/thumbnail/{mediaId}
 * (Server-Server API "Content Repository", spec v1.11): this server's media for another
 * server, whose user asked for it through their own authenticated client endpoints. The
 * answer is multipart/mixed: `{}` metadata, then the bytes (media-multipart.ts). Media lives
 * in client-api's local_media table (read through local-media.reads.ts). Like client-api's
 * own thumbnails (no image library), a thumbnail is the original image when it is of a type a
 * thumbnail may have, else 400 M_UNKNOWN; `animated=false` never gets an animated image (the
 * spec's MUST): an animated original is refused then, as client-api does for its own clients.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Controller, Get, Inject, Param, Query, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { buildMediaMultipart, type MediaPart } from '@tessera/federation-client';
import { isAnimatedImage } from '@tessera/protocol';
import { DB, MatrixError } from '@tessera/http';
import type { Db } from '@tessera/storage';
import { FederationContext } from './federation-context.js';
import { getLocalMediaContent, getLocalMediaInfo, type LocalMediaRow } from './local-media.reads.js';

/** The spec's media-id alphabet: anything else is not an id of ours. */
const MEDIA_ID = /^[A-Za-z0-9_-]+$/;
/** timeout_ms: the spec's default; at most Synapse's maximum. */
const DEFAULT_WAIT_MS = 20_000;
const MAX_WAIT_MS = 60_000;
const WAIT_POLL_MS = 500;
/** client-api's unused_expires_at (24 hours): a reservation older than this is never filled. */
const RESERVATION_EXPIRY_MS = 24 * 60 * 60 * 1000;
/** Types a thumbnail may have (the spec's list for the second part). */
const THUMBNAIL_TYPES = new Set(['image/jpeg', 'image/png', 'image/apng', 'image/gif', 'image/webp']);

type Query = Record<string, unknown>;

@Controller('_matrix/federation/v1/media')
export class MediaController {
  constructor(
    @Inject(FederationContext) private readonly ctx: FederationContext,
    @Inject(DB) private readonly db: Db,
  ) {}

  @Get('download/:mediaId')
  async download(@Req() req: FastifyRequest, @Param('mediaId') mediaId: string, @Query() query: Query, @Res() reply: FastifyReply) {
    await this.ctx.authenticate(req);
    const found = await notYetUploaded(reply, () => this.media(mediaId, waitOf(query)));
    if (!found) return;
    const { info, content } = found;
    await send(reply, {
      kind: 'content',
      contentType: info.contentType ?? 'application/octet-stream',
      // The asking server serves it to its client under its own rules; it needs the name.
      contentDisposition: disposition('attachment', info.uploadName),
      content,
    });
  }

  @Get('thumbnail/:mediaId')
  async thumbnail(@Req() req: FastifyRequest, @Param('mediaId') mediaId: string, @Query() query: Query, @Res() reply: FastifyReply) {
    await this.ctx.authenticate(req);
    checkThumbnailQuery(query);
    const found = await notYetUploaded(reply, () => this.media(mediaId, waitOf(query)));
    if (!found) return;
    const { info, content } = found;
    const essence = (info.contentType ?? '').split(';', 1)[0]!.trim().toLowerCase();
    if (!THUMBNAIL_TYPES.has(essence)) {
      throw new MatrixError(400, 'M_UNKNOWN', `Cannot generate thumbnails for ${info.contentType ?? 'content without a type'} (thumbnails are of jpeg, png, gif and webp images)`);
    }
    if (query.animated === 'false' && isAnimatedImage(content, essence)) {
      throw new MatrixError(400, 'M_UNKNOWN', 'This image is animated and this server cannot make a still thumbnail of it: ask with animated=true, or download it');
    }
    await send(reply, { kind: 'content', contentType: essence, contentDisposition: disposition('inline', `thumbnail.${essence.slice('image/'.length).replace('jpeg', 'jpg')}`), content });
  }

  /** The uploaded media, waiting up to `waitMs` for a reserved id's bytes (then 504 M_NOT_YET_UPLOADED). */
  private async media(mediaId: string, waitMs: number): Promise<{ info: LocalMediaRow; content: Buffer }> {
    if (!MEDIA_ID.test(mediaId)) throw notFound();
    const deadline = Date.now() + waitMs;
    for (;;) {
      const info = await getLocalMediaInfo(this.db, mediaId);
      if (!info) throw notFound();
      if (info.uploadedTs !== null) {
        const content = await getLocalMediaContent(this.db, mediaId);
        if (!content) throw notFound();
        return { info, content: Buffer.from(content.buffer, content.byteOffset, content.byteLength) };
      }
      const now = Date.now();
      if (info.createdTs < now - RESERVATION_EXPIRY_MS) throw notFound();
      if (now >= deadline) throw new MatrixError(504, 'M_NOT_YET_UPLOADED', 'Content has not yet been uploaded');
      await sleep(Math.min(WAIT_POLL_MS, deadline - now));
    }
  }
}

/**
 * 504 M_NOT_YET_UPLOADED is answered here (undefined returned): it is the spec's normal answer
 * to a wait that ran out, not a server failure for the exception filter to log as one.
 */
async function notYetUploaded<T>(reply: FastifyReply, find: () => Promise<T>): Promise<T | undefined> {
  try {
    return await find();
  } catch (error) {
    if (!(error instanceof MatrixError) || error.errcode !== 'M_NOT_YET_UPLOADED') throw error;
    await reply.status(error.status).header('content-type', 'application/json').send(JSON.stringify(error.toJSON()));
    return undefined;
  }
}

async function send(reply: FastifyReply, media: MediaPart): Promise<void> {
  const { contentType, body } = buildMediaMultipart(media);
  await reply.status(200).header('content-type', contentType).send(body);
}

function notFound(): MatrixError {
  return new MatrixError(404, 'M_NOT_FOUND', 'Media not found');
}

function integerOf(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^\d+$/.test(value)) throw new MatrixError(400, 'M_INVALID_PARAM', `query parameter "${name}" must be a non-negative integer`);
  return Number(value);
}

function waitOf(query: Query): number {
  return Math.min(integerOf(query.timeout_ms, 'timeout_ms') ?? DEFAULT_WAIT_MS, MAX_WAIT_MS);
}

/** The thumbnail's parameters must be valid even though the original is what is answered. */
function checkThumbnailQuery(query: Query): void {
  for (const name of ['width', 'height']) {
    if (query[name] === undefined || query[name] === '') throw new MatrixError(400, 'M_MISSING_PARAM', `query parameter "${name}" is required`);
    integerOf(query[name], name);
  }
  if (query.method !== undefined && query.method !== 'crop' && query.method !== 'scale') throw new MatrixError(400, 'M_INVALID_PARAM', 'query parameter "method" must be crop or scale');
  if (query.animated !== undefined && query.animated !== 'true' && query.animated !== 'false') throw new MatrixError(400, 'M_INVALID_PARAM', 'query parameter "animated" must be true or false');
}

/** RFC 6266: a plain token as `filename=`, anything else as RFC 8187 `filename*=utf-8''...`. */
function disposition(type: 'inline' | 'attachment', fileName: string | null): string {
  if (!fileName) return type;
  if (/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(fileName)) return `${type}; filename=${fileName}`;
  return `${type}; filename*=utf-8''${encodeURIComponent(fileName).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}`;
}
