/**
 * Fetches another server's media for our users (Server-Server API "Content Repository", spec
 * v1.11+): GET /_matrix/federation/v1/media/download|thumbnail/{mediaId}, signed, whose
 * multipart/mixed answer carries the bytes or a Location to fetch them from. A server that
 * does not know those endpoints (404 M_UNRECOGNIZED, servers before v1.11) is asked the
 * deprecated GET /_matrix/media/v3/download|thumbnail/{serverName}/{mediaId}?allow_remote=false,
 * as Synapse does. Every request, Location redirects included, goes through the federation
 * client's transport: its CA checks, its IP policy (no private addresses unless allowed) and a
 * size cap of max_upload_size.
 *
 * Failures follow the spec and Synapse: 404 M_NOT_FOUND when the remote says it has no such
 * media, 504 M_NOT_YET_UPLOADED when it says the bytes are not there yet, 502 M_TOO_LARGE
 * beyond max_upload_size, 502 M_UNKNOWN for any other failure of the remote (unreachable, timed
 * out, an answer that is not what the spec says). A thumbnail the remote refuses to make (400,
 * 413) is refused with its own errcode.
 */
import { Inject, Injectable } from '@nestjs/common';
import {
  FederationError, fileNameOfDisposition, MultipartError, parseMediaMultipart,
  type FederationClient, type MediaMultipart, type RawResponse,
} from '@tessera/federation-client';
import { MatrixError } from '../errors.js';
import { RemoteQueries } from '../federation/remote-queries.js';
import type { RemoteMedia, ThumbnailKey } from './remote-media.store.js';

/** Room for the multipart framing around the media itself. */
const MULTIPART_OVERHEAD_BYTES = 64 * 1024;
/** Time for the transfer itself, on top of the remote's wait for an upload (timeout_ms). */
const TRANSFER_MS = 30_000;

type Kind = 'download' | 'thumbnail';

@Injectable()
export class RemoteMediaFetcher {
  constructor(@Inject(RemoteQueries) private readonly remote: RemoteQueries) {}

  /** client-api's one federation client (RemoteQueries makes it on first use and closes it). */
  private get federation(): FederationClient {
    return this.remote.federation;
  }

  /** The media's bytes, type and name. */
  download(serverName: string, mediaId: string, timeoutMs: number, maxBytes: number): Promise<RemoteMedia> {
    return this.fetch('download', serverName, mediaId, { timeout_ms: timeoutMs }, timeoutMs, maxBytes);
  }

  /** A thumbnail as the remote makes it. */
  thumbnail(serverName: string, mediaId: string, key: ThumbnailKey, timeoutMs: number, maxBytes: number): Promise<RemoteMedia> {
    const query = { width: key.width, height: key.height, method: key.method, animated: key.animated || undefined, timeout_ms: timeoutMs };
    return this.fetch('thumbnail', serverName, mediaId, query, timeoutMs, maxBytes);
  }

  private async fetch(kind: Kind, serverName: string, mediaId: string, query: Record<string, string | number | undefined>, timeoutMs: number, maxBytes: number): Promise<RemoteMedia> {
    const limits = { timeoutMs: timeoutMs + TRANSFER_MS, maxResponseBytes: maxBytes + MULTIPART_OVERHEAD_BYTES };
    const what = `the ${kind === 'download' ? 'media' : 'thumbnail'} mxc://${serverName}/${mediaId}`;
    try {
      const answer = await this.federation.getRaw(serverName, `/_matrix/federation/v1/media/${kind}/${encodeURIComponent(mediaId)}`, { query, ...limits });
      if (answer.status === 200) return checked(await this.fromMultipart(serverName, answer, limits, what), maxBytes, what);
      if (!(answer.status === 404 && errcodeOf(answer) === 'M_UNRECOGNIZED')) throw refusal(kind, serverName, answer, what);
      // A server older than spec v1.11: its unauthenticated media API.
      const legacy = await this.federation.getRaw(serverName, `/_matrix/media/v3/${kind}/${encodeURIComponent(serverName)}/${encodeURIComponent(mediaId)}`, {
        query: { ...query, allow_remote: 'false', allow_redirect: 'true' },
        ...limits,
      });
      const located = [307, 308].includes(legacy.status) && typeof legacy.headers.location === 'string'
        ? await this.followLocation(serverName, legacy.headers.location, limits, what)
        : legacy;
      if (located.status !== 200) throw refusal(kind, serverName, located, what);
      return checked(mediaOf(located), maxBytes, what);
    } catch (err) {
      if (err instanceof MatrixError) throw err;
      throw failure(err, serverName, what);
    }
  }

  private async fromMultipart(serverName: string, answer: RawResponse, limits: { timeoutMs: number; maxResponseBytes: number }, what: string): Promise<RemoteMedia> {
    let parsed: MediaMultipart;
    try {
      parsed = parseMediaMultipart(headerOf(answer, 'content-type'), answer.body);
    } catch (err) {
      if (err instanceof MultipartError) throw badGateway(`Could not fetch ${what}: ${serverName} answered with an invalid multipart body (${err.message})`);
      throw err;
    }
    if (parsed.media.kind === 'content') {
      return { contentType: parsed.media.contentType, uploadName: fileNameOfDisposition(parsed.media.contentDisposition), content: parsed.media.content };
    }
    // The spec: the URL SHOULD NOT be cached (it may expire); the bytes are.
    const located = await this.followLocation(serverName, parsed.media.location, limits, what);
    if (located.status !== 200) throw badGateway(`Could not fetch ${what}: the location given by ${serverName} answered HTTP ${located.status}`);
    return mediaOf(located);
  }

  private followLocation(serverName: string, location: string, limits: { timeoutMs: number; maxResponseBytes: number }, what: string): Promise<RawResponse> {
    let url: string;
    try {
      // A relative Location is relative to nothing we could name: refuse it.
      url = new URL(location).toString();
    } catch {
      throw badGateway(`Could not fetch ${what}: ${serverName} gave an invalid Location "${location}"`);
    }
    return this.federation.fetchUrl(serverName, url, limits);
  }
}

/** The bytes of a plain (non-multipart) answer, named by its headers. */
function mediaOf(res: RawResponse): RemoteMedia {
  return { contentType: headerOf(res, 'content-type') ?? null, uploadName: fileNameOfDisposition(headerOf(res, 'content-disposition')), content: res.body };
}

function checked(media: RemoteMedia, maxBytes: number, what: string): RemoteMedia {
  if (media.content.byteLength > maxBytes) throw tooLarge(what, maxBytes);
  return media;
}

function headerOf(res: RawResponse, name: string): string | undefined {
  const value = res.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function errcodeOf(res: RawResponse): string | undefined {
  try {
    const body: unknown = JSON.parse(res.body.toString('utf8'));
    return body && typeof body === 'object' && typeof (body as { errcode?: unknown }).errcode === 'string' ? (body as { errcode: string }).errcode : undefined;
  } catch {
    return undefined;
  }
}

/** The remote's non-200 answer as ours. */
function refusal(kind: Kind, serverName: string, res: RawResponse, what: string): MatrixError {
  const errcode = errcodeOf(res);
  if (res.status === 404) return new MatrixError(404, 'M_NOT_FOUND', `${serverName} has no ${what.replace(/^the /, '')}`);
  if (res.status === 504 && errcode === 'M_NOT_YET_UPLOADED') return new MatrixError(504, 'M_NOT_YET_UPLOADED', 'Content has not yet been uploaded');
  if (res.status === 502 && errcode === 'M_TOO_LARGE') return new MatrixError(502, 'M_TOO_LARGE', `Could not fetch ${what}: ${serverName} says it is too large to serve`);
  if (kind === 'thumbnail' && (res.status === 400 || res.status === 413)) {
    return new MatrixError(res.status, errcode ?? (res.status === 413 ? 'M_TOO_LARGE' : 'M_UNKNOWN'), `${serverName} could not make a thumbnail of ${what.replace(/^the thumbnail /, '')}`);
  }
  return badGateway(`Could not fetch ${what}: ${serverName} answered HTTP ${res.status}${errcode ? ` ${errcode}` : ''}`);
}

function failure(err: unknown, serverName: string, what: string): MatrixError {
  if (err instanceof FederationError && err.kind === 'invalid_response' && /exceeds \d+ bytes/.test(err.message)) return tooLarge(what);
  const why = err instanceof FederationError && err.kind === 'timeout' ? 'it did not answer in time' : (err as Error)?.message ?? String(err);
  return badGateway(`Could not fetch ${what} from ${serverName}: ${why}`);
}

function tooLarge(what: string, maxBytes?: number): MatrixError {
  return new MatrixError(502, 'M_TOO_LARGE', `Could not fetch ${what}: it is larger than this server's limit${maxBytes === undefined ? '' : ` of ${maxBytes} bytes`}`);
}

function badGateway(message: string): MatrixError {
  return new MatrixError(502, 'M_UNKNOWN', message);
}
