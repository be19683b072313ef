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
 *
 * The embedded homeserver (`npm start`: every service in one process, PGlite, in-process bus),
 * spawned with the arguments of package.json's start script after its prestart build, on a new
 * data folder, then restarted on it; 5 s after ready (the heap settled), from /proc and /metrics:
 *
 *   BENCH embedded_idle_rss_<first|restart>  MB  VmRSS of the process (the figure)
 *   BENCH embedded_idle_<part>               MB  its parts on the restart: anonymous and file-backed
 *       resident memory (smaps_rollup), resident pages of PGlite's WASM memory (its one 128 MB
 *       mapping), V8 heap used/total and external memory (process.memoryUsage via /metrics)
 *   BENCH embedded_idle_rss_default_v8       MB  baseline: the same bundle and folder without the
 *       start script's V8/GC flags (only --liftoff-only), same conditions
 *   BENCH embedded_idle_rss_tsx              MB  baseline: the same folder, run as before
 *       (`node --import tsx apps/homeserver/src/main.ts`), same conditions
 *   BENCH embedded_idle_rss_bare_node        MB  baseline: a bare node process that only listens
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { formatSigningKeyFile, generateSigningKey } from '@tessera/protocol';
import { checkServices, createTestDatabase, NATS_URL, uniqueName } from '@tessera/testing';
import { buildNpmStart } from '../test/support/processes.js';

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

async function startService(service: string, env: Record<string, string>, port: number, args = ['--import', 'tsx', `apps/${service}/src/main.ts`]): Promise<Started> {
  const base = `http://127.0.0.1:${port}`;
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, args, {
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

/** process.memoryUsage() figures of a service, read from its /metrics (prom-client's defaults). */
async function metricsMb(base: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const value = (name: string) => Number(text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))?.split(' ').pop() ?? NaN) / 2 ** 20;
  return { heap_used: value('nodejs_heap_size_used_bytes'), heap_total: value('nodejs_heap_size_total_bytes'), external: value('nodejs_external_memory_bytes') };
}

/** Resident memory of a process from /proc (Linux): VmRSS, and its anonymous / file-backed / WASM parts. */
function procMb(pid: number): Record<string, number> {
  const kb = (text: string, field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) / 1024;
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  // PGlite's WebAssembly.Memory is one 128 MB read-write anonymous mapping (V8 reserves the
  // rest of its address range without access); its Rss is what PostgreSQL has touched.
  let wasm = 0;
  let wasmMappings = 0;
  for (const block of readFileSync(`/proc/${pid}/smaps`, 'utf8').split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
    const [head] = block.split('\n', 1);
    if (/ rw-p 00000000 00:00 0\s*$/.test(head!) && kb(block, 'Size') === 128) {
      wasm += kb(block, 'Rss');
      wasmMappings++;
    }
  }
  return {
    rss: kb(readFileSync(`/proc/${pid}/status`, 'utf8'), 'VmRSS'),
    anonymous: kb(rollup, 'Anonymous'),
    file: kb(rollup, 'Rss') - kb(rollup, 'Anonymous'),
    ...(wasmMappings === 1 ? { pglite_wasm_memory: wasm } : {}),
  };
}

const SETTLE_MS = 5000;

/** Idle resident memory of the embedded homeserver as `npm start` runs it, and its baselines. */
export async function embedded(): Promise<void> {
  if (!existsSync('/proc/self/smaps_rollup')) {
    console.log('# embedded idle memory needs /proc (Linux); skipped');
    return;
  }
  const args = await buildNpmStart();
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-embedded-'));
  const port = await freePort();
  const env: Record<string, string> = {
    SERVER_NAME: 'embedded-bench.test',
    DATA_DIR: dir,
    CLIENT_PORT: String(port),
    FEDERATION_PORT: String(await freePort()),
    DATABASE_URL: '',
    NATS_URL: '',
    REDIS_URL: '',
    CONFIG_FILE: '',
    SIGNING_KEY_PATH: '',
  };
  const idle = async (args: string[]): Promise<Record<string, number>> => {
    const started = await startService('homeserver', env, port, args);
    try {
      await new Promise((r) => setTimeout(r, SETTLE_MS));
      return { ms: started.ms, ...procMb(started.child.pid!), ...(await metricsMb(started.base)) } as Record<string, number>;
    } finally {
      await stop(started.child);
    }
  };
  try {
    console.log(`# embedded: node ${args.join(' ')}`);
    const first = await idle(args);
    console.log(`BENCH embedded_startup_first ${first.ms!.toFixed(0)} ms`);
    console.log(`BENCH embedded_idle_rss_first ${first.rss!.toFixed(1)} MB`);
    const again = await idle(args);
    console.log(`BENCH embedded_startup_restart ${again.ms!.toFixed(0)} ms`);
    console.log(`BENCH embedded_idle_rss_restart ${again.rss!.toFixed(1)} MB`);
    for (const part of ['anonymous', 'file', 'pglite_wasm_memory', 'heap_used', 'heap_total', 'external'] as const) {
      if (again[part] !== undefined) console.log(`BENCH embedded_idle_${part} ${again[part]!.toFixed(1)} MB`);
    }
    const defaults = await idle(['--liftoff-only', args.at(-1)!]);
    console.log(`BENCH embedded_idle_rss_default_v8 ${defaults.rss!.toFixed(1)} MB`);
    const tsx = await idle(['--import', 'tsx', 'apps/homeserver/src/main.ts']);
    console.log(`BENCH embedded_idle_rss_tsx ${tsx.rss!.toFixed(1)} MB`);
    const bareScript = "require('node:http').createServer((q, s) => s.end()).listen(Number(process.env.CLIENT_PORT), '127.0.0.1')";
    const bare = spawn(process.execPath, ['-e', bareScript], { env: { ...process.env, ...env }, stdio: 'ignore' });
    try {
      for (let i = 0; i < 500 && !(await fetch(`http://127.0.0.1:${port}/`).then(() => true, () => false)); i++) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, SETTLE_MS));
      console.log(`BENCH embedded_idle_rss_bare_node ${procMb(bare.pid!).rss.toFixed(1)} MB`);
    } finally {
      await stop(bare);
    }
  } catch (err) {
    console.log(`# embedded: ${(err as Error).message}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function main(): Promise<void> {
  await embedded();
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
