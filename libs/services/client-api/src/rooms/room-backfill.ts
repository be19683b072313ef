import { Inject, Injectable } from '@nestjs/common';
import { ROOMSERVER_BACKFILL, requestOn, type BusTransport } from '@tessera/bus';
import { BUS, DB } from '@tessera/http';
import { getBackwardExtremities, type Db } from '@tessera/storage';

/** room-server gives a backfill 10 s; the bus request waits a little longer. */
const BACKFILL_TIMEOUT_MS = 12_000;

/**
 * Asks room-server (roomserver.backfill) for a room's history from before this server joined,
 * when /messages pages past the start of what is held here and the room's earliest events cite
 * events not held (backward extremities). One request per room at a time in this process (a
 * second /messages of the room waits for the first one's). Any failure counts as "nothing
 * stored": /messages then answers with what it has.
 */
@Injectable()
export class RoomBackfill {
  private readonly inFlight = new Map<string, Promise<number>>();

  constructor(@Inject(DB) private readonly db: Db, @Inject(BUS) private readonly bus: BusTransport) {}

  /** The number of events stored before the room's start (0: nothing more to page into). */
  backfill(roomId: string, limit: number): Promise<number> {
    const running = this.inFlight.get(roomId);
    if (running) return running;
    const run = this.ask(roomId, limit).finally(() => this.inFlight.delete(roomId));
    this.inFlight.set(roomId, run);
    return run;
  }

  private async ask(roomId: string, limit: number): Promise<number> {
    try {
      if ((await getBackwardExtremities(this.db, roomId, 1)).length === 0) return 0;
      const reply = await requestOn(this.bus, ROOMSERVER_BACKFILL, { roomId, limit: Math.min(100, Math.max(1, limit)) }, { timeoutMs: BACKFILL_TIMEOUT_MS });
      return typeof reply?.stored === 'number' ? reply.stored : 0;
    } catch {
      return 0;
    }
  }
}
