/**
 * Remote servers' verify keys: from memory, then an optional store, then the server itself
 * (GET /_matrix/key/v2/server), then trusted notaries (/_matrix/key/v2/query). A key is
 * returned only if it is valid at least until the time the caller needs (`minimumValidUntilTs`:
 * now for request authentication, the event's origin_server_ts for room versions that enforce
 * key validity, 0 for older room versions); a cached key that falls short is refetched.
 */
import { decodeBase64 } from '@tessera/protocol';
import type { FederationRequest } from './federation-client.js';
import { hasNotarySignature, parseServerKeys, type ServerKey } from './server-keys.js';
import type { VerifyKeyLookup } from './x-matrix.js';

/** Persistent cache behind the in-memory one (e.g. a table in PostgreSQL). */
export interface KeyStore {
  get(serverName: string, keyId: string): Promise<ServerKey | undefined>;
  put(keys: readonly ServerKey[]): Promise<void>;
}

export interface NotaryServer {
  serverName: string;
  /**
   * The notary's own verify keys (key id -> unpadded base64), pinned in the configuration.
   * When absent, they are fetched directly from the notary (trust on first use).
   */
  verifyKeys?: Record<string, string>;
}

/** What the KeyRing needs of a FederationClient. */
export interface KeyRequester {
  request<T = unknown>(req: FederationRequest): Promise<T>;
}

export interface KeyRingOptions {
  client: KeyRequester;
  notaries?: readonly NotaryServer[];
  /** Ask the server itself first (default true). */
  fetchDirect?: boolean;
  store?: KeyStore;
  now?: () => number;
  /**
   * After a fetch for a server, do not fetch again for it within this time when a key is still
   * missing (default 30 s): a flood of requests naming unknown key ids must not become a flood
   * of outbound fetches.
   */
  refetchCooldownMs?: number;
  /** Told about each failed fetch (for logs). */
  onFetchError?: (serverName: string, source: string, error: Error) => void;
}

export interface KeyQuery {
  serverName: string;
  keyId: string;
  /** Default: now. */
  minimumValidUntilTs?: number;
}

function cacheKey(serverName: string, keyId: string): string {
  return `${serverName}\u0000${keyId}`;
}

export class KeyRing {
  private readonly client: KeyRequester;
  private readonly notaries: readonly NotaryServer[];
  private readonly fetchDirect: boolean;
  private readonly store?: KeyStore;
  private readonly now: () => number;
  private readonly cooldownMs: number;
  private readonly onFetchError?: KeyRingOptions['onFetchError'];
  private readonly keys = new Map<string, ServerKey>();
  private readonly lastFetch = new Map<string, number>();
  private readonly inflight = new Map<string, Promise<void>>();
  /** Pinned notary keys, by notary name. */
  private readonly pinned = new Map<string, Map<string, Uint8Array>>();

  constructor(options: KeyRingOptions) {
    this.client = options.client;
    this.notaries = options.notaries ?? [];
    this.fetchDirect = options.fetchDirect ?? true;
    this.store = options.store;
    this.now = options.now ?? Date.now;
    this.cooldownMs = options.refetchCooldownMs ?? 30_000;
    this.onFetchError = options.onFetchError;
    for (const n of this.notaries) {
      if (!n.verifyKeys) continue;
      const keys = new Map<string, Uint8Array>();
      for (const [keyId, b64] of Object.entries(n.verifyKeys)) keys.set(keyId, decodeBase64(b64));
      this.pinned.set(n.serverName, keys);
    }
  }

  /** Adds keys known by other means (our own keys, keys from a trusted configuration). */
  addKeys(keys: readonly ServerKey[]): void {
    for (const k of keys) this.keys.set(cacheKey(k.serverName, k.keyId), k);
  }

  /** A cached key, without fetching (undefined if not cached in memory). */
  cachedKey(serverName: string, keyId: string): ServerKey | undefined {
    return this.keys.get(cacheKey(serverName, keyId));
  }

  /** The key, valid until at least `minimumValidUntilTs` (default now), or undefined. */
  async getVerifyKey(serverName: string, keyId: string, minimumValidUntilTs: number = this.now()): Promise<ServerKey | undefined> {
    const found = await this.getVerifyKeys([{ serverName, keyId, minimumValidUntilTs }]);
    return found.get(cacheKey(serverName, keyId));
  }

  /**
   * Several keys at once, fetching what is missing with one direct request per server and one
   * notary batch. Result keyed by `${serverName}\u0000${keyId}` (see `keyRingKey`).
   */
  async getVerifyKeys(queries: readonly KeyQuery[]): Promise<Map<string, ServerKey>> {
    const now = this.now();
    const result = new Map<string, ServerKey>();
    let missing: Required<KeyQuery>[] = [];
    for (const q of queries) {
      const min = q.minimumValidUntilTs ?? now;
      const hit = await this.fromCache(q.serverName, q.keyId, min);
      if (hit) result.set(cacheKey(q.serverName, q.keyId), hit);
      else missing.push({ ...q, minimumValidUntilTs: min });
    }
    if (missing.length === 0) return result;

    // Cooldown: a server fetched moments ago is not asked again.
    missing = missing.filter((q) => {
      const last = this.lastFetch.get(q.serverName);
      return last === undefined || now - last >= this.cooldownMs || this.inflight.has(q.serverName);
    });

    if (this.fetchDirect) {
      const servers = [...new Set(missing.map((q) => q.serverName))];
      await Promise.all(servers.map((s) => this.fetchDirectOnce(s)));
      missing = this.collect(missing, result);
    }
    for (const notary of this.notaries) {
      if (missing.length === 0) break;
      await this.fetchFromNotary(notary, missing);
      missing = this.collect(missing, result);
    }
    for (const q of missing) this.lastFetch.set(q.serverName, this.now());
    return result;
  }

  /** The lookup verifyRequest needs: keys valid now. */
  keyLookup(): VerifyKeyLookup {
    return async (serverName, keyId) => (await this.getVerifyKey(serverName, keyId))?.publicKey;
  }

  /** Moves satisfied queries into result; returns those still missing. */
  private collect(queries: Required<KeyQuery>[], result: Map<string, ServerKey>): Required<KeyQuery>[] {
    return queries.filter((q) => {
      const k = this.keys.get(cacheKey(q.serverName, q.keyId));
      if (k && k.validUntilTs >= q.minimumValidUntilTs) {
        result.set(cacheKey(q.serverName, q.keyId), k);
        return false;
      }
      return true;
    });
  }

  private async fromCache(serverName: string, keyId: string, min: number): Promise<ServerKey | undefined> {
    const id = cacheKey(serverName, keyId);
    let k = this.keys.get(id);
    if (!k && this.store) {
      k = await this.store.get(serverName, keyId);
      if (k) this.keys.set(id, k);
    }
    return k && k.validUntilTs >= min ? k : undefined;
  }

  private async remember(keys: readonly ServerKey[]): Promise<void> {
    this.addKeys(keys);
    if (this.store && keys.length > 0) await this.store.put(keys);
  }

  private fetchDirectOnce(serverName: string): Promise<void> {
    let p = this.inflight.get(serverName);
    if (!p) {
      p = this.fetchDirectNow(serverName).finally(() => this.inflight.delete(serverName));
      this.inflight.set(serverName, p);
    }
    return p;
  }

  private async fetchDirectNow(serverName: string): Promise<void> {
    this.lastFetch.set(serverName, this.now());
    try {
      const doc = await this.client.request({ destination: serverName, method: 'GET', path: '/_matrix/key/v2/server', signed: false });
      await this.remember(parseServerKeys(doc, serverName, this.now()));
    } catch (err) {
      this.onFetchError?.(serverName, 'direct', err as Error);
    }
  }

  /** The notary's own keys: pinned, or fetched directly from it. */
  private async notaryKeys(notary: NotaryServer): Promise<Map<string, Uint8Array>> {
    const pinned = this.pinned.get(notary.serverName);
    if (pinned) return pinned;
    const out = new Map<string, Uint8Array>();
    const now = this.now();
    const valid = () => {
      for (const k of this.keys.values()) {
        if (k.serverName === notary.serverName && k.expiredTs === undefined && k.validUntilTs >= now) out.set(k.keyId, k.publicKey);
      }
    };
    valid();
    if (out.size === 0) {
      await this.fetchDirectOnce(notary.serverName);
      valid();
    }
    return out;
  }

  private async fetchFromNotary(notary: NotaryServer, queries: readonly Required<KeyQuery>[]): Promise<void> {
    try {
      const notaryKeys = await this.notaryKeys(notary);
      if (notaryKeys.size === 0) throw new Error(`no verify key of notary ${notary.serverName} is known`);
      let docs: unknown;
      if (queries.length === 1) {
        const q = queries[0]!;
        docs = await this.client.request({
          destination: notary.serverName,
          method: 'GET',
          path: `/_matrix/key/v2/query/${encodeURIComponent(q.serverName)}`,
          query: { minimum_valid_until_ts: q.minimumValidUntilTs },
          signed: false,
        });
      } else {
        const serverKeys: Record<string, Record<string, { minimum_valid_until_ts: number }>> = {};
        for (const q of queries) (serverKeys[q.serverName] ??= {})[q.keyId] = { minimum_valid_until_ts: q.minimumValidUntilTs };
        docs = await this.client.request({ destination: notary.serverName, method: 'POST', path: '/_matrix/key/v2/query', body: { server_keys: serverKeys }, signed: false });
      }
      const list = (docs as { server_keys?: unknown })?.server_keys;
      if (!Array.isArray(list)) throw new Error(`notary ${notary.serverName} answered without a server_keys array`);
      const wanted = new Set(queries.map((q) => q.serverName));
      const fetchedAt = this.now();
      for (const doc of list) {
        const name = (doc as { server_name?: unknown })?.server_name;
        if (typeof name !== 'string' || !wanted.has(name)) continue; // not asked for: ignore
        if (!hasNotarySignature(doc, notary.serverName, notaryKeys)) {
          this.onFetchError?.(name, `notary ${notary.serverName}`, new Error(`keys of ${name} are not signed by notary ${notary.serverName}`));
          continue;
        }
        try {
          await this.remember(parseServerKeys(doc, name, fetchedAt));
        } catch (err) {
          this.onFetchError?.(name, `notary ${notary.serverName}`, err as Error);
        }
      }
    } catch (err) {
      for (const s of new Set(queries.map((q) => q.serverName))) this.onFetchError?.(s, `notary ${notary.serverName}`, err as Error);
    }
  }
}

/** The key of getVerifyKeys' result map. */
export function keyRingKey(serverName: string, keyId: string): string {
  return cacheKey(serverName, keyId);
}
