/**
 * One outbound HTTP(S) request to a URL somebody else chose (a push gateway, a page to preview),
 * under the same address guard as outbound federation: IpPolicy checks IP literals here and
 * guardedLookup checks the addresses a name resolves to, i.e. the address actually connected to.
 * Each request has one total deadline (connect to last byte) and a cap on the answer's body.
 * Redirects are not followed: the caller sees the 3xx and decides.
 *
 * Failures reject with a GuardedRequestError whose `kind` says what went wrong, so that each
 * caller answers in its own terms (push: retry or not; URL previews: Synapse's Matrix errors).
 */
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { systemResolver, type DnsResolver } from './dns-resolver.js';
import { guardedLookup } from './guarded-lookup.js';
import { IpPolicy } from './ip-ranges.js';

export type GuardedRequestFailure =
  /** Not an absolute http(s) URL. */
  | 'invalid-url'
  /** The IP literal, or every address of the name, is one the policy refuses. */
  | 'refused'
  /** The name has no address at all (or DNS failed). */
  | 'unresolved'
  /** Connection or protocol failure, or the peer closed before the end of its answer. */
  | 'network'
  /** No complete answer before the deadline. */
  | 'timeout'
  /** The body is larger than maxBytes (declared by Content-Length or counted while reading). */
  | 'too-large';

export class GuardedRequestError extends Error {
  constructor(
    readonly kind: GuardedRequestFailure,
    message: string,
    readonly details: {
      /** The answer's status, when it came before the failure (too-large, or a timeout while reading). */
      status?: number;
      /** For `refused`: the URL named an IP literal (no DNS was involved). */
      ipLiteral?: boolean;
      /** For `refused`: the policy's reason (see IpPolicy.refusal). */
      reason?: string;
    } = {},
  ) {
    super(message);
    this.name = 'GuardedRequestError';
  }

  get status(): number | undefined {
    return this.details.status;
  }
}

export interface GuardedHttpClientOptions {
  /** CIDRs that may be reached although special-purpose. Throws CidrError at construction when one is malformed. */
  allowedCidrs?: readonly string[];
  /** CIDRs refused although public (the allowed ones still win). Throws CidrError when one is malformed. */
  blockedCidrs?: readonly string[];
  /** The settings the two lists come from, named in refusals (IpPolicy). */
  listNames?: { allowed?: string; blocked?: string };
  resolver?: DnsResolver;
  /** The message of a refusal: `where` is the URL (IP literal) or the host name, `why` the policy's reason. */
  describeRefusal?: (where: string, why: string) => string;
  /** Keep connections open between requests (default false). */
  keepAlive?: boolean;
  /** Connections per origin (default: Node's, unlimited). */
  maxSockets?: number;
}

export interface ResponseHead {
  status: number;
  headers: http.IncomingHttpHeaders;
}

export interface GuardedRequestInit {
  method?: 'GET' | 'POST';
  headers?: http.OutgoingHttpHeaders;
  body?: Buffer;
  /** Deadline of the whole exchange, connect to last byte. */
  timeoutMs: number;
  /** Largest body read; a larger one fails with kind `too-large`. */
  maxBytes: number;
  /**
   * Sees the status and headers before the body is read. false: the body is not read (the
   * answer comes with an empty body, e.g. a redirect). A throw aborts the exchange and the
   * request rejects with what was thrown (e.g. a content type the caller does not want).
   */
  readBody?: (head: ResponseHead) => boolean;
}

export interface GuardedResponse extends ResponseHead {
  body: Buffer;
}

const REFUSED_CODE = 'ERR_TESSERA_GUARDED_REQUEST_REFUSED';
const UNRESOLVED_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'ENODATA', 'EAI_NONAME']);

export class GuardedHttpClient {
  readonly policy: IpPolicy;
  private readonly describe: (where: string, why: string) => string;
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;

  constructor(options: GuardedHttpClientOptions = {}) {
    this.policy = new IpPolicy(options.allowedCidrs ?? [], options.blockedCidrs ?? [], options.listNames);
    this.describe = options.describeRefusal ?? ((where, why) => `${where} refused: ${why}`);
    const lookup = guardedLookup(options.resolver ?? systemResolver, this.policy, REFUSED_CODE, this.describe);
    const agentOptions: http.AgentOptions = { keepAlive: options.keepAlive ?? false, ...(options.maxSockets ? { maxSockets: options.maxSockets } : {}) };
    this.httpAgent = new http.Agent({ ...agentOptions, lookup });
    this.httpsAgent = new https.Agent({ ...agentOptions, lookup });
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  /** One request to `url`; rejects with a GuardedRequestError (or what `readBody` threw). */
  request(url: string, init: GuardedRequestInit): Promise<GuardedResponse> {
    const method = init.method ?? 'GET';
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      return Promise.reject(new GuardedRequestError('invalid-url', `${url} is not a URL`));
    }
    if (target.protocol !== 'http:' && target.protocol !== 'https:') {
      return Promise.reject(new GuardedRequestError('invalid-url', `Cannot fetch ${target.protocol} URLs: only http and https`));
    }
    const host = target.hostname.startsWith('[') ? target.hostname.slice(1, -1) : target.hostname;
    if (isIP(host) !== 0) {
      // Node does not call lookup for IP literals: police them here.
      const why = this.policy.refusal(host);
      if (why) return Promise.reject(new GuardedRequestError('refused', this.describe(url, why), { ipLiteral: true, reason: why }));
    }
    const secure = target.protocol === 'https:';
    const options: https.RequestOptions = {
      agent: secure ? this.httpsAgent : this.httpAgent,
      host,
      port: target.port === '' ? undefined : Number(target.port),
      method,
      path: `${target.pathname}${target.search}`,
      headers: {
        host: target.host,
        ...(init.body ? { 'content-length': init.body.length } : {}),
        ...init.headers,
      },
    };
    if (secure && isIP(host) === 0) options.servername = host;

    return new Promise<GuardedResponse>((resolve, reject) => {
      let settled = false;
      let status: number | undefined;
      let response: http.IncomingMessage | undefined;
      const request = secure ? https.request(options) : http.request(options);
      const settle = (): boolean => {
        if (settled) return false;
        settled = true;
        clearTimeout(timer);
        return true;
      };
      const fail = (err: unknown) => {
        if (!settle()) return;
        response?.destroy();
        request.destroy();
        reject(err);
      };
      const timer = setTimeout(
        () => fail(new GuardedRequestError('timeout', `${method} ${url} got no complete answer within ${init.timeoutMs} ms`, { status })),
        Math.max(0, init.timeoutMs),
      );
      request.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === REFUSED_CODE) fail(new GuardedRequestError('refused', err.message, { reason: err.message }));
        else if (UNRESOLVED_CODES.has(err.code ?? '')) fail(new GuardedRequestError('unresolved', `${target.hostname} could not be resolved: ${err.message}`));
        else fail(new GuardedRequestError('network', `${method} ${url} failed: ${err.message}`));
      });
      request.on('response', (answer) => {
        response = answer;
        status = answer.statusCode ?? 0;
        const head: ResponseHead = { status, headers: answer.headers };
        let read: boolean;
        try {
          read = init.readBody ? init.readBody(head) : true;
        } catch (err) {
          fail(err);
          return;
        }
        if (!read) {
          if (!settle()) return;
          answer.destroy();
          resolve({ ...head, body: Buffer.alloc(0) });
          return;
        }
        const tooLarge = () => new GuardedRequestError('too-large', `${method} ${url}: the answer is larger than ${init.maxBytes} bytes`, { status });
        const declared = Number(answer.headers['content-length']);
        if (answer.headers['content-length'] !== undefined && Number.isFinite(declared) && declared > init.maxBytes) {
          fail(tooLarge());
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        answer.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > init.maxBytes) fail(tooLarge());
          else chunks.push(chunk);
        });
        answer.on('error', (err) => fail(new GuardedRequestError('network', `reading the answer of ${url} failed: ${err.message}`, { status })));
        answer.on('close', () => fail(new GuardedRequestError('network', `${url} closed the connection before the end of its answer`, { status })));
        answer.on('end', () => {
          if (settle()) resolve({ ...head, body: Buffer.concat(chunks) });
        });
      });
      request.end(init.body);
    });
  }
}
