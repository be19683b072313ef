import { Module, type DynamicModule, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Logger } from 'pino';
import { installHttpObservability, type TesseraMetrics } from '@tessera/observability';
import { installCors } from './cors.js';
import { MatrixExceptionFilter } from './exception-filter.js';
import { HealthModule } from './health.controller.js';
import { installJsonBodyParsers } from './json-body.js';
import { NestPinoLogger } from './logger.js';
import { RouteTable } from './route-table.js';
import { RuntimeModule, type ServiceRuntime } from './runtime.js';

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
  // Nest answers POST with 201 unless told otherwise; no Matrix API response is 201, so every
  // success that Nest defaulted to 201 is sent as the spec's 200.
  fastify.addHook('onSend', (_request, reply, payload, done) => {
    if (reply.statusCode === 201) void reply.code(200);
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
