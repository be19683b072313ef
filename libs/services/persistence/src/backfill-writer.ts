/**
 * persistence.backfill: stores the checked events of a /backfill answer below every stream
 * position (libs/storage/src/event-log/backfill.ts), with none of an append's other effects:
 * no forward extremities, current state, memberships, room sequence, fanout destinations or
 * stream.events notification. Contract: libs/bus/src/contracts/backfill.ts.
 */
import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import {
  BusError, PERSISTENCE_BACKFILL, handleOn,
  type AppendEvent, type BusTransport, type PersistBackfillReply, type PersistBackfillRequest, type Subscription,
} from '@tessera/bus';
import { BUS, DB } from '@tessera/http';
import { appendBackfill, type Db } from '@tessera/storage';
import { PERSISTENCE_QUEUE } from './event-writer.js';

/** More than a /backfill answer (100) plus its fetched auth events ever holds. */
const MAX_EVENTS = 1000;

export async function persistBackfill(db: Db, req: PersistBackfillRequest): Promise<PersistBackfillReply> {
  const bad = (why: string) => new BusError('M_BAD_JSON', `persistence.backfill: ${why}`);
  if (!req || typeof req !== 'object' || typeof req.roomId !== 'string') throw bad('roomId must be a string');
  if (!Array.isArray(req.events) || !Array.isArray(req.outliers)) throw bad('events and outliers must be lists');
  if (req.events.length + req.outliers.length > MAX_EVENTS) throw bad(`at most ${MAX_EVENTS} events per request`);
  const check = (e: AppendEvent) => {
    if (typeof e?.eventId !== 'string' || typeof e.type !== 'string' || typeof e.sender !== 'string' || typeof e.json !== 'object' || e.json === null) {
      throw bad('each event needs eventId, type, sender and json');
    }
    if (!Array.isArray(e.prevEvents) || !Array.isArray(e.authEvents)) throw bad(`event ${e.eventId}: prevEvents and authEvents must be lists`);
    if (!Number.isSafeInteger(e.depth) || !Number.isSafeInteger(e.originServerTs)) throw bad(`event ${e.eventId}: depth and originServerTs must be integers`);
    if ((e.json as { room_id?: unknown }).room_id !== undefined && (e.json as { room_id?: unknown }).room_id !== req.roomId) throw bad(`event ${e.eventId} is not in room ${req.roomId}`);
  };
  req.events.forEach(check);
  req.outliers.forEach(check);
  if (req.events.length === 0 && req.outliers.length === 0) return { stored: [], withoutPosition: 0, skipped: 0 };
  try {
    return await appendBackfill(db, { roomId: req.roomId, events: req.events, outliers: req.outliers });
  } catch (err) {
    if (err instanceof Error && /is not held here/.test(err.message)) throw new BusError('M_NOT_FOUND', err.message);
    throw err;
  }
}

/** Answers persistence.backfill for the life of the service module (queue group: any replica). */
@Injectable()
export class BackfillWriterService implements OnModuleInit, OnModuleDestroy {
  private subscription: Subscription | undefined;

  constructor(@Inject(DB) private readonly db: Db, @Inject(BUS) private readonly bus: BusTransport) {}

  async onModuleInit(): Promise<void> {
    this.subscription = await handleOn(this.bus, PERSISTENCE_BACKFILL, (req) => persistBackfill(this.db, req), { queue: PERSISTENCE_QUEUE });
  }

  async onModuleDestroy(): Promise<void> {
    await this.subscription?.unsubscribe();
    this.subscription = undefined;
  }
}
