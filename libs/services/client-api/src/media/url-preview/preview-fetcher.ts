/**
 * Fetches what a URL preview needs: a page, or an image named by it. The URL is a user's
 * choice, so the same guard as outbound federation and push gateways applies (GuardedHttpClient
 * of @tessera/federation-client): private, loopback, link-local and other special-purpose
 * addresses are refused unless url_preview_ip_range_whitelist names them, and so are those
 * url_preview_ip_range_blacklist names (the whitelist wins), on the address actually connected
 * to, for every redirect too; so are URLs url_preview_url_blacklist matches (url-blacklist.ts),
 * redirects and images included. Each fetch has one deadline (redirects included), a cap on the
 * bytes read and a bounded number of redirects.
 *
 * Failures are the Matrix errors Synapse answers: 403 M_UNKNOWN for an IP literal the policy
 * refuses or a URL the URL blacklist matches, 502 M_UNKNOWN when a name has no address we may
 * reach, when the answer is not 2xx or of a type that cannot be previewed, or on any other
 * failure, 502 M_TOO_LARGE beyond the cap.
 */
import { fileNameOfDisposition, GuardedHttpClient, GuardedRequestError, type DnsResolver, type GuardedResponse } from '@tessera/federation-client';
import { MatrixError } from '../../errors.js';
import { urlBlacklistEntryMatching, type UrlBlacklistEntry } from './url-blacklist.js';

export interface PreviewFetcherOptions {
  /** CIDRs reachable although special-purpose (url_preview_ip_range_whitelist). Throws CidrError at construction when one is malformed. */
  allowedCidrs: readonly string[];
  /** CIDRs refused although public (url_preview_ip_range_blacklist); allowedCidrs win. Throws CidrError when one is malformed. */
  blockedCidrs?: readonly string[];
  /** URLs not fetched (url_preview_url_blacklist), redirects and images included. */
  urlBlacklist?: readonly UrlBlacklistEntry[];
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

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** Some sites give OpenGraph data only to crawlers; no version, so nothing leaks. */
const USER_AGENT = 'Tessera (bot; Matrix URL preview)';
const HEADERS = {
  'user-agent': USER_AGENT,
  accept: 'text/html,application/xhtml+xml,image/*;q=0.9,*/*;q=0.5',
  'accept-language': 'en',
};

export class PreviewFetcher {
  private readonly http: GuardedHttpClient;

  constructor(private readonly options: PreviewFetcherOptions) {
    this.http = new GuardedHttpClient({
      allowedCidrs: options.allowedCidrs,
      blockedCidrs: options.blockedCidrs ?? [],
      resolver: options.resolver,
      listNames: { allowed: 'url_preview_ip_range_whitelist', blocked: 'url_preview_ip_range_blacklist' },
      describeRefusal: (hostname, why) => `${hostname} has no address this server may fetch from (${why})`,
    });
  }

  close(): void {
    this.http.close();
  }

  /** Throws 403 M_UNKNOWN when url_preview_url_blacklist refuses `url` (as Synapse). */
  checkUrl(url: string): void {
    if (urlBlacklistEntryMatching(this.options.urlBlacklist ?? [], url) !== undefined) {
      throw new MatrixError(403, 'M_UNKNOWN', 'URL blocked by url pattern blacklist entry');
    }
  }

  /**
   * GETs `url`, following redirects, and reads at most `maxBytes` of the final answer.
   * `isAllowedType` sees the final Content-Type (when there is one) before the body is read.
   */
  async fetch(url: string, maxBytes: number, isAllowedType: (contentType: string) => boolean): Promise<Fetched> {
    const deadline = Date.now() + this.options.timeoutMs;
    let current = url;
    for (let hop = 0; ; hop++) {
      this.checkUrl(current);
      const answer = await this.get(current, deadline, maxBytes, isAllowedType);
      const location = answer.headers.location;
      if (isRedirect(answer)) {
        if (hop >= this.options.maxRedirects) throw badGateway(`Too many redirects (more than ${this.options.maxRedirects}) fetching ${url}`);
        try {
          current = new URL(location!, current).toString();
        } catch {
          throw badGateway(`${current} redirected to an invalid location "${location}"`);
        }
        continue;
      }
      return { url: current, contentType: header(answer.headers['content-type']), fileName: fileNameOfDisposition(header(answer.headers['content-disposition'])), body: answer.body };
    }
  }

  /** One GET: a redirect without its body, else a 2xx of an allowed type with its body; failures as Synapse's Matrix errors. */
  private async get(url: string, deadline: number, maxBytes: number, isAllowedType: (contentType: string) => boolean): Promise<GuardedResponse> {
    try {
      return await this.http.request(url, {
        method: 'GET',
        headers: HEADERS,
        timeoutMs: deadline - Date.now(),
        maxBytes,
        readBody: (head) => {
          if (isRedirect(head)) return false;
          if (head.status < 200 || head.status > 299) throw badGateway(`Got error ${head.status}`);
          const contentType = header(head.headers['content-type']);
          if (contentType !== undefined && !isAllowedType(contentType)) {
            throw badGateway(`Requested file's content type not allowed for this operation: ${contentType}`);
          }
          return true;
        },
      });
    } catch (err) {
      if (!(err instanceof GuardedRequestError)) throw err;
      switch (err.kind) {
        case 'refused':
          // Synapse: an IP literal refused is 403 "IP address blocked"; a name without an address we may reach, a DNS failure.
          if (err.details.ipLiteral) throw new MatrixError(403, 'M_UNKNOWN', `IP address blocked: ${err.details.reason ?? err.message}`);
          throw badGateway(`DNS resolution failure during URL preview generation: ${err.message}`);
        case 'unresolved':
          throw badGateway(`DNS resolution failure during URL preview generation: ${err.message}`);
        case 'too-large':
          throw tooLarge(maxBytes);
        case 'timeout':
          throw badGateway(`${url} did not answer within the time allowed`);
        case 'invalid-url':
          throw badGateway(err.message);
        default:
          throw badGateway(`Failed to download content from ${url}: ${err.message}`);
      }
    }
  }
}

function isRedirect(head: { status: number; headers: { location?: string } }): boolean {
  return REDIRECTS.has(head.status) && typeof head.headers.location === 'string' && head.headers.location !== '';
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
