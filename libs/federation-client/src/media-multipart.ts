/**
 * The wire format of federation media downloads (Server-Server API "Content Repository",
 * spec v1.11+): a multipart/mixed body (RFC 2046 §5.1) of exactly two parts, the first
 * `application/json` metadata (an empty object today), the second either the bytes with their
 * Content-Type and Content-Disposition, or a Location header naming where to fetch them.
 * Also the small header parsers both sides need (parameters, Content-Disposition file names).
 */
import { randomBytes } from 'node:crypto';

const CRLF = '\r\n';

/** The second part: the media itself, or where to get it. */
export type MediaPart =
  | { kind: 'content'; contentType: string | null; contentDisposition: string | null; content: Buffer }
  | { kind: 'location'; location: string };

export interface MediaMultipart {
  /** The first part's JSON object (the media's metadata; `{}` today). */
  metadata: Record<string, unknown>;
  media: MediaPart;
}

export interface MultipartPart {
  /** Header names in lower case. */
  headers: Record<string, string>;
  body: Buffer;
}

/** A multipart/mixed answer that breaks RFC 2046 or the spec's two-part shape. */
export class MultipartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MultipartError';
  }
}

/**
 * Builds the federation download answer. The boundary is random and checked against the
 * content, so no byte sequence of the media can end a part early.
 */
export function buildMediaMultipart(media: MediaPart, metadata: Record<string, unknown> = {}): { contentType: string; body: Buffer } {
  const second: string[] = [];
  let content: Buffer = Buffer.alloc(0);
  if (media.kind === 'location') {
    second.push(`Location: ${media.location}`);
  } else {
    second.push(`Content-Type: ${media.contentType ?? 'application/octet-stream'}`);
    if (media.contentDisposition) second.push(`Content-Disposition: ${media.contentDisposition}`);
    content = media.content;
  }
  const json = Buffer.from(JSON.stringify(metadata), 'utf8');
  let boundary: string;
  do {
    boundary = randomBytes(16).toString('hex');
  } while (content.includes(boundary) || json.includes(boundary));
  const body = Buffer.concat([
    Buffer.from(`--${boundary}${CRLF}Content-Type: application/json${CRLF}${CRLF}`),
    json,
    Buffer.from(`${CRLF}--${boundary}${CRLF}${second.join(CRLF)}${CRLF}${CRLF}`),
    content,
    Buffer.from(`${CRLF}--${boundary}--${CRLF}`),
  ]);
  return { contentType: `multipart/mixed; boundary=${boundary}`, body };
}

/**
 * Parses a federation download answer given its Content-Type header: multipart/mixed with a
 * boundary, a JSON object first, then the media or a Location. Throws MultipartError otherwise.
 */
export function parseMediaMultipart(contentType: string | undefined, body: Buffer): MediaMultipart {
  const { essence, params } = parseHeaderValue(contentType ?? '');
  if (essence !== 'multipart/mixed') throw new MultipartError(`expected multipart/mixed, got ${contentType ? `"${contentType}"` : 'no Content-Type'}`);
  const boundary = params.boundary;
  if (!boundary) throw new MultipartError('the multipart/mixed Content-Type has no boundary');
  const parts = parseMultipart(body, boundary);
  if (parts.length < 2) throw new MultipartError(`expected two parts, got ${parts.length}`);
  const [first, second] = parts as [MultipartPart, MultipartPart];
  let metadata: unknown;
  try {
    metadata = JSON.parse(first.body.toString('utf8'));
  } catch {
    throw new MultipartError('the first part is not JSON');
  }
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) throw new MultipartError('the first part is not a JSON object');
  const location = second.headers.location;
  if (location !== undefined) return { metadata: metadata as Record<string, unknown>, media: { kind: 'location', location } };
  return {
    metadata: metadata as Record<string, unknown>,
    media: {
      kind: 'content',
      contentType: second.headers['content-type'] ?? null,
      contentDisposition: second.headers['content-disposition'] ?? null,
      content: second.body,
    },
  };
}

/**
 * The body parts of a multipart body (RFC 2046 §5.1.1): the preamble before the first
 * delimiter and the epilogue after the close delimiter are ignored; a delimiter is
 * `--boundary` at the start of the body or after CRLF, followed by optional whitespace and CRLF.
 */
export function parseMultipart(body: Buffer, boundary: string): MultipartPart[] {
  const dash = Buffer.from(`--${boundary}`);
  const next = Buffer.from(`${CRLF}--${boundary}`);
  let at = body.subarray(0, dash.length).equals(dash) ? 0 : body.indexOf(next);
  if (at < 0) throw new MultipartError('no boundary delimiter found');
  if (at > 0) at += CRLF.length;
  const parts: MultipartPart[] = [];
  for (;;) {
    let pos = at + dash.length;
    if (body.subarray(pos, pos + 2).toString('latin1') === '--') return parts; // close delimiter
    while (body[pos] === 0x20 || body[pos] === 0x09) pos++; // transport padding
    if (body.subarray(pos, pos + 2).toString('latin1') !== CRLF) throw new MultipartError('a boundary delimiter is not followed by CRLF');
    pos += 2;
    const end = body.indexOf(next, pos);
    if (end < 0) throw new MultipartError('the multipart body has no close delimiter');
    parts.push(parsePart(body.subarray(pos, end)));
    at = end + CRLF.length;
  }
}

function parsePart(raw: Buffer): MultipartPart {
  // A part without headers starts with the blank line itself.
  const split = raw.subarray(0, 2).toString('latin1') === CRLF ? 0 : raw.indexOf(`${CRLF}${CRLF}`);
  if (split < 0) throw new MultipartError('a part has no blank line after its headers');
  const headers: Record<string, string> = {};
  const head = raw.subarray(0, split).toString('latin1');
  for (const line of head === '' ? [] : head.split(CRLF)) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new MultipartError(`malformed part header "${line}"`);
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { headers, body: raw.subarray(split === 0 ? 2 : split + 4) };
}

/**
 * A header value of the form `value; name=token; name="quoted"` (Content-Type,
 * Content-Disposition): the lower-cased first value and the parameters (names lower-cased).
 */
export function parseHeaderValue(header: string): { essence: string; params: Record<string, string> } {
  const semi = header.indexOf(';');
  const essence = (semi < 0 ? header : header.slice(0, semi)).trim().toLowerCase();
  const params: Record<string, string> = {};
  const re = /;\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)/g;
  const rest = semi < 0 ? '' : header.slice(semi);
  for (let m = re.exec(rest); m; m = re.exec(rest)) {
    const raw = m[2]!.trim();
    params[m[1]!.toLowerCase()] = raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw;
  }
  return { essence, params };
}

/**
 * The file name of a Content-Disposition header (RFC 6266): `filename*` (RFC 8187, UTF-8 or
 * ISO-8859-1) preferred over `filename`; null when there is none or it cannot be decoded.
 */
export function fileNameOfDisposition(header: string | null | undefined): string | null {
  if (!header) return null;
  const { params } = parseHeaderValue(header);
  const extended = params['filename*'];
  if (extended) {
    const m = /^([\w!#$%&+^`{}~-]+)'[^']*'(.*)$/.exec(extended);
    if (m) {
      const charset = m[1]!.toLowerCase();
      try {
        if (charset === 'utf-8') return decodeURIComponent(m[2]!) || null;
        if (charset === 'iso-8859-1') return m[2]!.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))) || null;
      } catch {
        // Badly encoded: fall back to the plain parameter.
      }
    }
  }
  return params.filename || null;
}
