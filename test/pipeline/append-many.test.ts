/**
 * room-server hands persistence the appends of one event-loop turn in one message
 * (persistence.append-many), and falls back to one message per append when persistence does
 * not answer that subject (an older version during a rolling upgrade). Real room-server and
 * persistence on PGlite and the in-process bus.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  createInProcessBus, PERSISTENCE_APPEND, PERSISTENCE_APPEND_MANY, ROOMSERVER_INPUT,
  type AppendReply, type AppendRequest, type BusTransport, type CreateRoomReply, type EventIdReply, type RoomServerRequest,
} from '@tessera/bus';
import { generateSigningKey } from '@tessera/protocol';
import { createDb, eventLogMigrations, getRoomTimeline, migrate, type Db } from '@tessera/storage';
import { EventWriter, PERSISTENCE_QUEUE } from '@tessera/persistence-service';
import { RoomServer } from '@tessera/room-server-service';

const ROOMS = 12;
const SENDS_PER_ROOM = 5;

describe('room-server appends to persistence, several rooms per message', () => {
  let cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.reverse()) await c();
    cleanup = [];
  });

  async function start(persistenceAnswersMany: boolean): Promise<{ db: Db; bus: BusTransport; messages: { one: number; many: number; appendsInMany: number } }> {
    const db = await createDb({});
    await migrate(db, eventLogMigrations);
    const bus = createInProcessBus();
    const writer = new EventWriter(db, bus);
    const messages = { one: 0, many: 0, appendsInMany: 0 };
    // The writer's own handlers, counted: an older persistence answers persistence.append only.
    await bus.handle<AppendRequest, AppendReply>(PERSISTENCE_APPEND, (req) => {
      messages.one++;
      return writer.appendForBus(req);
    }, { queue: PERSISTENCE_QUEUE });
    if (persistenceAnswersMany) {
      await bus.handle(PERSISTENCE_APPEND_MANY, (req: { appends: AppendRequest[] }) => {
        messages.many++;
        messages.appendsInMany += req.appends.length;
        return writer.appendManyForBus(req);
      }, { queue: PERSISTENCE_QUEUE });
    }
    const rs = new RoomServer({ db, bus, serverName: 'hs.test', signingKey: generateSigningKey(), bundleAppends: true });
    await rs.start();
    cleanup.push(() => db.close(), () => bus.close(), () => writer.stop(), () => rs.stop());
    return { db, bus, messages };
  }

  async function sendEverywhere(bus: BusTransport): Promise<{ rooms: string[]; sent: string[] }> {
    const ask = <T>(req: RoomServerRequest) => bus.request<RoomServerRequest, T>(ROOMSERVER_INPUT, req, { timeoutMs: 60_000 });
    const rooms = await Promise.all(Array.from({ length: ROOMS }, () => ask<CreateRoomReply>({ op: 'createRoom', sender: '@alice:hs.test' })));
    const sent: string[] = [];
    for (let n = 0; n < SENDS_PER_ROOM; n++) {
      // Every room at once: their appends are asked for in the same turns.
      const replies = await Promise.all(rooms.map(({ roomId }, r) =>
        ask<EventIdReply>({ op: 'sendEvent', roomId, sender: '@alice:hs.test', type: 'm.room.message', content: { body: `m${n}` }, txn: { deviceId: 'D', txnId: `${r}-${n}` } })));
      sent.push(...replies.map((x) => x.eventId));
    }
    return { rooms: rooms.map((r) => r.roomId), sent };
  }

  it('sends the appends of many rooms together, each stored once', async () => {
    const { db, bus, messages } = await start(true);
    const { rooms, sent } = await sendEverywhere(bus);
    expect(messages.many).toBeGreaterThan(0);
    // Fewer messages than appends: rooms shared messages.
    expect(messages.many + messages.one).toBeLessThan(messages.appendsInMany + messages.one);
    for (const roomId of rooms) {
      const timeline = await getRoomTimeline(db, roomId, { direction: 'b', limit: 100 });
      expect(timeline.filter((e) => e.type === 'm.room.message')).toHaveLength(SENDS_PER_ROOM);
    }
    expect(new Set(sent).size).toBe(ROOMS * SENDS_PER_ROOM);
  }, 120_000);

  it('falls back to one message per append when persistence does not answer append_many', async () => {
    const { db, bus, messages } = await start(false);
    const { rooms } = await sendEverywhere(bus);
    expect(messages.many).toBe(0);
    expect(messages.one).toBeGreaterThanOrEqual(ROOMS * (SENDS_PER_ROOM + 1));
    for (const roomId of rooms) {
      const timeline = await getRoomTimeline(db, roomId, { direction: 'b', limit: 100 });
      expect(timeline.filter((e) => e.type === 'm.room.message')).toHaveLength(SENDS_PER_ROOM);
    }
  }, 120_000);
});
