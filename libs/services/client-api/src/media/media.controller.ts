import { Body, Controller, Get, Headers, Inject, Param, Post, Put, Query, Res, UseGuards } from '@nestjs/common';
import { RouteConfig } from '@nestjs/platform-fastify';
import type { FastifyReply } from 'fastify';
import { RAW_BODY_ROUTE } from '@tessera/http';
import type { Requester } from '../auth/access-tokens.service.js';
import { AccessTokenGuard, CurrentRequester } from '../auth/auth.guard.js';
import { RateLimited, RateLimitGuard } from '../auth/rate-limit.guard.js';
import { invalidParam, MatrixError, missingParam } from '../errors.js';
import { mediaPaths, v1Paths } from '../http/paths.js';
import { queryInteger } from '../validation.js';
import { contentDisposition, DEFAULT_CONTENT_TYPE, SECURITY_HEADERS, servedContentType, thumbnailDisposition } from './content-headers.js';
import { DEFAULT_WAIT_MS, MAX_WAIT_MS, MediaService, type ServedMedia, type ThumbnailRequest } from './media.service.js';
import type { MediaUpload } from './media.store.js';

type Query = Record<string, unknown>;

/**
 * The authenticated content repository: uploads (/_matrix/media/v3/upload, async through
 * /_matrix/media/v1/create), the configuration, and the spec v1.11 downloads and thumbnails
 * under /_matrix/client/v1/media. Upload bodies are raw bytes of any type (RAW_BODY_ROUTE),
 * limited to max_upload_size rather than max_request_size.
 */
@Controller()
@UseGuards(AccessTokenGuard, RateLimitGuard)
export class MediaController {
  constructor(@Inject(MediaService) private readonly media: MediaService) {}

  @Get([...v1Paths('media/config'), ...mediaPaths('config')])
  config() {
    return { 'm.upload.size': this.media.maxUploadSize };
  }

  @Post(mediaPaths('upload'))
  @RouteConfig(RAW_BODY_ROUTE)
  @RateLimited('media')
  async upload(@CurrentRequester() requester: Requester, @Body() body: unknown, @Headers('content-type') contentType: string | undefined, @Query() query: Query) {
    return { content_uri: await this.media.upload(requester.userId, uploadOf(body, contentType, query)) };
  }

  @Post('/_matrix/media/v1/create')
  @RateLimited('media')
  create(@CurrentRequester() requester: Requester) {
    return this.media.create(requester.userId);
  }

  @Put(mediaPaths('upload/:serverName/:mediaId'))
  @RouteConfig(RAW_BODY_ROUTE)
  @RateLimited('media')
  async uploadReserved(
    @CurrentRequester() requester: Requester,
    @Param('serverName') serverName: string,
    @Param('mediaId') mediaId: string,
    @Body() body: unknown,
    @Headers('content-type') contentType: string | undefined,
    @Query() query: Query,
  ) {
    await this.media.uploadReserved(requester.userId, serverName, mediaId, uploadOf(body, contentType, query));
    return {};
  }

  @Get(v1Paths('media/download/:serverName/:mediaId'))
  async download(@Param('serverName') serverName: string, @Param('mediaId') mediaId: string, @Query() query: Query, @Res() reply: FastifyReply) {
    await answer(reply, async () => sendDownload(reply, await this.media.download(serverName, mediaId, waitOf(query), true), undefined));
  }

  @Get(v1Paths('media/download/:serverName/:mediaId/:fileName'))
  async downloadAs(
    @Param('serverName') serverName: string,
    @Param('mediaId') mediaId: string,
    @Param('fileName') fileName: string,
    @Query() query: Query,
    @Res() reply: FastifyReply,
  ) {
    await answer(reply, async () => sendDownload(reply, await this.media.download(serverName, mediaId, waitOf(query), true), fileName));
  }

  @Get(v1Paths('media/thumbnail/:serverName/:mediaId'))
  async thumbnail(@Param('serverName') serverName: string, @Param('mediaId') mediaId: string, @Query() query: Query, @Res() reply: FastifyReply) {
    await answer(reply, async () => sendThumbnail(reply, await this.media.thumbnail(serverName, mediaId, thumbnailRequestOf(query), waitOf(query), true)));
  }
}

/**
 * The deprecated unauthenticated downloads and thumbnails (/_matrix/media/v3). They serve only
 * media uploaded while enable_authenticated_media was off: with Synapse's default (on), media
 * uploaded now is "frozen" out of them (spec v1.11 "Client behaviour") and answers 404.
 */
@Controller()
export class LegacyMediaController {
  constructor(@Inject(MediaService) private readonly media: MediaService) {}

  @Get(mediaPaths('download/:serverName/:mediaId'))
  async download(@Param('serverName') serverName: string, @Param('mediaId') mediaId: string, @Query() query: Query, @Res() reply: FastifyReply) {
    await answer(reply, async () => sendDownload(reply, await this.media.download(serverName, mediaId, waitOf(query), false, allowRemoteOf(query)), undefined));
  }

  @Get(mediaPaths('download/:serverName/:mediaId/:fileName'))
  async downloadAs(
    @Param('serverName') serverName: string,
    @Param('mediaId') mediaId: string,
    @Param('fileName') fileName: string,
    @Query() query: Query,
    @Res() reply: FastifyReply,
  ) {
    await answer(reply, async () => sendDownload(reply, await this.media.download(serverName, mediaId, waitOf(query), false, allowRemoteOf(query)), fileName));
  }

  @Get(mediaPaths('thumbnail/:serverName/:mediaId'))
  async thumbnail(@Param('serverName') serverName: string, @Param('mediaId') mediaId: string, @Query() query: Query, @Res() reply: FastifyReply) {
    await answer(reply, async () => sendThumbnail(reply, await this.media.thumbnail(serverName, mediaId, thumbnailRequestOf(query), waitOf(query), false, allowRemoteOf(query))));
  }
}

/** The upload's bytes, type (spec: application/octet-stream when not given) and optional `filename` query parameter. */
function uploadOf(body: unknown, contentType: string | undefined, query: Query): MediaUpload {
  const filename = query.filename;
  if (filename !== undefined && typeof filename !== 'string') throw invalidParam('query parameter "filename" must be given once');
  return {
    // An empty body reaches the handler as undefined: an empty file.
    content: body instanceof Uint8Array ? body : new Uint8Array(0),
    contentType: contentType?.trim() || DEFAULT_CONTENT_TYPE,
    uploadName: filename || null,
  };
}

/**
 * allow_remote of the deprecated endpoints: default true; false never asks another server.
 * Their allow_redirect is checked here too: this server never redirects, but a value that is not
 * a boolean is refused like allow_remote's.
 */
function allowRemoteOf(query: Query): boolean {
  const redirect = query.allow_redirect;
  if (redirect !== undefined && redirect !== 'true' && redirect !== 'false') throw invalidParam('query parameter "allow_redirect" must be true or false');
  const value = query.allow_remote;
  if (value === undefined) return true;
  if (value !== 'true' && value !== 'false') throw invalidParam('query parameter "allow_remote" must be true or false');
  return value === 'true';
}

/** timeout_ms: default 20 s, at most 60 s (the spec asks for a maximum; Synapse's). */
function waitOf(query: Query): number {
  const timeout = queryInteger(query.timeout_ms, 'timeout_ms', DEFAULT_WAIT_MS);
  if (timeout < 0) throw invalidParam('query parameter "timeout_ms" must not be negative');
  return Math.min(timeout, MAX_WAIT_MS);
}

function thumbnailRequestOf(query: Query): ThumbnailRequest {
  const size = (name: 'width' | 'height') => {
    if (query[name] === undefined || query[name] === '') throw missingParam(`query parameter "${name}" is required`);
    const value = queryInteger(query[name], name, 0);
    if (value < 0) throw invalidParam(`query parameter "${name}" must not be negative`);
    return value;
  };
  const method = query.method ?? 'scale';
  if (method !== 'crop' && method !== 'scale') throw invalidParam('query parameter "method" must be crop or scale');
  const animated = query.animated;
  if (animated !== undefined && animated !== 'true' && animated !== 'false') throw invalidParam('query parameter "animated" must be true or false');
  return { width: size('width'), height: size('height'), method, animated: animated === undefined ? undefined : animated === 'true' };
}

/**
 * Runs a download; 504 M_NOT_YET_UPLOADED is answered here: it is the spec's normal answer to
 * a wait that ran out, not a server failure for the exception filter to log as one.
 */
async function answer(reply: FastifyReply, send: () => Promise<void>): Promise<void> {
  try {
    await send();
  } catch (error) {
    if (!(error instanceof MatrixError) || error.errcode !== 'M_NOT_YET_UPLOADED') throw error;
    await reply.status(error.status).header('content-type', 'application/json').send(JSON.stringify(error.toJSON()));
  }
}

async function sendDownload(reply: FastifyReply, { info, content }: ServedMedia, fileName: string | undefined): Promise<void> {
  await reply
    .headers(SECURITY_HEADERS)
    .header('content-type', servedContentType(info.contentType))
    .header('content-disposition', contentDisposition(info.contentType ?? DEFAULT_CONTENT_TYPE, fileName ?? info.uploadName))
    .send(Buffer.from(content.buffer, content.byteOffset, content.byteLength));
}

async function sendThumbnail(reply: FastifyReply, { content, essence }: ServedMedia & { essence: string }): Promise<void> {
  await reply
    .headers(SECURITY_HEADERS)
    .header('content-type', essence)
    .header('content-disposition', thumbnailDisposition(essence))
    .send(Buffer.from(content.buffer, content.byteOffset, content.byteLength));
}
