import { afterEach, describe, expect, it } from 'vitest';
import {
  createInProcessBus, createNatsBus, partitionOwner, requestForRoom, roomPartition, ROOM_PARTITIONS,
  type BusTransport,
} from '@tessera/bus';
import { NATS_URL, services, uniqueName } from '@tessera/testing';
import { PartitionOwnership } from './partition-ownership.js';

const SUBJECT = 'roomserver.input';
const HEARTBEAT_MS = 100;

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A replica: its ownership plus a handler that answers with its id (and a plain queue-group handler, as RoomServer has). */
async function replica(bus: BusTransport, id: string) {
  const ownership = new PartitionOwnership(bus, { replicaId: id, heartbeatMs: HEARTBEAT_MS });
  const plain = await bus.handle(SUBJECT, async () => ({ by: id, routed: false }), { queue: 'room-server' });
  await ownership.start();
  await ownership.serve(SUBJECT, async () => ({ by: id, routed: true }));
  return {
    ownership,
    async stop() {
      await ownership.stop();
      await plain.unsubscribe();
    },
  };
}

function roomsByPartition(): string[] {
  // One room id per partition, found by trying ids.
  const rooms: string[] = [];
  for (let i = 0; rooms.filter(Boolean).length < ROOM_PARTITIONS; i++) {
    const id = `!room${i}:example.org`;
    rooms[roomPartition(id)] ??= id;
  }
  return rooms;
}

function suite(name: string, skip: boolean, open: () => Promise<BusTransport[]>) {
  describe.skipIf(skip)(`room partitions (${name})`, () => {
    let buses: BusTransport[] = [];
    afterEach(async () => {
      await Promise.all(buses.map((b) => b.close()));
      buses = [];
    });

    it('replicas split the partitions between them, every partition served once; a room always reaches its owner', async () => {
      buses = await open();
      const [a, b, client] = buses as [BusTransport, BusTransport, BusTransport];
      const ra = await replica(a, 'replica-a');
      const rb = await replica(b, 'replica-b');
      const split = () => {
        const oa = ra.ownership.ownedPartitions();
        const ob = rb.ownership.ownedPartitions();
        return oa.length + ob.length === ROOM_PARTITIONS && oa.every((p) => !ob.includes(p));
      };
      await until(split, 'the replicas to split the partitions');
      expect(ra.ownership.ownedPartitions().length).toBeGreaterThan(0);
      expect(rb.ownership.ownedPartitions().length).toBeGreaterThan(0);
      const rooms = roomsByPartition();
      for (let p = 0; p < ROOM_PARTITIONS; p++) {
        const reply = await requestForRoom<object, { by: string; routed: boolean }>(client, SUBJECT, rooms[p], {});
        expect(reply).toEqual({ by: partitionOwner(p, ['replica-a', 'replica-b']), routed: true });
      }
      // Without a room (createRoom), any replica through the plain subject.
      expect((await requestForRoom<object, { routed: boolean }>(client, SUBJECT, undefined, {})).routed).toBe(false);

      // A replica that stops hands its partitions over at once (its leaving announcement).
      await rb.stop();
      await until(() => ra.ownership.ownedPartitions().length === ROOM_PARTITIONS, 'the survivor to own every partition');
      for (const room of rooms) {
        expect(await requestForRoom<object, { by: string }>(client, SUBJECT, room, {})).toEqual({ by: 'replica-a', routed: true });
      }
      await ra.stop();
    });

    it('a partition nobody serves falls back to any replica of the plain subject', async () => {
      buses = await open();
      const [a, , client] = buses as [BusTransport, BusTransport, BusTransport];
      const plain = await a.handle(SUBJECT, async () => ({ routed: false }), { queue: 'room-server' });
      expect(await requestForRoom(client, SUBJECT, '!lonely:example.org', {})).toEqual({ routed: false });
      await plain.unsubscribe();
    });

    it('a replica that vanishes without a word (kill -9) expires and its partitions move', async () => {
      buses = await open();
      const [a, b, client] = buses as [BusTransport, BusTransport, BusTransport];
      const ra = await replica(a, 'replica-a');
      await replica(b, 'replica-b');
      await until(() => ra.ownership.ownedPartitions().length < ROOM_PARTITIONS, 'the replicas to split the partitions');
      // b's connection closes (a crash): no leaving announcement.
      await b.close();
      await until(() => ra.ownership.ownedPartitions().length === ROOM_PARTITIONS, 'the expiry of the silent replica');
      const room = roomsByPartition()[0]!;
      expect(await requestForRoom(client, SUBJECT, room, {})).toEqual({ by: 'replica-a', routed: true });
      await ra.stop();
    });
  });
}

suite('in-process bus', false, async () => {
  const bus = createInProcessBus();
  // One transport in one process: three handles on it stand for three processes.
  return [bus, createInProcessBusView(bus), createInProcessBusView(bus)];
});

suite('NATS', !services.nats, async () => {
  const prefix = uniqueName('parts');
  return Promise.all(['a', 'b', 'client'].map((n) => createNatsBus({ url: NATS_URL, prefix, name: `partitions-${n}` })));
});

/** The in-process bus has one lifetime: a view whose close() only drops what was subscribed through it. */
function createInProcessBusView(bus: BusTransport): BusTransport {
  const subs: Array<{ unsubscribe(): Promise<void> }> = [];
  let closed = false;
  return {
    request: (s, p, o) => bus.request(s, p, o),
    // A closed connection says nothing more.
    publish: async (s, p) => (closed ? undefined : bus.publish(s, p)),
    publishDurable: (s, p) => bus.publishDurable(s, p),
    handle: async (s, h, o) => {
      const sub = await bus.handle(s, h, o);
      subs.push(sub);
      return sub;
    },
    subscribe: async (s, h, o) => {
      const sub = await bus.subscribe(s, h, o);
      subs.push(sub);
      return sub;
    },
    consumeDurable: async (s, h, o) => {
      const sub = await bus.consumeDurable(s, h, o);
      subs.push(sub);
      return sub;
    },
    close: async () => {
      closed = true;
      for (const s of subs.splice(0)) await s.unsubscribe();
    },
  } as BusTransport;
}
