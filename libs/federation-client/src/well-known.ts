/**
 * GET https://<hostname>/.well-known/matrix/server, following 30x redirects without looping
 * (Server-Server API, "Resolving server names", step 3). The fetch is raw: validation and
 * caching belong to the ServerResolver, so that any fetcher gets the same rules.
 */
import { FederationError } from './errors.js';
import type { HttpsTransport } from './https-transport.js';

export interface WellKnownResponse {
  status: number;
  /** The body as text (validated by the caller). */
  body: string;
  /** Cache-Control and Expires headers of the final response, for the cache lifetime. */
  cacheControl?: string;
  expires?: string;
}

/** Fetches the .well-known document of a hostname; throws on network failure. */
export type WellKnownFetcher = (hostname: string) => Promise<WellKnownResponse>;

export interface HttpsWellKnownOptions {
  /** Port of the first request. 443 per the spec; tests point it at a loopback server. */
  port?: number;
  maxRedirects?: number;
  timeoutMs?: number;
}

const WELL_KNOWN_PATH = '/.well-known/matrix/server';
/** A .well-known document is a few dozen bytes; refuse anything silly. */
const MAX_WELL_KNOWN_BYTES = 50 * 1024;

export function httpsWellKnownFetcher(transport: HttpsTransport, options: HttpsWellKnownOptions = {}): WellKnownFetcher {
  const maxRedirects = options.maxRedirects ?? 10;
  return async (hostname) => {
    const first = new URL(`https://${hostname.includes(':') ? `[${hostname}]` : hostname}${WELL_KNOWN_PATH}`);
    if (options.port !== undefined) first.port = String(options.port);
    let url = first;
    const visited = new Set<string>();
    for (let hop = 0; ; hop++) {
      if (visited.has(url.href)) throw new FederationError('discovery', hostname, `.well-known of ${hostname}: redirect loop at ${url.href}`);
      visited.add(url.href);
      const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
      const res = await transport.request({
        destination: hostname,
        target: { address: host, port: url.port === '' ? 443 : Number(url.port), tlsServerName: host, hostHeader: url.host },
        method: 'GET',
        path: url.pathname + url.search,
        timeoutMs: options.timeoutMs,
        maxResponseBytes: MAX_WELL_KNOWN_BYTES,
      });
      const location = res.headers.location;
      if (res.status >= 300 && res.status < 400 && location) {
        if (hop >= maxRedirects) throw new FederationError('discovery', hostname, `.well-known of ${hostname}: more than ${maxRedirects} redirects`);
        const next = new URL(location, url);
        if (next.protocol !== 'https:') {
          throw new FederationError('discovery', hostname, `.well-known of ${hostname}: refusing a redirect to non-HTTPS ${next.href}`);
        }
        url = next;
        continue;
      }
      return {
        status: res.status,
        body: res.body.toString('utf8'),
        cacheControl: header(res.headers['cache-control']),
        expires: header(res.headers.expires),
      };
    }
  };
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}
