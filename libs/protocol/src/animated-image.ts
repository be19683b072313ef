/**
 * Whether an image has more than one frame, read from its container structure without
 * decoding: the thumbnail endpoint MUST NOT answer `animated=false` with an animated image,
 * and, having no image library, it answers with the original image (see media.service.ts).
 */
export function isAnimatedImage(bytes: Uint8Array, essence: string): boolean {
  switch (essence) {
    case 'image/gif':
      return gifFrameCount(bytes) > 1;
    case 'image/png':
    case 'image/apng':
      return pngHasAnimationControl(bytes);
    case 'image/webp':
      return webpHasAnimationFlag(bytes);
    default:
      return false;
  }
}

const ascii = (bytes: Uint8Array, start: number, length: number) => String.fromCharCode(...bytes.subarray(start, start + length));

/** Image descriptors of a GIF (stops counting at 2); unreadable structure counts what was read. */
function gifFrameCount(b: Uint8Array): number {
  if (b.length < 13 || !/^GIF8[79]a$/.test(ascii(b, 0, 6))) return 0;
  let at = 13;
  if (b[10]! & 0x80) at += 3 * 2 ** ((b[10]! & 0x07) + 1);
  let frames = 0;
  const skipSubBlocks = () => {
    while (at < b.length && b[at] !== 0) at += b[at]! + 1;
    at += 1;
  };
  while (at < b.length && frames < 2) {
    const introducer = b[at];
    if (introducer === 0x2c) {
      frames++;
      if (at + 10 > b.length) break;
      const packed = b[at + 9]!;
      at += 10;
      if (packed & 0x80) at += 3 * 2 ** ((packed & 0x07) + 1);
      at += 1; // LZW minimum code size
      skipSubBlocks();
    } else if (introducer === 0x21) {
      at += 2; // introducer and label
      skipSubBlocks();
    } else {
      break; // trailer (0x3b) or damage
    }
  }
  return frames;
}

/** APNG: an acTL chunk before the first IDAT. */
function pngHasAnimationControl(b: Uint8Array): boolean {
  if (b.length < 8 || b[0] !== 0x89 || ascii(b, 1, 3) !== 'PNG') return false;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let at = 8;
  while (at + 8 <= b.length) {
    const type = ascii(b, at + 4, 4);
    if (type === 'acTL') return true;
    if (type === 'IDAT') return false;
    at += 12 + view.getUint32(at);
  }
  return false;
}

/** Extended WebP (VP8X) with its animation flag set. */
function webpHasAnimationFlag(b: Uint8Array): boolean {
  if (b.length < 21 || ascii(b, 0, 4) !== 'RIFF' || ascii(b, 8, 4) !== 'WEBP') return false;
  return ascii(b, 12, 4) === 'VP8X' && (b[20]! & 0x02) !== 0;
}
