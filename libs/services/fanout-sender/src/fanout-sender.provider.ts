import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { Logger } from 'pino';
import type { BusTransport } from '@tessera/bus';
import type { HomeserverConfig, LoadedSigningKeys } from '@tessera/config';
import { createFederationClient, readFederationEnvironment, type FederationClient } from '@tessera/federation-client';
import { BUS, CONFIG, DB, LOGGER, SIGNING_KEYS } from '@tessera/http';
import type { Db } from '@tessera/storage';
import { FanoutSender } from './fanout-sender.js';
import { resolveSettings, settingsFromEnvironment } from './options.js';
import { FederationTransactionSender } from './transaction-sender.js';

/** Runs the FanoutSender for the life of the service module. */
@Injectable()
export class FanoutSenderService implements OnModuleInit, OnModuleDestroy {
  readonly sender: FanoutSender;
  private readonly client: FederationClient;

  constructor(
    @Inject(CONFIG) config: HomeserverConfig,
    @Inject(SIGNING_KEYS) keys: LoadedSigningKeys,
    @Inject(DB) db: Db,
    @Inject(BUS) bus: BusTransport,
    @Inject(LOGGER) logger: Logger,
  ) {
    const settings = resolveSettings(settingsFromEnvironment());
    this.client = createFederationClient(config.serverName, keys.current, readFederationEnvironment());
    this.sender = new FanoutSender({
      db,
      bus,
      serverName: config.serverName,
      sender: new FederationTransactionSender(this.client, config.serverName, settings.requestTimeoutMs),
      logger,
      settings,
    });
  }

  onModuleInit(): Promise<void> {
    return this.sender.start();
  }

  async onModuleDestroy(): Promise<void> {
    await this.sender.stop();
    this.client.close();
  }
}
