/**
 * Matrix identifiers (spec appendices: "Server Name", "User Identifiers", "Room IDs",
 * "Event IDs", "Room Aliases"; ../shared/matrix-spec/string-formats.yaml points there).
 *
 * Each parser returns the parts or throws an IdentifierError whose message names the part
 * that is wrong.
 */

export class IdentifierError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IdentifierError';
  }
}

/** The spec's limit on user ids, room ids, event ids and room aliases, sigil and server included. */
export const MAX_IDENTIFIER_BYTES = 255;

export interface ServerName {
  /** The host as written: a DNS name, an IPv4 literal, or an IPv6 literal with its brackets. */
  host: string;
  port?: number;
  kind: 'dns' | 'ipv4' | 'ipv6';
}

const IPV4 = /^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$/;
const IPV6_CHARS = /^[0-9A-Fa-f:.]{2,45}$/;
const DNS_NAME = /^[A-Za-z0-9.-]{1,255}$/;
const PORT = /^[0-9]{1,5}$/;

/**
 * server_name = hostname [ ":" port ]; port = 1*5DIGIT;
 * hostname = IPv4address / "[" IPv6address "]" / dns-name;
 * IPv6address = 2*45IPv6char (hex digits, ':' and '.'); dns-name = 1*255 (letters, digits, '-', '.').
 */
export function parseServerName(s: string): ServerName {
  if (typeof s !== 'string' || s === '') throw new IdentifierError('server name is empty');
  let host: string;
  let rest: string;
  let kind: ServerName['kind'];
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0) throw new IdentifierError(`server name '${s}' has an IPv6 literal without its closing ']'`);
    const address = s.slice(1, close);
    if (!IPV6_CHARS.test(address)) {
      throw new IdentifierError(`server name '${s}' has an invalid IPv6 literal '${address}' (2 to 45 hex digits, ':' or '.')`);
    }
    host = s.slice(0, close + 1);
    rest = s.slice(close + 1);
    kind = 'ipv6';
  } else {
    const colon = s.indexOf(':');
    host = colon < 0 ? s : s.slice(0, colon);
    rest = colon < 0 ? '' : s.slice(colon);
    if (host === '') throw new IdentifierError(`server name '${s}' has an empty host`);
    if (IPV4.test(host)) kind = 'ipv4';
    else if (DNS_NAME.test(host)) kind = 'dns';
    else {
      const bad = [...host].find((c) => !/[A-Za-z0-9.-]/.test(c));
      throw new IdentifierError(
        bad === undefined
          ? `server name '${s}' has a host longer than 255 characters`
          : `server name '${s}' has invalid character '${bad}' in its host (letters, digits, '-' and '.' only)`,
      );
    }
  }
  if (rest === '') return { host, kind };
  if (!rest.startsWith(':')) throw new IdentifierError(`server name '${s}' has '${rest}' after the host where only ':port' may follow`);
  const portText = rest.slice(1);
  if (!PORT.test(portText)) throw new IdentifierError(`server name '${s}' has an invalid port '${portText}' (1 to 5 digits)`);
  return { host, port: Number(portText), kind };
}

export function isValidServerName(s: string): boolean {
  return tryParse(() => parseServerName(s));
}

function byteLength(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

function checkLength(what: string, s: string): void {
  const n = byteLength(s);
  if (n > MAX_IDENTIFIER_BYTES) throw new IdentifierError(`${what} is ${n} bytes long; the limit is ${MAX_IDENTIFIER_BYTES}`);
}

function checkSigil(what: string, s: string, sigil: string): void {
  if (typeof s !== 'string') throw new IdentifierError(`${what} must be a string, got ${typeof s}`);
  if (!s.startsWith(sigil)) throw new IdentifierError(`${what} '${s}' does not start with '${sigil}'`);
}

/** Splits `&local:server` at the first ':' and checks the server name. */
function splitLocalAndServer(what: string, s: string, localName: string): { localpart: string; serverName: string } {
  const colon = s.indexOf(':');
  if (colon < 0) throw new IdentifierError(`${what} '${s}' has no ':' separating ${localName} and server name`);
  const localpart = s.slice(1, colon);
  const serverName = s.slice(colon + 1);
  if (localpart === '') throw new IdentifierError(`${what} '${s}' has an empty ${localName}`);
  try {
    parseServerName(serverName);
  } catch (e) {
    throw new IdentifierError(`${what} '${s}' has an invalid server name: ${(e as Error).message}`);
  }
  return { localpart, serverName };
}

// ---------------------------------------------------------------------------------------------
// Users

export interface UserId {
  localpart: string;
  serverName: string;
  /** The localpart uses characters only the historical grammar allows (see below). */
  historical: boolean;
}

const LOCALPART = /^[a-z0-9._=\-/+]+$/;
/** extended_user_id_char = %x21-39 / %x3B-7E: printable ASCII except ':'. */
const HISTORICAL_LOCALPART = /^[\x21-\x39\x3B-\x7E]+$/;

/**
 * Parses a user id. Historical localparts (any printable ASCII but ':') are accepted, as the
 * spec requires of servers for users that exist already; new registrations must pass
 * isValidLocalpartForRegistration.
 */
export function parseUserId(s: string): UserId {
  checkSigil('user id', s, '@');
  checkLength('user id', s);
  const { localpart, serverName } = splitLocalAndServer('user id', s, 'localpart');
  if (!HISTORICAL_LOCALPART.test(localpart)) {
    const bad = [...localpart].find((c) => !HISTORICAL_LOCALPART.test(c));
    throw new IdentifierError(`user id '${s}' has invalid character ${JSON.stringify(bad)} in its localpart`);
  }
  return { localpart, serverName, historical: !LOCALPART.test(localpart) };
}

/** a-z, 0-9, '.', '_', '=', '-', '/', '+': what a new user id's localpart may contain. */
export function isValidLocalpartForRegistration(localpart: string): boolean {
  return typeof localpart === 'string' && LOCALPART.test(localpart);
}

export function isValidUserId(s: string): boolean {
  return tryParse(() => parseUserId(s));
}

// ---------------------------------------------------------------------------------------------
// Rooms

export interface RoomId {
  /** The part after '!' (and before ':' when there is a server name). */
  opaque: string;
  /** Absent for room version 12 ids, which are the create event's hash. */
  serverName?: string;
}

const URL_SAFE_HASH = /^[A-Za-z0-9_-]{43}$/;

export function parseRoomId(s: string): RoomId {
  checkSigil('room id', s, '!');
  checkLength('room id', s);
  if (!s.includes(':')) {
    const opaque = s.slice(1);
    if (!URL_SAFE_HASH.test(opaque)) {
      throw new IdentifierError(
        `room id '${s}' has no ':' separating opaque id and server name, and is not a room version 12 id ('!' + 43 URL-safe base64 characters)`,
      );
    }
    return { opaque };
  }
  const { localpart, serverName } = splitLocalAndServer('room id', s, 'opaque id');
  return { opaque: localpart, serverName };
}

export function isValidRoomId(s: string): boolean {
  return tryParse(() => parseRoomId(s));
}

// ---------------------------------------------------------------------------------------------
// Events

export interface EventId {
  /** The part after '$' (and before ':' for room versions 1-2). */
  opaque: string;
  /** Only room version 1-2 event ids have one. */
  serverName?: string;
}

const HASH_ID = /^[A-Za-z0-9+/_-]{43}$/;

/** `$opaque:server` (room versions 1-2) or `$` + 43 base64 characters (v3 standard, v4+ URL-safe). */
export function parseEventId(s: string): EventId {
  checkSigil('event id', s, '$');
  checkLength('event id', s);
  if (!s.includes(':')) {
    const opaque = s.slice(1);
    if (!HASH_ID.test(opaque)) {
      throw new IdentifierError(
        `event id '${s}' has no ':' separating opaque id and server name, and is not a hash id ('$' + 43 base64 characters)`,
      );
    }
    return { opaque };
  }
  const { localpart, serverName } = splitLocalAndServer('event id', s, 'opaque id');
  return { opaque: localpart, serverName };
}

export function isValidEventId(s: string): boolean {
  return tryParse(() => parseEventId(s));
}

// ---------------------------------------------------------------------------------------------
// Room aliases

export interface RoomAlias {
  localpart: string;
  serverName: string;
}

export function parseRoomAlias(s: string): RoomAlias {
  checkSigil('room alias', s, '#');
  checkLength('room alias', s);
  return splitLocalAndServer('room alias', s, 'localpart');
}

export function isValidRoomAlias(s: string): boolean {
  return tryParse(() => parseRoomAlias(s));
}

function tryParse(parse: () => unknown): boolean {
  try {
    parse();
    return true;
  } catch (e) {
    if (e instanceof IdentifierError) return false;
    throw e;
  }
}
