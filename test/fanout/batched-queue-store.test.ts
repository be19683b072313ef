/**
 * The fanout queues' reads and delivery records gathered across destinations (one query for
 * many servers' next PDUs, one statement recording many deliveries), on PostgreSQL with an
 * event log written by the real room-server and persistence.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInProcessBus, type BusTransport } from '@tessera/bus';
import { BatchedQueueStore, Coalescer } from '@tessera/fanout-sender-service';
import { generateSigningKey } from '@tessera/protocol';
import {
  createDb, eventLogMigrations, fanoutSenderMigrations, federationMigrations, loadDestinationStates, markDeliveredMany, migrate, nextPdus, nextPdusForMany,
  type Db, type Queryable,
} from '@tessera/storage';
import { createTestDatabase, services, type TestDatabase } from '@tessera/testing';
import { startPipeline } from './support.js';

const HS = 'hs-batch.test';

describe('Coalescer', () => {
  it('runs the requests of one turn of the event loop in one call, in order, and passes a failure to each', async () => {
    const calls: number[][] = [];
    const c = new Coalescer<number, number>(async (xs) => {
      calls.push(xs);
      if (xs.includes(-1)) throw new Error('refused');
      return xs.map((x) => x * 2);
    }, 3, 1);
    expect(await Promise.all([1, 2, 3, 4, 5].map((x) => c.submit(x)))).toEqual([2, 4, 6, 8, 10]);
    // At most 3 per call, one call at a time: the two left wait for the first and go together.
    expect(calls).toEqual([[1, 2, 3], [4, 5]]);
    const results = await Promise.allSettled([c.submit(7), c.submit(-1)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(await c.submit(8)).toBe(16);
  });
});

describe.skipIf(!services.postgres)('batched fanout queue reads and delivery records', () => {
  let database: TestDatabase;
  let db: Db;
  let bus: BusTransport;
  let pipeline: Awaited<ReturnType<typeof startPipeline>>;
  const servers = ['a.test', 'b.test', 'c.test'];
  let roomId: string;
  let sent: string[];

  beforeAll(async () => {
    database = await createTestDatabase();
    db = await createDb({ url: database.url });
    await migrate(db, [...eventLogMigrations, ...federationMigrations, ...fanoutSenderMigrations]);
    bus = createInProcessBus();
    pipeline = await startPipeline(db, bus, HS, generateSigningKey('hs'));
    roomId = await pipeline.createRoom(`@alice:${HS}`);
    const remoteKey = generateSigningKey('r');
    for (const s of servers) await pipeline.remoteJoin(roomId, `@u:${s}`, remoteKey);
    sent = [];
    for (let i = 0; i < 5; i++) sent.push(await pipeline.send(roomId, `@alice:${HS}`, `m${i}`));
  });

  afterAll(async () => {
    await pipeline?.stop();
    await bus?.close();
    await db?.close();
    await database?.drop();
  });

  it('reads many servers\' next PDUs in one query, the same as reading each on its own', async () => {
    const first = await nextPdus(db, 'a.test', 0, 100);
    expect(first.length).toBeGreaterThanOrEqual(5);
    const requests = [
      { serverName: 'a.test', after: 0, limit: 100 },
      { serverName: 'b.test', after: first[1]!.streamPos, limit: 2 },
      { serverName: 'c.test', after: 0, limit: 3 },
      { serverName: 'nobody.test', after: 0, limit: 10 },
    ];
    const many = await nextPdusForMany(db, requests);
    for (const r of requests) expect(many.get(r.serverName)).toEqual(await nextPdus(db, r.serverName, r.after, r.limit));
    expect(many.get('nobody.test')).toEqual([]);
    expect(many.get('b.test')!.length).toBe(2);
  });

  it('gathers concurrent queue reads and delivery records into a few statements', async () => {
    const statements: string[] = [];
    const counting: Queryable = {
      query: (sql, params) => {
        statements.push(sql);
        return db.query(sql, params);
      },
      exec: (sql) => db.exec(sql),
    };
    const store = new BatchedQueueStore(counting);
    const read = await Promise.all(servers.map((s) => store.nextPdus(s, 0, 50)));
    // One query for the positions of all three, one for the events they share.
    expect(statements.length).toBe(2);
    const last = read.map((pdus) => pdus.at(-1)!.streamPos);
    statements.length = 0;
    // a.test gets everything, b.test all but its last, c.test is recorded twice (the higher one counts).
    await Promise.all([
      store.markDelivered('a.test', last[0]!, 1000),
      store.markDelivered('b.test', last[1]! - 1, 1000),
      store.markDelivered('c.test', 1, 1000),
      store.markDelivered('c.test', last[2]!, 1000),
    ]);
    expect(statements.length).toBe(1);
    const states = await loadDestinationStates(db, servers);
    expect(states.get('a.test')!.sentPosition).toBe(last[0]);
    expect(states.get('b.test')!.sentPosition).toBe(last[1]! - 1);
    expect(states.get('c.test')!.sentPosition).toBe(last[2]);
    // Delivered rows are gone; b.test still has its last PDU queued.
    expect(await nextPdus(db, 'a.test', 0, 100)).toEqual([]);
    expect((await nextPdus(db, 'b.test', 0, 100)).map((p) => p.streamPos)).toEqual([last[1]]);
    expect(await nextPdus(db, 'c.test', 0, 100)).toEqual([]);
    // Nothing to record is no statement at all.
    await markDeliveredMany(db, [], 1000);
  });
});
