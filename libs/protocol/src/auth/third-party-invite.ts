/**
 * Rule "m.room.member invite" with `third_party_invite`: does any signature in `signed` verify
 * with any public key of the m.room.third_party_invite event? Ed25519 through node:crypto.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { canonicalJsonBytes } from '../canonical-json.js';

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** Public keys of an m.room.third_party_invite content: `public_key` and `public_keys[].public_key`. */
export function thirdPartyInvitePublicKeys(content: Record<string, any>): string[] {
  const keys: string[] = [];
  if (typeof content.public_key === 'string') keys.push(content.public_key);
  if (Array.isArray(content.public_keys)) {
    for (const entry of content.public_keys) {
      if (entry && typeof entry.public_key === 'string') keys.push(entry.public_key);
    }
  }
  return keys;
}

function decodeKey(base64: string): KeyObject | undefined {
  // The spec's keys are unpadded base64; accept the URL-safe alphabet too, as servers do.
  const raw = Buffer.from(base64.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (raw.length !== 32) return undefined;
  try {
    return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
  } catch {
    return undefined;
  }
}

export function signedMatchesAnyKey(signed: Record<string, any>, publicKeys: string[]): boolean {
  const signatures = signed.signatures;
  if (!signatures || typeof signatures !== 'object') return false;
  const { signatures: _s, unsigned: _u, ...unsignedPart } = signed;
  let message: Buffer;
  try {
    message = canonicalJsonBytes(unsignedPart);
  } catch {
    return false;
  }
  const keys = publicKeys.map(decodeKey).filter((k): k is KeyObject => k !== undefined);
  for (const byKeyId of Object.values(signatures)) {
    if (!byKeyId || typeof byKeyId !== 'object') continue;
    for (const sig of Object.values(byKeyId as Record<string, unknown>)) {
      if (typeof sig !== 'string') continue;
      const sigBytes = Buffer.from(sig.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
      if (sigBytes.length !== 64) continue;
      for (const key of keys) {
        if (verify(null, message, key, sigBytes)) return true;
      }
    }
  }
  return false;
}
