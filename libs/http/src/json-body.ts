import type { FastifyInstance, FastifyRequest } from 'fastify';
import { MatrixError } from './matrix-error.js';

/**
 * Request body parsing for Matrix endpoints.
 *
 * The spec asks clients to send Content-Type: application/json but does not require it, so a
 * body without a content type (or text/plain, as some clients send) is parsed as JSON too.
 * Malformed JSON is 400 M_NOT_JSON. An empty body is left undefined: the endpoint decides
 * whether it needs one (e.g. POST /logout has none). Other content types get the raw Buffer.
 * Routes marked with RAW_BODY_ROUTE (media uploads: any bytes, JSON and text files included)
 * always get the raw Buffer, whatever the content type. Sizes over the body limit are refused
 * by Fastify (413 M_TOO_LARGE).
 */
export function installJsonBodyParsers(fastify: FastifyInstance): void {
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser(['application/json', 'text/plain'], { parseAs: 'buffer' }, (req: FastifyRequest, body: Buffer, done) => {
    if (isRawBodyRoute(req)) {
      done(null, body);
      return;
    }
    parseJson(body.toString('utf8'), done);
  });
  fastify.addContentTypeParser('*', { parseAs: 'buffer' }, (req: FastifyRequest, body: Buffer, done) => {
    if (!req.headers['content-type'] && !isRawBodyRoute(req)) {
      parseJson(body.toString('utf8'), done);
      return;
    }
    done(null, body);
  });
}

/**
 * Route config (Nest: `@RouteConfig(RAW_BODY_ROUTE)` from @nestjs/platform-fastify) of routes
 * whose body is raw bytes, never JSON. Their body limit is HttpAppOptions.rawBodyLimit.
 */
export const RAW_BODY_ROUTE: Readonly<{ rawBody: true }> = { rawBody: true };

export function isRawBodyRoute(request: FastifyRequest): boolean {
  return (request.routeOptions?.config as { rawBody?: unknown } | undefined)?.rawBody === true;
}

function parseJson(text: string, done: (err: Error | null, body?: unknown) => void): void {
  if (text.trim() === '') {
    done(null, undefined);
    return;
  }
  try {
    done(null, JSON.parse(text));
  } catch {
    done(new MatrixError(400, 'M_NOT_JSON', 'Content not JSON.'));
  }
}
