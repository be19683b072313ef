import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { decodeBase64, encodeUnpaddedBase64 } from './base64.js';
import { canonicalJsonBytes } from './canonical-json.js';
import {
  SigningKeyError,
  formatSigningKeyFile,
  generateSigningKey,
  parseSigningKeyFile,
  signBytes,
  signJson,
  signingKeyFromSeed,
  verifyBytes,
  verifyJsonSignature,
} from './signing.js';

// The spec's cryptographic test vectors (test-vectors.md section D).
const SEED = decodeBase64('YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1');
const specKey = signingKeyFromSeed(SEED, '1');

describe('signing keys', () => {
  it('derives the public key of the spec seed (same as tweetnacl)', () => {
    expect(specKey.keyId).toBe('ed25519:1');
    expect(specKey.publicKeyBase64).toBe('XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI');
    expect(encodeUnpaddedBase64(nacl.sign.keyPair.fromSeed(SEED).publicKey)).toBe(specKey.publicKeyBase64);
  });
  it('generates distinct keys with Synapse-style versions', () => {
    const a = generateSigningKey();
    const b = generateSigningKey();
    expect(a.version).toMatch(/^a_[A-Za-z0-9]{4}$/);
    expect(a.seed.length).toBe(32);
    expect(Buffer.from(a.seed).equals(Buffer.from(b.seed))).toBe(false);
    expect(generateSigningKey('v2').keyId).toBe('ed25519:v2');
  });
  it('refuses a bad seed length or version', () => {
    expect(() => signingKeyFromSeed(new Uint8Array(31), '1')).toThrow(/32 bytes, got 31/);
    expect(() => signingKeyFromSeed(SEED, 'a:b')).toThrow(/letters, digits and '_'/);
  });
});

describe('the signing key file (Synapse format)', () => {
  it('round-trips', () => {
    const keys = [specKey, generateSigningKey('a_XyZ1')];
    const text = formatSigningKeyFile(keys);
    // The spec's seed text ends in '1', which carries non-zero unused bits; re-encoded it ends in '0'.
    expect(text.split('\n')[0]).toBe('ed25519 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA0');
    const parsed = parseSigningKeyFile(text);
    expect(parsed.map((k) => [k.keyId, k.publicKeyBase64])).toEqual(keys.map((k) => [k.keyId, k.publicKeyBase64]));
  });
  it('ignores blank lines and CRLF, accepts padded seeds', () => {
    const parsed = parseSigningKeyFile('\r\n  ed25519 a_1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1=  \r\n\n');
    expect(parsed).toHaveLength(1);
    expect(parsed[0]!.publicKeyBase64).toBe(specKey.publicKeyBase64);
  });
  it.each([
    ['ed25519 1', /line 1: expected 3 fields/],
    ['\nrsa 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1', /line 2: unsupported algorithm "rsa"/],
    ['ed25519 a-b YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1', /line 1: key version "a-b"/],
    ['ed25519 1 not*base64', /line 1: the seed is not valid base64/],
    ['ed25519 1 Zm9v', /line 1: the seed decodes to 3 bytes/],
    [
      'ed25519 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1\ned25519 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1',
      /line 2: key version 1 appears twice/,
    ],
  ])('refuses %j', (text, message) => {
    expect(() => parseSigningKeyFile(text)).toThrow(SigningKeyError);
    expect(() => parseSigningKeyFile(text)).toThrow(message);
  });
});

describe('JSON signing: the spec vectors', () => {
  it('signs {}', () => {
    expect(signJson({}, 'domain', specKey)).toEqual({
      signatures: { domain: { 'ed25519:1': 'K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ' } },
    });
  });
  it('signs {"one":1,"two":"Two"}', () => {
    expect(signJson({ one: 1, two: 'Two' }, 'domain', specKey)).toEqual({
      one: 1,
      signatures: { domain: { 'ed25519:1': 'KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw' } },
      two: 'Two',
    });
  });
});

describe('JSON signing behaviour', () => {
  const other = generateSigningKey('o');
  it('excludes signatures and unsigned, keeps existing signatures, does not mutate the input', () => {
    const input = { a: 1, unsigned: { age_ts: 5 }, signatures: { 'other.org': { 'ed25519:x': 'abc' } } };
    const signed = signJson(input, 'domain', specKey);
    expect(input.signatures).toEqual({ 'other.org': { 'ed25519:x': 'abc' } });
    expect(signed.unsigned).toEqual({ age_ts: 5 });
    expect(signed.signatures['other.org']).toEqual({ 'ed25519:x': 'abc' });
    // the signature is the same as over {"a":1}
    expect(signed.signatures.domain).toEqual(signJson({ a: 1 }, 'domain', specKey).signatures.domain);
    const twice = signJson(signed, 'domain', other);
    expect(Object.keys(twice.signatures.domain)).toEqual(['ed25519:1', 'ed25519:o']);
    expect(verifyJsonSignature(twice, 'domain', 'ed25519:1', specKey.publicKey)).toBe(true);
    expect(verifyJsonSignature(twice, 'domain', 'ed25519:o', other.publicKey)).toBe(true);
  });
  it('still verifies when unsigned changes; fails when content changes', () => {
    const signed = signJson({ a: 1, b: [1, 2] }, 'domain', specKey);
    expect(verifyJsonSignature({ ...signed, unsigned: { x: 1 } }, 'domain', 'ed25519:1', specKey.publicKey)).toBe(true);
    expect(verifyJsonSignature({ ...signed, b: [1, 3] }, 'domain', 'ed25519:1', specKey.publicKey)).toBe(false);
    expect(verifyJsonSignature({ ...signed, c: 0 }, 'domain', 'ed25519:1', specKey.publicKey)).toBe(false);
  });
  it('refuses a tampered, missing or malformed signature, or the wrong key', () => {
    const signed = signJson({ a: 1 }, 'domain', specKey);
    const sig = decodeBase64(signed.signatures.domain['ed25519:1']!);
    sig[10] ^= 1;
    const tampered = { ...signed, signatures: { domain: { 'ed25519:1': encodeUnpaddedBase64(sig) } } };
    expect(verifyJsonSignature(tampered, 'domain', 'ed25519:1', specKey.publicKey)).toBe(false);
    expect(verifyJsonSignature(signed, 'domain', 'ed25519:1', other.publicKey)).toBe(false);
    expect(verifyJsonSignature(signed, 'domain', 'ed25519:2', specKey.publicKey)).toBe(false);
    expect(verifyJsonSignature(signed, 'other', 'ed25519:1', specKey.publicKey)).toBe(false);
    expect(verifyJsonSignature({ a: 1 }, 'domain', 'ed25519:1', specKey.publicKey)).toBe(false);
    const bad = { a: 1, signatures: { domain: { 'ed25519:1': '!!!' } } };
    expect(verifyJsonSignature(bad, 'domain', 'ed25519:1', specKey.publicKey)).toBe(false);
    const short = { a: 1, signatures: { domain: { 'ed25519:1': 'Zm9v' } } };
    expect(verifyJsonSignature(short, 'domain', 'ed25519:1', specKey.publicKey)).toBe(false);
    expect(verifyJsonSignature({ ...signed, f: 1.5 }, 'domain', 'ed25519:1', specKey.publicKey)).toBe(false);
    expect(verifyBytes(Buffer.from('x'), new Uint8Array(64), new Uint8Array(31))).toBe(false);
  });
});

describe('cross-check with tweetnacl, both directions', () => {
  const key = generateSigningKey();
  const naclPair = nacl.sign.keyPair.fromSeed(key.seed);
  const messages = [{}, { a: 1 }, { text: '日本語 \u{1F600}', n: [1, -2, 3], nested: { x: null, y: true } }];
  it('derives the same public key', () => {
    expect(Buffer.from(naclPair.publicKey).equals(Buffer.from(key.publicKey))).toBe(true);
  });
  it.each(messages)('node:crypto signs, tweetnacl verifies: %j', (obj) => {
    const signed = signJson(obj, 'example.org', key);
    const sig = decodeBase64(signed.signatures['example.org']![key.keyId]!);
    expect(nacl.sign.detached.verify(canonicalJsonBytes(obj), sig, naclPair.publicKey)).toBe(true);
    expect(Buffer.from(nacl.sign.detached(canonicalJsonBytes(obj), naclPair.secretKey)).equals(sig)).toBe(true);
  });
  it.each(messages)('tweetnacl signs, node:crypto verifies: %j', (obj) => {
    const sig = nacl.sign.detached(canonicalJsonBytes(obj), naclPair.secretKey);
    const signed = { ...obj, signatures: { 'example.org': { [key.keyId]: encodeUnpaddedBase64(sig) } } };
    expect(verifyJsonSignature(signed, 'example.org', key.keyId, naclPair.publicKey)).toBe(true);
    expect(verifyBytes(canonicalJsonBytes(obj), sig, key.publicKey)).toBe(true);
    expect(Buffer.from(signBytes(canonicalJsonBytes(obj), key)).equals(Buffer.from(sig))).toBe(true);
  });
});
