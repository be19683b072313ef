import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { Logger } from 'pino';
import type { BusTransport } from '@tessera/bus';
import { BUS, DB, LOGGER } from '@tessera/http';
import type { Db } from '@tessera/storage';
import { EventWriter } from './event-writer.js';

/** Runs the EventWriter for the life of the service module. */
@Injectable()
export class EventWriterService implements OnModuleInit, OnModuleDestroy {
  readonly writer: EventWriter;

  constructor(@Inject(DB) db: Db, @Inject(BUS) bus: BusTransport, @Inject(LOGGER) logger: Logger) {
    this.writer = new EventWriter(db, bus, logger);
  }

  onModuleInit(): Promise<void> {
    return this.writer.start();
  }

  onModuleDestroy(): Promise<void> {
    return this.writer.stop();
  }
}
