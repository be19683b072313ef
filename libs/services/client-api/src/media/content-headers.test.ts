import { describe, expect, it } from 'vitest';
import { isAnimatedImage } from '@tessera/protocol';
import { contentDisposition, essenceOf, servedContentType, thumbnailDisposition } from './content-headers.js';

describe('Content-Disposition of downloads', () => {
  it('is inline only for the spec’s safe types, parameters and case ignored', () => {
    expect(contentDisposition('image/png', null)).toBe('inline');
    expect(contentDisposition('Text/Plain; charset=utf-16', null)).toBe('inline');
    expect(contentDisposition('video/mp4', null)).toBe('inline');
    expect(contentDisposition('text/html', null)).toBe('attachment');
    expect(contentDisposition('image/svg+xml', null)).toBe('attachment');
    expect(contentDisposition('application/octet-stream', null)).toBe('attachment');
    expect(contentDisposition(null, null)).toBe('attachment');
  });

  it('names the file per RFC 6266: a token as is, anything else as filename*', () => {
    expect(contentDisposition('image/png', 'cat.png')).toBe('inline; filename=cat.png');
    expect(contentDisposition('application/pdf', 'résumé.pdf')).toBe("attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf");
    expect(contentDisposition('image/png', 'my cat (1).png')).toBe("inline; filename*=utf-8''my%20cat%20%281%29.png");
    expect(contentDisposition('image/png', 'a"b;c\r\n.png')).toBe("inline; filename*=utf-8''a%22b%3Bc%0D%0A.png");
    expect(contentDisposition('image/png', '')).toBe('inline');
  });

  it('thumbnails are always inline, named after their type', () => {
    expect(thumbnailDisposition('image/jpeg')).toBe('inline; filename=thumbnail.jpg');
    expect(thumbnailDisposition('image/gif')).toBe('inline; filename=thumbnail.gif');
  });
});

describe('Content-Type of downloads', () => {
  it('is the uploaded type, with a UTF-8 charset added to text types that have none', () => {
    expect(servedContentType('image/png')).toBe('image/png');
    expect(servedContentType('text/plain')).toBe('text/plain; charset=UTF-8');
    expect(servedContentType('text/plain; charset=ISO-8859-1')).toBe('text/plain; charset=ISO-8859-1');
    expect(servedContentType(null)).toBe('application/octet-stream');
    expect(essenceOf(' Image/PNG ; x=y')).toBe('image/png');
  });
});

const gifFrame = [0x21, 0xf9, 0x04, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00];
const gif = (frames: number) =>
  Uint8Array.from([
    ...Buffer.from('GIF89a'),
    1, 0, 1, 0, 0x80, 0, 0, // 1x1, a global colour table of 2 entries
    0, 0, 0, 255, 255, 255,
    ...Array.from({ length: frames }, () => gifFrame).flat(),
    0x3b,
  ]);

function pngWith(chunks: string[]): Uint8Array {
  const parts = [Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])];
  for (const type of chunks) {
    const data = Buffer.alloc(type === 'IHDR' ? 13 : 8);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    parts.push(length, Buffer.from(type, 'ascii'), data, Buffer.alloc(4));
  }
  return Buffer.concat(parts);
}

function webp(flags: number): Uint8Array {
  const b = Buffer.alloc(30);
  b.write('RIFF', 0, 'ascii');
  b.writeUInt32LE(22, 4);
  b.write('WEBPVP8X', 8, 'ascii');
  b.writeUInt32LE(10, 16);
  b[20] = flags;
  return b;
}

describe('animated images', () => {
  it('tells a GIF of several frames from a still one', () => {
    expect(isAnimatedImage(gif(1), 'image/gif')).toBe(false);
    expect(isAnimatedImage(gif(2), 'image/gif')).toBe(true);
  });

  it('tells an APNG (acTL before IDAT) from a plain PNG', () => {
    expect(isAnimatedImage(pngWith(['IHDR', 'IDAT', 'IEND']), 'image/png')).toBe(false);
    expect(isAnimatedImage(pngWith(['IHDR', 'acTL', 'IDAT', 'IEND']), 'image/png')).toBe(true);
  });

  it('reads the animation flag of an extended WebP', () => {
    expect(isAnimatedImage(webp(0x02), 'image/webp')).toBe(true);
    expect(isAnimatedImage(webp(0x10), 'image/webp')).toBe(false);
  });

  it('calls damaged or other content still', () => {
    expect(isAnimatedImage(Uint8Array.from([1, 2, 3]), 'image/gif')).toBe(false);
    expect(isAnimatedImage(gif(2), 'image/jpeg')).toBe(false);
  });
});
