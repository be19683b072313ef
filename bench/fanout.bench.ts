/**
 * fanout-sender figures, with the real pipeline (room-server + persistence on PostgreSQL, NATS)
 * and remote servers on loopback HTTPS (test CA, each /send authenticated by X-Matrix):
 * - one event fanned out to 500 destinations: time until all 500 have it (goal <= 2 s), with
 *   new connections (first event) and with warm ones (second event);
 * - catch-up of 10,000 events to one server after an outage: time from the server coming back
 *   until it has them all (full delivery, 50 PDUs per transaction), and in catch-up mode
 *   (only the latest event per room; the remote fetches the gap itself).
 */
import { pathToFileURL } from 'node:url';
import { createNatsBus } from '@tessera/bus';
import { FederationClient } from '@tessera/federation-client';
import { generateSigningKey } from '@tessera/protocol';
import { createDb, eventLogMigrations, fanoutSenderMigrations, federationMigrations, migrate } from '@tessera/storage';
import { checkServices, createTestDatabase, NATS_URL, uniqueName } from '@tessera/testing';
import { FanoutSender, FederationTransactionSender, type FanoutSenderSettings } from '@tessera/fanout-sender-service';
import { LOOPBACK, pduId, startPipeline, startRemoteCrowd } from '../test/fanout/support.js';

const HS = 'bench-hs.test';
const DESTINATIONS = 500;
const CATCH_UP_EVENTS = 10_000;
const quiet = { info() {}, warn() {}, error() {} };

async function waitFor(check: () => boolean, deadlineMs: number): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!check()) {
    if (Date.now() > end) throw new Error('bench: not reached within the deadline');
    await new Promise((r) => setTimeout(r, 2));
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
  const crowd = await startRemoteCrowd(DESTINATIONS + 1, (o, k) => (o === HS && k === hsKey.keyId ? hsKey.publicKey : undefined));
  const client = new FederationClient({ serverName: HS, signingKey: hsKey, ca: crowd.ca.certPem, resolver: crowd.resolver, allowedCidrs: LOOPBACK });
  const pipeline = await startPipeline(db, bus, HS, hsKey);
  const servers = [...crowd.servers.values()];
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
    const fanServers = servers.slice(0, DESTINATIONS);
    for (const s of fanServers) await pipeline.remoteJoin(fanRoom, `@u:${s.name}`, remoteKey);
    await startSender({});
    for (const label of ['cold', 'warm']) {
      const t0 = performance.now();
      const id = await pipeline.send(fanRoom, `@alice:${HS}`, `to everyone (${label})`);
      await waitFor(() => fanServers.every((s) => s.txns.some((t) => t.pdus.some((p) => pduId(p) === id))), 120_000);
      console.log(`BENCH fanout_one_event_500_destinations_${label} ${Math.round(performance.now() - t0)} ms`);
    }
    for (const s of senders.splice(0)) await s.stop();

    // ---- catch-up of 10,000 events after an outage ----
    const target = servers[DESTINATIONS]!;
    const rooms = [await pipeline.createRoom(`@alice:${HS}`)];
    await pipeline.remoteJoin(rooms[0]!, `@u:${target.name}`, remoteKey);
    target.down = true;
    // Appended while no sender runs, as during a long outage of the remote (or of our senders).
    const ids: string[] = [];
    const t0 = performance.now();
    for (let i = 0; i < CATCH_UP_EVENTS; i += 50) {
      ids.push(...(await Promise.all(Array.from({ length: 50 }, (_, j) => pipeline.send(rooms[0]!, `@alice:${HS}`, `missed ${i + j}`)))));
    }
    console.log(`# appended ${CATCH_UP_EVENTS} events in ${Math.round(performance.now() - t0)} ms`);
    target.down = false;
    const have = new Set<string>();
    const seen = () => {
      for (const t of target.txns.splice(0)) for (const p of t.pdus) have.add(pduId(p));
      return have.size;
    };
    const t1 = performance.now();
    await startSender({ catchUpAfter: CATCH_UP_EVENTS * 2 });
    await waitFor(() => seen() >= CATCH_UP_EVENTS, 600_000);
    console.log(`BENCH fanout_catch_up_10000_events_full ${Math.round(performance.now() - t1)} ms`);
    for (const s of senders.splice(0)) await s.stop();

    // The same backlog again, in catch-up mode: only the latest event of the room is sent.
    const last: string[] = [];
    target.down = true;
    for (let i = 0; i < CATCH_UP_EVENTS; i += 50) {
      last.push(...(await Promise.all(Array.from({ length: 50 }, (_, j) => pipeline.send(rooms[0]!, `@alice:${HS}`, `missed again ${i + j}`)))));
    }
    target.down = false;
    have.clear();
    target.txns.splice(0);
    const t2 = performance.now();
    await startSender({ catchUpAfter: 1000 });
    await waitFor(() => seen() >= 1, 600_000);
    console.log(`BENCH fanout_catch_up_10000_events_latest_per_room ${Math.round(performance.now() - t2)} ms`);
  } finally {
    for (const s of senders) await s.stop();
    await pipeline.stop();
    client.close();
    await crowd.close();
    await bus.close();
    await db.close();
    await database.drop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
