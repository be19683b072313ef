/**
 * fanout-sender as it is deployed: two replicas, each its own OS process (apps/fanout-sender),
 * sharing PostgreSQL and NATS with the room pipeline of this test. One replica is killed with
 * SIGKILL (no clean release of its leases): once they expire the other serves its destinations
 * and nothing is lost; a replica started again takes its share back without a restart of the
 * other.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNatsBus, type BusTransport } from '@tessera/bus';
import { formatSigningKeyFile, generateSigningKey } from '@tessera/protocol';
import { createDb, eventLogMigrations, fanoutSenderMigrations, federationMigrations, migrate, type Db } from '@tessera/storage';
import { createTestDatabase, NATS_URL, services, uniqueName, type TestDatabase } from '@tessera/testing';
import { spawn } from 'node:child_process';
import { freePort, REPO_ROOT, stopApp, waitUntilReady, type AppProcess } from '../support/processes.js';
import { eventually, pduId, startPipeline, startRemoteCrowd, type RemoteCrowd, type RemoteServer } from './support.js';

const HS = 'hs-proc.test';

/**
 * `node --import tsx apps/<app>/src/main.ts`: one OS process, so SIGKILL ends the service
 * itself (the tsx launcher would leave its node child running).
 */
function startNodeApp(app: string, env: Record<string, string>): AppProcess {
  const childEnv: Record<string, string | undefined> = { ...process.env, LOG_LEVEL: 'warn', ...env };
  for (const name of ['CONFIG_FILE', 'REDIS_URL', 'CLIENT_PORT', 'FEDERATION_PORT', 'BIND_ADDRESS', 'TLS_CERTIFICATE_PATH', 'TLS_PRIVATE_KEY_PATH']) delete childEnv[name];
  const child = spawn(process.execPath, ['--import', 'tsx', `apps/${app}/src/main.ts`], { cwd: REPO_ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  return { name: app, child, output: () => output, exited };
}

describe.skipIf(!services.postgres || !services.nats)('fanout-sender replicas as processes', () => {
  let database: TestDatabase;
  let db: Db;
  let bus: BusTransport;
  let prefix: string;
  let crowd: RemoteCrowd;
  let pipeline: Awaited<ReturnType<typeof startPipeline>>;
  let dir: string;
  const key = generateSigningKey('proc');
  const procs = new Map<string, AppProcess>();

  async function startReplica(replicaId: string): Promise<AppProcess> {
    const healthPort = await freePort();
    const proc = startNodeApp('fanout-sender', {
      SERVER_NAME: HS,
      DATABASE_URL: database.url,
      NATS_URL,
      BUS_PREFIX: prefix,
      SIGNING_KEY_PATH: join(dir, 'signing.key'),
      DATA_DIR: dir,
      HEALTH_PORT: String(healthPort),
      FEDERATION_CA_FILE: join(dir, 'ca.pem'),
      FEDERATION_ALLOWED_CIDRS: '127.0.0.0/8,::1/128',
      FANOUT_REPLICA_ID: replicaId,
      FANOUT_LEASE_TTL_MS: '1500',
      FANOUT_POLL_MS: '300',
      FANOUT_BACKOFF_INITIAL_MS: '100',
      FANOUT_BACKOFF_MAX_MS: '500',
    });
    procs.set(replicaId, proc);
    await waitUntilReady(proc, `http://127.0.0.1:${healthPort}/health/ready`);
    return proc;
  }

  async function leaseOwners(): Promise<Map<string, number>> {
    const { rows } = await db.query<{ owner: string; n: number }>(
      `SELECT owner, count(*)::int AS n FROM fanout_shard_leases WHERE expires_at_ms >= (extract(epoch FROM clock_timestamp()) * 1000)::bigint GROUP BY owner`,
    );
    return new Map(rows.map((r) => [r.owner, r.n]));
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    db = await createDb({ url: database.url });
    await migrate(db, [...eventLogMigrations, ...federationMigrations, ...fanoutSenderMigrations]);
    prefix = uniqueName('fanproc');
    bus = await createNatsBus({ url: NATS_URL, prefix, name: 'fanout-process-test' });
    crowd = await startRemoteCrowd(8, (o, k) => (o === HS && k === key.keyId ? key.publicKey : undefined), { ipNames: true });
    dir = mkdtempSync(join(tmpdir(), 'tessera-fanout-proc-'));
    writeFileSync(join(dir, 'signing.key'), formatSigningKeyFile([key]));
    writeFileSync(join(dir, 'ca.pem'), crowd.ca.certPem);
    pipeline = await startPipeline(db, bus, HS, key);
  }, 60_000);

  afterAll(async () => {
    for (const p of procs.values()) await stopApp(p);
    await pipeline?.stop();
    await crowd?.close();
    await bus?.close();
    await db?.close();
    await database?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a replica killed with SIGKILL: its shards pass to the other after lease expiry, nothing is lost; a new replica takes its share back', async () => {
    const all = [...crowd.servers.values()];
    const roomId = await pipeline.createRoom(`@alice:${HS}`);
    const remoteKey = generateSigningKey('rk');
    for (const s of all) await pipeline.remoteJoin(roomId, `@u:${s.name}`, remoteKey);
    const received = (s: RemoteServer) => new Set(s.txns.flatMap((t) => t.pdus.filter((p) => p.room_id === roomId).map((p) => pduId(p))));
    const allHave = (ids: string[]) => all.every((s) => { const got = received(s); return ids.every((id) => got.has(id)); });

    await startReplica('proc-a');
    await startReplica('proc-b');
    await eventually('both replicas hold shards, 64 in all', async () => {
      const owners = await leaseOwners();
      return (owners.get('proc-a') ?? 0) > 0 && (owners.get('proc-b') ?? 0) > 0 && (owners.get('proc-a')! + owners.get('proc-b')!) === 64;
    });
    const sent: string[] = [];
    for (let i = 0; i < 10; i++) sent.push(await pipeline.send(roomId, `@alice:${HS}`, `two replicas ${i}`));
    await eventually('every server has the first ten', () => allHave(sent));

    procs.get('proc-a')!.child.kill('SIGKILL');
    await procs.get('proc-a')!.exited;
    procs.delete('proc-a');
    for (let i = 0; i < 10; i++) sent.push(await pipeline.send(roomId, `@alice:${HS}`, `after the kill ${i}`));
    await eventually('proc-b holds all 64 shards', async () => (await leaseOwners()).get('proc-b') === 64);
    await eventually('every server has all twenty', () => allHave(sent));

    await startReplica('proc-c');
    await eventually('proc-c took a share without proc-b restarting', async () => {
      const owners = await leaseOwners();
      return (owners.get('proc-c') ?? 0) > 0 && (owners.get('proc-b') ?? 0) > 0 && owners.get('proc-b')! + owners.get('proc-c')! === 64;
    });
    for (let i = 0; i < 10; i++) sent.push(await pipeline.send(roomId, `@alice:${HS}`, `rebalanced ${i}`));
    await eventually('every server has all thirty', () => allHave(sent));
    for (const s of all) expect([...new Set(s.txns.flatMap((t) => t.pdus.filter((p) => p.room_id === roomId).map((p) => pduId(p))))]).toEqual(sent);
    expect(crowd.unauthenticated).toEqual([]);
    expect(procs.get('proc-b')!.child.exitCode).toBeNull();
  }, 240_000);
});
