/**
 * Fetches what a URL preview needs: a page, or an image named by it. The URL is a user's
 * choice, so the same guard as outbound federation and push gateways applies (IpPolicy and
 * guardedLookup of @tessera/federation-client): private, loopback, link-local and other
 * special-purpose addresses are refused unless url_preview_ip_range_whitelist names them, on
 * the address actually connected to, for every redirect too. Each fetch has one deadline
 * (redirects included), a cap on the bytes read and a bounded number of redirects.
 *
 * Failures are the Matrix errors Synapse answers: 403 M_UNKNOWN for an IP literal the policy
 * refuses, 502 M_UNKNOWN when a name has no address we may reach, when the answer is not 2xx or
 * of a type that cannot be previewed, or on any other failure, 502 M_TOO_LARGE beyond the cap.
 */
import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { fileNameOfDisposition, guardedLookup, IpPolicy, systemResolver, type DnsResolver } from '@tessera/federation-client';
import { MatrixError } from '../../errors.js';

export interface PreviewFetcherOptions {
  /** CIDRs reachable although special-purpose. Throws CidrError at construction when one is malformed. */
  allowedCidrs: readonly string[];
  timeoutMs: number;
  maxRedirects: number;
  resolver?: DnsResolver;
}

export interface Fetched {
  /** The URL finally answered (after redirects): relative links of a page resolve against it. */
  url: string;
  /** The Content-Type header, when there was one. */
  contentType: string | undefined;
  /** The file name of Content-Disposition, if any. */
  fileName: string | null;
  body: Buffer;
}

const REFUSED_CODE = 'ERR_TESSERA_URL_PREVIEW_ADDRESS_REFUSED';
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** Some sites give OpenGraph data only to crawlers; no version, so nothing leaks. */
const USER_AGENT = 'Tessera (bot; Matrix URL preview)';

/** One answer before its body is read. */
interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  response: http.IncomingMessage;
}

export class PreviewFetcher {
  private readonly policy: IpPolicy;
  private readonly lookup: LookupFunction;
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;

  constructor(private readonly options: PreviewFetcherOptions) {
    this.policy = new IpPolicy(options.allowedCidrs);
    this.lookup = guardedLookup(options.resolver ?? systemResolver, this.policy, REFUSED_CODE, (hostname, why) =>
      `${hostname} has no address this server may fetch from (${why.replace('outbound federation refuses it unless the allow-list permits it', 'url_preview_ip_range_whitelist does not list it')})`,
    );
    this.httpAgent = new http.Agent({ keepAlive: false, lookup: this.lookup });
    this.httpsAgent = new https.Agent({ keepAlive: false, lookup: this.lookup });
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  /**
   * GETs `url`, following redirects, and reads at most `maxBytes` of the final answer.
   * `isAllowedType` sees the final Content-Type (when there is one) before the body is read.
   */
  async fetch(url: string, maxBytes: number, isAllowedType: (contentType: string) => boolean): Promise<Fetched> {
    const deadline = Date.now() + this.options.timeoutMs;
    let current = url;
    for (let hop = 0; ; hop++) {
      const answer = await this.request(current, deadline);
      const location = answer.headers.location;
      if (REDIRECTS.has(answer.status) && typeof location === 'string' && location !== '') {
        answer.response.destroy();
        if (hop >= this.options.maxRedirects) throw badGateway(`Too many redirects (more than ${this.options.maxRedirects}) fetching ${url}`);
        try {
          current = new URL(location, current).toString();
        } catch {
          throw badGateway(`${current} redirected to an invalid location "${location}"`);
        }
        continue;
      }
      if (answer.status < 200 || answer.status > 299) {
        answer.response.destroy();
        throw badGateway(`Got error ${answer.status}`);
      }
      const contentType = header(answer.headers['content-type']);
      if (contentType !== undefined && !isAllowedType(contentType)) {
        answer.response.destroy();
        throw badGateway(`Requested file's content type not allowed for this operation: ${contentType}`);
      }
      const body = await readBody(answer.response, maxBytes, deadline, current);
      return { url: current, contentType, fileName: fileNameOfDisposition(header(answer.headers['content-disposition'])), body };
    }
  }

  /** One GET, answered up to its headers. */
  private request(url: string, deadline: number): Promise<Answer> {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      return Promise.reject(badGateway(`${url} is not a URL`));
    }
    if (target.protocol !== 'http:' && target.protocol !== 'https:') return Promise.reject(badGateway(`Cannot fetch ${target.protocol} URLs: only http and https`));
    const host = target.hostname.startsWith('[') ? target.hostname.slice(1, -1) : target.hostname;
    if (isIP(host) !== 0 && !this.policy.isAllowed(host)) {
      // Node does not call lookup for IP literals: police them here (Synapse: 403 "IP address blocked").
      return Promise.reject(new MatrixError(403, 'M_UNKNOWN', `IP address blocked: ${host} is special-purpose and url_preview_ip_range_whitelist does not list it`));
    }
    const secure = target.protocol === 'https:';
    return new Promise<Answer>((resolve, reject) => {
      const options: https.RequestOptions = {
        agent: secure ? this.httpsAgent : this.httpAgent,
        host,
        port: target.port === '' ? undefined : Number(target.port),
        method: 'GET',
        path: `${target.pathname}${target.search}`,
        headers: {
          host: target.host,
          'user-agent': USER_AGENT,
          accept: 'text/html,application/xhtml+xml,image/*;q=0.9,*/*;q=0.5',
          'accept-language': 'en',
        },
      };
      if (secure && isIP(host) === 0) options.servername = host;
      const request = secure ? https.request(options) : http.request(options);
      const timer = setTimeout(() => {
        request.destroy();
        reject(badGateway(`${url} did not answer within the time allowed`));
      }, Math.max(0, deadline - Date.now()));
      request.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (err.code === REFUSED_CODE || err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') {
          reject(badGateway(`DNS resolution failure during URL preview generation: ${err.message}`));
        } else {
          reject(badGateway(`Failed to download content from ${url}: ${err.message}`));
        }
      });
      request.on('response', (response) => {
        clearTimeout(timer);
        resolve({ status: response.statusCode ?? 0, headers: response.headers, response });
      });
      request.end();
    });
  }
}

/** The body, refused beyond maxBytes (from Content-Length when it says so, else while reading) or past the deadline. */
function readBody(response: http.IncomingMessage, maxBytes: number, deadline: number, url: string): Promise<Buffer> {
  const declared = Number(response.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    response.destroy();
    return Promise.reject(tooLarge(maxBytes));
  }
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const fail = (err: MatrixError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      response.destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(badGateway(`Reading ${url} took longer than the time allowed`)), Math.max(0, deadline - Date.now()));
    response.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) fail(tooLarge(maxBytes));
      else chunks.push(chunk);
    });
    response.on('error', (err) => fail(badGateway(`Failed to download content from ${url}: ${err.message}`)));
    response.on('aborted', () => fail(badGateway(`${url} closed the connection before the end of its answer`)));
    response.on('end', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
  });
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function tooLarge(maxBytes: number): MatrixError {
  return new MatrixError(502, 'M_TOO_LARGE', `Requested file is too large > ${maxBytes} bytes`);
}

function badGateway(message: string): MatrixError {
  return new MatrixError(502, 'M_UNKNOWN', message);
}
