/**
 * Client-Server API figures on the embedded homeserver (every service in this process, PGlite,
 * in-process bus), over real HTTP:
 * - send-to-sync latency with SYNC_CLIENTS users long-polling /sync in one room and one sender;
 * - sends per second through PUT /send, SEND_USERS users each in their own room;
 * - resident memory idle and during the latency run.
 * `BENCH_BACKEND=postgres` runs the same on PostgreSQL + NATS + Redis (the services must be up).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

interface Login {
  user_id: string;
  access_token: string;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

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

  const call = async (method: string, path: string, token?: string, body?: unknown): Promise<any> => {
    const res = await fetch(`${base}/_matrix/client/v3/${path}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json();
    if (res.status !== 200) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  const register = async (username: string): Promise<Login> => {
    const first = await fetch(`${base}/_matrix/client/v3/register`, { method: 'POST', body: JSON.stringify({ username, password: 'bench password 1' }), headers: { 'content-type': 'application/json' } });
    const { session } = (await first.json()) as { session: string };
    return call('POST', 'register', undefined, { username, password: 'bench password 1', auth: { type: 'm.login.dummy', session } });
  };

  try {
    await new Promise((r) => setTimeout(r, 2000));
    global.gc?.();
    console.log(`BENCH client_rss_idle ${rssMb().toFixed(1)} MB`);

    // ---- send-to-sync latency ----
    const sender = await register('sender');
    const { room_id: roomId } = await call('POST', 'createRoom', sender.access_token, { preset: 'public_chat' });
    const listeners: Login[] = [];
    for (let i = 0; i < SYNC_CLIENTS; i++) listeners.push(await register(`listener${i}`));
    for (const l of listeners) await call('POST', `join/${encodeURIComponent(roomId)}`, l.access_token, {});
    const filter = encodeURIComponent(JSON.stringify({ room: { timeline: { limit: 5 } } }));
    const tokens = await Promise.all(listeners.map(async (l) => (await call('GET', `sync?filter=${filter}`, l.access_token)).next_batch as string));

    const sentAt = new Map<string, number>();
    const latencies: number[] = [];
    let maxRss = rssMb();
    let running_ = true;
    const loops = listeners.map(async (l, i) => {
      let since = tokens[i]!;
      while (running_) {
        const body = await call('GET', `sync?filter=${filter}&timeout=30000&since=${since}`, l.access_token);
        const now = performance.now();
        since = body.next_batch;
        for (const e of body.rooms?.join?.[roomId]?.timeline?.events ?? []) {
          const t = sentAt.get(e.content?.body);
          if (t !== undefined) latencies.push(now - t);
        }
      }
    });
    await new Promise((r) => setTimeout(r, 1000));
    const queriesBefore = queries;
    byText.clear();
    for (let i = 0; i < LATENCY_MESSAGES; i++) {
      const text = `latency ${i}`;
      sentAt.set(text, performance.now());
      await call('PUT', `rooms/${encodeURIComponent(roomId)}/send/m.room.message/lat${i}`, sender.access_token, { msgtype: 'm.text', body: text });
      // Let every listener receive it before the next one, so each figure is one send's fan-out.
      const want = (i + 1) * SYNC_CLIENTS;
      for (let w = 0; w < 400 && latencies.length < want; w++) await new Promise((r) => setTimeout(r, 25));
      maxRss = Math.max(maxRss, rssMb());
    }
    running_ = false;
    const queriesPerDelivery = (queries - queriesBefore) / Math.max(1, latencies.length);
    if (process.env.BENCH_QUERY_LOG) console.log([...byText].sort((a, b) => b[1] - a[1]).slice(0, 15));
    // Wake the long polls so they end.
    await call('PUT', `rooms/${encodeURIComponent(roomId)}/send/m.room.message/stop`, sender.access_token, { msgtype: 'm.text', body: 'stop' });
    await Promise.allSettled(loops);
    latencies.sort((a, b) => a - b);
    console.log(`BENCH client_send_to_sync_p50 ${percentile(latencies, 50).toFixed(1)} ms`);
    console.log(`BENCH client_send_to_sync_p99 ${percentile(latencies, 99).toFixed(1)} ms`);
    console.log(`BENCH client_send_to_sync_deliveries ${latencies.length} count`);
    console.log(`BENCH client_queries_per_delivery ${queriesPerDelivery.toFixed(2)} queries`);
    console.log(`BENCH client_rss_during_latency ${maxRss.toFixed(1)} MB`);

    // ---- sends per second ----
    const senders: Array<{ login: Login; roomId: string }> = [];
    for (let i = 0; i < SEND_USERS; i++) {
      const login = await register(`writer${i}`);
      const { room_id } = await call('POST', 'createRoom', login.access_token, {});
      senders.push({ login, roomId: room_id });
    }
    let sent = 0;
    const queriesBeforeSends = queries;
    byText.clear();
    const until = performance.now() + SEND_SECONDS * 1000;
    const started = performance.now();
    await Promise.all(
      senders.map(async ({ login, roomId: r }, u) => {
        for (let n = 0; performance.now() < until; n++) {
          await call('PUT', `rooms/${encodeURIComponent(r)}/send/m.room.message/w${u}-${n}`, login.access_token, { msgtype: 'm.text', body: `m${n}` });
          sent++;
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    console.log(`BENCH client_sends_per_second ${(sent / seconds).toFixed(0)} sends/s`);
    console.log(`BENCH client_queries_per_send ${((queries - queriesBeforeSends) / Math.max(1, sent)).toFixed(2)} queries`);
    if (process.env.BENCH_QUERY_LOG) console.log([...byText].sort((a, b) => b[1] - a[1]).slice(0, 15));
  } finally {
    await running.close();
    await testDb?.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
