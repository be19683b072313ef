/**
 * One POST /_matrix/push/v1/notify to a push gateway (spec "Push Gateway API").
 *
 * The gateway URL is chosen by a client (data.url of its pusher), so it is an outbound request
 * to an address a user picked: the same guard as outbound federation applies (IpPolicy of
 * @tessera/federation-client): private, loopback, link-local and other special-purpose
 * addresses are refused unless push.allowed_cidrs names them. The policy is applied to the
 * address actually connected to (GuardedHttpClient of @tessera/federation-client), so a DNS
 * answer cannot slip a private address past it. Each exchange has a deadline and a cap on the
 * answer's size; redirects are not followed.
 */
import { GuardedHttpClient, GuardedRequestError, type DnsResolver, type IpPolicy } from '@tessera/federation-client';

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

export class GatewayClient {
  private readonly http: GuardedHttpClient;
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;

  /** Throws CidrError when an allowed CIDR is malformed (a configuration error, at start). */
  constructor(options: GatewayClientOptions) {
    this.http = new GuardedHttpClient({
      allowedCidrs: options.allowedCidrs,
      resolver: options.resolver,
      listNames: { allowed: 'push.allowed_cidrs' },
      describeRefusal: (where, why) => `push gateway ${where} refused: ${why}`,
      keepAlive: true,
      maxSockets: 8,
    });
    this.timeoutMs = options.timeoutMs;
    this.maxResponseBytes = options.maxResponseBytes ?? 64 * 1024;
  }

  get policy(): IpPolicy {
    return this.http.policy;
  }

  close(): void {
    this.http.close();
  }

  /** POSTs `body` as JSON to the gateway's notify URL. Rejects with a GatewayError. */
  async notify(url: string, body: unknown): Promise<GatewayAnswer> {
    const payload = Buffer.from(JSON.stringify(body), 'utf8');
    let status: number;
    let answer: Buffer;
    try {
      const response = await this.http.request(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: payload,
        timeoutMs: this.timeoutMs,
        maxBytes: this.maxResponseBytes,
      });
      status = response.status;
      answer = response.body;
    } catch (err) {
      if (!(err instanceof GuardedRequestError)) throw err;
      if (err.kind !== 'too-large' || err.status === undefined) throw gatewayError(err, url, this.timeoutMs);
      // The answer is a short list of pushkeys: a longer one is not read on (the status tells whether the notification went through).
      status = err.status;
      answer = Buffer.alloc(0);
    }
    if (status < 200 || status >= 300) throw new GatewayError('status', `POST ${url} answered ${status}`, status);
    return { rejected: rejectedPushkeys(answer) };
  }
}

/** The GatewayError of a failed exchange. */
function gatewayError(err: GuardedRequestError, url: string, timeoutMs: number): GatewayError {
  switch (err.kind) {
    case 'invalid-url':
    case 'refused':
      return new GatewayError('refused', err.kind === 'invalid-url' ? `${url} is not an http(s) URL: ${err.message}` : err.message);
    case 'timeout':
      return new GatewayError('timeout', `POST ${url} got no complete answer within ${timeoutMs} ms`);
    default:
      return new GatewayError('network', err.kind === 'network' ? err.message : `POST ${url} failed: ${err.message}`);
  }
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
