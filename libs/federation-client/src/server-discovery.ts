/**
 * Server discovery, Server-Server API v1.16 "Resolving server names", in the spec's order:
 *
 * 1. IP literal: that address, the given port or 8448; Host is the server name.
 * 2. Hostname with explicit port: that hostname (A/AAAA at connect time) and port.
 * 3. GET https://<hostname>/.well-known/matrix/server (cached); a valid m.server names a
 *    delegated `<host>[:<port>]`, resolved as: 3.1 IP literal; 3.2 explicit port;
 *    3.3 SRV _matrix-fed._tcp; 3.4 SRV _matrix._tcp (deprecated); 3.5 port 8448.
 * 4.-6. Without a usable .well-known: SRV _matrix-fed._tcp.<hostname>, then the deprecated
 *    _matrix._tcp.<hostname>, then <hostname>:8448.
 *
 * The result says where to connect and which name the certificate must carry (the server
 * name's or the delegated hostname, never an SRV target's).
 */
import { FederationError } from './errors.js';
import { pickSrvTarget, systemResolver, type DnsResolver, type SrvRecord } from './dns-resolver.js';
import type { ConnectTarget } from './https-transport.js';
import type { WellKnownFetcher, WellKnownResponse } from './well-known.js';
import { splitServerName, type ServerNameParts } from './server-name.js';

export type DiscoveryStep =
  | 'ip-literal'
  | 'explicit-port'
  | 'well-known-ip-literal'
  | 'well-known-explicit-port'
  | 'well-known-srv-matrix-fed'
  | 'well-known-srv-matrix'
  | 'well-known-default-port'
  | 'srv-matrix-fed'
  | 'srv-matrix'
  | 'default-port';

export interface ResolvedServer extends ConnectTarget {
  serverName: string;
  /** Which rule of the spec decided the result (for logs and tests). */
  step: DiscoveryStep;
}

export interface ServerResolverOptions {
  resolver?: DnsResolver;
  /** Required unless every server name you resolve has an IP literal or a port. */
  fetchWellKnown?: WellKnownFetcher;
  now?: () => number;
  /** Cache lifetime of a .well-known answer without caching headers. Spec: 24 h recommended. */
  wellKnownDefaultCacheMs?: number;
  /** Upper bound of any .well-known cache lifetime. Spec: 48 h recommended. */
  wellKnownMaxCacheMs?: number;
  /** First error cache lifetime, doubled on each repeated failure up to wellKnownErrorMaxCacheMs. */
  wellKnownErrorBaseCacheMs?: number;
  /** Spec: errors cached for up to an hour. */
  wellKnownErrorMaxCacheMs?: number;
  /** Cap on cached hostnames, so that a flood of names cannot grow memory without bound. */
  wellKnownCacheSize?: number;
}

const DEFAULT_PORT = 8448;
const HOUR = 3_600_000;

type WellKnownOutcome = { ok: true; server: ServerNameParts & { text: string } } | { ok: false; reason: string };

interface CacheEntry {
  outcome: WellKnownOutcome;
  expiresAt: number;
  /** Consecutive failures, for the exponential back-off of error caching. */
  failures: number;
}

export class ServerResolver {
  private readonly resolver: DnsResolver;
  private readonly fetchWellKnown?: WellKnownFetcher;
  private readonly now: () => number;
  private readonly defaultCacheMs: number;
  private readonly maxCacheMs: number;
  private readonly errorBaseMs: number;
  private readonly errorMaxMs: number;
  private readonly cacheSize: number;
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inflight = new Map<string, Promise<WellKnownOutcome>>();

  constructor(options: ServerResolverOptions = {}) {
    this.resolver = options.resolver ?? systemResolver;
    this.fetchWellKnown = options.fetchWellKnown;
    this.now = options.now ?? Date.now;
    this.defaultCacheMs = options.wellKnownDefaultCacheMs ?? 24 * HOUR;
    this.maxCacheMs = options.wellKnownMaxCacheMs ?? 48 * HOUR;
    this.errorBaseMs = options.wellKnownErrorBaseCacheMs ?? 5 * 60_000;
    this.errorMaxMs = options.wellKnownErrorMaxCacheMs ?? HOUR;
    this.cacheSize = options.wellKnownCacheSize ?? 10_000;
  }

  async resolveServer(serverName: string): Promise<ResolvedServer> {
    const parsed = splitServerName(serverName);
    if (!parsed) throw new FederationError('discovery', serverName, `"${serverName}" is not a valid server name (hostname[:port])`);
    const { host, port, kind } = parsed;

    // Step 1: IP literal.
    if (kind !== 'dns') return { serverName, step: 'ip-literal', address: host, port: port ?? DEFAULT_PORT, tlsServerName: host, hostHeader: serverName };
    // Step 2: explicit port.
    if (port !== undefined) return { serverName, step: 'explicit-port', address: host, port, tlsServerName: host, hostHeader: serverName };

    // Step 3: .well-known delegation.
    const wellKnown = await this.wellKnown(host);
    if (wellKnown.ok) {
      const d = wellKnown.server;
      if (d.kind !== 'dns') {
        return { serverName, step: 'well-known-ip-literal', address: d.host, port: d.port ?? DEFAULT_PORT, tlsServerName: d.host, hostHeader: d.text };
      }
      if (d.port !== undefined) {
        return { serverName, step: 'well-known-explicit-port', address: d.host, port: d.port, tlsServerName: d.host, hostHeader: `${d.host}:${d.port}` };
      }
      const srv = await this.srv(d.host);
      if (srv) {
        const step = srv.service === '_matrix-fed' ? 'well-known-srv-matrix-fed' : 'well-known-srv-matrix';
        return { serverName, step, address: srv.target, port: srv.port, tlsServerName: d.host, hostHeader: d.host };
      }
      return { serverName, step: 'well-known-default-port', address: d.host, port: DEFAULT_PORT, tlsServerName: d.host, hostHeader: d.host };
    }

    // Steps 4-6: no usable .well-known.
    const srv = await this.srv(host);
    if (srv) {
      const step = srv.service === '_matrix-fed' ? 'srv-matrix-fed' : 'srv-matrix';
      return { serverName, step, address: srv.target, port: srv.port, tlsServerName: host, hostHeader: host };
    }
    return { serverName, step: 'default-port', address: host, port: DEFAULT_PORT, tlsServerName: host, hostHeader: host };
  }

  /** Forgets cached .well-known answers (all, or one hostname's). */
  clearCache(hostname?: string): void {
    if (hostname === undefined) this.cache.clear();
    else this.cache.delete(hostname);
  }

  /** SRV _matrix-fed._tcp then the deprecated _matrix._tcp. A DNS failure counts as no record. */
  private async srv(hostname: string): Promise<{ service: '_matrix-fed' | '_matrix'; target: string; port: number } | undefined> {
    for (const service of ['_matrix-fed', '_matrix'] as const) {
      let records: SrvRecord[];
      try {
        records = await this.resolver.resolveSrv(`${service}._tcp.${hostname}`);
      } catch {
        records = [];
      }
      const pick = pickSrvTarget(records);
      if (pick) return { service, target: pick.name.replace(/\.$/, ''), port: pick.port };
    }
    return undefined;
  }

  private async wellKnown(hostname: string): Promise<WellKnownOutcome> {
    const key = hostname.toLowerCase();
    const cached = this.cache.get(key);
    if (cached && cached.expiresAt > this.now()) return cached.outcome;
    let pending = this.inflight.get(key);
    if (!pending) {
      pending = this.fetchAndCache(key, cached?.failures ?? 0).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    return pending;
  }

  private async fetchAndCache(hostname: string, previousFailures: number): Promise<WellKnownOutcome> {
    if (!this.fetchWellKnown) return { ok: false, reason: 'no .well-known fetcher configured' };
    let response: WellKnownResponse | undefined;
    let outcome: WellKnownOutcome;
    try {
      response = await this.fetchWellKnown(hostname);
      outcome = parseWellKnown(response);
    } catch (err) {
      outcome = { ok: false, reason: `fetching .well-known failed: ${(err as Error).message}` };
    }
    const now = this.now();
    let entry: CacheEntry;
    if (outcome.ok) {
      const headerMs = response ? cacheLifetimeMs(response, now) : undefined;
      entry = { outcome, expiresAt: now + Math.min(headerMs ?? this.defaultCacheMs, this.maxCacheMs), failures: 0 };
    } else {
      const failures = previousFailures + 1;
      const backoff = Math.min(this.errorBaseMs * 2 ** (failures - 1), this.errorMaxMs);
      entry = { outcome, expiresAt: now + backoff, failures };
    }
    if (this.cache.size >= this.cacheSize && !this.cache.has(hostname)) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.delete(hostname); // re-insert so Map order tracks recency
    this.cache.set(hostname, entry);
    return outcome;
  }
}

/** Validates a .well-known answer: 200, a JSON object, m.server a valid server name. */
export function parseWellKnown(res: WellKnownResponse): WellKnownOutcome {
  if (res.status !== 200) return { ok: false, reason: `.well-known answered HTTP ${res.status}` };
  let doc: unknown;
  try {
    doc = JSON.parse(res.body);
  } catch {
    return { ok: false, reason: '.well-known is not JSON' };
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return { ok: false, reason: '.well-known is not a JSON object' };
  const server = (doc as Record<string, unknown>)['m.server'];
  if (typeof server !== 'string') return { ok: false, reason: '.well-known has no string m.server' };
  const parts = splitServerName(server);
  if (!parts) return { ok: false, reason: `.well-known m.server "${server}" is not a valid server name` };
  return { ok: true, server: { ...parts, text: server } };
}

/**
 * The lifetime the response's caching headers ask for, in ms: Cache-Control no-store/no-cache
 * mean 0, max-age wins over Expires; undefined when neither says.
 */
export function cacheLifetimeMs(res: Pick<WellKnownResponse, 'cacheControl' | 'expires'>, now: number): number | undefined {
  if (res.cacheControl) {
    const directives = res.cacheControl.toLowerCase().split(',').map((d) => d.trim());
    if (directives.includes('no-store') || directives.includes('no-cache')) return 0;
    const maxAge = directives.find((d) => d.startsWith('max-age='));
    if (maxAge) {
      const seconds = Number(maxAge.slice('max-age='.length).replace(/"/g, ''));
      if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
    }
  }
  if (res.expires) {
    const at = Date.parse(res.expires);
    if (!Number.isNaN(at)) return Math.max(0, at - now);
  }
  return undefined;
}
