import type { FastifyInstance, FastifyRequest } from 'fastify';
import { MatrixError } from './matrix-error.js';

/**
 * Request body parsing for Matrix endpoints.
 *
 * The spec asks clients to send Content-Type: application/json but does not require it, and
 * clients send bodies without one, as text/plain, even as application/x-www-form-urlencoded.
 * As Synapse, the Content-Type is ignored: every body is parsed as JSON. Malformed JSON is
 * 400 M_NOT_JSON (whatever the content type, so a non-JSON body never reaches an endpoint as
 * bytes). An empty body is left undefined: the endpoint decides whether it needs one (e.g.
 * POST /logout has none). Routes marked with RAW_BODY_ROUTE (media uploads: any bytes, JSON and
 * text files included) always get the raw Buffer, whatever the content type. Sizes over the
 * body limit are refused by Fastify (413 M_TOO_LARGE).
 */
export function installJsonBodyParsers(fastify: FastifyInstance): void {
  fastify.removeAllContentTypeParsers();
  // '*' matches every content type and none; Fastify has no other parser left to prefer.
  fastify.addContentTypeParser('*', { parseAs: 'buffer' }, (req: FastifyRequest, body: Buffer, done) => {
    if (isRawBodyRoute(req)) {
      done(null, body);
      return;
    }
    parseJson(body, done);
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

/** Strict: bytes that are not UTF-8 are not JSON either (RFC 8259 section 8.1). */
const utf8 = new TextDecoder('utf-8', { fatal: true });

function parseJson(bytes: Buffer, done: (err: Error | null, body?: unknown) => void): void {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    done(new MatrixError(400, 'M_NOT_JSON', 'Content not JSON: the body is not UTF-8.'));
    return;
  }
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
