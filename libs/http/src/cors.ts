import type { FastifyInstance } from 'fastify';

/**
 * CORS as the spec's "Web browser clients" section recommends, on every response (errors and
 * unknown paths included, so that browser clients can read them), and an answer to every
 * OPTIONS pre-flight without running any endpoint logic.
 */
export const CORS_HEADERS: Readonly<Record<string, string>> = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, POST, PUT, DELETE, OPTIONS',
  'access-control-allow-headers': 'X-Requested-With, Content-Type, Authorization',
};

export function installCors(fastify: FastifyInstance): void {
  // onRequest runs before routing decisions are acted on, for matched and unmatched paths alike.
  fastify.addHook('onRequest', (request, reply, done) => {
    void reply.headers(CORS_HEADERS);
    if (request.method === 'OPTIONS') {
      void reply.code(204).send();
      return;
    }
    done();
  });
}
