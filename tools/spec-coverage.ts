/**
 * Which operations of the Client-Server API spec (../shared/matrix-spec/openapi/client-server.json)
 * the client-api service serves. Boots the real client-api module (embedded runtime: PGlite in a
 * temporary folder, in-process bus; no listening port) and asks its Fastify router, operation by
 * operation, whether a route answers that method and path: the routes the app actually
 * registers, never a hand-written list.
 *
 *   npm run --silent spec-coverage
 *
 * Prints one line per operation (`implemented` or `missing`), then
 * `covered N of M client-server operations`.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, HTTPMethods } from 'fastify';
import { buildConfig } from '@tessera/config';
import { createHttpApp, createLogger, openRuntime, serviceRoot } from '@tessera/http';
import { eventLogMigrations, migrate, type Migration } from '@tessera/storage';
import { clientApiService } from '@tessera/client-api-service';
import { specPath } from '@tessera/spec-data';

const SPEC = specPath('openapi', 'client-server.json');
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];

interface Operation {
  method: string;
  path: string;
}

/** Spec operations, path keys trimmed (two keys end in a space: the spec lists those paths twice). */
function specOperations(): Operation[] {
  const doc = JSON.parse(readFileSync(SPEC, 'utf8')) as { paths: Record<string, Record<string, unknown>> };
  const seen = new Set<string>();
  const operations: Operation[] = [];
  for (const [rawPath, item] of Object.entries(doc.paths)) {
    const path = rawPath.trim();
    for (const method of Object.keys(item)) {
      if (!METHODS.includes(method)) continue;
      const key = `${method.toUpperCase()} ${path}`;
      if (seen.has(key)) continue;
      seen.add(key);
      operations.push({ method: method.toUpperCase(), path });
    }
  }
  return operations.sort((a, b) => (a.path === b.path ? a.method.localeCompare(b.method) : a.path.localeCompare(b.path)));
}

/**
 * Whether the router has a route for this spec operation. `{param}` becomes a Fastify
 * parameter (names do not matter to the router). Nest drops a trailing slash from route paths,
 * so some operations are served through a wildcard route at a folder above them: those count.
 * M counts distinct operations: the two duplicated path keys count once.
 */
function served(fastify: FastifyInstance, op: Operation): boolean {
  const url = op.path.replace(/\{([^}]+)\}/g, ':$1');
  const method = op.method as HTTPMethods;
  if (fastify.hasRoute({ method, url })) return true;
  // A wildcard at a folder above it (e.g. /pushrules/* serves /pushrules/global/, and
  // /rooms/:roomId/state/* serves /state/{eventType}/{stateKey} with an empty state key too).
  const segments = url.split('/');
  for (let end = segments.length - 1; end > 1; end--) {
    if (fastify.hasRoute({ method, url: `${segments.slice(0, end).join('/')}/*` })) return true;
  }
  return false;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-spec-coverage-'));
  const config = buildConfig({ server_name: 'coverage.test', data_dir: dir, log_level: 'silent' }, { env: {}, cwd: dir });
  const logger = createLogger('spec-coverage', 'silent');
  const runtime = await openRuntime(config, { mode: 'embedded', name: 'spec-coverage', logger });
  try {
    // The schema the module reads: its own, and the event log (written by persistence in production).
    const migrations = new Map<string, Migration>([...(clientApiService.migrations ?? []), ...eventLogMigrations].map((m) => [m.id, m]));
    await migrate(runtime.db, [...migrations.values()]);
    const app = await createHttpApp(serviceRoot(runtime, [clientApiService.module]), { bodyLimit: config.maxRequestSize, logger });
    try {
      const fastify = app.getHttpAdapter().getInstance() as FastifyInstance;
      const operations = specOperations();
      let covered = 0;
      for (const op of operations) {
        const ok = served(fastify, op);
        if (ok) covered++;
        console.log(`${ok ? 'implemented' : 'missing    '}  ${op.method.padEnd(6)} ${op.path}`);
      }
      console.log(`covered ${covered} of ${operations.length} client-server operations`);
    } finally {
      await app.close();
    }
  } finally {
    await runtime.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
