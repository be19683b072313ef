import { randomUUID } from 'node:crypto';
import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { publishOn, subscribeOn, Subjects, type BusTransport, type Subscription } from '@tessera/bus';
import { BUS, LOGGER } from '@tessera/http';
import type { Logger } from 'pino';
import { StreamChanges } from './stream-changes.js';

/**
 * Carries StreamChanges between client-api replicas over `client.changes`: what one replica
 * changes (account data, to-device, device lists, receipts, typing, presence; revoked tokens;
 * key counts) wakes the /syncs and drops the stale caches of the others. A lost message costs
 * latency (the /sync answers at its next wake or timeout) and, for a revoked token, at most
 * the token cache's lifetime on the replica that missed it.
 */
@Injectable()
export class ClientChangesRelay implements OnModuleInit, OnModuleDestroy {
  private readonly origin = randomUUID();
  private subscription: Subscription | undefined;

  constructor(
    @Inject(BUS) private readonly bus: BusTransport,
    @Inject(StreamChanges) private readonly changes: StreamChanges,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async onModuleInit(): Promise<void> {
    this.subscription = await subscribeOn(this.bus, Subjects.clientChanges, (message) => {
      if (message.origin !== this.origin) this.changes.receive(message);
    });
    this.changes.relayTo((message) => {
      publishOn(this.bus, Subjects.clientChanges, { origin: this.origin, ...message }).catch((err) =>
        this.logger.warn({ err }, 'publishing client.changes failed: other replicas learn of it at their next sync'),
      );
    });
  }

  async onModuleDestroy(): Promise<void> {
    this.changes.relayTo(undefined);
    await this.subscription?.unsubscribe();
  }
}
