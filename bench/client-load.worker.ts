/**
 * The clients of bench/client.bench.ts, in a process of their own (spawned with
 * `node --import tsx`), so that their fetch and JSON work does not share the server's event loop
 * and is not counted as server latency: a deployed server's clients run elsewhere.
 *
 * Talks to the parent over IPC. It receives { base, syncClients, latencyMessages, sendUsers,
 * sendSeconds }, and at each phase boundary sends { mark: name } and waits for the parent's
 * { marked: name } (the parent snapshots its query count and CPU time there). It ends with
 * { result: {...} } carrying the figures measured on the client side.
 */
import http from 'node:http';
import process from 'node:process';

interface Setup {
  base: string;
  syncClients: number;
  latencyMessages: number;
  sendUsers: number;
  sendSeconds: number;
  directMessages: number;
}

interface Login {
  user_id: string;
  access_token: string;
}

const send = (m: unknown) => process.send!(m);
const replies = new Map<string, () => void>();
let setupResolve!: (s: Setup) => void;
const setupReceived = new Promise<Setup>((r) => (setupResolve = r));
process.on('message', (m: { setup?: Setup; marked?: string }) => {
  if (m.setup) setupResolve(m.setup);
  if (m.marked) replies.get(m.marked)?.();
});

/** Tells the parent a phase boundary is reached and waits until it has taken its snapshot. */
const cpuAt = new Map<string, number>();
function mark(name: string): Promise<void> {
  const cpu = process.cpuUsage();
  cpuAt.set(name, cpu.user + cpu.system);
  return new Promise((resolve) => {
    replies.set(name, resolve);
    send({ mark: name });
  });
}

/** Runs `fn` over `items` with at most `width` at a time (setup only: the server is not being measured). */
async function pool<T, R>(items: T[], width: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

const setup = await setupReceived;
const { base } = setup;

// node:http with a keep-alive agent rather than fetch: the load generator shares the machine's two
// cores with the server, and undici's fetch costs several times more CPU per request; the figures
// are the server's, so its clients are kept as light as they can be.
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
const target = new URL(base);
function request(method: string, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: target.hostname, port: target.port, method, path, agent, headers: body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
          } catch (err) {
            reject(err);
          }
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
const call = async (method: string, path: string, token?: string, body?: unknown): Promise<any> => {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await request(method, `/_matrix/client/v3/${path}`, headers, body === undefined ? undefined : JSON.stringify(body));
  if (res.status !== 200) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.json)}`);
  return res.json;
};
const register = async (username: string): Promise<Login> => {
  const first = await request('POST', '/_matrix/client/v3/register', { 'content-type': 'application/json' }, JSON.stringify({ username, password: 'bench password 1' }));
  const { session } = first.json as { session: string };
  return call('POST', 'register', undefined, { username, password: 'bench password 1', auth: { type: 'm.login.dummy', session } });
};

// ---- send-to-sync latency ----
const sender = await register('sender');
const { room_id: roomId } = await call('POST', 'createRoom', sender.access_token, { preset: 'public_chat' });
const listeners = await pool(
  Array.from({ length: setup.syncClients }, (_, i) => i),
  8,
  (i) => register(`listener${i}`),
);
await pool(listeners, 8, (l) => call('POST', `join/${encodeURIComponent(roomId)}`, l.access_token, {}));
const filter = encodeURIComponent(JSON.stringify({ room: { timeline: { limit: 5 } } }));
const tokens = await pool(listeners, 16, async (l) => (await call('GET', `sync?filter=${filter}`, l.access_token)).next_batch as string);

const sentAt = new Map<string, number>();
/** The direct phase's sends waiting for their one delivery. */
const awaited = new Map<string, () => void>();
const directLatencies: number[] = [];
const latencies: number[] = [];
let polling = true;
const loops = listeners.map(async (l, i) => {
  let since = tokens[i]!;
  while (polling) {
    const body = await call('GET', `sync?filter=${filter}&timeout=30000&since=${since}`, l.access_token);
    const now = performance.now();
    since = body.next_batch;
    for (const [id, room] of Object.entries<any>(body.rooms?.join ?? {})) {
      for (const e of room.timeline?.events ?? []) {
        const t = sentAt.get(e.content?.body);
        if (t === undefined) continue;
        if (id === roomId) latencies.push(now - t);
        else {
          directLatencies.push(now - t);
          awaited.get(e.content.body)?.();
        }
      }
    }
  }
});
// Every listener is waiting in its long poll before the first send.
await new Promise((r) => setTimeout(r, 1000));
// One unmeasured message first, reported on its own: the first wake of each listener after the
// 500 joins counts their unread notifications over those joins (push rules for every join, for
// every listener), a one-off after a burst of joins that would otherwise sit in the p99.
sentAt.set('warm-up', performance.now());
await call('PUT', `rooms/${encodeURIComponent(roomId)}/send/m.room.message/warmup`, sender.access_token, { msgtype: 'm.text', body: 'warm-up' });
for (let w = 0; w < 800 && latencies.length < setup.syncClients; w++) await new Promise((r) => setTimeout(r, 25));
const warmUpMax = Math.max(...latencies);
latencies.length = 0;
sentAt.delete('warm-up');
await mark('latency-start');
for (let i = 0; i < setup.latencyMessages; i++) {
  const text = `latency ${i}`;
  sentAt.set(text, performance.now());
  await call('PUT', `rooms/${encodeURIComponent(roomId)}/send/m.room.message/lat${i}`, sender.access_token, { msgtype: 'm.text', body: text });
  // Let every listener receive it before the next one, so each figure is one send's fan-out.
  const want = (i + 1) * setup.syncClients;
  for (let w = 0; w < 400 && latencies.length < want; w++) await new Promise((r) => setTimeout(r, 25));
}
await mark('latency-end');

// ---- one recipient among the 500 long polls ----
// The same 500 clients keep long-polling; each also shares a room of two with the sender, who
// sends into those rooms in turn, one message at a time: each send wakes one poll while the other
// 499 wait. This is the latency of a message to its recipient on a server holding 500 waiting
// /sync requests (the fan-out figures above are a message to all 500 at once).
const directRooms = await pool(listeners, 8, async (l) => {
  const { room_id } = await call('POST', 'createRoom', sender.access_token, { preset: 'private_chat', invite: [l.user_id], is_direct: true });
  await call('POST', `join/${encodeURIComponent(room_id)}`, l.access_token, {});
  return room_id as string;
});
// Let the polls take the joins in before measuring.
await new Promise((r) => setTimeout(r, 1500));
const directMessages = Math.min(setup.directMessages, 10 * listeners.length);
await mark('direct-start');
for (let i = 0; i < directMessages; i++) {
  const text = `direct ${i}`;
  const delivered = new Promise<void>((resolve) => awaited.set(text, resolve));
  const started = performance.now();
  sentAt.set(text, started);
  await call('PUT', `rooms/${encodeURIComponent(directRooms[i % directRooms.length]!)}/send/m.room.message/d${i}`, sender.access_token, { msgtype: 'm.text', body: text });
  await Promise.race([delivered, new Promise((r) => setTimeout(r, 10_000))]);
  awaited.delete(text);
}
await mark('direct-end');
polling = false;
// Wake the long polls so they end.
await call('PUT', `rooms/${encodeURIComponent(roomId)}/send/m.room.message/stop`, sender.access_token, { msgtype: 'm.text', body: 'stop' });
await Promise.allSettled(loops);
const deliveries = latencies.length;
latencies.sort((a, b) => a - b);
// BENCH_LATENCY_DUMP=<file>: every latency, for a histogram.
if (process.env.BENCH_LATENCY_DUMP) (await import('node:fs')).writeFileSync(process.env.BENCH_LATENCY_DUMP, latencies.map((l) => l.toFixed(1)).join('\n'));
const percentileOf = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const percentile = (p: number) => percentileOf(latencies, p);
directLatencies.sort((a, b) => a - b);

// ---- sends per second ----
const senders = await pool(
  Array.from({ length: setup.sendUsers }, (_, i) => i),
  8,
  async (i) => {
    const login = await register(`writer${i}`);
    const { room_id } = await call('POST', 'createRoom', login.access_token, {});
    return { login, roomId: room_id as string };
  },
);
let sent = 0;
await mark('sends-start');
const started = performance.now();
const until = started + setup.sendSeconds * 1000;
await Promise.all(
  senders.map(async ({ login, roomId: r }, u) => {
    for (let n = 0; performance.now() < until; n++) {
      await call('PUT', `rooms/${encodeURIComponent(r)}/send/m.room.message/w${u}-${n}`, login.access_token, { msgtype: 'm.text', body: `m${n}` });
      sent++;
    }
  }),
);
const seconds = (performance.now() - started) / 1000;
await mark('sends-end');

// The clients' own CPU (this process), so that a figure limited by the load generator shows as such.
const clientCpuUs = (from: string, to: string) => cpuAt.get(to)! - cpuAt.get(from)!;
send({
  result: {
    p50: percentile(50), p99: percentile(99), warmUpMax, deliveries, sent, seconds,
    directP50: percentileOf(directLatencies, 50), directP99: percentileOf(directLatencies, 99), directDeliveries: directLatencies.length,
    clientCpuPerDeliveryUs: clientCpuUs('latency-start', 'latency-end') / Math.max(1, deliveries),
    clientCpuPerSendUs: clientCpuUs('sends-start', 'sends-end') / Math.max(1, sent),
  },
});
process.disconnect();
