import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { BusTransport } from '@tessera/bus';
import type { HomeserverConfig, LoadedSigningKeys } from '@tessera/config';
import { BUS, CONFIG, DB, LOGGER, SIGNING_KEYS } from '@tessera/http';
import type { Logger } from 'pino';
import type { Db } from '@tessera/storage';
import { RoomServer } from './room-server.js';

/** Runs the RoomServer (roomserver.input handler) for the life of the service module. */
@Injectable()
export class RoomServerService implements OnModuleInit, OnModuleDestroy {
  readonly roomServer: RoomServer;

  constructor(
    @Inject(DB) db: Db,
    @Inject(BUS) bus: BusTransport,
    @Inject(CONFIG) config: HomeserverConfig,
    @Inject(SIGNING_KEYS) keys: LoadedSigningKeys,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.roomServer = new RoomServer({
      db, bus, serverName: config.serverName, signingKey: keys.current,
      // Over NATS each message costs; in one process it does not (see Decider).
      bundleAppends: config.nats.url !== undefined,
      onError: (err) => logger.warn({ err }, 'room partition announcement failed'),
    });
  }

  onModuleInit(): Promise<void> {
    return this.roomServer.start();
  }

  onModuleDestroy(): Promise<void> {
    return this.roomServer.stop();
  }
}
