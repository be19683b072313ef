/**
 * One POST /_matrix/push/v1/notify to a push gateway (spec "Push Gateway API").
 *
 * The gateway URL is chosen by a client (data.url of its pusher), so it is an outbound request
 * to an address a user picked: the same guard as outbound federation applies (IpPolicy of
 * @tessera/federation-client): private, loopback, link-local and other special-purpose
 * addresses are refused unless push.allowed_cidrs names them. The policy is applied to the
 * address actually connected to (our own `lookup`), so a DNS answer cannot slip a private
 * address past it. Each exchange has a deadline and a cap on the answer's size; redirects are
 * not followed.
 */
import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { guardedLookup, IpPolicy, systemResolver, type DnsResolver } from '@tessera/federation-client';

export type GatewayFailure = 'refused' | 'network' | 'timeout' | 'status';

export class GatewayError extends Error {
  constructor(
    readonly kind: GatewayFailure,
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'GatewayError';
  }

  /**
   * Whether trying again may help. The spec asks to retry on HTTP errors ("the homeserver
   * SHOULD retry for a reasonable amount of time using exponential backoff"), and network
   * failures and timeouts are the same to us; an address our policy refuses stays refused.
   */
  get retryable(): boolean {
    return this.kind !== 'refused';
  }
}

export interface GatewayClientOptions {
  /** CIDRs that may be reached although special-purpose (push.allowed_cidrs). */
  allowedCidrs: readonly string[];
  timeoutMs: number;
  resolver?: DnsResolver;
  /** Largest answer read (a gateway answers `{"rejected": [...]}`). */
  maxResponseBytes?: number;
}

export interface GatewayAnswer {
  /** Pushkeys the gateway rejected (spec: the homeserver removes their pushers). */
  rejected: string[];
}

const REFUSED_CODE = 'ERR_TESSERA_PUSH_ADDRESS_REFUSED';

export class GatewayClient {
  readonly policy: IpPolicy;
  private readonly resolver: DnsResolver;
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;

  /** Throws CidrError when an allowed CIDR is malformed (a configuration error, at start). */
  constructor(options: GatewayClientOptions) {
    this.policy = new IpPolicy(options.allowedCidrs);
    this.resolver = options.resolver ?? systemResolver;
    this.timeoutMs = options.timeoutMs;
    this.maxResponseBytes = options.maxResponseBytes ?? 64 * 1024;
    this.lookup = guardedLookup(this.resolver, this.policy, REFUSED_CODE, refusalMessage);
    this.httpAgent = new http.Agent({ keepAlive: true, lookup: this.lookup, maxSockets: 8 });
    this.httpsAgent = new https.Agent({ keepAlive: true, lookup: this.lookup, maxSockets: 8 });
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  /** dns.lookup-compatible, through the resolver and the IP policy. */
  private readonly lookup: LookupFunction;

  /** POSTs `body` as JSON to the gateway's notify URL. Rejects with a GatewayError. */
  notify(url: string, body: unknown): Promise<GatewayAnswer> {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      return Promise.reject(new GatewayError('refused', `${url} is not a URL`));
    }
    if (target.protocol !== 'http:' && target.protocol !== 'https:') return Promise.reject(new GatewayError('refused', `${url} is not an http(s) URL`));
    const host = target.hostname.startsWith('[') ? target.hostname.slice(1, -1) : target.hostname;
    if (isIP(host) !== 0) {
      // Node does not call lookup for IP literals: police them here.
      const why = this.policy.refusal(host);
      if (why) return Promise.reject(new GatewayError('refused', refusalMessage(url, why)));
    }
    const payload = Buffer.from(JSON.stringify(body), 'utf8');
    const secure = target.protocol === 'https:';
    const timeoutMs = this.timeoutMs;
    const maxBytes = this.maxResponseBytes;

    return new Promise<GatewayAnswer>((resolve, reject) => {
      let settled = false;
      const fail = (err: GatewayError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(err);
      };
      const options: https.RequestOptions = {
        agent: secure ? this.httpsAgent : this.httpAgent,
        host,
        port: target.port === '' ? undefined : Number(target.port),
        method: 'POST',
        path: `${target.pathname}${target.search}`,
        headers: { 'content-type': 'application/json', 'content-length': payload.length, host: target.host },
      };
      if (secure && isIP(host) === 0) options.servername = host;
      const request = secure ? https.request(options) : http.request(options);
      const timer = setTimeout(() => {
        request.destroy();
        fail(new GatewayError('timeout', `POST ${url} got no complete answer within ${timeoutMs} ms`));
      }, timeoutMs);
      request.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === REFUSED_CODE) fail(new GatewayError('refused', err.message));
        else fail(new GatewayError('network', `POST ${url} failed: ${err.message}`));
      });
      request.on('response', (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        const status = response.statusCode ?? 0;
        const finish = (body: Buffer) => {
          if (settled) return;
          if (status < 200 || status >= 300) {
            fail(new GatewayError('status', `POST ${url} answered ${status}`, status));
            return;
          }
          settled = true;
          clearTimeout(timer);
          resolve({ rejected: rejectedPushkeys(body) });
        };
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          chunks.push(chunk);
          if (size > maxBytes) {
            // The answer is a short list of pushkeys: a longer one is not read on (the status tells whether the notification went through).
            response.destroy();
            request.destroy();
            finish(Buffer.alloc(0));
          }
        });
        response.on('error', (err) => fail(new GatewayError('network', `reading the answer of ${url} failed: ${err.message}`)));
        response.on('end', () => finish(Buffer.concat(chunks)));
      });
      request.end(payload);
    });
  }
}

function refusalMessage(where: string, why: string): string {
  return `push gateway ${where} refused: ${why.replace('outbound federation refuses it unless the allow-list permits it', 'push.allowed_cidrs does not list it')}`;
}

/** The `rejected` pushkeys of a 2xx answer; an answer that is not the spec's JSON rejects nothing (the notification was accepted). */
function rejectedPushkeys(body: Buffer): string[] {
  try {
    const answer = JSON.parse(body.toString('utf8')) as unknown;
    if (typeof answer !== 'object' || answer === null) return [];
    const rejected = (answer as Record<string, unknown>).rejected;
    return Array.isArray(rejected) ? rejected.filter((k): k is string => typeof k === 'string') : [];
  } catch {
    return [];
  }
}
