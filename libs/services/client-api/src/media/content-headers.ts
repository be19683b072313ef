/**
 * Response headers of the content repository's downloads and thumbnails: Content-Type,
 * Content-Disposition (spec "Serving inline content") and the security headers the spec
 * recommends when serving content, plus those Synapse adds for the same reasons.
 */

/** The spec's list of content types that are safe to serve with `Content-Disposition: inline`. */
const INLINE_CONTENT_TYPES = new Set([
  'text/css',
  'text/plain',
  'text/csv',
  'application/json',
  'application/ld+json',
  'image/jpeg',
  'image/gif',
  'image/png',
  'image/apng',
  'image/webp',
  'image/avif',
  'video/mp4',
  'video/webm',
  'video/ogg',
  'video/quicktime',
  'audio/mp4',
  'audio/webm',
  'audio/aac',
  'audio/mpeg',
  'audio/ogg',
  'audio/wave',
  'audio/wav',
  'audio/x-wav',
  'audio/x-pn-wav',
  'audio/flac',
  'audio/x-flac',
]);

/**
 * Text types served with `; charset=UTF-8` when uploaded without a charset (the spec allows
 * "adding a charset to text/* content types"; Synapse's list), so browsers do not guess.
 */
const TEXT_CONTENT_TYPES = new Set([
  'text/css',
  'text/csv',
  'text/html',
  'text/calendar',
  'text/plain',
  'text/javascript',
  'application/json',
  'application/ld+json',
  'application/rtf',
  'image/svg+xml',
  'text/xml',
]);

/** The stored type when the upload had no Content-Type (spec: defaults to application/octet-stream). */
export const DEFAULT_CONTENT_TYPE = 'application/octet-stream';

/** `type/subtype` of a Content-Type, lower case, without parameters. */
export function essenceOf(contentType: string): string {
  return contentType.split(';', 1)[0]!.trim().toLowerCase();
}

/** The Content-Type to serve for media stored with this type (null: none was given). */
export function servedContentType(stored: string | null): string {
  const type = stored?.trim() || DEFAULT_CONTENT_TYPE;
  return TEXT_CONTENT_TYPES.has(type.toLowerCase()) ? `${type}; charset=UTF-8` : type;
}

/**
 * `inline` for the spec's safe types, `attachment` otherwise (an HTML or SVG upload opened
 * from a link is then downloaded, never rendered on the homeserver's origin), with the file
 * name per RFC 6266: a plain token as `filename=`, anything else as RFC 8187
 * `filename*=utf-8''<percent-encoded>` (as Synapse; no lossy ASCII fallback is invented).
 */
export function contentDisposition(contentType: string | null, fileName: string | null | undefined): string {
  const disposition = contentType !== null && INLINE_CONTENT_TYPES.has(essenceOf(contentType)) ? 'inline' : 'attachment';
  if (!fileName) return disposition;
  return isToken(fileName) ? `${disposition}; filename=${fileName}` : `${disposition}; filename*=utf-8''${encodeExtValue(fileName)}`;
}

/** The thumbnail's disposition: always inline (spec), named after its type. */
export function thumbnailDisposition(essence: string): string {
  const extension = { 'image/jpeg': 'jpg', 'image/png': 'png', 'image/apng': 'png', 'image/gif': 'gif', 'image/webp': 'webp' }[essence] ?? 'bin';
  return `inline; filename=thumbnail.${extension}`;
}

/**
 * Headers on every served file. CSP is the spec's recommended policy (sandbox: a document
 * opened from the media URL gets an opaque origin and runs no script) with Synapse's
 * media-src 'self' so audio and video still play when opened directly;
 * Cross-Origin-Resource-Policy lets web clients under COEP embed it (spec, v1.4).
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; media-src 'self'; object-src 'self';",
  'x-content-security-policy': 'sandbox;',
  'cross-origin-resource-policy': 'cross-origin',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  // Media never changes; shared caches revalidate so that authentication is checked again.
  'cache-control': 'public, max-age=86400, s-maxage=0, proxy-revalidate',
  // Keep uploads out of search engines.
  'x-robots-tag': 'noindex, nofollow, noarchive, noimageindex',
};

/** RFC 2616 token: US-ASCII without controls, space or separators. */
function isToken(name: string): boolean {
  return /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name);
}

/** RFC 8187 value-chars: UTF-8 bytes percent-encoded except attr-char. */
function encodeExtValue(name: string): string {
  return encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
