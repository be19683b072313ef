/**
 * One HTTPS exchange with a federation peer: certificate checks against the system CAs or a
 * configured bundle, the IP policy applied to the address actually connected to (our own
 * `lookup`, so a DNS answer that changes between discovery and connect cannot slip past it),
 * a deadline for the whole exchange and a cap on the response size.
 */
import https from 'node:https';
import { isIP } from 'node:net';
import { rootCertificates } from 'node:tls';
import type { IncomingHttpHeaders } from 'node:http';
import type { LookupFunction } from 'node:net';
import { FederationError } from './errors.js';
import { IpPolicy } from './ip-ranges.js';
import { systemResolver, type DnsResolver } from './dns-resolver.js';
import { guardedLookup } from './guarded-lookup.js';

/** Where to connect and what names to present: the output of server discovery. */
export interface ConnectTarget {
  /** An IP literal or a hostname that is resolved (and policed) at connect time. */
  address: string;
  port: number;
  /** The name the certificate must be valid for, sent as SNI unless it is an IP literal. */
  tlsServerName: string;
  /** The Host header value. */
  hostHeader: string;
}

export interface HttpsTransportOptions {
  /**
   * PEM CA certificate(s) to trust, for test deployments with their own CA. Replaces the
   * system CAs unless `includeSystemCas` is true.
   */
  ca?: string | Buffer | Array<string | Buffer>;
  includeSystemCas?: boolean;
  /** CIDRs that may be reached although special-purpose (e.g. ['127.0.0.0/8', '::1/128'] in tests). */
  allowedCidrs?: readonly string[];
  resolver?: DnsResolver;
  /** Deadline for one exchange, connect to last body byte. Default 30 s. */
  timeoutMs?: number;
  /** Largest response body accepted. Default 64 MiB (send_join answers of big rooms are large). */
  maxResponseBytes?: number;
}

export interface TransportRequest {
  /** The server name we talk to, for error messages. */
  destination: string;
  target: ConnectTarget;
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  timeoutMs?: number;
  maxResponseBytes?: number;
}

export interface TransportResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

const BLOCKED_CODE = 'ERR_TESSERA_ADDRESS_REFUSED';

export class HttpsTransport {
  readonly policy: IpPolicy;
  private readonly resolver: DnsResolver;
  private readonly agent: https.Agent;
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;

  constructor(options: HttpsTransportOptions = {}) {
    this.policy = new IpPolicy(options.allowedCidrs ?? []);
    this.resolver = options.resolver ?? systemResolver;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.maxResponseBytes = options.maxResponseBytes ?? 64 * 1024 * 1024;
    const extra = options.ca === undefined ? undefined : Array.isArray(options.ca) ? options.ca : [options.ca];
    const ca = extra === undefined ? undefined : options.includeSystemCas ? [...rootCertificates, ...extra] : extra;
    this.lookup = guardedLookup(this.resolver, this.policy, BLOCKED_CODE);
    // Keep-alive connections per peer, and TLS sessions kept for resumption: a fanout talks to
    // hundreds of servers, more than Node's default cache of 100 sessions holds.
    this.agent = new https.Agent({ keepAlive: true, ca, lookup: this.lookup, maxSockets: 8, maxCachedSessions: 2000 });
  }

  /** Closes idle keep-alive connections (call on shutdown, and in tests). */
  close(): void {
    this.agent.destroy();
  }

  /** dns.lookup-compatible, through the resolver and the IP policy. */
  private readonly lookup: LookupFunction;

  request(req: TransportRequest): Promise<TransportResponse> {
    const { destination, target } = req;
    const literal = isIP(stripBrackets(target.address)) !== 0;
    if (literal) {
      // Node does not call lookup for IP literals, so police them here.
      const why = this.policy.refusal(stripBrackets(target.address));
      if (why) return Promise.reject(new FederationError('blocked', destination, why));
    }
    const timeoutMs = req.timeoutMs ?? this.timeoutMs;
    const maxBytes = req.maxResponseBytes ?? this.maxResponseBytes;
    const servername = isIP(stripBrackets(target.tlsServerName)) !== 0 ? '' : target.tlsServerName;
    const body = req.body === undefined ? undefined : Buffer.isBuffer(req.body) ? req.body : Buffer.from(req.body, 'utf8');
    const headers: Record<string, string | number> = { ...req.headers, host: target.hostHeader };
    if (body !== undefined) headers['content-length'] = body.length;

    return new Promise<TransportResponse>((resolve, reject) => {
      let settled = false;
      const fail = (err: FederationError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(err);
      };
      const where = `${target.address}:${target.port}`;
      const r = https.request({
        agent: this.agent,
        host: stripBrackets(target.address),
        port: target.port,
        method: req.method,
        path: req.path,
        headers,
        servername,
      });
      const timer = setTimeout(() => {
        r.destroy();
        fail(new FederationError('timeout', destination, `${req.method} ${req.path} to ${destination} (${where}) got no complete answer within ${timeoutMs} ms`));
      }, timeoutMs);
      r.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === BLOCKED_CODE) fail(new FederationError('blocked', destination, err.message, { cause: err }));
        else fail(new FederationError('network', destination, `${req.method} ${req.path} to ${destination} (${where}) failed: ${err.message}`, { cause: err }));
      });
      r.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBytes) {
            res.destroy();
            r.destroy();
            fail(new FederationError('invalid_response', destination, `the answer of ${destination} to ${req.method} ${req.path} exceeds ${maxBytes} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', (err) => fail(new FederationError('network', destination, `reading the answer of ${destination} failed: ${err.message}`, { cause: err })));
        res.on('end', () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
        });
      });
      r.end(body);
    });
  }
}

export function stripBrackets(s: string): string {
  return s.startsWith('[') && s.endsWith(']') ? s.slice(1, -1) : s;
}
