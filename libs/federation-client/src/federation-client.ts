/**
 * Outbound federation requests: discover the destination, sign with X-Matrix, send over HTTPS
 * (certificate checks, IP policy, deadline), parse the JSON answer, and turn a non-2xx answer
 * into a FederationError carrying the status and the Matrix errcode.
 */
import type { SigningKey } from '@tessera/protocol';
import { FederationError } from './errors.js';
import { HttpsTransport, type HttpsTransportOptions, type TransportResponse } from './https-transport.js';
import { ServerResolver, type ServerResolverOptions } from './server-discovery.js';
import { httpsWellKnownFetcher } from './well-known.js';
import { signRequest } from './x-matrix.js';

export interface FederationClientOptions extends HttpsTransportOptions {
  /** Our server name: the X-Matrix origin. */
  serverName: string;
  /** Our current signing key. */
  signingKey: SigningKey;
  /**
   * Discovery settings (cache lifetimes, a custom .well-known fetcher). By default the
   * resolver shares this client's DNS resolver and fetches .well-known over this client's
   * HTTPS transport (same CA and IP policy).
   */
  discovery?: Omit<ServerResolverOptions, 'resolver'>;
  /** Port for the first .well-known request (443 per the spec); for tests on loopback. */
  wellKnownPort?: number;
  userAgent?: string;
}

export type QueryValue = string | number | boolean | readonly (string | number | boolean)[];

export interface FederationRequest {
  destination: string;
  method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  /** Path starting with /_matrix/, its variable segments already percent-encoded. */
  path: string;
  /** Query parameters, encoded and appended to the path (and covered by the signature). */
  query?: Record<string, QueryValue | undefined>;
  /** JSON body. */
  body?: unknown;
  /** Sign with X-Matrix (default true). The key endpoints need no signature. */
  signed?: boolean;
  timeoutMs?: number;
}

export interface RequestOptions {
  query?: Record<string, QueryValue | undefined>;
  timeoutMs?: number;
}

export interface RawRequestOptions extends RequestOptions {
  /** Largest body accepted (FederationError 'invalid_response' beyond); the transport's default otherwise. */
  maxResponseBytes?: number;
  /** Sign with X-Matrix (default true). */
  signed?: boolean;
}

/** An answer as received, whatever its status or type (media downloads are not JSON). */
export type RawResponse = TransportResponse;

/** Redirects followed by fetchUrl before giving up. */
const MAX_REDIRECTS = 5;

export class FederationClient {
  readonly serverName: string;
  readonly transport: HttpsTransport;
  readonly discovery: ServerResolver;
  private readonly signingKey: SigningKey;
  private readonly userAgent: string;

  constructor(options: FederationClientOptions) {
    this.serverName = options.serverName;
    this.signingKey = options.signingKey;
    this.userAgent = options.userAgent ?? 'tessera';
    this.transport = new HttpsTransport(options);
    this.discovery = new ServerResolver({
      resolver: options.resolver,
      fetchWellKnown: httpsWellKnownFetcher(this.transport, { port: options.wellKnownPort }),
      ...options.discovery,
    });
  }

  get<T = unknown>(destination: string, path: string, options: RequestOptions = {}): Promise<T> {
    return this.request<T>({ destination, method: 'GET', path, ...options });
  }

  put<T = unknown>(destination: string, path: string, body: unknown, options: RequestOptions = {}): Promise<T> {
    return this.request<T>({ destination, method: 'PUT', path, body, ...options });
  }

  post<T = unknown>(destination: string, path: string, body: unknown, options: RequestOptions = {}): Promise<T> {
    return this.request<T>({ destination, method: 'POST', path, body, ...options });
  }

  async request<T = unknown>(req: FederationRequest): Promise<T> {
    const { destination, method } = req;
    if (!req.path.startsWith('/')) throw new FederationError('invalid_response', destination, `request path must start with "/": ${req.path}`);
    const uri = req.path + encodeQuery(req.query);
    const target = await this.discovery.resolveServer(destination);
    const headers: Record<string, string> = { 'user-agent': this.userAgent, accept: 'application/json' };
    let body: string | undefined;
    if (req.body !== undefined) {
      body = JSON.stringify(req.body);
      headers['content-type'] = 'application/json';
    }
    if (req.signed !== false) {
      headers.authorization = signRequest({ method, uri, origin: this.serverName, destination, content: req.body }, this.signingKey);
    }
    const res = await this.transport.request({ destination, target, method, path: uri, headers, body, timeoutMs: req.timeoutMs });
    const text = res.body.toString('utf8');
    let parsed: unknown;
    let parseError: string | undefined;
    if (text.trim() !== '') {
      try {
        parsed = JSON.parse(text);
      } catch (err) {
        parseError = (err as Error).message;
      }
    }
    if (res.status < 200 || res.status >= 300) {
      const errcode = parsed && typeof parsed === 'object' && typeof (parsed as { errcode?: unknown }).errcode === 'string' ? (parsed as { errcode: string }).errcode : undefined;
      const error = parsed && typeof parsed === 'object' && typeof (parsed as { error?: unknown }).error === 'string' ? (parsed as { error: string }).error : undefined;
      throw new FederationError(
        'http',
        destination,
        `${method} ${uri} to ${destination} answered HTTP ${res.status}${errcode ? ` ${errcode}` : ''}${error ? `: ${error}` : ''}`,
        { status: res.status, errcode, body: parsed },
      );
    }
    if (parseError !== undefined) {
      throw new FederationError('invalid_response', destination, `${method} ${uri} to ${destination}: the answer is not JSON (${parseError})`, { status: res.status });
    }
    return (parsed ?? {}) as T;
  }

  /**
   * A GET whose answer is returned as it came (status, headers, bytes), never parsed nor
   * turned into an error by its status: for media downloads. Discovery, signing, the IP
   * policy and the deadline are those of request().
   */
  async getRaw(destination: string, path: string, options: RawRequestOptions = {}): Promise<RawResponse> {
    if (!path.startsWith('/')) throw new FederationError('invalid_response', destination, `request path must start with "/": ${path}`);
    const uri = path + encodeQuery(options.query);
    const target = await this.discovery.resolveServer(destination);
    const headers: Record<string, string> = { 'user-agent': this.userAgent, accept: '*/*' };
    if (options.signed !== false) {
      headers.authorization = signRequest({ method: 'GET', uri, origin: this.serverName, destination }, this.signingKey);
    }
    return this.transport.request({
      destination, target, method: 'GET', path: uri, headers, timeoutMs: options.timeoutMs, maxResponseBytes: options.maxResponseBytes,
    });
  }

  /**
   * An unsigned GET of an https URL given by a remote server (the Location of a federation
   * media answer), following redirects, each hop through the same transport: the same CA
   * checks, IP policy (a Location cannot point us at a private address), deadline and size cap.
   * `destination` is the server that gave the URL, for error messages.
   */
  async fetchUrl(destination: string, url: string, options: { timeoutMs?: number; maxResponseBytes?: number } = {}): Promise<RawResponse> {
    let current = url;
    for (let hop = 0; ; hop++) {
      let parsed: URL;
      try {
        parsed = new URL(current);
      } catch {
        throw new FederationError('invalid_response', destination, `${destination} gave an invalid URL: ${current}`);
      }
      if (parsed.protocol !== 'https:') throw new FederationError('invalid_response', destination, `${destination} gave a URL that is not https: ${current}`);
      const host = parsed.hostname;
      const port = parsed.port === '' ? 443 : Number(parsed.port);
      const res = await this.transport.request({
        destination,
        target: { address: host, port, tlsServerName: host.replace(/^\[|\]$/g, ''), hostHeader: parsed.host },
        method: 'GET',
        path: `${parsed.pathname}${parsed.search}`,
        headers: { 'user-agent': this.userAgent, accept: '*/*' },
        timeoutMs: options.timeoutMs,
        maxResponseBytes: options.maxResponseBytes,
      });
      const location = res.headers.location;
      if (![301, 302, 303, 307, 308].includes(res.status) || typeof location !== 'string') return res;
      if (hop >= MAX_REDIRECTS) throw new FederationError('invalid_response', destination, `more than ${MAX_REDIRECTS} redirects from ${url}`);
      current = new URL(location, current).toString();
    }
  }

  /** Closes idle connections. */
  close(): void {
    this.transport.close();
  }
}

export function encodeQuery(query: Record<string, QueryValue | undefined> | undefined): string {
  if (!query) return '';
  const parts: string[] = [];
  for (const [name, value] of Object.entries(query)) {
    if (value === undefined) continue;
    const values = Array.isArray(value) ? value : [value];
    for (const v of values) parts.push(`${encodeURIComponent(name)}=${encodeURIComponent(String(v))}`);
  }
  return parts.length === 0 ? '' : `?${parts.join('&')}`;
}
