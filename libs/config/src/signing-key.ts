/**
 * The server's signing key file (Synapse's format, `ed25519 <version> <unpadded base64 seed>`,
 * one key per line). The first key signs; every key in the file is published in verify_keys.
 * On first start the file does not exist yet: a key is generated and written (mode 0600).
 */
import { linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { formatSigningKeyFile, generateSigningKey, parseSigningKeyFile, type SigningKey } from '@tessera/protocol';
import { ConfigError } from './errors.js';

export interface LoadedSigningKeys {
  /** The key that signs: the first in the file. */
  current: SigningKey;
  /** Every key in the file, current first. */
  all: SigningKey[];
  /** True when the file did not exist and was written now. */
  created: boolean;
}

export function loadOrCreateSigningKey(path: string): LoadedSigningKeys {
  let text: string | undefined;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new ConfigError(path, 'signing_key_path', `cannot be read: ${(err as Error).message}`);
    }
  }
  if (text === undefined) {
    const key = generateSigningKey();
    // Written whole to a temporary file, then linked into place: processes starting together
    // never see a half-written key, and a key another process placed first is never replaced.
    const temporary = `${path}.${process.pid}.${Date.now()}.tmp`;
    try {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(temporary, formatSigningKeyFile([key]), { mode: 0o600, flag: 'wx' });
      linkSync(temporary, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateSigningKey(path);
      throw new ConfigError(path, 'signing_key_path', `cannot write a new signing key: ${(err as Error).message}`);
    } finally {
      try {
        unlinkSync(temporary);
      } catch {
        // never created
      }
    }
    return { current: key, all: [key], created: true };
  }
  let keys: SigningKey[];
  try {
    keys = parseSigningKeyFile(text);
  } catch (err) {
    throw new ConfigError(path, 'signing key', (err as Error).message);
  }
  if (keys.length === 0) {
    throw new ConfigError(path, 'signing key', 'the file holds no key; delete it to have a new key generated, or restore the old one');
  }
  return { current: keys[0]!, all: keys, created: false };
}
