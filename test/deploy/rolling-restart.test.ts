/**
 * A rolling restart of the distributed mode (issue 7): the five services as their own OS
 * processes over PostgreSQL, NATS and Redis, two replicas of room-server, client-api and
 * fanout-sender. While two clients send messages continuously through the client API (PUT
 * /send with a txn id, retried with the same txn id on any error, round robin over the
 * client-api replicas as a load balancer would), each process is stopped with SIGTERM, started
 * again and waited for, one at a time. A remote homeserver of ours (embedded, HTTPS on
 * loopback with a test CA) has a user in the room and receives every event by federation.
 *
 * At the end: every acknowledged send is in the room exactly once with the acknowledged event
 * id, the room's DAG is consistent, every process exited 0 on SIGTERM, and the remote server
 * has every event (polled with a deadline). A second test restarts the singleton persistence
 * the same way: sends during its downtime fail and are retried, none acknowledged is lost.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatSigningKeyFile, generateSigningKey } from '@tessera/protocol';
import { createDb, getForwardExtremities, type Db } from '@tessera/storage';
import { createTestDatabase, NATS_URL, REDIS_URL, services, uniqueName, type TestDatabase } from '@tessera/testing';
import { createFederationPki, enc, eventually, TestHomeserver, v3, type FederationPki } from '../consistency/harness.js';
import { freePort, startApp, stopApp, type AppProcess } from '../support/processes.js';

interface Replica {
  /** e.g. room-server-1 */
  id: string;
  app: string;
  env: Record<string, string>;
  readyUrl: string;
  proc: AppProcess;
  /** Exit codes of the SIGTERMs so far. */
  exits: Array<number | string>;
  /** The end of the output of a process that did not exit 0 on SIGTERM, for the failure message. */
  failedOutput?: string;
}

interface Login {
  user_id: string;
  access_token: string;
}

/** GET url until it answers 200 (HTTPS with the test CA when given); fails early if the process exits. */
async function waitReady(proc: AppProcess, url: string, ca?: string, deadlineMs = 90_000): Promise<void> {
  let exit: number | string | undefined;
  void proc.exited.then((c) => (exit = c));
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    if (exit !== undefined) throw new Error(`${proc.name} exited (${exit}) before it was ready:\n${proc.output()}`);
    if ((await probe(url, ca)) === 200) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${proc.name} was not ready at ${url} within ${deadlineMs} ms:\n${proc.output()}`);
}

function probe(url: string, ca?: string): Promise<number | undefined> {
  if (!url.startsWith('https:')) return fetch(url).then((r) => r.status, () => undefined);
  return new Promise((resolve) => {
    const req = httpsRequest(url, { ca, timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('error', () => resolve(undefined));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** The message body of a txn id: `<sender name>-<i>` sends `<sender name> message <i>`. */
function bodyOf(txn: string): string {
  return txn.replace(/-(\d+)$/, ' message $1');
}

/**
 * A client of the client API behind a load balancer: requests go round robin to the
 * client-api replicas; a send is retried (same txn id, next replica) on any error until it is
 * acknowledged or the client is stopped.
 */
class Sender {
  /** txn id -> event id, for every acknowledged send. */
  readonly acked = new Map<string, string>();
  /** txn id -> when its first attempt was made (to find the sends issued while a process was down). */
  readonly firstTried = new Map<string, number>();
  /** txn id -> when it was acknowledged. */
  readonly ackedAt = new Map<string, number>();
  /** Errors seen (status or connection error), retried. */
  readonly errors: string[] = [];
  private stopped = false;
  private loop: Promise<void> | undefined;
  private next = 0;

  constructor(
    private readonly name: string,
    private readonly login: Login,
    private readonly roomId: string,
    private readonly bases: () => string[],
  ) {}

  start(): void {
    this.loop = this.run();
  }

  /** Stops after the send in progress is acknowledged (so every started txn ends acknowledged). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  private async run(): Promise<void> {
    for (let i = 0; !this.stopped; i++) {
      const txn = `${this.name}-${i}`;
      this.firstTried.set(txn, Date.now());
      this.acked.set(txn, await this.sendUntilAcked(txn, `${this.name} message ${i}`));
      this.ackedAt.set(txn, Date.now());
    }
  }

  /** One attempt of PUT /send through `base`: the event id, or why it failed. */
  async put(base: string, txn: string, body: string): Promise<{ eventId?: string; error?: string }> {
    try {
      const res = await fetch(`${base}${v3(`rooms/${enc(this.roomId)}/send/m.room.message/${txn}`)}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${this.login.access_token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ msgtype: 'm.text', body }),
        signal: AbortSignal.timeout(30_000),
      });
      const json = (await res.json().catch(() => ({}))) as { event_id?: string; errcode?: string; error?: string };
      if (res.status === 200 && json.event_id) return { eventId: json.event_id };
      return { error: `${res.status} ${json.errcode ?? ''} ${json.error ?? ''}` };
    } catch (err) {
      return { error: (err as Error).message };
    }
  }

  private async sendUntilAcked(txn: string, body: string): Promise<string> {
    const deadline = Date.now() + 120_000;
    for (;;) {
      const bases = this.bases();
      const { eventId, error } = await this.put(bases[this.next++ % bases.length]!, txn, body);
      if (eventId) return eventId;
      this.errors.push(`${txn}: ${error}`);
      if (Date.now() > deadline) throw new Error(`${txn} was not acknowledged within 120 s; errors: ${this.errors.slice(-5).join('; ')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

describe.skipIf(!services.postgres || !services.nats || !services.redis)('rolling restart of the distributed mode', () => {
  let pki: FederationPki;
  let remote: TestHomeserver;
  let database: TestDatabase;
  let db: Db;
  let dir: string;
  let serverName: string;
  let ca: string;
  const replicas: Replica[] = [];
  const clientBases: string[] = [];
  let alice: Login;
  let bob: Login;
  let dan: string;
  let roomId: string;

  async function startReplica(r: Replica): Promise<void> {
    r.proc = startApp(r.app, r.env);
    await waitReady(r.proc, r.readyUrl, ca);
  }

  async function restart(r: Replica): Promise<{ stoppedAt: number; readyAt: number }> {
    const code = await stopApp(r.proc);
    r.exits.push(code);
    if (code !== 0) r.failedOutput = r.proc.output().slice(-3000);
    const stoppedAt = Date.now();
    await startReplica(r);
    return { stoppedAt, readyAt: Date.now() };
  }

  async function register(username: string): Promise<Login> {
    const url = `${clientBases[0]}${v3('register')}`;
    const password = 'correct horse battery staple';
    const post = (body: unknown) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const first = (await (await post({ username, password })).json()) as { session: string };
    const res = await post({ username, password, auth: { type: 'm.login.dummy', session: first.session } });
    expect(res.status).toBe(200);
    return (await res.json()) as Login;
  }

  async function clientCall(login: Login, method: string, path: string, body?: unknown): Promise<any> {
    const res = await fetch(`${clientBases[0]}${path}`, {
      method,
      headers: { authorization: `Bearer ${login.access_token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json();
    expect(res.status, `${method} ${path}: ${JSON.stringify(json)}`).toBe(200);
    return json;
  }

  beforeAll(async () => {
    // Sets FEDERATION_CA_FILE and FEDERATION_ALLOWED_CIDRS in process.env, which the child processes inherit.
    pki = createFederationPki();
    ca = readFileSync(join(pki.dir, 'ca.pem'), 'utf8');
    dir = mkdtempSync(join(tmpdir(), 'tessera-rolling-'));
    database = await createTestDatabase();
    const federationPort = await freePort();
    serverName = `127.0.0.1:${federationPort}`;
    const keyPath = join(dir, 'signing.key');
    writeFileSync(keyPath, formatSigningKeyFile([generateSigningKey()]), { mode: 0o600 });
    const common = {
      SERVER_NAME: serverName,
      DATABASE_URL: database.url,
      NATS_URL,
      REDIS_URL,
      REDIS_KEY_PREFIX: `${uniqueName('rr')}:`,
      BUS_PREFIX: uniqueName('rolling'),
      SIGNING_KEY_PATH: keyPath,
      DATA_DIR: dir,
      FEDERATION_PORT: String(federationPort),
      TLS_CERTIFICATE_PATH: pki.certPath,
      TLS_PRIVATE_KEY_PATH: pki.keyPath,
      ENABLE_REGISTRATION: 'true',
      RATE_LIMITS_ENABLED: 'false',
      FANOUT_LEASE_TTL_MS: '3000',
      FANOUT_POLL_MS: '300',
      FANOUT_BACKOFF_INITIAL_MS: '100',
      FANOUT_BACKOFF_MAX_MS: '1000',
    };
    const add = async (app: string, index: number | undefined, extra: Record<string, string> = {}) => {
      const id = index === undefined ? app : `${app}-${index}`;
      const healthPort = await freePort();
      let readyUrl = `http://127.0.0.1:${healthPort}/health/ready`;
      const env: Record<string, string> = { ...common, HEALTH_PORT: String(healthPort), ...extra };
      if (app === 'client-api') {
        const clientPort = await freePort();
        env.CLIENT_PORT = String(clientPort);
        clientBases.push(`http://127.0.0.1:${clientPort}`);
        readyUrl = `http://127.0.0.1:${clientPort}/health/ready`;
      }
      if (app === 'federation-ingress') readyUrl = `https://127.0.0.1:${federationPort}/health/ready`;
      if (app === 'fanout-sender') env.FANOUT_REPLICA_ID = id;
      replicas.push({ id, app, env, readyUrl, proc: undefined as unknown as AppProcess, exits: [] });
    };
    // The rolling order: singletons and replicas, one process at a time.
    await add('persistence', undefined);
    await add('room-server', 0);
    await add('room-server', 1);
    await add('fanout-sender', 0);
    await add('fanout-sender', 1);
    await add('client-api', 0);
    await add('client-api', 1);
    await add('federation-ingress', undefined);
    // persistence first (it owns the event log's migrations), then the rest together.
    await startReplica(replicas[0]!);
    const [, remoteServer] = await Promise.all([Promise.all(replicas.slice(1).map(startReplica)), TestHomeserver.start(pki)]);
    remote = remoteServer;
    db = await createDb({ url: database.url });

    alice = await register('alice');
    bob = await register('bob');
    dan = (await remote.register('dan')).user_id;
    roomId = (await clientCall(alice, 'POST', v3('createRoom'), { preset: 'public_chat', name: 'rolling' })).room_id;
    await clientCall(bob, 'POST', v3(`join/${enc(roomId)}`), {});
    await remote.ok('POST', v3(`join/${enc(roomId)}?server_name=${enc(serverName)}`), { token: remote.token(dan), body: {} });
  }, 180_000);

  afterAll(async () => {
    await Promise.all(replicas.filter((r) => r.proc).map((r) => stopApp(r.proc)));
    await db?.close();
    await database?.drop();
    await remote?.stop({ drop: true });
    pki?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The room's m.room.message events in our event log: body -> event ids. */
  async function storedMessages(): Promise<Map<string, string[]>> {
    const { rows } = await db.query<{ event_id: string; json: string }>(
      `SELECT e.event_id, e.json FROM events e JOIN rooms r ON r.room_nid = e.room_nid
       JOIN event_types t ON t.type_nid = e.type_nid
       WHERE r.room_id = $1 AND t.event_type = 'm.room.message'`,
      [roomId],
    );
    const byBody = new Map<string, string[]>();
    for (const r of rows) {
      const body = String(JSON.parse(r.json).content?.body);
      byBody.set(body, [...(byBody.get(body) ?? []), r.event_id]);
    }
    return byBody;
  }

  /** Every prev_event of every timeline event is stored, and the extremities are exactly the childless timeline events. */
  async function checkDag(): Promise<void> {
    const { rows } = await db.query<{ event_id: string; json: string }>(
      `SELECT e.event_id, e.json FROM events e JOIN rooms r ON r.room_nid = e.room_nid
       WHERE r.room_id = $1 AND e.stream_pos IS NOT NULL`,
      [roomId],
    );
    const ids = new Set(rows.map((r) => r.event_id));
    const cited = new Set<string>();
    for (const r of rows) {
      for (const prev of JSON.parse(r.json).prev_events as string[]) {
        expect(ids.has(prev), `prev_event ${prev} of ${r.event_id} is stored`).toBe(true);
        cited.add(prev);
      }
    }
    const childless = [...ids].filter((id) => !cited.has(id)).sort();
    expect((await getForwardExtremities(db, roomId)).map((e) => e.eventId).sort()).toEqual(childless);
  }

  /** What our fanout and the remote hold, for a failure message. */
  async function federationDiagnosis(ids: string[]): Promise<string> {
    const destinations = await db.query('SELECT * FROM fanout_destinations');
    const leases = await db.query('SELECT owner, count(*)::int AS n FROM fanout_shard_leases GROUP BY owner');
    const queued = await db.query('SELECT server_name, count(*)::int AS n, max(stream_pos) AS max FROM event_destinations GROUP BY server_name');
    const atRemote = await remote.db.query(
      'SELECT outlier, soft_failed, rejected_reason, count(*)::int AS n FROM events WHERE event_id = ANY($1) GROUP BY 1, 2, 3',
      [ids],
    );
    const logs = replicas.filter((r) => r.app === 'fanout-sender').map((r) => `${r.id}: ${r.proc.output().slice(-1500)}`);
    return JSON.stringify({ destinations: destinations.rows, leases: leases.rows, queued: queued.rows, atRemote: atRemote.rows }) + `\n${logs.join('\n')}`;
  }

  /** Sends while `during` runs, then checks every acknowledged send: once in our log, at the remote. */
  async function sendingThrough(label: string, during: (progress: () => Promise<void>, senders: Sender[]) => Promise<void>): Promise<Sender[]> {
    const senders = [new Sender(`${label}-alice`, alice, roomId, () => clientBases), new Sender(`${label}-bob`, bob, roomId, () => clientBases)];
    const total = () => senders.reduce((n, s) => n + s.acked.size, 0);
    // Progress: a few more sends acknowledged (a bound on waiting, not a timing assertion).
    const progress = async () => {
      const target = total() + 6;
      await eventually(() => `${target} sends acknowledged (have ${total()}; last errors ${senders.flatMap((s) => s.errors.slice(-2)).join('; ')})`, () => total() >= target, 120_000);
    };
    for (const s of senders) s.start();
    try {
      await progress();
      await during(progress, senders);
      await progress();
    } finally {
      await Promise.all(senders.map((s) => s.stop()));
    }

    const acked = senders.flatMap((s) => [...s.acked.entries()].map(([txn, eventId]) => ({ txn, eventId, body: bodyOf(txn) })));
    // A client retrying an applied txn through either replica gets the same event, and no second one.
    for (const s of senders) {
      const [first] = s.acked.keys();
      const last = [...s.acked.keys()].at(-1)!;
      for (const [i, txn] of [first!, last].entries()) {
        expect(await s.put(clientBases[i % clientBases.length]!, txn, bodyOf(txn)), `retry of ${txn}`).toEqual({ eventId: s.acked.get(txn) });
      }
    }
    const stored = await storedMessages();
    const ours = [...stored.entries()].filter(([body]) => body.startsWith(`${label}-`));
    // Exactly once: each acknowledged send is one event, the acknowledged one; nothing else was stored.
    for (const a of acked) expect(stored.get(a.body), `${a.txn} stored exactly once as ${a.eventId}`).toEqual([a.eventId]);
    expect(ours.length).toBe(acked.length);
    await checkDag();

    const ids = acked.map((a) => a.eventId);
    let missing = ids.length;
    let diagnosis = '';
    await eventually(() => `the remote server has all ${ids.length} events (${missing} missing)\n${diagnosis}`, async () => {
      const { rows } = await remote.db.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM events WHERE event_id = ANY($1) AND NOT outlier AND rejected_reason IS NULL',
        [ids],
      );
      missing = ids.length - rows[0]!.n;
      if (missing > 0) diagnosis = await federationDiagnosis(ids);
      return missing === 0;
    }, 60_000);
    // dan reads the last of them through the remote's client API.
    const last = await remote.call('GET', v3(`rooms/${enc(roomId)}/event/${enc(ids.at(-1)!)}`), { token: remote.token(dan) });
    expect(last.status).toBe(200);
    return senders;
  }

  it('restarts every replicated or stateless process in turn while clients send: nothing lost, nothing applied twice, the remote has it all', async () => {
    const rolled = replicas.filter((r) => r.app !== 'persistence');
    /** Failed send attempts seen while each process restarted (until sends went on after it). */
    const failedDuring = new Map<string, string[]>();
    const senders = await sendingThrough('roll', async (progress, senders) => {
      for (const r of rolled) {
        const before = senders.map((s) => s.errors.length);
        await restart(r);
        await progress();
        failedDuring.set(r.id, senders.flatMap((s, i) => s.errors.slice(before[i])));
      }
    });
    for (const r of rolled) expect(`${r.id} exited ${r.exits.join(',')}`, r.failedOutput).toBe(`${r.id} exited 0`);
    // Clients reach client-api directly (no load balancer takes a stopped replica out), so its
    // restarts are seen and retried; the restart of any other replica is invisible to them.
    for (const r of rolled.filter((r) => r.app !== 'client-api')) expect(failedDuring.get(r.id), `send attempts failed while ${r.id} restarted: ${JSON.stringify(failedDuring.get(r.id))}`).toEqual([]);
    // Only a report: attempts that met a stopped client-api replica and went to the other.
    console.info(`rolling restart: ${senders.reduce((n, s) => n + s.acked.size, 0)} sends acknowledged, ${senders.reduce((n, s) => n + s.errors.length, 0)} attempts failed and were retried`);
  }, 300_000);

  it('restarts the singleton persistence while clients send: failed sends are retried, none acknowledged is lost', async () => {
    const persistence = replicas.find((r) => r.app === 'persistence')!;
    let window = { stoppedAt: 0, readyAt: 0 };
    const senders = await sendingThrough('persist', async () => {
      window = await restart(persistence);
    });
    expect(persistence.exits).toEqual([0]);
    // The senders never pause, so some sends were pending while persistence was down (issued
    // before it was ready again, acknowledged after it had exited); they are among those
    // checked above: each stored once, at the remote.
    const pendingWhileDown = senders.flatMap((s) =>
      [...s.acked.keys()].filter((txn) => s.firstTried.get(txn)! < window.readyAt && s.ackedAt.get(txn)! > window.stoppedAt),
    );
    expect(pendingWhileDown.length).toBeGreaterThan(0);
    // Only a report of how the clients saw the downtime (room-server retries the append itself).
    console.info(`persistence restart: ${pendingWhileDown.length} sends pending while it was down, ${senders.reduce((n, s) => n + s.errors.length, 0)} attempts failed and were retried`);
  }, 300_000);
});
