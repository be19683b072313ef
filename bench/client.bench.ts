/**
 * Client-Server API figures on the embedded homeserver (every service in this process, PGlite,
 * in-process bus), over real HTTP from clients in another process (client-load.worker.ts):
 * - send-to-sync latency with SYNC_CLIENTS users long-polling /sync in one room and one sender (after
 *   one unmeasured message, whose slowest delivery is reported apart: the first wake after the joins):
 *   each message reaches all SYNC_CLIENTS at once (client_send_to_sync_*);
 * - send-to-sync latency of a message to one recipient while the other SYNC_CLIENTS - 1 long polls
 *   wait: the sender shares a room of two with each of them and sends into those rooms in turn, one
 *   message at a time (client_send_to_one_of_500_sync_*);
 * - sends per second through PUT /send, SEND_USERS users each in their own room;
 * - resident memory idle and during the latency run;
 * - the server process's CPU time per delivery and per send, and its queries per delivery and per send.
 * BENCH_CPU_PROF=<folder> writes a CPU profile of the server process for each phase
 * (latency.cpuprofile, sends.cpuprofile; open them in Chrome DevTools or speedscope); with
 * BENCH_HEAP_PROF=1 also set, a sampling allocation profile instead (<phase>.heapprofile).
 * `BENCH_BACKEND=postgres` runs the same on PostgreSQL + NATS + Redis (the services must be up).
 */
import { fork, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Global, Module } from '@nestjs/common';
import { buildConfig } from '@tessera/config';
import { startIdleMemoryTrim, startServices, type GcFunction, type ServiceDefinition } from '@tessera/http';
import { CLIENT_API_SETTINGS_OVERRIDES, ClientApiModule, clientApiService } from '@tessera/client-api-service';
import { fanoutSenderService } from '@tessera/fanout-sender-service';
import { federationIngressService } from '@tessera/federation-ingress-service';
import { persistenceService } from '@tessera/persistence-service';
import { roomServerService } from '@tessera/room-server-service';
import { createTestDatabase, NATS_URL, REDIS_URL, uniqueName } from '@tessera/testing';
import { freePort } from '../test/support/processes.js';

const SYNC_CLIENTS = Number(process.env.BENCH_SYNC_CLIENTS ?? 500);
const LATENCY_MESSAGES = Number(process.env.BENCH_LATENCY_MESSAGES ?? 30);
const DIRECT_MESSAGES = Number(process.env.BENCH_DIRECT_MESSAGES ?? 300);
const SEND_USERS = 50;
const SEND_SECONDS = Number(process.env.BENCH_SEND_SECONDS ?? 5);

interface ClientResult {
  p50: number;
  p99: number;
  warmUpMax: number;
  deliveries: number;
  directP50: number;
  directP99: number;
  directDeliveries: number;
  sent: number;
  seconds: number;
  clientCpuPerDeliveryUs: number;
  clientCpuPerSendUs: number;
}

const rssMb = () => process.memoryUsage().rss / (1024 * 1024);

/**
 * The node flags of package.json's start script (V8 and GC settings that `npm start` runs the
 * homeserver with: they trade speed for a small idle footprint, and the figures must be those of
 * the server as run). BENCH_V8_FLAGS="..." replaces them, to compare; "none" runs without.
 */
function startScriptFlags(): string[] {
  if (process.env.BENCH_V8_FLAGS !== undefined) return process.env.BENCH_V8_FLAGS === 'none' ? [] : process.env.BENCH_V8_FLAGS.split(/\s+/).filter(Boolean);
  const { scripts } = JSON.parse(readFileSync(fileURLToPath(new URL('../package.json', import.meta.url)), 'utf8')) as { scripts: Record<string, string> };
  return scripts.start!.trim().split(/\s+/).filter((arg) => arg.startsWith('--'));
}

export async function main(): Promise<void> {
  // This process is the server: run it again under the start script's flags, the worker's figures
  // come back through stdout.
  if (process.env.BENCH_CLIENT_SERVER !== '1') {
    const flags = startScriptFlags();
    console.log(`# the server process runs with: ${flags.join(' ') || '(no flags)'}`);
    const child = spawn(process.execPath, [...flags, '--import', 'tsx', fileURLToPath(import.meta.url)], {
      env: { ...process.env, BENCH_CLIENT_SERVER: '1' },
      stdio: 'inherit',
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    if (code !== 0) throw new Error(`the client bench server process exited with ${code}`);
    return;
  }
  const backend = process.env.BENCH_BACKEND === 'postgres' ? 'postgres' : 'embedded';
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-'));
  const testDb = backend === 'postgres' ? await createTestDatabase() : undefined;
  const port = await freePort();
  const config = buildConfig(
    {
      server_name: `${uniqueName('bench')}.test`,
      data_dir: dir,
      enable_registration: true,
      log_level: 'warn',
      // The measurement is of the server, not of its limits.
      rate_limits: { enabled: false },
      listeners: { client: { bind_address: '127.0.0.1', port }, federation: { bind_address: '127.0.0.1', port: await freePort() } },
      ...(testDb ? { database: { url: testDb.url }, nats: { url: NATS_URL, prefix: uniqueName('bus') }, redis: { url: REDIS_URL } } : {}),
    },
    { env: {}, cwd: dir },
  );
  @Global()
  @Module({ providers: [{ provide: CLIENT_API_SETTINGS_OVERRIDES, useValue: { passwordScryptCost: 1024 } }], exports: [CLIENT_API_SETTINGS_OVERRIDES] })
  class BenchOverrides {}
  @Module({ imports: [BenchOverrides, ClientApiModule] })
  class BenchClientApi {}
  const seen = new Set<string>();
  const services: ServiceDefinition[] = [persistenceService, roomServerService, fanoutSenderService, { ...clientApiService, module: BenchClientApi }, federationIngressService].map(
    (s) => ({ ...s, migrations: (s.migrations ?? []).filter((m) => !seen.has(m.id) && !!seen.add(m.id)) }),
  );
  const running = await startServices(services, { mode: 'embedded', name: 'bench', config });
  const base = `http://127.0.0.1:${port}`;
  // Counts the queries outside transactions (the reads of /sync and auth), to see what a delivery costs.
  // BENCH_QUERY_LOG=1 also lists the statements of each phase (transactions' included) with their
  // count and time; the time is the engine's (on PGlite, which runs one statement at a time, a
  // statement's end minus the later of its start and the previous statement's end).
  const db = running.runtime.db;
  const query = db.query.bind(db);
  const transaction = db.transaction.bind(db);
  let queries = 0;
  const byText = new Map<string, { count: number; ms: number }>();
  let lastEnd = 0;
  const logged = <T>(sql: unknown, run: () => Promise<T>): Promise<T> => {
    if (!process.env.BENCH_QUERY_LOG) return run();
    const start = performance.now();
    const key = String(sql).replace(/\s+/g, ' ').slice(0, 100);
    return run().finally(() => {
      const end = performance.now();
      const entry = byText.get(key) ?? { count: 0, ms: 0 };
      entry.count++;
      entry.ms += end - Math.max(start, lastEnd);
      lastEnd = end;
      byText.set(key, entry);
    });
  };
  db.query = ((...args: Parameters<typeof query>) => {
    queries++;
    return logged(args[0], () => query(...args));
  }) as typeof db.query;
  if (process.env.BENCH_QUERY_LOG) {
    db.transaction = ((fn: Parameters<typeof transaction>[0]) =>
      transaction((tx) => fn({ ...tx, query: ((...args: Parameters<typeof tx.query>) => logged(args[0], () => tx.query(...args))) as typeof tx.query }))) as typeof db.transaction;
  }
  // With BENCH_QUERY_LOG, the pages each table and index had to read (a miss in shared_buffers) per phase.
  const pageReads = async () => {
    const { rows } = await query<{ name: string; reads: number | string }>(
      `SELECT relname AS name, heap_blks_read AS reads FROM pg_statio_all_tables WHERE heap_blks_read > 0
       UNION ALL SELECT indexrelname, idx_blks_read FROM pg_statio_all_indexes WHERE idx_blks_read > 0`,
    );
    return new Map(rows.map((r) => [r.name, Number(r.reads)]));
  };
  let readsAtStart = new Map<string, number>();
  const printPageReads = async (phase: string) => {
    const now = await pageReads();
    const diff = [...now].map(([name, n]) => [name, n - (readsAtStart.get(name) ?? 0)] as const).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
    console.log(`# pages read from disk during ${phase}: ${diff.reduce((a, [, n]) => a + n, 0)}; by relation: ${diff.slice(0, 12).map(([name, n]) => `${name} ${n}`).join(', ')}`);
  };
  const printQueryLog = (phase: string) => {
    if (!process.env.BENCH_QUERY_LOG) return;
    console.log(`# statements during ${phase}, by engine time: count, ms, text`);
    for (const [text, e] of [...byText].sort((a, b) => b[1].ms - a[1].ms).slice(0, 20)) console.log(`#  ${e.count} ${e.ms.toFixed(0)} ${text}`);
  };

  // The clients run in a process of their own (bench/client-load.worker.ts); this process is the
  // server alone, as deployed. At each phase boundary the worker asks for a snapshot of the
  // server's query count and CPU time, so the figures per delivery and per send are the server's.
  const profiler = process.env.BENCH_CPU_PROF ? await phaseProfiler(process.env.BENCH_CPU_PROF) : undefined;
  const snapshot = () => ({ queries, cpu: process.cpuUsage(), at: performance.now() });
  const marks = new Map<string, ReturnType<typeof snapshot>>();
  let maxRss = rssMb();
  let sampling: ReturnType<typeof setInterval> | undefined;
  const worker = fork(fileURLToPath(new URL('./client-load.worker.ts', import.meta.url)), [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<number | null>((resolve) => worker.once('exit', (code) => resolve(code)));

  try {
    // As npm start: with --expose-gc, the idle trim (apps/homeserver); idle is read 5 s after start, as bench/startup does.
    if (global.gc) startIdleMemoryTrim({ gc: global.gc as GcFunction });
    await new Promise((r) => setTimeout(r, 5000));
    console.log(`BENCH client_rss_idle ${rssMb().toFixed(1)} MB`);

    const result = await new Promise<ClientResult>((resolve, reject) => {
      worker.on('message', async (m: { mark?: string; result?: ClientResult }) => {
        if (m.mark) {
          marks.set(m.mark, snapshot());
          if (profiler) {
            if (m.mark.endsWith('-start')) profiler.start();
            else await profiler.stop(m.mark.replace(/-end$/, ''));
          }
          if (m.mark === 'latency-start') {
            byText.clear();
            maxRss = rssMb();
            sampling = setInterval(() => (maxRss = Math.max(maxRss, rssMb())), 100);
          } else if (m.mark === 'latency-end') {
            clearInterval(sampling);
            printQueryLog('the latency phase');
          } else if (m.mark === 'direct-start') byText.clear();
          else if (m.mark === 'direct-end') printQueryLog('the direct phase');
          else if (m.mark === 'sends-start') byText.clear();
          else if (m.mark === 'sends-end') printQueryLog('the sends phase');
          if (process.env.BENCH_QUERY_LOG && m.mark.endsWith('-start')) readsAtStart = await pageReads();
          if (process.env.BENCH_QUERY_LOG && m.mark.endsWith('-end')) await printPageReads(m.mark.replace(/-end$/, ''));
          worker.send({ marked: m.mark });
        }
        if (m.result) resolve(m.result);
      });
      void exited.then((code) => reject(new Error(`the client load worker exited (${code}) before its result`)));
      worker.send({ setup: { base, syncClients: SYNC_CLIENTS, latencyMessages: LATENCY_MESSAGES, sendUsers: SEND_USERS, sendSeconds: SEND_SECONDS, directMessages: DIRECT_MESSAGES } });
    });
    const between = (from: string, to: string) => {
      const a = marks.get(from)!;
      const b = marks.get(to)!;
      return { queries: b.queries - a.queries, cpuMs: (b.cpu.user + b.cpu.system - a.cpu.user - a.cpu.system) / 1000, ms: b.at - a.at };
    };
    const latency = between('latency-start', 'latency-end');
    const sends = between('sends-start', 'sends-end');
    const perDelivery = Math.max(1, result.deliveries);
    const perSend = Math.max(1, result.sent);
    console.log(`BENCH client_send_to_sync_p50 ${result.p50.toFixed(1)} ms`);
    console.log(`BENCH client_send_to_sync_p99 ${result.p99.toFixed(1)} ms`);
    console.log(`BENCH client_send_to_sync_first_after_joins_max ${result.warmUpMax.toFixed(1)} ms`);
    console.log(`BENCH client_send_to_sync_deliveries ${result.deliveries} count`);
    const direct = between('direct-start', 'direct-end');
    console.log(`BENCH client_send_to_one_of_500_sync_p50 ${result.directP50.toFixed(1)} ms`);
    console.log(`BENCH client_send_to_one_of_500_sync_p99 ${result.directP99.toFixed(1)} ms`);
    console.log(`BENCH client_send_to_one_of_500_deliveries ${result.directDeliveries} count`);
    console.log(`BENCH client_server_cpu_per_direct_message ${((direct.cpuMs * 1000) / Math.max(1, result.directDeliveries)).toFixed(0)} us`);
    console.log(`BENCH client_server_cpu_busy_direct ${((100 * direct.cpuMs) / Math.max(1, direct.ms)).toFixed(0)} %`);
    console.log(`BENCH client_queries_per_delivery ${(latency.queries / perDelivery).toFixed(2)} queries`);
    // The server process's CPU time (user + system) per delivered event and per send: what the
    // server spends, whatever the machine's other load does to the wall-clock figures.
    console.log(`BENCH client_server_cpu_per_delivery ${((latency.cpuMs * 1000) / perDelivery).toFixed(0)} us`);
    console.log(`BENCH client_worker_cpu_per_delivery ${result.clientCpuPerDeliveryUs.toFixed(0)} us`);
    console.log(`BENCH client_server_cpu_busy_latency ${((100 * latency.cpuMs) / Math.max(1, latency.ms)).toFixed(0)} %`);
    console.log(`BENCH client_rss_during_latency ${maxRss.toFixed(1)} MB`);
    console.log(`BENCH client_sends_per_second ${(result.sent / result.seconds).toFixed(0)} sends/s`);
    console.log(`BENCH client_queries_per_send ${(sends.queries / perSend).toFixed(2)} queries`);
    console.log(`BENCH client_server_cpu_per_send ${((sends.cpuMs * 1000) / perSend).toFixed(0)} us`);
    console.log(`BENCH client_worker_cpu_per_send ${result.clientCpuPerSendUs.toFixed(0)} us`);
    console.log(`BENCH client_server_cpu_busy_sends ${((100 * sends.cpuMs) / Math.max(1, sends.ms)).toFixed(0)} %`);
  } finally {
    clearInterval(sampling);
    if (worker.exitCode === null && worker.signalCode === null) worker.kill();
    await running.close();
    await testDb?.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** CPU profiles of this process, one file per phase, through the inspector (--cpu-prof is not allowed in NODE_OPTIONS). */
async function phaseProfiler(folder: string): Promise<{ start(): void; stop(name: string): Promise<void> }> {
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object) =>
    new Promise<any>((resolve, reject) => session.post(method, params, (err, result) => (err ? reject(err) : resolve(result))));
  mkdirSync(folder, { recursive: true });
  if (process.env.BENCH_HEAP_PROF) {
    // Allocations instead of CPU: where the young generation's garbage comes from, per phase.
    await post('HeapProfiler.enable');
    return {
      start: () => void post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true }),
      stop: async (name) => {
        const { profile } = await post('HeapProfiler.stopSampling');
        writeFileSync(join(folder, `${name}.heapprofile`), JSON.stringify(profile));
      },
    };
  }
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: 200 });
  return {
    start: () => void post('Profiler.start'),
    stop: async (name) => {
      const { profile } = await post('Profiler.stop');
      writeFileSync(join(folder, `${name}.cpuprofile`), JSON.stringify(profile));
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
