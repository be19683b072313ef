import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { signJson, verifyJsonSignature } from '@tessera/protocol';
import { ConfigError, loadOrCreateSigningKey } from './index.js';

const dir = () => mkdtempSync(join(tmpdir(), 'tessera-key-'));

describe('loadOrCreateSigningKey', () => {
  it('generates a key in Synapse format on first start and reads the same key afterwards', () => {
    const path = join(dir(), 'nested', 'signing.key');
    const first = loadOrCreateSigningKey(path);
    expect(first.created).toBe(true);
    expect(readFileSync(path, 'utf8')).toMatch(/^ed25519 [A-Za-z0-9_]+ [A-Za-z0-9+/]{43}\n$/);
    expect(statSync(path).mode & 0o777).toBe(0o600);

    const again = loadOrCreateSigningKey(path);
    expect(again.created).toBe(false);
    expect(again.current.keyId).toBe(first.current.keyId);
    expect(again.current.publicKeyBase64).toBe(first.current.publicKeyBase64);
    const signed = signJson({ a: 1 }, 'example.org', first.current);
    expect(verifyJsonSignature(signed, 'example.org', again.current.keyId, again.current.publicKey)).toBe(true);
  });

  it('reads a Synapse key file with several keys, the first signing', () => {
    const path = join(dir(), 'k');
    // Seed of the spec's test vectors ("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1").
    writeFileSync(path, 'ed25519 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1\ned25519 old AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n');
    const keys = loadOrCreateSigningKey(path);
    expect(keys.current.keyId).toBe('ed25519:1');
    expect(keys.current.publicKeyBase64).toBe('XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI');
    expect(keys.all.map((k) => k.keyId)).toEqual(['ed25519:1', 'ed25519:old']);
  });

  it.each([
    ['garbage', 'expected 3 fields'],
    ['rsa 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1', 'unsupported algorithm'],
    ['ed25519 1 c2hvcnQ', '32'],
    ['\n\n', 'holds no key'],
  ])('refuses a broken key file (%s) naming the file', (content, problem) => {
    const path = join(dir(), 'broken.key');
    writeFileSync(path, content);
    let error: unknown;
    try {
      loadOrCreateSigningKey(path);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain(path);
    expect((error as Error).message).toContain(problem);
    // The broken file is left as it was: never overwritten with a new key.
    expect(readFileSync(path, 'utf8')).toBe(content);
  });
});
