/**
 * What every federation-ingress controller shares: the outbound client and KeyRing (remote
 * keys, over the server_keys table), the PDU verifier, and request authentication.
 */
import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import type { HomeserverConfig, LoadedSigningKeys } from '@tessera/config';
import {
  createFederationClient, createKeyRing, FederationAuthError, keyStoreOver, PduVerifier, readFederationEnvironment, verifyRequest,
  type FederationClient, type KeyRing,
} from '@tessera/federation-client';
import { CONFIG, DB, MatrixError, SIGNING_KEYS } from '@tessera/http';
import { getStoredServerKey, putStoredServerKeys, type Db } from '@tessera/storage';

@Injectable()
export class FederationContext implements OnModuleDestroy {
  readonly client: FederationClient;
  readonly keyRing: KeyRing;
  readonly verifier: PduVerifier;
  readonly serverName: string;

  constructor(
    @Inject(CONFIG) readonly config: HomeserverConfig,
    @Inject(SIGNING_KEYS) readonly keys: LoadedSigningKeys,
    @Inject(DB) readonly db: Db,
  ) {
    this.serverName = config.serverName;
    const settings = readFederationEnvironment();
    this.client = createFederationClient(config.serverName, keys.current, settings);
    this.keyRing = createKeyRing(this.client, settings, keyStoreOver((s, k) => getStoredServerKey(db, s, k), (k) => putStoredServerKeys(db, k)));
    // Our own keys never need fetching (events we signed come back in send_join answers).
    this.keyRing.addKeys(keys.all.map((k) => ({
      serverName: config.serverName, keyId: k.keyId, publicKey: k.publicKey, publicKeyBase64: k.publicKeyBase64, validUntilTs: Number.MAX_SAFE_INTEGER, fetchedAt: Date.now(),
    })));
    this.verifier = new PduVerifier(this.keyRing);
  }

  /**
   * Authenticates a federation request by its X-Matrix Authorization header, over the raw
   * request URI and the parsed body. Returns the origin; refuses with 401 M_UNAUTHORIZED
   * before the endpoint touches anything.
   */
  async authenticate(req: FastifyRequest): Promise<string> {
    try {
      const verified = await verifyRequest(
        { method: req.method, uri: req.raw.url ?? req.url, header: req.headers.authorization, content: req.body, destination: this.serverName },
        this.keyRing.keyLookup(),
      );
      return verified.origin;
    } catch (err) {
      if (err instanceof FederationAuthError) throw new MatrixError(err.status, err.errcode, err.message);
      throw err;
    }
  }

  onModuleDestroy(): void {
    this.client.close();
  }
}
