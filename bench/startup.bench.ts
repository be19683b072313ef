/**
 * Startup time and idle resident memory of each service process, in the distributed mode
 * against the real PostgreSQL and NATS of this machine (what a pod does when it starts).
 *
 *   BENCH startup_first_<service>   ms  spawn -> /health/ready 200 on a fresh database (migrations included)
 *   BENCH startup_restart_<service> ms  the same on the existing schema (a rolling restart)
 *   BENCH idle_rss_<service>        MB  process_resident_memory_bytes from its own /metrics, 3 s after ready
 *
 * Each process runs as `node --import tsx apps/<service>/src/main.ts` (one OS process, as the
 * image's entrypoint runs it through tsx). A service that fails to start is reported and skipped.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { formatSigningKeyFile, generateSigningKey } from '@tessera/protocol';
import { checkServices, createTestDatabase, NATS_URL, uniqueName } from '@tessera/testing';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const SERVICES = ['persistence', 'room-server', 'fanout-sender', 'federation-ingress', 'client-api'] as const;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

interface Started {
  child: ChildProcess;
  ms: number;
  base: string;
}

async function startService(service: string, env: Record<string, string>, port: number): Promise<Started> {
  const base = `http://127.0.0.1:${port}`;
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, ['--import', 'tsx', `apps/${service}/src/main.ts`], {
    cwd: ROOT,
    env: { ...process.env, ...env, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  let exited = false;
  child.once('exit', () => (exited = true));
  for (let i = 0; i < 6000; i++) {
    if (exited) throw new Error(`${service} exited before it was ready: ${stderr.trim().split('\n')[0]}`);
    try {
      const res = await fetch(`${base}/health/ready`);
      if (res.status === 200) return { child, ms: Number(process.hrtime.bigint() - started) / 1e6, base };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  child.kill('SIGKILL');
  throw new Error(`${service} not ready after 60 s`);
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await done;
  clearTimeout(timer);
}

async function residentMb(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('process_resident_memory_bytes'));
  if (!line) throw new Error('no process_resident_memory_bytes in /metrics');
  return Number(line.split(' ').pop()) / 2 ** 20;
}

export async function main(): Promise<void> {
  const available = await checkServices();
  if (!available.postgres || !available.nats) {
    console.log('# startup bench needs PostgreSQL and NATS; skipped');
    return;
  }
  const db = await createTestDatabase();
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-startup-'));
  const keyPath = join(dir, 'signing.key');
  writeFileSync(keyPath, formatSigningKeyFile([generateSigningKey()]), { mode: 0o600 });
  const common = {
    SERVER_NAME: `${uniqueName('bench')}.test`,
    DATABASE_URL: db.url,
    NATS_URL,
    BUS_PREFIX: uniqueName('benchbus'),
    SIGNING_KEY_PATH: keyPath,
    DATA_DIR: dir,
  };
  try {
    for (const service of SERVICES) {
      const port = await freePort();
      const env = { ...common, CLIENT_PORT: String(port), FEDERATION_PORT: String(port), HEALTH_PORT: String(port) };
      try {
        const first = await startService(service, env, port);
        await stop(first.child);
        console.log(`BENCH startup_first_${service} ${first.ms.toFixed(0)} ms`);
        const again = await startService(service, env, port);
        console.log(`BENCH startup_restart_${service} ${again.ms.toFixed(0)} ms`);
        await new Promise((r) => setTimeout(r, 3000));
        console.log(`BENCH idle_rss_${service} ${(await residentMb(again.base)).toFixed(1)} MB`);
        await stop(again.child);
      } catch (err) {
        console.log(`# ${service}: ${(err as Error).message}`);
      }
    }
  } finally {
    await db.drop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
