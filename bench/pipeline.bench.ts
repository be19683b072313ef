/**
 * The room pipeline's figures (issue 4), on the embedded default (PGlite + in-process bus) and
 * on PostgreSQL + NATS with room-server (two replicas) and persistence as separate processes:
 * - events appended per second into one hot room and across 1,000 rooms;
 * - send-to-notification latency p50/p99 at half the measured cross-room rate;
 * - bytes and rows per message event and per state change, by room size.
 * Prints `BENCH <name> <value> <unit>` lines. Run: `npm run bench -- pipeline`.
 */
import { ROOMSERVER_INPUT, requestForRoom, type CreateRoomReply, type EventIdReply, type RoomServerRequest, type StreamEventNotification } from '@tessera/bus';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import type { Db } from '@tessera/storage';
import { distributedPipeline, embeddedPipeline, type Pipeline } from '../test/pipeline/harness.js';

const ROOMS = Number(process.env.BENCH_ROOMS ?? 1000);
const HOT_EVENTS = Number(process.env.BENCH_HOT_EVENTS ?? 1000);
const CROSS_EVENTS_PER_ROOM = Number(process.env.BENCH_EVENTS_PER_ROOM ?? 5);

function bench(name: string, value: number, unit: string): void {
  console.log(`BENCH ${name} ${Number.isInteger(value) ? value : value.toFixed(2)} ${unit}`);
}

/**
 * As client-api asks: to the replica that owns the room's partition. With `anyReplica`, straight
 * to the plain subject's queue group instead (how every request went before rooms were routed):
 * the same run's baseline for the routing.
 */
function ask<T>(p: Pipeline, req: RoomServerRequest, anyReplica = false): Promise<T> {
  if (anyReplica) return p.bus.request<RoomServerRequest, T>(ROOMSERVER_INPUT, req, { timeoutMs: 120_000 });
  return requestForRoom<RoomServerRequest, T>(p.bus, ROOMSERVER_INPUT, 'roomId' in req ? req.roomId : undefined, req, { timeoutMs: 120_000 });
}

/** Runs `count` tasks with at most `concurrency` in flight. */
async function pool(count: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (next < count) await task(next++);
  }));
}

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** CPU seconds used so far (user + system) by a process, from /proc (Linux); 0 when unreadable. */
function processCpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the ") " split, in clock ticks (100 per second on Linux).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/**
 * CPU time by role while a phase runs: throughput on a shared 2-core machine depends on whatever
 * else runs, CPU per event much less. Roles: the room-server replicas, persistence, the
 * PostgreSQL backends of the bench's database, and this process (the bench's client side; in the
 * embedded runtime, everything).
 */
async function cpuSnapshot(p: Pipeline): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const ids = p.processIds?.();
  if (ids) {
    out.set('room_server', ids.roomServers.reduce((a, pid) => a + processCpuSeconds(pid), 0));
    out.set('persistence', ids.persistence.reduce((a, pid) => a + processCpuSeconds(pid), 0));
    const { rows } = await p.db.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database()');
    out.set('postgres', rows.reduce((a, r) => a + processCpuSeconds(r.pid), 0));
  }
  const self = process.cpuUsage();
  out.set(ids ? 'bench_client' : 'process', (self.user + self.system) / 1e6);
  return out;
}

function cpuPerEvent(label: string, phase: string, before: Map<string, number>, after: Map<string, number>, events: number): void {
  let total = 0;
  for (const [role, start] of before) {
    const used = (after.get(role) ?? start) - start;
    total += used;
    bench(`pipeline.${label}.${phase}.cpu_ms_per_event.${role}`, (used * 1000) / events, 'ms');
  }
  bench(`pipeline.${label}.${phase}.cpu_ms_per_event.total`, (total * 1000) / events, 'ms');
}

async function appendRates(p: Pipeline, label: string, anyReplica = false): Promise<{ crossRate: number; rooms: string[] }> {
  const sender = `@bench:${p.serverName}`;
  const hot = await ask<CreateRoomReply>(p, { op: 'createRoom', sender, preset: 'public_chat' });
  let cpu = await cpuSnapshot(p);
  let t = performance.now();
  await pool(HOT_EVENTS, 64, async (i) => {
    await ask<EventIdReply>(p, { op: 'sendEvent', roomId: hot.roomId, sender, type: 'm.room.message', content: { body: `hot ${i}` }, txn: { deviceId: 'B', txnId: `${label}-h${i}` } }, anyReplica);
  });
  bench(`pipeline.${label}.hot_room_appends_per_s`, HOT_EVENTS / ((performance.now() - t) / 1000), 'events/s');
  cpuPerEvent(label, 'hot_room', cpu, await cpuSnapshot(p), HOT_EVENTS);

  const rooms: string[] = [];
  t = performance.now();
  await pool(ROOMS, 32, async () => {
    rooms.push((await ask<CreateRoomReply>(p, { op: 'createRoom', sender, preset: 'private_chat' })).roomId);
  });
  bench(`pipeline.${label}.create_room_per_s`, ROOMS / ((performance.now() - t) / 1000), 'rooms/s');

  const total = ROOMS * CROSS_EVENTS_PER_ROOM;
  cpu = await cpuSnapshot(p);
  t = performance.now();
  await pool(total, 256, async (i) => {
    const roomId = rooms[i % rooms.length]!;
    await ask<EventIdReply>(p, { op: 'sendEvent', roomId, sender, type: 'm.room.message', content: { body: `x ${i}` } }, anyReplica);
  });
  const crossRate = total / ((performance.now() - t) / 1000);
  bench(`pipeline.${label}.rooms_${ROOMS}_appends_per_s`, crossRate, 'events/s');
  cpuPerEvent(label, `rooms_${ROOMS}`, cpu, await cpuSnapshot(p), total);
  return { crossRate, rooms };
}

async function latency(p: Pipeline, label: string, rate: number, rooms: string[]): Promise<void> {
  const sender = `@bench:${p.serverName}`;
  const sentAt = new Map<string, number>();
  const arrived = new Map<string, number>();
  const sub = await p.bus.subscribe<StreamEventNotification>('stream.events', (n) => {
    arrived.set(n.eventId, performance.now());
  });
  const seconds = 5;
  const count = Math.max(50, Math.floor(rate * seconds));
  const interval = 1000 / rate;
  const start = performance.now();
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const due = start + i * interval;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const sent = performance.now();
    inflight.push(
      ask<EventIdReply>(p, { op: 'sendEvent', roomId: rooms[i % rooms.length]!, sender, type: 'm.room.message', content: { body: `l ${i}` } })
        .then((r) => void sentAt.set(r.eventId, sent)),
    );
  }
  await Promise.all(inflight);
  for (let i = 0; i < 100 && [...sentAt.keys()].some((id) => !arrived.has(id)); i++) await new Promise((r) => setTimeout(r, 50));
  await sub.unsubscribe();
  const lat = [...sentAt].filter(([id]) => arrived.has(id)).map(([id, s]) => arrived.get(id)! - s).sort((a, b) => a - b);
  bench(`pipeline.${label}.latency_rate`, rate, 'events/s');
  bench(`pipeline.${label}.send_to_notification_p50`, percentile(lat, 0.5), 'ms');
  bench(`pipeline.${label}.send_to_notification_p99`, percentile(lat, 0.99), 'ms');
  // BENCH_LATENCY_DUMP=<file>: each event's send time (ms from the start) and latency, to see whether the tail is spread or in bursts.
  if (process.env.BENCH_LATENCY_DUMP) {
    const rows = [...sentAt].filter(([id]) => arrived.has(id)).map(([id, s]) => `${(s - start).toFixed(1)} ${(arrived.get(id)! - s).toFixed(1)}`);
    writeFileSync(`${process.env.BENCH_LATENCY_DUMP}.${label}`, rows.join('\n'));
  }
  if (lat.length < sentAt.size) bench(`pipeline.${label}.notifications_missing`, sentAt.size - lat.length, 'events');
}

const TABLES = [
  'events', 'event_prev_edges', 'event_auth_edges', 'state_snapshots', 'state_snapshot_entries',
  'forward_extremities', 'current_state', 'room_memberships', 'client_txns', 'event_types', 'event_state_keys', 'rooms',
];

async function footprint(db: Db): Promise<{ rows: number; bytes: number }> {
  let rows = 0;
  let bytes = 0;
  for (const t of TABLES) {
    const r = await db.query<{ n: number; b: number }>(`SELECT (SELECT count(*) FROM ${t}) AS n, pg_total_relation_size('${t}') AS b`);
    rows += r.rows[0]!.n;
    bytes += r.rows[0]!.b;
  }
  return { rows, bytes };
}

/** Rows and bytes per message and per state change (a join) in rooms of growing size. */
async function storageGrowth(p: Pipeline, label: string): Promise<void> {
  const sender = `@owner:${p.serverName}`;
  for (const size of [10, 100, 1000]) {
    const { roomId } = await ask<CreateRoomReply>(p, { op: 'createRoom', sender, preset: 'public_chat' });
    await pool(size, 16, async (i) => {
      await ask<EventIdReply>(p, { op: 'membership', action: 'join', roomId, sender: `@m${i}x${size}:${p.serverName}` });
    });
    const n = 200;
    await p.db.query('VACUUM');
    let before = await footprint(p.db);
    for (let i = 0; i < n; i++) {
      await ask<EventIdReply>(p, { op: 'sendEvent', roomId, sender, type: 'm.room.message', content: { body: `message number ${i} with some text` } });
    }
    let after = await footprint(p.db);
    bench(`pipeline.${label}.room_${size}.rows_per_message`, (after.rows - before.rows) / n, 'rows');
    bench(`pipeline.${label}.room_${size}.bytes_per_message`, (after.bytes - before.bytes) / n, 'bytes');
    before = after;
    for (let i = 0; i < n; i++) {
      await ask<EventIdReply>(p, { op: 'membership', action: 'join', roomId, sender: `@late${i}x${size}:${p.serverName}` });
    }
    after = await footprint(p.db);
    bench(`pipeline.${label}.room_${size}.rows_per_state_change`, (after.rows - before.rows) / n, 'rows');
    bench(`pipeline.${label}.room_${size}.bytes_per_state_change`, (after.bytes - before.bytes) / n, 'bytes');
  }
}

async function warmUp(p: Pipeline): Promise<void> {
  const sender = `@warm:${p.serverName}`;
  const rooms: string[] = [];
  await pool(50, 16, async () => {
    rooms.push((await ask<CreateRoomReply>(p, { op: 'createRoom', sender, preset: 'private_chat' })).roomId);
  });
  await pool(2_000, 128, async (i) => {
    await ask<EventIdReply>(p, { op: 'sendEvent', roomId: rooms[i % rooms.length]!, sender, type: 'm.room.message', content: { body: `w ${i}` } }, i % 2 === 0);
  });
}

async function run(label: string, open: () => Promise<Pipeline>): Promise<void> {
  const p = await open();
  try {
    // Warm-up, not reported: the processes compile their hot code (JIT) and the room-server
    // replicas settle their room partitions, so that no measured phase pays for that.
    await warmUp(p);
    // Baseline in the same run: every request to any replica (no room affinity).
    if (p.kind === 'distributed' && process.env.BENCH_NO_BASELINE !== '1') await appendRates(p, `${label}.any_replica`, true);
    const { crossRate, rooms } = await appendRates(p, label);
    await latency(p, label, Math.max(1, Math.floor(crossRate / 2)), rooms);
    await storageGrowth(p, label);
  } finally {
    await p.close();
  }
}

/** Probed here (not at import time, when loading PGlite's WASM can starve a 1 s probe). */
function reachable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setTimeout(3000, () => (socket.destroy(), resolve(false)));
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

export async function main(): Promise<void> {
  if (process.env.BENCH_SKIP_DISTRIBUTED === '1') console.log('# BENCH_SKIP_DISTRIBUTED=1: skipping the postgres_nats figures');
  else if ((await reachable(5432)) && (await reachable(4222))) await run('postgres_nats', distributedPipeline);
  else console.log('# PostgreSQL or NATS not reachable: skipping the postgres_nats figures');
  if (process.env.BENCH_SKIP_EMBEDDED !== '1') await run('embedded', embeddedPipeline);
}
