/**
 * The HTTP edge's part of observability, installed on a service's Fastify instance:
 *   - the request id: taken from X-Request-Id when acceptable, else generated; echoed in the
 *     response header and current for everything the request does (logs, bus messages);
 *   - latency by route pattern (never the raw URL: ids in paths would explode the series);
 *   - GET /metrics: the process's registry in Prometheus text format.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { TesseraMetrics } from './metrics.js';
import { REQUEST_ID_HEADER, acceptRequestId, runWithRequestId } from './request-context.js';

export const METRICS_PATH = '/metrics';

export interface HttpObservabilityOptions {
  metrics: TesseraMetrics;
  /** When given, each completed request is logged (probes and scrapes at trace level). */
  logger?: Logger;
}

const requestIds = new WeakMap<FastifyRequest, string>();
const startTimes = new WeakMap<FastifyRequest, bigint>();

/** The request id assigned to this request by the edge. */
export function requestIdOf(request: FastifyRequest): string | undefined {
  return requestIds.get(request);
}

/** Routes that answer machines, not users: their completions are logged at trace level. */
function isProbe(route: string): boolean {
  return route === METRICS_PATH || route.startsWith('/health/');
}

export function installHttpObservability(fastify: FastifyInstance, options: HttpObservabilityOptions): void {
  const { metrics, logger } = options;

  fastify.addHook('onRequest', (request, reply, done) => {
    startTimes.set(request, process.hrtime.bigint());
    const requestId = acceptRequestId(request.headers[REQUEST_ID_HEADER]);
    requestIds.set(request, requestId);
    void reply.header(REQUEST_ID_HEADER, requestId);
    runWithRequestId(requestId, done);
  });

  // Body parsing may run outside the async context set in onRequest; the handler runs after
  // preHandler, so the context is entered again here.
  fastify.addHook('preHandler', (request, _reply, done) => {
    const requestId = requestIds.get(request);
    if (requestId === undefined) return done();
    runWithRequestId(requestId, done);
  });

  fastify.addHook('onResponse', (request, reply, done) => {
    const started = startTimes.get(request);
    const route = routeOf(request);
    if (started !== undefined) {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.httpRequestSeconds.observe({ method: request.method, route, status_code: String(reply.statusCode) }, seconds);
      if (logger) {
        const line = {
          request_id: requestIds.get(request),
          method: request.method,
          route,
          status: reply.statusCode,
          ms: Math.round(seconds * 1e4) / 10,
        };
        if (isProbe(route)) logger.trace(line, 'request completed');
        else logger.info(line, 'request completed');
      }
    }
    done();
  });

  fastify.get(METRICS_PATH, async (_request: FastifyRequest, reply: FastifyReply) => {
    const body = await metrics.render();
    return reply.header('content-type', metrics.contentType).send(body);
  });
}

/** The matched route's pattern (e.g. /_matrix/client/v3/rooms/:roomId/send/:eventType/:txnId), or 'unmatched'. */
function routeOf(request: FastifyRequest): string {
  return request.routeOptions?.url ?? 'unmatched';
}
