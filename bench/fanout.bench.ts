/**
 * fanout-sender figures, with the real pipeline (room-server + persistence on PostgreSQL, NATS)
 * and remote servers on loopback HTTPS (test CA, each /send authenticated by X-Matrix):
 * The receivers run in a worker thread (another core), as remote servers would run elsewhere.
 * - one event fanned out to 500 destinations: time until all 500 have it (goal <= 2 s), with
 *   new connections (first event) and with warm ones (second event);
 * - catch-up of 10,000 events to one server after an outage: time from the server coming back
 *   until it has them all (full delivery, 50 PDUs per transaction), and in catch-up mode
 *   (only the latest event per room; the remote fetches the gap itself).
 */
import { pathToFileURL } from 'node:url';
import { createNatsBus } from '@tessera/bus';
import { FederationClient } from '@tessera/federation-client';
import { generateSigningKey, type SigningKey } from '@tessera/protocol';
import { createDb, eventLogMigrations, fanoutSenderMigrations, federationMigrations, migrate } from '@tessera/storage';
import { checkServices, createTestDatabase, NATS_URL, uniqueName } from '@tessera/testing';
import { FanoutSender, FederationTransactionSender, type FanoutSenderSettings } from '@tessera/fanout-sender-service';
import { Worker } from 'node:worker_threads';
import { StaticResolver } from '../libs/federation-client/src/testing/test-pki.js';
import { LOOPBACK, startPipeline } from '../test/fanout/support.js';

const HS = 'bench-hs.test';
const DESTINATIONS = 500;
const CATCH_UP_EVENTS = 10_000;
const quiet = { info() {}, warn() {}, error() {} };

/** The receivers, in a worker thread: see fanout-receivers.worker.ts. */
class Receivers {
  private next = 0;
  private readonly waiting = new Map<number, (v: unknown) => void>();
  private constructor(private readonly worker: Worker, readonly names: string[], readonly caPem: string) {
    worker.on('message', (m: { id?: number; result?: unknown }) => {
      if (m.id !== undefined) {
        this.waiting.get(m.id)?.(m.result);
        this.waiting.delete(m.id);
      }
    });
  }

  static async start(count: number, key: SigningKey): Promise<Receivers> {
    // A worker does not inherit the tsx loader: it registers it, then loads the TypeScript file.
    const file = new URL('./fanout-receivers.worker.ts', import.meta.url).href;
    const boot = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(file)}); });`;
    const worker = new Worker(boot, { eval: true, workerData: { count, origin: HS, keyId: key.keyId, publicKeyBase64: key.publicKeyBase64 } });
    const ready = await new Promise<{ names: string[]; caPem: string }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    return new Receivers(worker, ready.names, ready.caPem);
  }

  ask<T>(message: Record<string, unknown>): Promise<T> {
    const id = ++this.next;
    return new Promise<T>((resolve) => {
      this.waiting.set(id, resolve as (v: unknown) => void);
      this.worker.postMessage({ ...message, id });
    });
  }

  async close(): Promise<void> {
    await this.ask({ op: 'close' });
    await this.worker.terminate();
  }
}

async function waitUntil(check: () => Promise<boolean>, deadlineMs: number): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('bench: not reached within the deadline');
    await new Promise((r) => setTimeout(r, 5));
  }
}

export async function main(): Promise<void> {
  const up = await checkServices();
  if (!up.postgres || !up.nats) {
    console.log('# fanout bench skipped: PostgreSQL and NATS are needed');
    return;
  }
  const database = await createTestDatabase();
  const db = await createDb({ url: database.url });
  await migrate(db, [...eventLogMigrations, ...federationMigrations, ...fanoutSenderMigrations]);
  const bus = await createNatsBus({ url: NATS_URL, prefix: uniqueName('fanoutbench'), name: 'fanout-bench' });
  const hsKey = generateSigningKey('hs');
  const remoteKey = generateSigningKey('r');
  const receivers = await Receivers.start(DESTINATIONS + 1, hsKey);
  const resolver = new StaticResolver();
  for (const name of receivers.names) resolver.setAddress(name.slice(0, name.lastIndexOf(':')), '127.0.0.1');
  const client = new FederationClient({ serverName: HS, signingKey: hsKey, ca: receivers.caPem, resolver, allowedCidrs: LOOPBACK });
  const pipeline = await startPipeline(db, bus, HS, hsKey);
  const senders: FanoutSender[] = [];
  const startSender = async (settings: Partial<FanoutSenderSettings>) => {
    const s = new FanoutSender({ db, bus, serverName: HS, sender: new FederationTransactionSender(client, HS, 30_000), logger: quiet, settings: { pollIntervalMs: 1000, ...settings } });
    await s.start();
    senders.push(s);
    return s;
  };
  try {
    // ---- one event to 500 destinations ----
    const fanRoom = await pipeline.createRoom(`@alice:${HS}`);
    const fanServers = receivers.names.slice(0, DESTINATIONS);
    for (const name of fanServers) await pipeline.remoteJoin(fanRoom, `@u:${name}`, remoteKey);
    await startSender({});
    for (const label of ['cold', 'warm']) {
      const t0 = performance.now();
      const id = await pipeline.send(fanRoom, `@alice:${HS}`, `to everyone (${label})`);
      await waitUntil(async () => (await receivers.ask<number>({ op: 'has', eventId: id, names: fanServers })) === DESTINATIONS, 120_000);
      console.log(`BENCH fanout_one_event_500_destinations_${label} ${Math.round(performance.now() - t0)} ms`);
    }
    for (const s of senders.splice(0)) await s.stop();

    // ---- catch-up of 10,000 events after an outage ----
    const target = receivers.names[DESTINATIONS]!;
    const room = await pipeline.createRoom(`@alice:${HS}`);
    await pipeline.remoteJoin(room, `@u:${target}`, remoteKey);
    // Appended while no sender runs, as during a long outage of the remote (or of our senders).
    const backlog = async (label: string) => {
      const t = performance.now();
      for (let i = 0; i < CATCH_UP_EVENTS; i += 50) {
        await Promise.all(Array.from({ length: 50 }, (_, j) => pipeline.send(room, `@alice:${HS}`, `${label} ${i + j}`)));
      }
      console.log(`# appended ${CATCH_UP_EVENTS} events in ${Math.round(performance.now() - t)} ms`);
    };
    await backlog('missed');
    const t1 = performance.now();
    await startSender({ catchUpAfter: CATCH_UP_EVENTS * 2 });
    await waitUntil(async () => (await receivers.ask<number>({ op: 'distinct', name: target })) >= CATCH_UP_EVENTS, 600_000);
    console.log(`BENCH fanout_catch_up_10000_events_full ${Math.round(performance.now() - t1)} ms`);
    for (const s of senders.splice(0)) await s.stop();

    // The same backlog again, in catch-up mode: only the latest event of the room is sent.
    await backlog('missed again');
    await receivers.ask({ op: 'reset' });
    const t2 = performance.now();
    await startSender({ catchUpAfter: 1000 });
    await waitUntil(async () => (await receivers.ask<number>({ op: 'distinct', name: target })) >= 1, 600_000);
    console.log(`BENCH fanout_catch_up_10000_events_latest_per_room ${Math.round(performance.now() - t2)} ms`);
  } finally {
    for (const s of senders) await s.stop();
    await pipeline.stop();
    client.close();
    await receivers.close();
    await bus.close();
    await db.close();
    await database.drop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
