/**
 * What a service process gives its service modules: configuration, signing keys, database,
 * bus, logger. The embedded homeserver opens one runtime and hands it to every service; in the
 * distributed mode each process opens its own against PostgreSQL and NATS. Only the transports
 * differ between the modes (DESIGN, "Embedded default").
 */
import { Global, Module, type DynamicModule } from '@nestjs/common';
import type { Logger } from 'pino';
import { createInProcessBus, createNatsBus, type BusTransport } from '@tessera/bus';
import { ConfigError, loadOrCreateSigningKey, type HomeserverConfig, type LoadedSigningKeys } from '@tessera/config';
import { createMetrics, instrumentBus, METRICS, type InstrumentedBusTransport, type TesseraMetrics } from '@tessera/observability';
import { createDb, migrate, type Db } from '@tessera/storage';
import { BUS, CONFIG, DB, LOGGER, RUNTIME, SIGNING_KEYS } from './tokens.js';

export type RuntimeMode = 'embedded' | 'distributed';

export interface ReadinessResult {
  ready: boolean;
  checks: Record<string, string>;
}

export interface ServiceRuntime {
  readonly mode: RuntimeMode;
  readonly config: HomeserverConfig;
  readonly signingKeys: LoadedSigningKeys;
  readonly db: Db;
  readonly bus: BusTransport;
  readonly logger: Logger;
  /** The process's Prometheus metrics (served on /metrics of its HTTP listeners). */
  readonly metrics: TesseraMetrics;
  /** Marks the process as going away: readiness turns 503 so load balancers stop sending. */
  drain(): void;
  checkReadiness(): Promise<ReadinessResult>;
  /** Closes the bus, then the database. */
  close(): Promise<void>;
}

/**
 * A database is bound to one server name: its events and ids carry it. Starting with another
 * server_name on the same data would corrupt it, so it is refused (as Synapse does).
 */
const serverIdentityMigrations = [
  {
    id: 'homeserver_0001_server_identity',
    sql: 'CREATE TABLE homeserver_identity (singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton), server_name TEXT NOT NULL, created_ts BIGINT NOT NULL);',
  },
];

export interface OpenRuntimeOptions {
  mode: RuntimeMode;
  /** Process name for logs and the NATS connection name. */
  name: string;
  logger: Logger;
}

export async function openRuntime(config: HomeserverConfig, options: OpenRuntimeOptions): Promise<ServiceRuntime> {
  const { logger } = options;
  if (options.mode === 'distributed') {
    if (!config.database.url) {
      throw new ConfigError(config.configFile ?? 'environment', 'DATABASE_URL', 'the distributed mode needs PostgreSQL: set DATABASE_URL or database.url');
    }
    if (!config.nats.url) {
      throw new ConfigError(config.configFile ?? 'environment', 'NATS_URL', 'the distributed mode needs NATS: set NATS_URL or nats.url');
    }
  }
  const signingKeys = loadOrCreateSigningKey(config.signingKeyPath);
  if (signingKeys.created) logger.info({ path: config.signingKeyPath, keyId: signingKeys.current.keyId }, 'generated a new signing key');

  const db = await createDb(config.database.url ? { url: config.database.url } : { dataDir: config.database.dataDir });
  const metrics = createMetrics({ service: options.name });
  let bus: InstrumentedBusTransport | undefined;
  try {
    await claimDatabase(db, config.serverName);
    const transport = config.nats.url
      ? await createNatsBus({ url: config.nats.url, prefix: config.nats.prefix, name: `${config.serverName}/${options.name}` })
      : createInProcessBus();
    // Bus latency metrics and the request id carried across (libs/observability).
    bus = instrumentBus(transport, { metrics });
  } catch (err) {
    await db.close().catch(() => undefined);
    throw err;
  }
  logger.info(
    { database: config.database.url ? 'postgres' : `pglite:${config.database.dataDir}`, bus: config.nats.url ? 'nats' : 'in-process' },
    'runtime open',
  );

  let draining = false;
  const readyBus = bus;
  // Handlers leave their queue groups first (peers take new messages) while the connection
  // stays open for the replies of the ones still running; then the bus closes.
  const stopHandlers = () =>
    readyBus.stopTakingMessages().catch((err: unknown) => logger.warn({ err }, 'unsubscribing bus handlers failed'));
  return {
    mode: options.mode,
    config,
    signingKeys,
    db,
    bus,
    logger,
    metrics,
    drain() {
      // Only readiness: in-flight HTTP requests may still need this process's own handlers
      // (embedded mode) or subscriptions (/sync wake-ups); close() stops those after them.
      draining = true;
    },
    async checkReadiness() {
      const checks: Record<string, string> = {};
      checks.shutdown = draining ? 'shutting down' : 'ok';
      try {
        await db.query('SELECT 1');
        checks.database = 'ok';
      } catch (err) {
        checks.database = (err as Error).message;
      }
      checks.bus = readyBus ? 'ok' : 'closed';
      return { ready: Object.values(checks).every((v) => v === 'ok'), checks };
    },
    async close() {
      draining = true;
      await stopHandlers();
      await readyBus.close().catch((err: unknown) => logger.warn({ err }, 'closing the bus failed'));
      await db.close().catch((err) => logger.warn({ err }, 'closing the database failed'));
    },
  };
}

async function claimDatabase(db: Db, serverName: string): Promise<void> {
  await migrate(db, serverIdentityMigrations);
  await db.query('INSERT INTO homeserver_identity (server_name, created_ts) VALUES ($1, $2) ON CONFLICT (singleton) DO NOTHING', [
    serverName,
    Date.now(),
  ]);
  const { rows } = await db.query<{ server_name: string }>('SELECT server_name FROM homeserver_identity');
  const owner = rows[0]?.server_name;
  if (owner !== serverName) {
    throw new ConfigError(
      'database',
      'server_name',
      `this database belongs to server ${JSON.stringify(owner)}, not ${JSON.stringify(serverName)}; use that server_name or another database`,
    );
  }
}

/** Provides the runtime's parts to every module of one Nest application. */
@Global()
@Module({})
export class RuntimeModule {
  static forRoot(runtime: ServiceRuntime): DynamicModule {
    const providers = [
      { provide: RUNTIME, useValue: runtime },
      { provide: CONFIG, useValue: runtime.config },
      { provide: SIGNING_KEYS, useValue: runtime.signingKeys },
      { provide: DB, useValue: runtime.db },
      { provide: BUS, useValue: runtime.bus },
      { provide: LOGGER, useValue: runtime.logger },
      { provide: METRICS, useValue: runtime.metrics },
    ];
    return { module: RuntimeModule, providers, exports: providers.map((p) => p.provide) };
  }
}
