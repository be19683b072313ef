/**
 * fanout-sender against real parts: room-server and persistence write the event log in
 * PostgreSQL, the bus is NATS (own prefix), and the remote servers are HTTPS listeners on
 * loopback with a test CA that authenticate every /send by its X-Matrix signature.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createInProcessBus, createNatsBus, publishOn, STREAM_EVENTS, type BusTransport, type StreamEventNotification } from '@tessera/bus';
import { FederationClient } from '@tessera/federation-client';
import { generateSigningKey } from '@tessera/protocol';
import { createDb, eventLogMigrations, federationMigrations, fanoutSenderMigrations, migrate, shardLeaseOwners, type Db } from '@tessera/storage';
import { createTestDatabase, NATS_URL, services, uniqueName, type TestDatabase } from '@tessera/testing';
import { FanoutSender, FederationTransactionSender, shardOf, type FanoutSenderSettings, type TransactionSender } from '@tessera/fanout-sender-service';
import { eventually, LOOPBACK, pduId, startPipeline, startRemoteCrowd, type RemoteCrowd, type RemoteServer } from './support.js';

const HS = 'hs1.test';
const quiet = { info() {}, warn() {}, error() {} };

describe.skipIf(!services.postgres || !services.nats)('fanout-sender', () => {
  let database: TestDatabase;
  let db: Db;
  let bus: BusTransport;
  let crowd: RemoteCrowd;
  let pipeline: Awaited<ReturnType<typeof startPipeline>>;
  let client: FederationClient;
  const hsKey = generateSigningKey('hs1');
  const remoteKey = generateSigningKey('r');
  const senders: FanoutSender[] = [];

  /** Remembers which sender replica sent which transaction (a pass-through around the real sender). */
  const sentBy = new Map<string, Set<string>>();
  function recordingSender(replica: string): TransactionSender {
    const real = new FederationTransactionSender(client, HS, 10_000);
    return {
      send(destination, pdus, edus) {
        if (!sentBy.has(destination)) sentBy.set(destination, new Set());
        sentBy.get(destination)!.add(replica);
        return real.send(destination, pdus, edus);
      },
    };
  }

  async function startSender(replicaId: string, settings: Partial<FanoutSenderSettings> = {}): Promise<FanoutSender> {
    const s = new FanoutSender({
      db, bus, serverName: HS, sender: recordingSender(replicaId), logger: quiet,
      settings: { replicaId, leaseTtlMs: 1_000, backoffInitialMs: 50, backoffMaxMs: 400, pollIntervalMs: 200, shardCount: 16, ...settings },
    });
    await s.start();
    senders.push(s);
    return s;
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    db = await createDb({ url: database.url });
    await migrate(db, [...eventLogMigrations, ...federationMigrations, ...fanoutSenderMigrations]);
    bus = await createNatsBus({ url: NATS_URL, prefix: uniqueName('fanout'), name: 'fanout-test' });
    crowd = await startRemoteCrowd(12, (origin, keyId) => (origin === HS && keyId === hsKey.keyId ? hsKey.publicKey : undefined));
    client = new FederationClient({ serverName: HS, signingKey: hsKey, ca: crowd.ca.certPem, resolver: crowd.resolver, allowedCidrs: LOOPBACK });
    pipeline = await startPipeline(db, bus, HS, hsKey);
  });

  afterEach(async () => {
    for (const s of senders.splice(0)) await s.stop();
    for (const r of crowd.servers.values()) r.down = false;
    await db.query('DELETE FROM event_destinations');
    await db.query('DELETE FROM fanout_destinations');
    await db.query('DELETE FROM fanout_pending_edus');
  });

  afterAll(async () => {
    await pipeline?.stop();
    client?.close();
    await crowd?.close();
    await bus?.close();
    await db?.close();
    await database?.drop();
  });

  const remotes = (from: number, to: number): RemoteServer[] => [...crowd.servers.values()].slice(from, to);

  /** A public room of alice@hs1 joined by one user of each given remote server. */
  async function roomWith(servers: RemoteServer[]): Promise<string> {
    const roomId = await pipeline.createRoom(`@alice:${HS}`);
    for (const s of servers) await pipeline.remoteJoin(roomId, `@u:${s.name}`, remoteKey);
    return roomId;
  }

  function received(server: RemoteServer, roomId: string): string[] {
    return server.txns.flatMap((t) => t.pdus.filter((p) => p.room_id === roomId).map((p) => pduId(p)));
  }

  it('sends each local event to every joined server, in order, at most 50 PDUs per transaction and one transaction in flight', async () => {
    const joined = remotes(0, 4);
    const roomId = await roomWith(joined);
    await startSender('a');
    const sent: string[] = [];
    // Sends in parallel bursts so that events pile up while a transaction is in flight.
    for (let i = 0; i < 6; i++) sent.push(...(await Promise.all(Array.from({ length: 20 }, (_, j) => pipeline.send(roomId, `@alice:${HS}`, `m${i}.${j}`)))));
    const positions = new Map<string, number>();
    for (const { event_id, stream_pos } of (await db.query<{ event_id: string; stream_pos: number }>('SELECT event_id, stream_pos FROM events WHERE event_id = ANY($1)', [sent])).rows) positions.set(event_id, stream_pos);
    const inLogOrder = [...sent].sort((a, b) => positions.get(a)! - positions.get(b)!);

    for (const s of joined) {
      await eventually(`${s.name} has all 120 messages`, () => received(s, roomId).filter((id) => sent.includes(id)).length >= 120);
      expect(received(s, roomId).filter((id) => sent.includes(id))).toEqual(inLogOrder);
      expect(Math.max(...s.txns.map((t) => t.pdus.length))).toBeLessThanOrEqual(50);
      expect(s.maxInFlight).toBe(1);
      expect(s.txns.every((t) => t.origin === HS)).toBe(true);
    }
    // Servers with no member in the room get nothing; nothing went unauthenticated.
    for (const s of remotes(4, 12)) expect(received(s, roomId)).toEqual([]);
    expect(crowd.unauthenticated).toEqual([]);
    // Delivered rows are gone from the queue and each destination's cursor is at the last event.
    expect((await db.query('SELECT 1 FROM event_destinations')).rows).toEqual([]);
    const { rows } = await db.query<{ sent_position: number }>('SELECT sent_position FROM fanout_destinations WHERE server_name = $1', [joined[0]!.name]);
    expect(rows[0]!.sent_position).toBe(positions.get(inLogOrder.at(-1)!));
  });

  it('stream.events tells whether a local event was queued for other servers; a room of local users alone wakes no scan', async () => {
    const [remote] = remotes(6, 7) as [RemoteServer];
    const lonely = await roomWith([]);
    const shared = await roomWith([remote]);
    const heard: StreamEventNotification[] = [];
    const sub = await bus.subscribe<StreamEventNotification>(STREAM_EVENTS, (n) => void heard.push(n));
    try {
      const alone = await pipeline.send(lonely, `@alice:${HS}`, 'nobody else');
      const out = await pipeline.send(shared, `@alice:${HS}`, 'to the remote');
      // A local membership change goes through the joined-servers path: queued as well.
      const kick = await pipeline.membership(shared, `@alice:${HS}`, 'kick', `@u:${remote.name}`);
      await eventually('three notifications', () => [alone, out, kick].every((id) => heard.some((n) => n.eventId === id)));
      const flag = (id: string) => heard.find((n) => n.eventId === id)!.queuedForServers;
      expect([flag(alone), flag(out), flag(kick)]).toEqual([false, true, true]);
      // The flag agrees with the queue itself.
      const queued = await db.query<{ event_id: string }>(
        'SELECT DISTINCT e.event_id FROM event_destinations d JOIN events e ON e.stream_pos = d.stream_pos WHERE e.event_id = ANY($1)',
        [[alone, out, kick]],
      );
      expect(queued.rows.map((r) => r.event_id).sort()).toEqual([out, kick].sort());
    } finally {
      await sub.unsubscribe();
    }
  });

  it('the servers joined at each event are stored once with it; a kicked server gets its kick and nothing after', async () => {
    const [a, b] = remotes(4, 6) as [RemoteServer, RemoteServer];
    const roomId = await roomWith([a, b]);
    const first = await pipeline.send(roomId, `@alice:${HS}`, 'before the kick');
    const dests = await db.query<{ server_name: string }>(
      'SELECT d.server_name FROM event_destinations d JOIN events e ON e.stream_pos = d.stream_pos WHERE e.event_id = $1 ORDER BY 1',
      [first],
    );
    expect(dests.rows.map((r) => r.server_name)).toEqual([a.name, b.name].sort());
    const kick = await pipeline.membership(roomId, `@alice:${HS}`, 'kick', `@u:${b.name}`);
    const after = await pipeline.send(roomId, `@alice:${HS}`, 'after the kick');
    await startSender('a');
    await eventually('a has everything', () => received(a, roomId).includes(after));
    await eventually('b has its kick', () => received(b, roomId).includes(kick));
    expect(received(a, roomId)).toEqual([first, kick, after]);
    expect(received(b, roomId)).toEqual([first, kick]);
  });

  it('retries a server that is down with backoff, and it gets what it missed, in order, when it is back', async () => {
    const [up, down] = remotes(6, 8) as [RemoteServer, RemoteServer];
    const roomId = await roomWith([up, down]);
    down.down = true;
    await startSender('a');
    const sent: string[] = [];
    for (let i = 0; i < 10; i++) sent.push(await pipeline.send(roomId, `@alice:${HS}`, `while down ${i}`));
    await eventually('the live server has all', () => received(up, roomId).length === 10);
    await eventually('the down server was retried', () => down.refused >= 3);
    const { rows } = await db.query<{ failures: number; last_error: string }>('SELECT failures, last_error FROM fanout_destinations WHERE server_name = $1', [down.name]);
    expect(rows[0]!.failures).toBeGreaterThan(0);
    expect(rows[0]!.last_error).toMatch(/503/);
    down.down = false;
    await eventually('the server that was down has all', () => received(down, roomId).length === 10);
    expect(received(down, roomId)).toEqual(sent);
    expect(down.maxInFlight).toBe(1);
  });

  it('a server in a long backoff is retried at once when an event from it arrives (it is back)', async () => {
    const [s] = remotes(7, 8) as [RemoteServer];
    const roomId = await roomWith([s]);
    const refusedBefore = s.refused;
    s.down = true;
    await startSender('a', { backoffInitialMs: 600_000, backoffMaxMs: 600_000 });
    const id = await pipeline.send(roomId, `@alice:${HS}`, 'while it is down');
    await eventually('refused once', () => s.refused > refusedBefore);
    s.down = false;
    // Its user's event comes in over federation: the queue does not wait out its five minutes.
    await pipeline.remoteJoin(roomId, `@w:${s.name}`, remoteKey);
    await eventually('the event arrives after the remote showed up', () => received(s, roomId).includes(id));
    expect(s.refused - refusedBefore).toBe(1);
  });

  it('after a long outage sends only the latest event of each room (the remote fetches the gap)', async () => {
    const [s] = remotes(8, 9) as [RemoteServer];
    const rooms = [await roomWith([s]), await roomWith([s])];
    s.down = true;
    await startSender('a', { catchUpAfter: 20 });
    const last: string[] = [];
    for (const roomId of rooms) {
      let id = '';
      for (let i = 0; i < 15; i++) id = await pipeline.send(roomId, `@alice:${HS}`, `missed ${i}`);
      last.push(id);
    }
    // Two refusals after the last send: the second attempt was planned after it, so every
    // attempt from now on plans its catch-up over the whole backlog (an attempt planned while
    // the sends were still being made, and accepted, would rightly carry an earlier event).
    const refusedAfterSends = s.refused;
    await eventually('retried after the last send', () => s.refused >= refusedAfterSends + 2);
    s.down = false;
    await eventually('the latest of each room arrived', () => rooms.every((r, i) => received(s, r).includes(last[i]!)));
    expect(rooms.map((r) => received(s, r))).toEqual(last.map((id) => [id]));
    // Then the queue is empty and new events flow normally again.
    const next = await pipeline.send(rooms[0]!, `@alice:${HS}`, 'after catch-up');
    await eventually('new event arrives', () => received(s, rooms[0]!).includes(next));
    expect(received(s, rooms[0]!)).toEqual([last[0], next]);
  });

  it('a restart loses nothing: queues are rebuilt from the database', async () => {
    const [s] = remotes(9, 10) as [RemoteServer];
    const roomId = await roomWith([s]);
    s.down = true;
    const first = await startSender('before-restart');
    const sent: string[] = [];
    for (let i = 0; i < 5; i++) sent.push(await pipeline.send(roomId, `@alice:${HS}`, `before restart ${i}`));
    await eventually('tried', () => s.refused >= 1);
    await first.stop();
    senders.splice(senders.indexOf(first), 1);
    // Events appended while no sender runs at all.
    for (let i = 0; i < 5; i++) sent.push(await pipeline.send(roomId, `@alice:${HS}`, `no sender ${i}`));
    s.down = false;
    await startSender('after-restart');
    await eventually('all ten arrive', () => received(s, roomId).length >= 10);
    expect(received(s, roomId)).toEqual(sent);
  });

  it('delivers EDUs to a room\'s joined servers or to named servers, at most 100 per transaction, kept while a server is down', async () => {
    const [a, b, c] = remotes(10, 12).concat(remotes(0, 1)) as [RemoteServer, RemoteServer, RemoteServer];
    const roomId = await roomWith([a, b]);
    await startSender('a');
    await publishOn(bus, 'edu.outbound', { eduType: 'm.typing', content: { room_id: roomId, user_id: `@alice:${HS}`, typing: true }, to: { roomId } });
    await eventually('typing reached both joined servers', () => [a, b].every((s) => s.txns.some((t) => t.edus.some((e) => e.edu_type === 'm.typing'))));
    expect(c.txns.some((t) => t.edus.length > 0)).toBe(false);

    c.down = true;
    for (let i = 0; i < 250; i++) {
      await publishOn(bus, 'edu.outbound', { eduType: 'm.direct_to_device', content: { message_id: `m${i}`, sender: `@alice:${HS}`, type: 'x', messages: {} }, to: { destinations: [c.name, HS] } });
    }
    await eventually('tried while down', () => c.refused >= 1);
    c.down = false;
    const ids = () => c.txns.flatMap((t) => t.edus.filter((e) => e.edu_type === 'm.direct_to_device').map((e) => e.content.message_id));
    await eventually(() => `250 to-device EDUs arrive (have ${ids().length})`, () => ids().length >= 250);
    expect(ids()).toEqual(Array.from({ length: 250 }, (_, i) => `m${i}`));
    expect(Math.max(...c.txns.map((t) => t.edus.length))).toBeLessThanOrEqual(100);
  });

  it('keeps to-device EDUs for a server that is down across a restart of the sender, and sends them once it is back (TestToDeviceMessagesOverFederation)', async () => {
    const [c] = remotes(3, 4) as [RemoteServer];
    c.down = true;
    const first = await startSender('to-device-before');
    for (let i = 0; i < 3; i++) {
      await publishOn(bus, 'edu.outbound', { eduType: 'm.direct_to_device', content: { message_id: `kept${i}`, sender: `@alice:${HS}`, type: 'x', messages: {} }, to: { destinations: [c.name] } });
    }
    await publishOn(bus, 'edu.outbound', { eduType: 'm.typing', content: { room_id: '!r:hs1.test', user_id: `@alice:${HS}`, typing: true }, to: { destinations: [c.name] } });
    await eventually('tried while down', () => c.refused >= 1);
    await first.stop();
    senders.splice(senders.indexOf(first), 1);
    await startSender('to-device-after');
    c.down = false;
    const ids = () => c.txns.flatMap((t) => t.edus.filter((e) => e.edu_type === 'm.direct_to_device').map((e) => e.content.message_id));
    await eventually(() => `the to-device EDUs arrive after the restart (have ${ids().join()})`, () => ids().length >= 3);
    expect(ids()).toEqual(['kept0', 'kept1', 'kept2']);
    // Typing is ephemeral: not kept across the restart.
    expect(c.txns.some((t) => t.edus.some((e) => e.edu_type === 'm.typing'))).toBe(false);
    await eventually('delivered EDUs are forgotten', async () => (await db.query('SELECT 1 FROM fanout_pending_edus')).rows.length === 0);
  });

  it('two senders share the destinations by shard; stop one and the other serves its destinations; nothing is lost', async () => {
    const all = [...crowd.servers.values()];
    const roomId = await roomWith(all);
    sentBy.clear();
    const a = await startSender('replica-a');
    const b = await startSender('replica-b');
    await eventually('both replicas hold shards, all 16 held', async () => {
      const owners = await shardLeaseOwners(db);
      return a.ownedShards().length > 0 && b.ownedShards().length > 0 && owners.size === 16 && a.ownedShards().length + b.ownedShards().length === 16;
    });
    expect(a.ownedShards().filter((s) => b.ownedShards().includes(s))).toEqual([]);
    const ofA = all.filter((s) => a.owns(s.name));
    expect(ofA.length).toBeGreaterThan(0);
    expect(ofA.length).toBeLessThan(all.length);

    const sent: string[] = [];
    for (let i = 0; i < 10; i++) sent.push(await pipeline.send(roomId, `@alice:${HS}`, `both ${i}`));
    await eventually('every server has the first ten', () => all.every((s) => sent.every((id) => received(s, roomId).includes(id))));
    for (const s of all) expect([...sentBy.get(s.name)!]).toEqual([a.owns(s.name) ? 'replica-a' : 'replica-b']);

    // A's servers are down when it stops: their backlog must move to B with the shards.
    for (const s of ofA) s.down = true;
    for (let i = 0; i < 10; i++) sent.push(await pipeline.send(roomId, `@alice:${HS}`, `during handover ${i}`));
    await a.stop();
    senders.splice(senders.indexOf(a), 1);
    for (const s of ofA) s.down = false;
    for (let i = 0; i < 10; i++) sent.push(await pipeline.send(roomId, `@alice:${HS}`, `after ${i}`));
    await eventually('B holds all 16 shards', () => b.ownedShards().length === 16);
    await eventually('every server has all 30', () => all.every((s) => sent.every((id) => received(s, roomId).includes(id))));
    for (const s of ofA) expect(sentBy.get(s.name)!.has('replica-b')).toBe(true);
    // Each server got every event in log order, none lost (a PDU in flight at the handover may come twice; receivers dedupe).
    for (const s of all) expect([...new Set(received(s, roomId))]).toEqual(sent);
  });

  it('a replica that dies without releasing its leases: they expire and the live replica takes its shards', async () => {
    const [s] = remotes(3, 4) as [RemoteServer];
    const roomId = await roomWith([s]);
    const shard = shardOf(s.name, 16);
    // A replica that announced itself and took the shard, then vanished (no heartbeat, no release).
    const nowMs = `(extract(epoch FROM clock_timestamp()) * 1000)::bigint`;
    await db.query(`INSERT INTO fanout_replicas (replica_id, expires_at_ms) VALUES ('ghost', ${nowMs} + 1500) ON CONFLICT (replica_id) DO UPDATE SET expires_at_ms = EXCLUDED.expires_at_ms`);
    await db.query(`INSERT INTO fanout_shard_leases (shard, owner, expires_at_ms) VALUES ($1, 'ghost', ${nowMs} + 1500) ON CONFLICT (shard) DO UPDATE SET owner = 'ghost', expires_at_ms = EXCLUDED.expires_at_ms`, [shard]);
    const live = await startSender('live');
    const id = await pipeline.send(roomId, `@alice:${HS}`, 'while the ghost holds the shard');
    expect(live.owns(s.name)).toBe(false);
    await eventually('the ghost lease expired and the live replica took the shard', () => live.owns(s.name));
    await eventually('the event arrives', () => received(s, roomId).includes(id));
  });

  it('room_joined_servers, kept by persistence, agrees with the memberships of every room after joins, kicks and leaves', async () => {
    const [a, b] = remotes(0, 2) as [RemoteServer, RemoteServer];
    const roomId = await roomWith([a, b]);
    await pipeline.remoteJoin(roomId, `@v:${a.name}`, remoteKey);
    await pipeline.membership(roomId, `@alice:${HS}`, 'kick', `@u:${a.name}`);
    await pipeline.membership(roomId, `@alice:${HS}`, 'ban', `@u:${b.name}`);
    const { rows: kept } = await db.query<{ room_nid: number; server_name: string; joined_members: number }>(
      'SELECT room_nid, server_name, joined_members FROM room_joined_servers ORDER BY 1, 2',
    );
    const { rows: derived } = await db.query<{ room_nid: number; server_name: string; joined_members: number }>(
      `SELECT room_nid, substring(user_id FROM position(':' IN user_id) + 1) AS server_name, count(*)::int AS joined_members
       FROM room_memberships WHERE membership = 'join' GROUP BY 1, 2 ORDER BY 1, 2`,
    );
    expect(kept).toEqual(derived);
    const room = (await db.query<{ room_nid: number }>('SELECT room_nid FROM rooms WHERE room_id = $1', [roomId])).rows[0]!.room_nid;
    // a keeps one member (v), b none after the ban; hs1 has alice.
    expect(kept.filter((r) => r.room_nid === room).map((r) => [r.server_name, r.joined_members])).toEqual([[a.name, 1], [HS, 1]].sort());
  });
});

/** The embedded default: PGlite and the in-process bus, the same sender and SQL. */
describe('fanout-sender on the embedded runtime (PGlite, in-process bus)', () => {
  it('delivers local events to the joined servers, survives a restart of the sender, and holds the leases alone', async () => {
    const db = await createDb({});
    const bus = createInProcessBus();
    const hsKey = generateSigningKey('emb');
    const crowd = await startRemoteCrowd(3, (o, k) => (o === HS && k === hsKey.keyId ? hsKey.publicKey : undefined), { prefix: 'e' });
    const client = new FederationClient({ serverName: HS, signingKey: hsKey, ca: crowd.ca.certPem, resolver: crowd.resolver, allowedCidrs: LOOPBACK });
    const settings: Partial<FanoutSenderSettings> = { leaseTtlMs: 1_000, backoffInitialMs: 50, backoffMaxMs: 200, pollIntervalMs: 200, shardCount: 8 };
    const newSender = (replicaId: string) =>
      new FanoutSender({ db, bus, serverName: HS, sender: new FederationTransactionSender(client, HS, 10_000), logger: quiet, settings: { ...settings, replicaId } });
    try {
      await migrate(db, [...eventLogMigrations, ...federationMigrations, ...fanoutSenderMigrations]);
      const pipeline = await startPipeline(db, bus, HS, hsKey);
      const servers = [...crowd.servers.values()];
      const roomId = await pipeline.createRoom(`@alice:${HS}`);
      for (const s of servers) await pipeline.remoteJoin(roomId, `@u:${s.name}`, generateSigningKey('x'));
      const received = (s: RemoteServer) => s.txns.flatMap((t) => t.pdus.filter((p) => p.room_id === roomId).map((p) => pduId(p)));
      let sender = newSender('embedded-1');
      await sender.start();
      expect(sender.ownedShards()).toHaveLength(8);
      const sent = [await pipeline.send(roomId, `@alice:${HS}`, 'one'), await pipeline.send(roomId, `@alice:${HS}`, 'two')];
      await eventually('every server has both', () => servers.every((s) => sent.every((id) => received(s).includes(id))));
      await sender.stop();
      sent.push(await pipeline.send(roomId, `@alice:${HS}`, 'while no sender runs'));
      sender = newSender('embedded-2');
      await sender.start();
      await eventually('every server has all three', () => servers.every((s) => sent.every((id) => received(s).includes(id))));
      for (const s of servers) expect(received(s)).toEqual(sent);
      await sender.stop();
      await pipeline.stop();
    } finally {
      client.close();
      await crowd.close();
      await bus.close();
      await db.close();
    }
  }, 120_000);
});
