/**
 * Validation of a server keys document (Server-Server API v1.16, "Retrieving server keys"):
 *
 *   { server_name, valid_until_ts, verify_keys: {id: {key}}, old_verify_keys: {id: {key, expired_ts}},
 *     signatures: {server_name: {id: sig}} }
 *
 * A document counts only if it names the expected server and every signature its server made
 * is by one of its own verify_keys and verifies (at least one must). The 7-day cap on
 * valid_until_ts (spec: "the lesser of this field and 7 days into the future") is applied here,
 * so that no cache can ever hold a key longer.
 */
import { decodeBase64, verifyJsonSignature } from '@tessera/protocol';

export interface ServerKey {
  serverName: string;
  /** e.g. "ed25519:abc" */
  keyId: string;
  publicKey: Uint8Array;
  publicKeyBase64: string;
  /**
   * Until when (ms) signatures by this key are valid: for a current key the lesser of the
   * document's valid_until_ts and fetch time + 7 days; for an old key its expired_ts.
   */
  validUntilTs: number;
  /** Set for keys listed in old_verify_keys. */
  expiredTs?: number;
  /** When we obtained the document (ms). */
  fetchedAt: number;
}

export const MAX_KEY_VALIDITY_MS = 7 * 24 * 3_600_000;

export class ServerKeysError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ServerKeysError';
  }
}

const ED25519_KEY_ID = /^ed25519:[A-Za-z0-9_]+$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function decodeKey(where: string, v: unknown): { bytes: Uint8Array; base64: string } {
  if (!isObject(v) || typeof v.key !== 'string') throw new ServerKeysError(`${where} has no string "key"`);
  let bytes: Uint8Array;
  try {
    bytes = decodeBase64(v.key);
  } catch {
    throw new ServerKeysError(`${where}: key is not base64`);
  }
  if (bytes.length !== 32) throw new ServerKeysError(`${where}: an Ed25519 key is 32 bytes, got ${bytes.length}`);
  return { bytes, base64: v.key };
}

/** Validates a keys document as published by `expectedServerName`; throws ServerKeysError. */
export function parseServerKeys(doc: unknown, expectedServerName: string, fetchedAt: number): ServerKey[] {
  if (!isObject(doc)) throw new ServerKeysError('server keys: not a JSON object');
  if (doc.server_name !== expectedServerName) {
    throw new ServerKeysError(`server keys name ${JSON.stringify(doc.server_name)}, expected ${expectedServerName}`);
  }
  const validUntil = doc.valid_until_ts;
  if (typeof validUntil !== 'number' || !Number.isSafeInteger(validUntil)) {
    throw new ServerKeysError(`server keys of ${expectedServerName}: valid_until_ts is missing or not an integer`);
  }
  if (!isObject(doc.verify_keys)) throw new ServerKeysError(`server keys of ${expectedServerName}: verify_keys is missing`);
  const keys: ServerKey[] = [];
  const current = new Map<string, Uint8Array>();
  const cappedValidUntil = Math.min(validUntil, fetchedAt + MAX_KEY_VALIDITY_MS);
  for (const [keyId, v] of Object.entries(doc.verify_keys)) {
    if (!ED25519_KEY_ID.test(keyId)) continue; // other algorithms: not ours to use
    const { bytes, base64 } = decodeKey(`verify_keys["${keyId}"] of ${expectedServerName}`, v);
    current.set(keyId, bytes);
    keys.push({ serverName: expectedServerName, keyId, publicKey: bytes, publicKeyBase64: base64, validUntilTs: cappedValidUntil, fetchedAt });
  }
  if (doc.old_verify_keys !== undefined) {
    if (!isObject(doc.old_verify_keys)) throw new ServerKeysError(`server keys of ${expectedServerName}: old_verify_keys is not an object`);
    for (const [keyId, v] of Object.entries(doc.old_verify_keys)) {
      if (!ED25519_KEY_ID.test(keyId) || current.has(keyId)) continue;
      const where = `old_verify_keys["${keyId}"] of ${expectedServerName}`;
      const { bytes, base64 } = decodeKey(where, v);
      const expired = (v as Record<string, unknown>).expired_ts;
      if (typeof expired !== 'number' || !Number.isSafeInteger(expired)) throw new ServerKeysError(`${where}: expired_ts is missing or not an integer`);
      keys.push({ serverName: expectedServerName, keyId, publicKey: bytes, publicKeyBase64: base64, validUntilTs: expired, expiredTs: expired, fetchedAt });
    }
  }
  const signatures = isObject(doc.signatures) ? doc.signatures[expectedServerName] : undefined;
  const selfSigned = isObject(signatures) ? Object.keys(signatures) : [];
  if (selfSigned.length === 0) throw new ServerKeysError(`server keys of ${expectedServerName} are not signed by ${expectedServerName}`);
  for (const keyId of selfSigned) {
    const publicKey = current.get(keyId);
    if (!publicKey) throw new ServerKeysError(`server keys of ${expectedServerName} are signed by ${keyId}, which is not among its verify_keys`);
    if (!verifyJsonSignature(doc, expectedServerName, keyId, publicKey)) {
      throw new ServerKeysError(`server keys of ${expectedServerName}: the self-signature by ${keyId} does not verify`);
    }
  }
  return keys;
}

/** True if `doc` carries at least one valid signature of `notary` by a key in `notaryKeys`. */
export function hasNotarySignature(doc: unknown, notary: string, notaryKeys: ReadonlyMap<string, Uint8Array>): boolean {
  if (!isObject(doc) || !isObject(doc.signatures)) return false;
  const sigs = doc.signatures[notary];
  if (!isObject(sigs)) return false;
  return Object.keys(sigs).some((keyId) => {
    const key = notaryKeys.get(keyId);
    return key !== undefined && verifyJsonSignature(doc, notary, keyId, key);
  });
}
