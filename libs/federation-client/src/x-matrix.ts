/**
 * X-Matrix request authentication (Server-Server API v1.16, "Request Authentication").
 *
 * The sender signs the canonical JSON of {method, uri, origin, destination, content?} with its
 * server key and sends `Authorization: X-Matrix origin="..",destination="..",key="..",sig=".."`.
 * The receiver parses that header tolerantly (RFC 9110 auth-params: quoted or token values,
 * optional whitespace around commas, case-insensitive names, unknown names ignored, unquoted
 * colons accepted for older servers), checks the destination is itself, and verifies the
 * signature with the origin's key.
 */
import {
  canonicalJsonBytes,
  decodeBase64,
  encodeUnpaddedBase64,
  signBytes,
  verifyBytes,
  type SigningKey,
} from '@tessera/protocol';
import { FederationAuthError } from './errors.js';
import { splitServerName } from './server-name.js';

export interface RequestToSign {
  /** HTTP method, e.g. "PUT" (upper-cased before signing). */
  method: string;
  /** Path and query exactly as sent, starting with /_matrix/ (no scheme or host). */
  uri: string;
  /** Our server name. */
  origin: string;
  /** The receiving server's name. */
  destination: string;
  /** The JSON body, if the request has one. */
  content?: unknown;
}

export interface XMatrixParams {
  origin: string;
  /** Absent from older servers' headers (before v1.3). */
  destination?: string;
  /** Key id with algorithm, e.g. "ed25519:abc". */
  key: string;
  /** Unpadded base64 signature. */
  sig: string;
}

function signedObject(r: RequestToSign): Record<string, unknown> {
  const obj: Record<string, unknown> = { method: r.method.toUpperCase(), uri: r.uri, origin: r.origin, destination: r.destination };
  if (r.content !== undefined) obj.content = r.content;
  return obj;
}

/**
 * The Authorization header value for a request. Written the way the spec recommends for older
 * receivers: one space after X-Matrix, lower-case names, every value quoted.
 */
export function signRequest(request: RequestToSign, key: SigningKey): string {
  const sig = encodeUnpaddedBase64(signBytes(canonicalJsonBytes(signedObject(request)), key));
  return `X-Matrix origin=${quote(request.origin)},destination=${quote(request.destination)},key=${quote(key.keyId)},sig=${quote(sig)}`;
}

function quote(v: string): string {
  return `"${v.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

const TOKEN_CHAR = /[!#$%&'*+.^_`|~0-9A-Za-z-]/;

function unauthorized(message: string): FederationAuthError {
  return new FederationAuthError('M_UNAUTHORIZED', message);
}

/** Parses an `X-Matrix ...` Authorization header value; throws FederationAuthError (M_UNAUTHORIZED). */
export function parseXMatrixHeader(header: string): XMatrixParams {
  if (typeof header !== 'string') throw unauthorized('Missing Authorization header');
  const scheme = /^[ \t]*X-Matrix(?=[ \t]|$)/i.exec(header);
  if (!scheme) throw unauthorized('Authorization header must use the X-Matrix scheme: X-Matrix origin="...",destination="...",key="...",sig="..."');
  const s = header;
  let i = scheme[0].length;
  const params = new Map<string, string>();
  const skip = (chars: string) => {
    while (i < s.length && chars.includes(s[i]!)) i++;
  };
  for (;;) {
    skip(' \t,'); // empty list elements and whitespace around commas are allowed
    if (i >= s.length) break;
    const nameStart = i;
    while (i < s.length && TOKEN_CHAR.test(s[i]!)) i++;
    const name = s.slice(nameStart, i).toLowerCase();
    if (name === '') throw unauthorized(`X-Matrix header: expected a parameter name at position ${nameStart}`);
    skip(' \t');
    if (s[i] !== '=') throw unauthorized(`X-Matrix header: parameter "${name}" has no "=value"`);
    i++;
    skip(' \t');
    let value = '';
    if (s[i] === '"') {
      i++;
      let closed = false;
      while (i < s.length) {
        const c = s[i]!;
        if (c === '\\' && i + 1 < s.length) {
          value += s[i + 1];
          i += 2;
        } else if (c === '"') {
          closed = true;
          i++;
          break;
        } else {
          value += c;
          i++;
        }
      }
      if (!closed) throw unauthorized(`X-Matrix header: the quoted value of "${name}" is not closed`);
    } else {
      // A token; colons are accepted unquoted for older servers, and so is the rest of base64.
      const start = i;
      while (i < s.length && !' \t,"'.includes(s[i]!)) i++;
      value = s.slice(start, i);
      if (value === '') throw unauthorized(`X-Matrix header: parameter "${name}" has an empty value`);
    }
    skip(' \t');
    if (i < s.length && s[i] !== ',') throw unauthorized(`X-Matrix header: expected "," after the value of "${name}"`);
    if (params.has(name)) throw unauthorized(`X-Matrix header: parameter "${name}" appears twice`);
    params.set(name, value);
  }
  const origin = params.get('origin');
  const key = params.get('key');
  const sig = params.get('sig');
  const missing = [origin === undefined && 'origin', key === undefined && 'key', sig === undefined && 'sig'].filter(Boolean);
  if (missing.length > 0) throw unauthorized(`X-Matrix header lacks ${missing.join(', ')}`);
  return { origin: origin!, destination: params.get('destination'), key: key!, sig: sig! };
}

export interface InboundRequest {
  method: string;
  /** Path and query exactly as received (raw, still percent-encoded). */
  uri: string;
  /** The Authorization header(s) as received. */
  header: string | readonly string[] | undefined;
  /** The parsed JSON body; undefined when the request has none. */
  content?: unknown;
  /** Our own server name. */
  destination: string;
}

/** Returns the origin's public key for a key id (valid now), or undefined if it cannot be had. */
export type VerifyKeyLookup = (serverName: string, keyId: string) => Promise<Uint8Array | undefined>;

export interface VerifyRequestOptions {
  /** Refuse some origins outright (deny lists): false gives 403 M_FORBIDDEN. */
  isOriginAllowed?: (origin: string) => boolean | Promise<boolean>;
}

export interface VerifiedRequest {
  origin: string;
  keyId: string;
}

/**
 * Authenticates an inbound federation request. Resolves to the origin, or rejects with a
 * FederationAuthError whose status/errcode the ingress answers with (401 M_UNAUTHORIZED for a
 * missing, malformed, misdirected or badly signed request; 403 M_FORBIDDEN for a refused origin).
 * With several Authorization headers, the first X-Matrix one that verifies wins.
 */
export async function verifyRequest(
  request: InboundRequest,
  getKey: VerifyKeyLookup,
  options: VerifyRequestOptions = {},
): Promise<VerifiedRequest> {
  const headers = request.header === undefined ? [] : typeof request.header === 'string' ? [request.header] : [...request.header];
  const candidates = headers.filter((h) => /^[ \t]*X-Matrix(?:[ \t]|$)/i.test(h));
  if (candidates.length === 0) {
    throw unauthorized(headers.length === 0 ? 'Missing Authorization header' : 'Authorization header must use the X-Matrix scheme');
  }
  let lastError: FederationAuthError | undefined;
  for (const header of candidates) {
    try {
      return await verifyOne(request, header, getKey, options);
    } catch (err) {
      if (!(err instanceof FederationAuthError)) throw err;
      if (err.errcode === 'M_FORBIDDEN') throw err;
      lastError = err;
    }
  }
  throw lastError!;
}

async function verifyOne(request: InboundRequest, header: string, getKey: VerifyKeyLookup, options: VerifyRequestOptions): Promise<VerifiedRequest> {
  const params = parseXMatrixHeader(header);
  if (!splitServerName(params.origin)) throw unauthorized(`X-Matrix origin "${params.origin}" is not a valid server name`);
  if (params.destination !== undefined && params.destination.toLowerCase() !== request.destination.toLowerCase()) {
    throw unauthorized(`X-Matrix destination "${params.destination}" is not this server (${request.destination})`);
  }
  if (!params.key.startsWith('ed25519:') || params.key.length === 'ed25519:'.length) {
    throw unauthorized(`X-Matrix key "${params.key}" is not an ed25519 key id (ed25519:<version>)`);
  }
  let signature: Uint8Array;
  try {
    signature = decodeBase64(params.sig);
  } catch {
    throw unauthorized('X-Matrix sig is not valid base64');
  }
  if (options.isOriginAllowed && !(await options.isOriginAllowed(params.origin))) {
    throw new FederationAuthError('M_FORBIDDEN', `requests from ${params.origin} are not accepted by this server`);
  }
  let bytes: Uint8Array;
  try {
    bytes = canonicalJsonBytes(
      signedObject({ method: request.method, uri: request.uri, origin: params.origin, destination: params.destination ?? request.destination, content: request.content }),
    );
  } catch (err) {
    throw unauthorized(`the request body has no canonical JSON form: ${(err as Error).message}`);
  }
  let publicKey: Uint8Array | undefined;
  try {
    publicKey = await getKey(params.origin, params.key);
  } catch (err) {
    throw unauthorized(`could not fetch key ${params.key} of ${params.origin}: ${(err as Error).message}`);
  }
  if (!publicKey) throw unauthorized(`no valid key ${params.key} is known for ${params.origin}`);
  if (!verifyBytes(bytes, signature, publicKey)) {
    throw unauthorized(`the X-Matrix signature of ${params.origin} with ${params.key} does not verify for ${request.method} ${request.uri}`);
  }
  return { origin: params.origin, keyId: params.key };
}
