/**
 * Client-Server API figures on the embedded homeserver (every service in this process, PGlite,
 * in-process bus), over real HTTP from clients in another process (client-load.worker.ts):
 * - send-to-sync latency with SYNC_CLIENTS users long-polling /sync in one room and one sender;
 * - sends per second through PUT /send, SEND_USERS users each in their own room;
 * - resident memory idle and during the latency run;
 * - the server process's CPU time per delivery and per send, and its queries per delivery and per send.
 * Profile the server with NODE_OPTIONS='--cpu-prof' (the worker does not inherit it).
 * `BENCH_BACKEND=postgres` runs the same on PostgreSQL + NATS + Redis (the services must be up).
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Global, Module } from '@nestjs/common';
import { buildConfig } from '@tessera/config';
import { startServices, type ServiceDefinition } from '@tessera/http';
import { CLIENT_API_SETTINGS_OVERRIDES, ClientApiModule, clientApiService } from '@tessera/client-api-service';
import { fanoutSenderService } from '@tessera/fanout-sender-service';
import { federationIngressService } from '@tessera/federation-ingress-service';
import { persistenceService } from '@tessera/persistence-service';
import { roomServerService } from '@tessera/room-server-service';
import { createTestDatabase, NATS_URL, REDIS_URL, uniqueName } from '@tessera/testing';
import { freePort } from '../test/support/processes.js';

const SYNC_CLIENTS = Number(process.env.BENCH_SYNC_CLIENTS ?? 500);
const LATENCY_MESSAGES = Number(process.env.BENCH_LATENCY_MESSAGES ?? 30);
const SEND_USERS = 50;
const SEND_SECONDS = Number(process.env.BENCH_SEND_SECONDS ?? 5);

const rssMb = () => process.memoryUsage().rss / (1024 * 1024);

export async function main(): Promise<void> {
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
  const db = running.runtime.db;
  const query = db.query.bind(db);
  let queries = 0;
  const byText = new Map<string, number>();
  db.query = ((...args: Parameters<typeof query>) => {
    queries++;
    if (process.env.BENCH_QUERY_LOG) byText.set(String(args[0]).slice(0, 90), (byText.get(String(args[0]).slice(0, 90)) ?? 0) + 1);
    return query(...args);
  }) as typeof db.query;

  // The clients run in a process of their own (bench/client-load.worker.ts); this process is the
  // server alone, as deployed. At each phase boundary the worker asks for a snapshot of the
  // server's query count and CPU time, so the figures per delivery and per send are the server's.
  const snapshot = () => ({ queries, cpu: process.cpuUsage(), at: performance.now() });
  const marks = new Map<string, ReturnType<typeof snapshot>>();
  let maxRss = rssMb();
  let sampling: ReturnType<typeof setInterval> | undefined;
  const worker = fork(fileURLToPath(new URL('./client-load.worker.ts', import.meta.url)), [], {
    execArgv: ['--import', 'tsx'],
    // The parent's NODE_OPTIONS (e.g. --cpu-prof to profile the server) are the server's only.
    env: { ...process.env, NODE_OPTIONS: '' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<number | null>((resolve) => worker.once('exit', (code) => resolve(code)));

  try {
    await new Promise((r) => setTimeout(r, 2000));
    global.gc?.();
    console.log(`BENCH client_rss_idle ${rssMb().toFixed(1)} MB`);

    const result = await new Promise<{ p50: number; p99: number; deliveries: number; sent: number; seconds: number }>((resolve, reject) => {
      worker.on('message', (m: { mark?: string; result?: { p50: number; p99: number; deliveries: number; sent: number; seconds: number } }) => {
        if (m.mark) {
          marks.set(m.mark, snapshot());
          if (m.mark === 'latency-start') {
            byText.clear();
            maxRss = rssMb();
            sampling = setInterval(() => (maxRss = Math.max(maxRss, rssMb())), 100);
          } else if (m.mark === 'latency-end') {
            clearInterval(sampling);
            if (process.env.BENCH_QUERY_LOG) console.log([...byText].sort((a, b) => b[1] - a[1]).slice(0, 15));
          } else if (m.mark === 'sends-start') byText.clear();
          else if (m.mark === 'sends-end' && process.env.BENCH_QUERY_LOG) console.log([...byText].sort((a, b) => b[1] - a[1]).slice(0, 15));
          worker.send({ marked: m.mark });
        }
        if (m.result) resolve(m.result);
      });
      void exited.then((code) => reject(new Error(`the client load worker exited (${code}) before its result`)));
      worker.send({ setup: { base, syncClients: SYNC_CLIENTS, latencyMessages: LATENCY_MESSAGES, sendUsers: SEND_USERS, sendSeconds: SEND_SECONDS } });
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
    console.log(`BENCH client_send_to_sync_deliveries ${result.deliveries} count`);
    console.log(`BENCH client_queries_per_delivery ${(latency.queries / perDelivery).toFixed(2)} queries`);
    // The server process's CPU time (user + system) per delivered event and per send: what the
    // server spends, whatever the machine's other load does to the wall-clock figures.
    console.log(`BENCH client_server_cpu_per_delivery ${((latency.cpuMs * 1000) / perDelivery).toFixed(0)} us`);
    console.log(`BENCH client_server_cpu_busy_latency ${((100 * latency.cpuMs) / Math.max(1, latency.ms)).toFixed(0)} %`);
    console.log(`BENCH client_rss_during_latency ${maxRss.toFixed(1)} MB`);
    console.log(`BENCH client_sends_per_second ${(result.sent / result.seconds).toFixed(0)} sends/s`);
    console.log(`BENCH client_queries_per_send ${(sends.queries / perSend).toFixed(2)} queries`);
    console.log(`BENCH client_server_cpu_per_send ${((sends.cpuMs * 1000) / perSend).toFixed(0)} us`);
    console.log(`BENCH client_server_cpu_busy_sends ${((100 * sends.cpuMs) / Math.max(1, sends.ms)).toFixed(0)} %`);
  } finally {
    clearInterval(sampling);
    if (worker.exitCode === null && worker.signalCode === null) worker.kill();
    await running.close();
    await testDb?.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
