import type { FastifyInstance, FastifyRequest } from 'fastify';
import { MatrixError } from './matrix-error.js';

/**
 * Request body parsing for Matrix endpoints.
 *
 * The spec asks clients to send Content-Type: application/json but does not require it, so a
 * body without a content type (or text/plain, as some clients send) is parsed as JSON too.
 * Malformed JSON is 400 M_NOT_JSON. An empty body is left undefined: the endpoint decides
 * whether it needs one (e.g. POST /logout has none). Other content types (media uploads) get
 * the raw Buffer. Sizes over the body limit are refused by Fastify (413 M_TOO_LARGE).
 */
export function installJsonBodyParsers(fastify: FastifyInstance): void {
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser(['application/json', 'text/plain'], { parseAs: 'string' }, (_req, body, done) => {
    parseJson(body as string, done);
  });
  fastify.addContentTypeParser('*', { parseAs: 'buffer' }, (req: FastifyRequest, body: Buffer, done) => {
    if (!req.headers['content-type']) {
      parseJson(body.toString('utf8'), done);
      return;
    }
    done(null, body);
  });
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
