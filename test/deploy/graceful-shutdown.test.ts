/**
 * Graceful shutdown of a service runtime (what SIGTERM triggers in every service process):
 * readiness turns 503 first; bus messages being handled finish and their replies go out before
 * the bus closes; requests keep being answered (by the other replica once this one has left the
 * queue group); then the database pool is closed.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNatsBus, type BusTransport } from '@tessera/bus';
import { buildConfig } from '@tessera/config';
import { startServices } from '@tessera/http';
import { roomServerService } from '@tessera/room-server-service';
import { createTestDatabase, NATS_URL, services, uniqueName, type TestDatabase } from '@tessera/testing';
import { freePort, startApp, stopApp, waitUntilReady } from '../support/processes.js';

describe.skipIf(!services.postgres || !services.nats)('graceful shutdown', () => {
  let db: TestDatabase;
  const dir = mkdtempSync(join(tmpdir(), 'tessera-shutdown-'));
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  async function start(prefix: string) {
    const port = await freePort();
    const config = buildConfig(
      {},
      {
        env: {
          SERVER_NAME: 'shutdown.test',
          DATABASE_URL: db.url,
          NATS_URL,
          BUS_PREFIX: prefix,
          DATA_DIR: dir,
          HEALTH_PORT: String(port),
          LOG_LEVEL: 'silent',
        },
        cwd: dir,
      },
    );
    const running = await startServices([roomServerService], { mode: 'distributed', name: 'room-server', config });
    return { running, base: `http://127.0.0.1:${port}` };
  }

  it('finishes in-flight bus requests, hands new ones to the other replica, then closes the pool', async () => {
    const prefix = uniqueName('shut');
    const a = await start(prefix);
    const b = await start(prefix);
    const client: BusTransport = await createNatsBus({ url: NATS_URL, prefix, name: 'shutdown-client' });
    try {
      let releaseA!: () => void;
      const gate = new Promise<void>((r) => (releaseA = r));
      let startedA!: () => void;
      const aStarted = new Promise<void>((r) => (startedA = r));
      // Two replicas in one queue group, as Kubernetes runs them.
      await a.running.runtime.bus.handle<{ n: number }, string>(
        'shutdown.work',
        async ({ n }) => {
          startedA();
          await gate;
          return `a${n}`;
        },
        { queue: 'workers' },
      );
      await b.running.runtime.bus.handle<{ n: number }, string>('shutdown.work', async ({ n }) => `b${n}`, { queue: 'workers' });

      // Replica A holds one request in flight when the shutdown begins.
      const replies: Array<Promise<string>> = [];
      for (let n = 0; n < 20; n++) replies.push(client.request<{ n: number }, string>('shutdown.work', { n }, { timeoutMs: 20_000 }));
      await aStarted;

      const closing = a.running.close();
      // Readiness is 503 from the start of the shutdown (or the listener is already gone).
      const probe = await fetch(`${a.base}/health/ready`).then((r) => r.status, () => 'closed');
      expect([503, 'closed']).toContain(probe);
      // The shutdown cannot complete while A's handler is still running.
      let closed = false;
      void closing.then(() => (closed = true));
      await new Promise((r) => setTimeout(r, 200));
      expect(closed).toBe(false);
      releaseA();
      // A request sent while A shuts down is answered (by A before it leaves the group, or by B).
      const during = await client.request<{ n: number }, string>('shutdown.work', { n: 100 }, { timeoutMs: 5_000 });
      expect(['a100', 'b100']).toContain(during);
      await closing;
      const all = await Promise.all(replies);
      expect(all).toHaveLength(20);
      expect(all.some((r) => r.startsWith('a'))).toBe(true);
      expect(all.every((r, n) => r === `a${n}` || r === `b${n}`)).toBe(true);
      // The pool is closed: the database refuses further queries from this runtime.
      await expect(a.running.runtime.db.query('SELECT 1')).rejects.toThrow();
      // B still serves.
      expect(await client.request('shutdown.work', { n: 200 })).toBe('b200');
    } finally {
      await client.close();
      await b.running.close();
    }
    // Two runtimes start (migrations included) on a machine that may be busy with other suites.
  }, 180_000);

  it('exits 0 on SIGTERM with a last log line', async () => {
    const port = await freePort();
    const proc = startApp('room-server', {
      SERVER_NAME: 'shutdown.test',
      DATABASE_URL: db.url,
      NATS_URL,
      BUS_PREFIX: uniqueName('shut'),
      DATA_DIR: dir,
      HEALTH_PORT: String(port),
      LOG_LEVEL: 'info',
    });
    await waitUntilReady(proc, `http://127.0.0.1:${port}/health/ready`);
    expect(await stopApp(proc)).toBe(0);
    const lines = proc
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; service: string });
    expect(lines.map((l) => l.msg)).toEqual(expect.arrayContaining(['shutting down', 'stopped']));
    expect(lines.at(-1)).toMatchObject({ msg: 'stopped', service: 'room-server' });
  });
});
