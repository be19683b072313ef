/**
 * Outbound federation settings from the environment, shared by every service that talks to
 * other servers (federation-ingress fetching keys, room-server joining rooms, fanout-sender):
 *
 *   FEDERATION_CA_FILE        PEM file of CA certificate(s) to trust instead of the system CAs
 *                             (test deployments with their own CA).
 *   FEDERATION_ALLOWED_CIDRS  comma-separated CIDRs that may be reached although private or
 *                             loopback (tests: 127.0.0.0/8,::1/128). Empty in production.
 *   FEDERATION_WELL_KNOWN_PORT port of the first .well-known request (443 by default; tests).
 *   FEDERATION_NOTARIES       comma-separated server names of trusted key notaries.
 *   FEDERATION_TIMEOUT_MS     deadline of one outbound exchange (default 30 s).
 */
import { readFileSync } from 'node:fs';
import type { SigningKey } from '@tessera/protocol';
import { FederationClient, type FederationClientOptions } from './federation-client.js';
import { KeyRing, type KeyStore } from './key-ring.js';
import type { ServerKey } from './server-keys.js';

export interface FederationEnvironment {
  ca?: string;
  allowedCidrs: string[];
  wellKnownPort?: number;
  notaries: string[];
  timeoutMs?: number;
}

function list(v: string | undefined): string[] {
  return (v ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
}

export function readFederationEnvironment(env: NodeJS.ProcessEnv = process.env): FederationEnvironment {
  const caFile = env.FEDERATION_CA_FILE?.trim();
  let ca: string | undefined;
  if (caFile) {
    try {
      ca = readFileSync(caFile, 'utf8');
    } catch (err) {
      throw new Error(`FEDERATION_CA_FILE ${caFile} cannot be read: ${(err as Error).message}`);
    }
  }
  const port = env.FEDERATION_WELL_KNOWN_PORT ? Number(env.FEDERATION_WELL_KNOWN_PORT) : undefined;
  if (port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65536)) throw new Error('FEDERATION_WELL_KNOWN_PORT must be a port number');
  const timeoutMs = env.FEDERATION_TIMEOUT_MS ? Number(env.FEDERATION_TIMEOUT_MS) : undefined;
  if (timeoutMs !== undefined && !(Number.isInteger(timeoutMs) && timeoutMs > 0)) throw new Error('FEDERATION_TIMEOUT_MS must be a positive integer');
  return { ca, allowedCidrs: list(env.FEDERATION_ALLOWED_CIDRS), wellKnownPort: port, notaries: list(env.FEDERATION_NOTARIES), timeoutMs };
}

export function createFederationClient(
  serverName: string,
  signingKey: SigningKey,
  settings: FederationEnvironment = readFederationEnvironment(),
  extra: Partial<FederationClientOptions> = {},
): FederationClient {
  return new FederationClient({
    serverName,
    signingKey,
    ca: settings.ca,
    allowedCidrs: settings.allowedCidrs,
    wellKnownPort: settings.wellKnownPort,
    timeoutMs: settings.timeoutMs,
    ...extra,
  });
}

/** Plain stored-key shape (as @tessera/storage keeps it), so this lib need not import storage. */
export interface PlainStoredKey {
  serverName: string;
  keyId: string;
  publicKeyBase64: string;
  validUntilTs: number;
  expiredTs: number | null;
  fetchedTs: number;
}

/** Adapts get/put functions over a table to the KeyRing's KeyStore. */
export function keyStoreOver(
  get: (serverName: string, keyId: string) => Promise<PlainStoredKey | null>,
  put: (keys: PlainStoredKey[]) => Promise<void>,
): KeyStore {
  return {
    async get(serverName, keyId) {
      const k = await get(serverName, keyId);
      if (!k) return undefined;
      const key: ServerKey = {
        serverName: k.serverName,
        keyId: k.keyId,
        publicKey: new Uint8Array(Buffer.from(k.publicKeyBase64, 'base64')),
        publicKeyBase64: k.publicKeyBase64,
        validUntilTs: k.validUntilTs,
        fetchedAt: k.fetchedTs,
      };
      if (k.expiredTs !== null) key.expiredTs = k.expiredTs;
      return key;
    },
    put(keys) {
      return put(keys.map((k) => ({
        serverName: k.serverName, keyId: k.keyId, publicKeyBase64: k.publicKeyBase64, validUntilTs: k.validUntilTs, expiredTs: k.expiredTs ?? null, fetchedTs: k.fetchedAt,
      })));
    },
  };
}

/** A KeyRing for a service: direct fetching, the configured notaries, the given store. */
export function createKeyRing(client: FederationClient, settings: FederationEnvironment, store?: KeyStore): KeyRing {
  return new KeyRing({ client, store, notaries: settings.notaries.map((serverName) => ({ serverName })) });
}
