/**
 * Two client-api replicas on PostgreSQL + NATS + Redis, for tests of what replicas share:
 * replica a runs persistence, room-server and client-api, replica b client-api alone, on one
 * test database, one bus prefix and one Redis key prefix. Returns their base URLs (no path).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig } from '@tessera/config';
import { startServices, type RunningServices, type ServiceDefinition } from '@tessera/http';
import { clientApiService } from '@tessera/client-api-service';
import { persistenceService } from '@tessera/persistence-service';
import { roomServerService } from '@tessera/room-server-service';
import { createTestDatabase, NATS_URL, REDIS_URL, uniqueName } from '@tessera/testing';
import { freePort } from './processes.js';

export interface ClientApiReplicas {
  a: string;
  b: string;
  close(): Promise<void>;
}

/** `settings`: extra homeserver config shared by both (registration, lifetimes...). */
export async function startClientApiReplicas(name: string, settings: Record<string, unknown> = {}): Promise<ClientApiReplicas> {
  const db = await createTestDatabase();
  const dir = mkdtempSync(join(tmpdir(), `tessera-${name}-`));
  const running: RunningServices[] = [];
  const close = async () => {
    for (const r of running.reverse()) await r.close();
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const shared = {
      server_name: `${uniqueName('hs')}.test`,
      data_dir: dir,
      log_level: 'warn',
      rate_limits: { enabled: false },
      database: { url: db.url },
      nats: { url: NATS_URL, prefix: uniqueName('bus') },
      redis: { url: REDIS_URL, key_prefix: `${uniqueName('r')}:` },
      ...settings,
    };
    const config = (port: number) => buildConfig({ ...shared, listeners: { client: { port }, federation: { port: 1 } } }, { env: {}, cwd: dir });
    // Both processes share one database: each migration is applied by the first only.
    const seen = new Set<string>();
    const unique = (list: ServiceDefinition[]) => list.map((s) => ({ ...s, migrations: (s.migrations ?? []).filter((m) => !seen.has(m.id) && !!seen.add(m.id)) }));
    const portA = await freePort();
    const portB = await freePort();
    running.push(await startServices(unique([persistenceService, roomServerService, clientApiService]), { mode: 'distributed', name: `${name}-a`, config: config(portA) }));
    running.push(await startServices([clientApiService], { mode: 'distributed', name: `${name}-b`, config: config(portB) }));
    return { a: `http://127.0.0.1:${portA}`, b: `http://127.0.0.1:${portB}`, close };
  } catch (err) {
    await close();
    throw err;
  }
}
