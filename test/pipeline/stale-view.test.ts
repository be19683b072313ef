/**
 * A replica's cached room view can predate another replica's appends (a room's partition moved
 * between replicas, as in a rolling restart). A send that this view refuses is decided again on
 * the stored room before the refusal is final. Two real room-server replicas sharing PGlite and
 * the in-process bus, each asked directly.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { BusError, createInProcessBus, type CreateRoomReply, type EventIdReply } from '@tessera/bus';
import { generateSigningKey } from '@tessera/protocol';
import { createDb, eventLogMigrations, migrate } from '@tessera/storage';
import { EventWriter } from '@tessera/persistence-service';
import { RoomServer } from '@tessera/room-server-service';

describe('a replica whose cached view of a room is stale', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('decides a send it would refuse again on the stored room (a join made through another replica)', async () => {
    const db = await createDb({});
    await migrate(db, eventLogMigrations);
    const bus = createInProcessBus();
    const writer = new EventWriter(db, bus);
    await writer.start();
    const key = generateSigningKey();
    const a = new RoomServer({ db, bus, serverName: 'hs.test', signingKey: key });
    const b = new RoomServer({ db, bus, serverName: 'hs.test', signingKey: key });
    cleanup.push(() => db.close(), () => bus.close(), () => writer.stop());

    const { roomId } = (await a.handle({ op: 'createRoom', sender: '@alice:hs.test', preset: 'public_chat' })) as CreateRoomReply;
    // Replica a caches the room's view; bob joins through replica b, which a never hears of.
    await a.handle({ op: 'sendEvent', roomId, sender: '@alice:hs.test', type: 'm.room.message', content: { body: 'before' } });
    await b.handle({ op: 'membership', action: 'join', roomId, sender: '@bob:hs.test' });

    const sent = (await a.handle({ op: 'sendEvent', roomId, sender: '@bob:hs.test', type: 'm.room.message', content: { body: 'hello' } })) as EventIdReply;
    expect(sent.eventId).toMatch(/^\$/);
    // A refusal that the stored room confirms is still a refusal.
    const refused = await a.handle({ op: 'sendEvent', roomId, sender: '@carol:hs.test', type: 'm.room.message', content: { body: 'not joined' } }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(BusError);
    expect((refused as BusError).code).toBe('M_FORBIDDEN');
  });
});
