/**
 * The pipeline in its two runtimes, behind one interface, so one suite runs on both:
 * - embedded: PGlite + in-process bus, persistence and two room-server replicas in this process;
 * - distributed: PostgreSQL + NATS, persistence and two room-server replicas as separate OS
 *   processes started with tsx from apps/<service>/src/main.ts, own database and bus prefix.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInProcessBus, createNatsBus, type BusTransport } from '@tessera/bus';
import { formatSigningKeyFile, generateSigningKey, type SigningKey } from '@tessera/protocol';
import { createDb, eventLogMigrations, migrate, type Db } from '@tessera/storage';
import { createTestDatabase, NATS_URL, uniqueName } from '@tessera/testing';
import { EventWriter } from '@tessera/persistence-service';
import { RoomServer } from '@tessera/room-server-service';

export interface Pipeline {
  readonly kind: 'embedded' | 'distributed';
  /** A client's bus: roomserver.input requests, stream.events subscriptions. */
  readonly bus: BusTransport;
  /** The event log, for assertions. */
  readonly db: Db;
  readonly serverName: string;
  /** Stops replica i abruptly (kill -9 when distributed) / starts it again. */
  killRoomServer(i: number): Promise<void>;
  startRoomServer(i: number): Promise<void>;
  killPersistence(): Promise<void>;
  startPersistence(): Promise<void>;
  /** The service processes' pids when they are processes of their own (for the bench's CPU figures). */
  processIds?(): { persistence: number[]; roomServers: number[] };
  close(): Promise<void>;
}

export const ROOM_SERVER_REPLICAS = 2;

export async function embeddedPipeline(): Promise<Pipeline> {
  const serverName = 'embedded.test';
  const db = await createDb({});
  await migrate(db, eventLogMigrations);
  const bus = createInProcessBus();
  const key = generateSigningKey();
  let writer: EventWriter | undefined;
  const replicas: Array<RoomServer | undefined> = [];
  const startRoomServer = async (i: number) => {
    const rs = new RoomServer({ db, bus, serverName, signingKey: key });
    await rs.start();
    replicas[i] = rs;
  };
  const startPersistence = async () => {
    writer = new EventWriter(db, bus);
    await writer.start();
  };
  await startPersistence();
  for (let i = 0; i < ROOM_SERVER_REPLICAS; i++) await startRoomServer(i);
  return {
    kind: 'embedded',
    bus,
    db,
    serverName,
    // In one process there is nothing to kill: stopping the handler is the closest stand-in.
    async killRoomServer(i) {
      await replicas[i]?.stop();
      replicas[i] = undefined;
    },
    startRoomServer,
    async killPersistence() {
      await writer?.stop();
      writer = undefined;
    },
    startPersistence,
    async close() {
      for (const r of replicas) await r?.stop();
      await writer?.stop();
      await bus.close();
      await db.close();
    },
  };
}

function startProcess(app: 'persistence' | 'room-server', env: Record<string, string>): Promise<ChildProcess> {
  // CHILD_NODE_ARGS: extra node flags for the service processes (e.g. `--cpu-prof --cpu-prof-dir=/tmp/p`
  // to profile a bench; node refuses --cpu-prof in NODE_OPTIONS).
  const extra = process.env.CHILD_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...extra, '--import', 'tsx', `apps/${app}/src/main.ts`], {
    cwd: join(import.meta.dirname, '../..'),
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`${app} did not start within 60 s:\n${output}`)), 60_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('"msg":"started"')) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        child.stderr!.resume();
        resolve(child);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${app} exited with ${code} before starting:\n${output}`));
    });
  });
}

function kill9(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

function terminate(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

let nextHealthPort = 18_100 + Math.floor(Math.random() * 500) * 4;

export async function distributedPipeline(): Promise<Pipeline> {
  const serverName = `${uniqueName('hs')}.test`;
  const database = await createTestDatabase();
  const prefix = uniqueName('pipe');
  const dir = mkdtempSync(join(tmpdir(), 'tessera-pipeline-'));
  const keyPath = join(dir, 'signing.key');
  const key: SigningKey = generateSigningKey();
  // Every replica signs with the server's one key.
  writeFileSync(keyPath, formatSigningKeyFile([key]));
  const env = (name: string) => ({
    SERVER_NAME: serverName,
    DATABASE_URL: database.url,
    NATS_URL,
    BUS_PREFIX: prefix,
    SIGNING_KEY_PATH: keyPath,
    DATA_DIR: dir,
    HEALTH_PORT: String(nextHealthPort++),
    LOG_LEVEL: 'info',
    CONFIG_FILE: join(dir, `${name}.yaml`),
  });
  writeFileSync(join(dir, 'persistence.yaml'), '{}\n');
  for (let i = 0; i < ROOM_SERVER_REPLICAS; i++) writeFileSync(join(dir, `room-server-${i}.yaml`), '{}\n');
  const db = await createDb({ url: database.url });
  await migrate(db, eventLogMigrations);
  const bus = await createNatsBus({ url: NATS_URL, prefix, name: 'pipeline-test' });
  let persistence: ChildProcess | undefined;
  const replicas: Array<ChildProcess | undefined> = [];
  const startPersistence = async () => {
    persistence = await startProcess('persistence', env('persistence'));
  };
  const startRoomServer = async (i: number) => {
    replicas[i] = await startProcess('room-server', env(`room-server-${i}`));
  };
  try {
    await startPersistence();
    await Promise.all(Array.from({ length: ROOM_SERVER_REPLICAS }, (_, i) => startRoomServer(i)));
  } catch (err) {
    await kill9(persistence);
    for (const r of replicas) await kill9(r);
    await bus.close();
    await db.close();
    await database.drop();
    throw err;
  }
  return {
    kind: 'distributed',
    bus,
    db,
    serverName,
    async killRoomServer(i) {
      await kill9(replicas[i]);
      replicas[i] = undefined;
    },
    startRoomServer,
    async killPersistence() {
      await kill9(persistence);
      persistence = undefined;
    },
    startPersistence,
    processIds: () => ({
      persistence: persistence?.pid ? [persistence.pid] : [],
      roomServers: replicas.flatMap((r) => (r?.pid ? [r.pid] : [])),
    }),
    async close() {
      // Graceful stop when profiling, so --cpu-prof can write its file; kill -9 otherwise (fast).
      const stop = process.env.CHILD_NODE_ARGS ? terminate : kill9;
      await stop(persistence);
      for (const r of replicas) await stop(r);
      await bus.close();
      await db.close();
      await database.drop();
    },
  };
}
