/**
 * Real services for tests: PostgreSQL, NATS, Redis on this machine. Each test run gets its own
 * database and its own bus subject prefix so that runs never collide.
 *
 * When a service is down, tests that need it are skipped with a loud reason, unless
 * REQUIRE_SERVICES=1 (CI, `npm run test:ci`): then a missing service fails the run.
 */
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import pg from 'pg';

export const POSTGRES_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const NATS_URL = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export const servicesRequired = process.env.REQUIRE_SERVICES === '1';

function hostPort(url: string, defaultPort: number): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname || '127.0.0.1', port: Number(u.port || defaultPort) };
}

function reachable(url: string, defaultPort: number, timeoutMs = 1000): Promise<boolean> {
  const { host, port } = hostPort(url, defaultPort);
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export interface ServiceAvailability {
  postgres: boolean;
  nats: boolean;
  redis: boolean;
}

let availability: Promise<ServiceAvailability> | undefined;

/** Which services answer. With REQUIRE_SERVICES=1 a missing one throws instead. */
export function checkServices(): Promise<ServiceAvailability> {
  availability ??= (async () => {
    const [postgres, nats, redis] = await Promise.all([
      reachable(POSTGRES_URL, 5432),
      reachable(NATS_URL, 4222),
      reachable(REDIS_URL, 6379),
    ]);
    const found = { postgres, nats, redis };
    const missing = Object.entries(found).filter(([, up]) => !up).map(([name]) => name);
    if (missing.length > 0) {
      const message = `services not reachable: ${missing.join(', ')} (see README: starting the local services)`;
      if (servicesRequired) throw new Error(`${message}; REQUIRE_SERVICES=1 forbids skipping`);
      console.warn(`WARNING: ${message}; tests that need them are skipped`);
    }
    return found;
  })();
  return availability;
}

/** Synchronous-friendly form for describe.skipIf: resolved at import time via top-level await. */
export const services: ServiceAvailability = await checkServices();

/** A fresh uniquely named token for subject prefixes, database names, server names. */
export function uniqueName(prefix = 't'): string {
  return `${prefix}${Date.now().toString(36)}${randomBytes(4).toString('hex')}`;
}

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** Creates an empty PostgreSQL database for one test file; drop() removes it. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = uniqueName('tessera_test_');
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      const c = new pg.Client({ connectionString: POSTGRES_URL });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
