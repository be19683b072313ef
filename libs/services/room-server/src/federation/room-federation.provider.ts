import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { BusTransport } from '@tessera/bus';
import type { HomeserverConfig, LoadedSigningKeys } from '@tessera/config';
import { createFederationClient, createKeyRing, keyStoreOver, readFederationEnvironment, type FederationClient } from '@tessera/federation-client';
import { BUS, CONFIG, DB, LOGGER, SIGNING_KEYS } from '@tessera/http';
import { getStoredServerKey, putStoredServerKeys, type Db } from '@tessera/storage';
import type { Logger } from 'pino';
import { RoomServerService } from '../room-server.provider.js';
import { RoomBackfill } from './backfill.js';
import { RoomFederation } from './room-federation.js';

/**
 * Runs the room-server's federation side (roomserver.federation) beside the decider, with an
 * outbound FederationClient configured from the environment (see @tessera/federation-client
 * from-environment.ts) and a KeyRing over the server_keys table.
 */
@Injectable()
export class RoomFederationService implements OnModuleInit, OnModuleDestroy {
  readonly federation: RoomFederation;
  /** roomserver.backfill: history from before this server joined, with the same client and key ring. */
  readonly backfill: RoomBackfill;
  private readonly client: FederationClient;

  constructor(
    @Inject(RoomServerService) roomServer: RoomServerService,
    @Inject(DB) db: Db,
    @Inject(BUS) bus: BusTransport,
    @Inject(CONFIG) config: HomeserverConfig,
    @Inject(SIGNING_KEYS) keys: LoadedSigningKeys,
    @Inject(LOGGER) logger: Logger,
  ) {
    const settings = readFederationEnvironment();
    this.client = createFederationClient(config.serverName, keys.current, settings);
    const keyRing = createKeyRing(this.client, settings, keyStoreOver((s, k) => getStoredServerKey(db, s, k), (k) => putStoredServerKeys(db, k)));
    keyRing.addKeys(keys.all.map((k) => ({
      serverName: config.serverName, keyId: k.keyId, publicKey: k.publicKey, publicKeyBase64: k.publicKeyBase64, validUntilTs: Number.MAX_SAFE_INTEGER, fetchedAt: Date.now(),
    })));
    this.federation = new RoomFederation({
      db, bus, decider: roomServer.roomServer.decider, partitions: roomServer.roomServer.partitions, serverName: config.serverName, signingKey: keys.current, client: this.client, keyRing,
      log: (msg, details) => logger.info(details ?? {}, msg),
    });
    roomServer.roomServer.remoteInvite = (pdu, rv) => this.federation.inviteRemote(pdu, rv);
    this.backfill = new RoomBackfill({
      db, bus, serverName: config.serverName, client: this.client, verifier: this.federation.verifier,
      log: (msg, details) => logger.info(details ?? {}, msg),
    });
    roomServer.roomServer.remoteJoin = (roomId, userId, content, servers) => this.federation.joinThroughServers(roomId, userId, content, servers);
  }

  async onModuleInit(): Promise<void> {
    await this.federation.start();
    await this.backfill.start();
  }

  async onModuleDestroy(): Promise<void> {
    await this.backfill.stop();
    await this.federation.stop();
    this.client.close();
  }
}
