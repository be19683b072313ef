import { Module, type DynamicModule, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { installHttpObservability, type TesseraMetrics } from '@tessera/observability';
import { installCors } from './cors.js';
import { MatrixExceptionFilter } from './exception-filter.js';
import { HealthModule } from './health.controller.js';
import { installJsonBodyParsers } from './json-body.js';
import { NestPinoLogger } from './logger.js';
import { RouteTable } from './route-table.js';
import { RuntimeModule, type ServiceRuntime } from './runtime.js';

/** Replies whose 201 is meant (Synapse's admin API answers 201 for a created user); see createHttpApp's onSend hook. */
const createdOnPurpose = new WeakSet<object>();

/** Sends `body` with 201 Created, which the edge otherwise turns into 200 (Nest's default for POST). */
export function sendCreated(reply: { code(status: number): { send(body: unknown): unknown } }, body: unknown): void {
  createdOnPurpose.add(reply);
  reply.code(201).send(body);
}

export interface HttpAppOptions {
  /** Largest accepted body in bytes; beyond it 413 M_TOO_LARGE. */
  bodyLimit: number;
  /** Largest body of RAW_BODY_ROUTE routes (media uploads); default bodyLimit. */
  rawBodyLimit?: number;
  /** PEM certificate and key: the app speaks HTTPS. */
  tls?: { cert: Buffer; key: Buffer };
  logger: Logger;
  /** When given: request ids, latency by route, and GET /metrics (libs/observability). */
  metrics?: TesseraMetrics;
  /**
   * Paths under these prefixes (e.g. `/_matrix/federation`) are answered by another app of the
   * process (found when a request comes), as Synapse's single default listener answers every
   * API: see forwardToApp.
   */
  forward?: { prefixes: string[]; to: () => NestFastifyApplication | undefined };
}

@Module({})
class ServiceRootModule {}

/** One Nest application holding the runtime's providers, the health probes and the given modules. */
export function serviceRoot(runtime: ServiceRuntime, modules: Array<Type | DynamicModule>): DynamicModule {
  return { module: ServiceRootModule, imports: [RuntimeModule.forRoot(runtime), HealthModule, ...modules] };
}

/**
 * A Nest application on Fastify with the house HTTP rules: CORS and pre-flight on every path,
 * Matrix error bodies for every failure, JSON body parsing per the spec. Initialised, not yet
 * listening: call `app.listen({ port, host })`.
 */
export async function createHttpApp(root: Type | DynamicModule, options: HttpAppOptions): Promise<NestFastifyApplication> {
  const fastifyOptions = {
    bodyLimit: options.bodyLimit,
    logger: false,
    // Matrix ids in paths are percent-encoded and can be long (event ids, room aliases).
    routerOptions: { maxParamLength: 1000 },
  };
  // The adapter's typings split HTTP and HTTPS servers; the options are otherwise the same.
  const adapter = options.tls
    ? new FastifyAdapter({ ...fastifyOptions, https: options.tls } as unknown as ConstructorParameters<typeof FastifyAdapter>[0])
    : new FastifyAdapter(fastifyOptions);
  const fastify = adapter.getInstance();
  const routes = new RouteTable();
  fastify.addHook('onRoute', (route) => {
    routes.add(route.method, route.url);
    if ((route.config as { rawBody?: unknown } | undefined)?.rawBody === true) route.bodyLimit = options.rawBodyLimit ?? options.bodyLimit;
  });
  // First, so that every request (pre-flights and errors included) has its id and is measured.
  if (options.metrics) installHttpObservability(fastify, { metrics: options.metrics, logger: options.logger });
  installCors(fastify);
  installJsonBodyParsers(fastify);
  if (options.forward) forwardToApp(fastify, options.forward);
  // Nest answers POST with 201 unless told otherwise; no Matrix API response is 201, so every
  // success that Nest defaulted to 201 is sent as the spec's 200.
  // JSON goes out as plain `application/json`, as Synapse and the error filter send it (Fastify's
  // serializer adds `; charset=utf-8`, which Complement's exact header checks refuse; JSON is UTF-8 anyway).
  fastify.addHook('onSend', (_request, reply, payload, done) => {
    if (reply.statusCode === 201 && !createdOnPurpose.has(reply)) void reply.code(200);
    if (reply.getHeader('content-type') === 'application/json; charset=utf-8') void reply.header('content-type', 'application/json');
    done(null, payload);
  });

  const app = await NestFactory.create<NestFastifyApplication>(root, adapter, {
    bodyParser: false,
    abortOnError: false,
    logger: new NestPinoLogger(options.logger),
  });
  app.useGlobalFilters(new MatrixExceptionFilter(routes, options.logger));
  await app.init();
  return app;
}

/**
 * Serves every method on `prefix/*` by handing the request to another app of this process
 * (Fastify's inject: no network hop), its answer passed on as it is: that app's routes, auth
 * (X-Matrix signatures name the server, not the listener) and 404/405 apply. The parsed body
 * goes on as JSON (a signature covers the JSON value, not its bytes), a raw one as it came.
 */
function forwardToApp(fastify: FastifyInstance, forward: NonNullable<HttpAppOptions['forward']>): void {
  for (const prefix of forward.prefixes) {
    fastify.all(`${prefix}/*`, async (request, reply) => {
      const target = forward.to();
      if (!target) return reply.code(503).send({ errcode: 'M_UNKNOWN', error: 'this API is not served yet; try again' });
      const body = request.body;
      const payload = body === undefined || body === null ? undefined : Buffer.isBuffer(body) || typeof body === 'string' ? body : JSON.stringify(body);
      const { 'content-length': _length, 'transfer-encoding': _encoding, ...headers } = request.headers;
      const answer = await target.getHttpAdapter().getInstance().inject({
        method: request.method as 'GET',
        url: request.url,
        headers: payload !== undefined && !headers['content-type'] ? { ...headers, 'content-type': 'application/json' } : headers,
        ...(payload !== undefined ? { payload } : {}),
      });
      const { 'content-length': _l, 'transfer-encoding': _t, connection: _c, ...answerHeaders } = answer.headers;
      return reply.code(answer.statusCode).headers(answerHeaders).send(answer.rawPayload);
    });
  }
}
