/**
 * Boots one or more services in this process: the body of every apps/<service>/src/main.ts.
 *
 * Services with HTTP routes run on their listener (client-api on the client listener,
 * federation-ingress on the federation listener); services together on one listener share one
 * Nest application. Services without routes (room-server, persistence, fanout-sender) run in a
 * plain application context beside them, or, when a process has only such services, in an
 * HTTP app that serves just the health probes on the health listener (for Kubernetes).
 */
import { readFileSync } from 'node:fs';
import type { DynamicModule, INestApplicationContext, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { ConfigError, loadConfig, type HomeserverConfig, type ListenerConfig } from '@tessera/config';
import { migrate, type Migration } from '@tessera/storage';
import { createHttpApp, serviceRoot, type HttpAppOptions } from './http-app.js';
import { createLogger, NestPinoLogger } from './logger.js';
import { openRuntime, type RuntimeMode, type ServiceRuntime } from './runtime.js';

export interface ServiceDefinition {
  /** e.g. 'client-api'; used in logs and as the NATS connection name. */
  name: string;
  module: Type | DynamicModule;
  /** Which listener serves its routes; 'none' for services that only talk over the bus. */
  listener: 'client' | 'federation' | 'none';
  /** Health port when the service runs alone and health.port is not configured. */
  defaultHealthPort: number;
  /** Schema this service owns; applied at startup (the runner is safe to call concurrently). */
  migrations?: Migration[];
}

export interface RunningServices {
  runtime: ServiceRuntime;
  /** The HTTP apps by listener name, listening. */
  apps: Map<'client' | 'federation' | 'health', NestFastifyApplication>;
  /** Stops taking requests, closes the apps, then the bus and the database. */
  close(): Promise<void>;
}

export interface StartServicesOptions {
  mode: RuntimeMode;
  /** Process name in logs. */
  name: string;
  config?: HomeserverConfig;
}

export async function startServices(services: ServiceDefinition[], options: StartServicesOptions): Promise<RunningServices> {
  const config = options.config ?? loadConfig();
  const logger = createLogger(options.name, config.logLevel);
  const runtime = await openRuntime(config, { mode: options.mode, name: options.name, logger });
  const apps = new Map<'client' | 'federation' | 'health', NestFastifyApplication>();
  let context: INestApplicationContext | undefined;
  const close = async () => {
    runtime.drain();
    for (const app of apps.values()) await app.close().catch((err) => logger.warn({ err }, 'closing an HTTP app failed'));
    await context?.close().catch((err) => logger.warn({ err }, 'closing the service context failed'));
    await runtime.close();
  };
  try {
    const migrations = mergeMigrations(services);
    if (migrations.length > 0) {
      const { applied } = await migrate(runtime.db, migrations);
      if (applied.length > 0) logger.info({ applied }, 'migrations applied');
    }

    const byListener = (l: ServiceDefinition['listener']) => services.filter((s) => s.listener === l).map((s) => s.module);
    const busOnly = byListener('none');
    const listeners: Array<['client' | 'federation', Array<Type | DynamicModule>]> = [
      ['client', byListener('client')],
      ['federation', byListener('federation')],
    ];
    const httpListeners = listeners.filter(([, modules]) => modules.length > 0);

    if (httpListeners.length === 0) {
      const health: ListenerConfig = {
        bindAddress: config.listeners.health.bindAddress,
        port: config.listeners.health.port ?? services[0]!.defaultHealthPort,
      };
      apps.set('health', await listen(runtime, busOnly, health, undefined));
    } else {
      if (busOnly.length > 0) {
        context = await NestFactory.createApplicationContext(serviceRoot(runtime, busOnly), {
          abortOnError: false,
          logger: new NestPinoLogger(logger),
        });
        await context.init();
      }
      // Embedded, with both APIs in this process: the client listener also answers the
      // federation and key APIs, as Synapse's single default listener does (Complement's
      // unknown-endpoints test asks them there); the federation listener stays the one to use.
      const forward = options.mode === 'embedded' && httpListeners.length === 2
        ? { prefixes: ['/_matrix/federation', '/_matrix/key'], to: () => apps.get('federation') }
        : undefined;
      for (const [name, modules] of httpListeners) {
        const listener = name === 'client' ? config.listeners.client : config.listeners.federation;
        const tls = name === 'federation' ? config.listeners.federation.tls : undefined;
        apps.set(name, await listen(runtime, modules, listener, tls, name === 'client' ? forward : undefined));
      }
    }
    logger.info(
      { services: services.map((s) => s.name), listeners: [...apps.entries()].map(([n, a]) => `${n}=${address(a)}`) },
      'started',
    );
    return { runtime, apps, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * Services that read the same tables declare the same migration lists (room-server and
 * persistence both need the event log); in one process each migration is applied once. Two
 * different migrations under one id stay an error, reported by migrate().
 */
export function mergeMigrations(services: ServiceDefinition[]): Migration[] {
  const byId = new Map<string, Migration>();
  const merged: Migration[] = [];
  for (const m of services.flatMap((s) => s.migrations ?? [])) {
    const seen = byId.get(m.id);
    if (seen && seen.sql === m.sql) continue;
    byId.set(m.id, m);
    merged.push(m);
  }
  return merged;
}

async function listen(
  runtime: ServiceRuntime,
  modules: Array<Type | DynamicModule>,
  listener: ListenerConfig,
  tls: { certificatePath: string; privateKeyPath: string } | undefined,
  forward?: HttpAppOptions['forward'],
): Promise<NestFastifyApplication> {
  const app = await createHttpApp(serviceRoot(runtime, modules), {
    bodyLimit: runtime.config.maxRequestSize,
    rawBodyLimit: runtime.config.media.maxUploadSize,
    tls: tls ? readTls(tls) : undefined,
    logger: runtime.logger,
    metrics: runtime.metrics,
    forward,
  });
  try {
    await app.listen({ port: listener.port, host: listener.bindAddress });
  } catch (err) {
    await app.close().catch(() => undefined);
    throw new ConfigError(
      runtime.config.configFile ?? 'configuration',
      'listeners',
      `cannot listen on ${listener.bindAddress}:${listener.port}: ${(err as Error).message}`,
    );
  }
  return app;
}

function readTls(tls: { certificatePath: string; privateKeyPath: string }): { cert: Buffer; key: Buffer } {
  const read = (path: string, field: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new ConfigError(path, field, `cannot be read: ${(err as Error).message}`);
    }
  };
  return { cert: read(tls.certificatePath, 'tls_certificate_path'), key: read(tls.privateKeyPath, 'tls_private_key_path') };
}

function address(app: NestFastifyApplication): string {
  const a = app.getHttpServer().address();
  return typeof a === 'object' && a ? `${a.address}:${a.port}` : String(a);
}

/**
 * The main of a service process: start, and close gracefully on SIGTERM/SIGINT. A startup
 * failure prints one clear line (for a ConfigError: the file and the field) and exits 1.
 */
export async function runServicesMain(services: ServiceDefinition[], options: Omit<StartServicesOptions, 'config'>): Promise<void> {
  let running: RunningServices;
  try {
    running = await startServices(services, options);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`tessera ${options.name}: configuration error: ${err.message}\n`);
    } else {
      process.stderr.write(`tessera ${options.name}: failed to start: ${(err as Error)?.stack ?? String(err)}\n`);
    }
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    running.runtime.logger.info({ signal }, 'shutting down');
    running
      .close()
      .then(() => {
        running.runtime.logger.info('stopped');
        process.exit(0);
      })
      .catch((err) => {
        process.stderr.write(`tessera ${options.name}: error while shutting down: ${(err as Error)?.stack ?? String(err)}\n`);
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
