import { Module } from '@nestjs/common';
import { BackfillWriterService } from './backfill-writer.js';
import { EventWriterService } from './event-writer.provider.js';

/**
 * persistence: the only writer of the event log and its projections (DESIGN).
 * It serves no HTTP routes: its process exposes only the health probes. Its bus handlers and
 * providers are added here as they are built.
 */
@Module({ providers: [EventWriterService, BackfillWriterService] })
export class PersistenceModule {}
