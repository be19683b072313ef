import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildMediaMultipart, fileNameOfDisposition, MultipartError, parseHeaderValue, parseMediaMultipart, parseMultipart } from './media-multipart.js';

const CRLF = '\r\n';

describe('federation media multipart/mixed', () => {
  it('round-trips bytes that contain CRLF, dashes and boundary-like text', () => {
    const content = Buffer.concat([Buffer.from(`\r\n--\r\n--abc--\r\n\r\n`), randomBytes(4096), Buffer.from('\r\n')]);
    const built = buildMediaMultipart({ kind: 'content', contentType: 'image/png', contentDisposition: "inline; filename*=utf-8''caf%C3%A9.png", content });
    expect(built.contentType).toMatch(/^multipart\/mixed; boundary=[0-9a-f]{32}$/);
    const boundary = built.contentType.split('boundary=')[1]!;
    // The spec's shape: exactly two parts, JSON metadata first.
    expect(built.body.toString('latin1').startsWith(`--${boundary}${CRLF}Content-Type: application/json${CRLF}${CRLF}{}${CRLF}--${boundary}${CRLF}`)).toBe(true);
    expect(built.body.toString('latin1').endsWith(`${CRLF}--${boundary}--${CRLF}`)).toBe(true);

    const parsed = parseMediaMultipart(built.contentType, built.body);
    expect(parsed.metadata).toEqual({});
    expect(parsed.media.kind).toBe('content');
    if (parsed.media.kind !== 'content') return;
    expect(parsed.media.contentType).toBe('image/png');
    expect(fileNameOfDisposition(parsed.media.contentDisposition)).toBe('café.png');
    expect(parsed.media.content.equals(content)).toBe(true);
  });

  it('round-trips empty content and a Location part', () => {
    const empty = buildMediaMultipart({ kind: 'content', contentType: null, contentDisposition: null, content: Buffer.alloc(0) });
    const parsedEmpty = parseMediaMultipart(empty.contentType, empty.body);
    expect(parsedEmpty.media).toEqual({ kind: 'content', contentType: 'application/octet-stream', contentDisposition: null, content: Buffer.alloc(0) });

    const located = buildMediaMultipart({ kind: 'location', location: 'https://cdn.example.org/media/abc?sig=1' }, { note: 1 });
    expect(parseMediaMultipart(located.contentType, located.body)).toEqual({ metadata: { note: 1 }, media: { kind: 'location', location: 'https://cdn.example.org/media/abc?sig=1' } });
  });

  it('parses what other servers send: quoted boundary, preamble, padding, epilogue, header case', () => {
    const body = Buffer.from([
      'This is a preamble.',
      '--gc0p4Jq0M2Yt08j34c0p  ',
      'content-type: application/json',
      '',
      '{"k": "v"}',
      '--gc0p4Jq0M2Yt08j34c0p',
      'CONTENT-TYPE: text/plain; charset=utf-8',
      'Content-Disposition: attachment; filename="a \\"quoted\\" name.txt"',
      '',
      'line one',
      'line two',
      '--gc0p4Jq0M2Yt08j34c0p--',
      'an epilogue',
    ].join(CRLF));
    const parsed = parseMediaMultipart('Multipart/Mixed; boundary="gc0p4Jq0M2Yt08j34c0p"', body);
    expect(parsed.metadata).toEqual({ k: 'v' });
    expect(parsed.media).toMatchObject({ kind: 'content', contentType: 'text/plain; charset=utf-8' });
    if (parsed.media.kind !== 'content') return;
    expect(parsed.media.content.toString()).toBe(`line one${CRLF}line two`);
    expect(fileNameOfDisposition(parsed.media.contentDisposition)).toBe('a "quoted" name.txt');
  });

  it('parses a part without headers', () => {
    const parts = parseMultipart(Buffer.from(`--b${CRLF}${CRLF}raw${CRLF}--b${CRLF}X-A: 1${CRLF}${CRLF}${CRLF}--b--`), 'b');
    expect(parts.map((p) => [p.headers, p.body.toString()])).toEqual([[{}, 'raw'], [{ 'x-a': '1' }, '']]);
  });

  it('refuses what is not the spec\'s shape', () => {
    const good = buildMediaMultipart({ kind: 'content', contentType: 'text/plain', contentDisposition: null, content: Buffer.from('hi') });
    const refuse = (contentType: string | undefined, body: Buffer | string) => expect(() => parseMediaMultipart(contentType, Buffer.from(body))).toThrow(MultipartError);
    refuse('application/json', good.body);
    refuse(undefined, good.body);
    refuse('multipart/mixed', good.body); // no boundary
    refuse('multipart/mixed; boundary=other', good.body); // no delimiter found
    refuse('multipart/mixed; boundary=b', `--b${CRLF}Content-Type: application/json${CRLF}${CRLF}{}${CRLF}--b--`); // one part
    refuse('multipart/mixed; boundary=b', `--b${CRLF}${CRLF}not json${CRLF}--b${CRLF}${CRLF}x${CRLF}--b--`);
    refuse('multipart/mixed; boundary=b', `--b${CRLF}${CRLF}[]${CRLF}--b${CRLF}${CRLF}x${CRLF}--b--`);
    refuse('multipart/mixed; boundary=b', `--b${CRLF}${CRLF}{}${CRLF}--b${CRLF}${CRLF}truncated`); // no close delimiter
    refuse('multipart/mixed; boundary=b', `--b${CRLF}${CRLF}{}${CRLF}--b${CRLF}bad header${CRLF}${CRLF}x${CRLF}--b--`);
  });
});

describe('header values', () => {
  it('reads parameters, quoted or not', () => {
    expect(parseHeaderValue('Multipart/Mixed; Boundary="a b;c"; x=1')).toEqual({ essence: 'multipart/mixed', params: { boundary: 'a b;c', x: '1' } });
    expect(parseHeaderValue('image/png')).toEqual({ essence: 'image/png', params: {} });
  });

  it('finds the file name of a Content-Disposition, filename* first', () => {
    expect(fileNameOfDisposition('inline; filename=photo.png')).toBe('photo.png');
    expect(fileNameOfDisposition(`attachment; filename="fallback.txt"; filename*=UTF-8''%E2%82%AC%20rates.txt`)).toBe('€ rates.txt');
    expect(fileNameOfDisposition(`attachment; filename*=iso-8859-1'en'%A3%20rates.txt`)).toBe('£ rates.txt');
    expect(fileNameOfDisposition(`attachment; filename*=utf-8''%ZZ; filename=plain.txt`)).toBe('plain.txt');
    expect(fileNameOfDisposition('inline')).toBeNull();
    expect(fileNameOfDisposition(null)).toBeNull();
  });
});
