/**
 * Ed25519 keys and signed JSON (spec appendices, "Signing JSON"; Synapse's signing key file).
 *
 * All cryptography goes through node:crypto (OpenSSL): it is hundreds of times faster than a
 * JavaScript implementation. Building a KeyObject from raw bytes costs more than a
 * verification, so KeyObjects are built once per key (from DER) and cached.
 */
import { createPrivateKey, createPublicKey, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { decodeBase64, encodeUnpaddedBase64 } from './base64.js';
import { canonicalJsonBytes } from './canonical-json.js';

export interface SigningKey {
  /** The key version, e.g. `a_AbCd`; `[A-Za-z0-9_]+`. */
  version: string;
  /** `ed25519:<version>` */
  keyId: string;
  /** The 32-byte private seed. */
  seed: Uint8Array;
  /** The 32-byte public key. */
  publicKey: Uint8Array;
  /** The public key in unpadded standard base64, as published in /_matrix/key/v2/server. */
  publicKeyBase64: string;
}

export class SigningKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SigningKeyError';
  }
}

// DER wrappers that turn raw Ed25519 bytes into PKCS#8 (private) and SPKI (public) documents.
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** Key versions, as the spec's key id grammar allows: `[a-zA-Z0-9_]`. */
const KEY_VERSION = /^[A-Za-z0-9_]+$/;

/** Private KeyObjects by SigningKey object; a key's seed never changes after creation. */
const privateKeyObjects = new WeakMap<SigningKey, KeyObject>();

/** Public KeyObjects by base64 of the key bytes. Bounded: cleared when full. */
const publicKeyObjects = new Map<string, KeyObject>();
const PUBLIC_KEY_CACHE_LIMIT = 10_000;

export function generateSigningKey(version?: string): SigningKey {
  return signingKeyFromSeed(randomBytes(32), version ?? randomKeyVersion());
}

/** Synapse's style: `a_` and four random letters or digits. */
function randomKeyVersion(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = randomBytes(4);
  let out = 'a_';
  for (const b of bytes) out += alphabet[b % alphabet.length];
  return out;
}

export function signingKeyFromSeed(seed: Uint8Array, version: string): SigningKey {
  if (seed.length !== 32) throw new SigningKeyError(`an Ed25519 seed is 32 bytes, got ${seed.length}`);
  if (!KEY_VERSION.test(version)) {
    throw new SigningKeyError(`key version ${JSON.stringify(version)} may contain only letters, digits and '_'`);
  }
  const seedCopy = Uint8Array.from(seed);
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seedCopy]), format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  const publicKey = Uint8Array.from(spki.subarray(spki.length - 32));
  const key: SigningKey = {
    version,
    keyId: `ed25519:${version}`,
    seed: seedCopy,
    publicKey,
    publicKeyBase64: encodeUnpaddedBase64(publicKey),
  };
  privateKeyObjects.set(key, privateKey);
  return key;
}

/**
 * Reads Synapse's signing key file: one key per line, `ed25519 <version> <unpadded base64 seed>`.
 * Blank lines are ignored. Errors name the line and what is wrong with it.
 */
export function parseSigningKeyFile(text: string): SigningKey[] {
  const keys: SigningKey[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    const where = `signing key file line ${i + 1}`;
    const parts = line.split(/\s+/);
    if (parts.length !== 3) {
      throw new SigningKeyError(`${where}: expected 3 fields "ed25519 <version> <base64 seed>", found ${parts.length}`);
    }
    const [algorithm, version, seedBase64] = parts as [string, string, string];
    if (algorithm !== 'ed25519') throw new SigningKeyError(`${where}: unsupported algorithm ${JSON.stringify(algorithm)} (only ed25519)`);
    if (!KEY_VERSION.test(version)) {
      throw new SigningKeyError(`${where}: key version ${JSON.stringify(version)} may contain only letters, digits and '_'`);
    }
    let seed: Buffer;
    try {
      seed = decodeBase64(seedBase64);
    } catch (e) {
      throw new SigningKeyError(`${where}: the seed is not valid base64 (${(e as Error).message})`);
    }
    if (seed.length !== 32) throw new SigningKeyError(`${where}: the seed decodes to ${seed.length} bytes; an Ed25519 seed is 32`);
    if (keys.some((k) => k.version === version)) throw new SigningKeyError(`${where}: key version ${version} appears twice`);
    keys.push(signingKeyFromSeed(seed, version));
  }
  return keys;
}

export function formatSigningKeyFile(keys: SigningKey[]): string {
  return keys.map((k) => `ed25519 ${k.version} ${encodeUnpaddedBase64(k.seed)}\n`).join('');
}

function privateKeyObject(key: SigningKey): KeyObject {
  let obj = privateKeyObjects.get(key);
  if (!obj) {
    // A SigningKey built elsewhere (e.g. a plain object copy): build and remember its KeyObject.
    obj = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, key.seed]), format: 'der', type: 'pkcs8' });
    privateKeyObjects.set(key, obj);
  }
  return obj;
}

function publicKeyObject(publicKey: Uint8Array): KeyObject | undefined {
  if (publicKey.length !== 32) return undefined;
  const cacheKey = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('base64');
  let obj = publicKeyObjects.get(cacheKey);
  if (!obj) {
    try {
      obj = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, publicKey]), format: 'der', type: 'spki' });
    } catch {
      return undefined; // not a valid curve point
    }
    if (publicKeyObjects.size >= PUBLIC_KEY_CACHE_LIMIT) publicKeyObjects.clear();
    publicKeyObjects.set(cacheKey, obj);
  }
  return obj;
}

export function signBytes(bytes: Uint8Array, key: SigningKey): Uint8Array {
  return sign(null, bytes, privateKeyObject(key));
}

/** False (never an exception) for a wrong signature, a malformed signature or a malformed key. */
export function verifyBytes(bytes: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.length !== 64) return false;
  const keyObject = publicKeyObject(publicKey);
  if (!keyObject) return false;
  try {
    return verify(null, bytes, keyObject, signature);
  } catch {
    return false;
  }
}

/** The object without `signatures` and `unsigned`: what a JSON signature covers. */
export function signablePart(obj: object): Record<string, unknown> {
  const { signatures: _s, unsigned: _u, ...rest } = obj as Record<string, unknown>;
  return rest;
}

/**
 * Returns a copy of `obj` signed by `serverName` with `key`. Existing signatures are kept;
 * `signatures` and `unsigned` are not covered by the signature.
 */
export type Signatures = Record<string, Record<string, string>>;

export function signJson<T extends object>(obj: T, serverName: string, key: SigningKey): T & { signatures: Signatures } {
  const signature = encodeUnpaddedBase64(signBytes(canonicalJsonBytes(signablePart(obj)), key));
  return addSignature(obj, serverName, key.keyId, signature);
}

/** A copy of `obj` with one more signature, leaving the existing ones as they were. */
export function addSignature<T extends object>(
  obj: T,
  serverName: string,
  keyId: string,
  signatureBase64: string,
): T & { signatures: Signatures } {
  const existing = (obj as { signatures?: unknown }).signatures;
  const signatures: Signatures = {};
  if (existing && typeof existing === 'object') {
    for (const [name, sigs] of Object.entries(existing as Signatures)) {
      signatures[name] = { ...sigs };
    }
  }
  signatures[serverName] = { ...(signatures[serverName] ?? {}), [keyId]: signatureBase64 };
  return { ...obj, signatures };
}

/** The signature `serverName` made with `keyId`, decoded; undefined if absent or malformed. */
export function getSignature(obj: object, serverName: string, keyId: string): Buffer | undefined {
  const signatures = (obj as { signatures?: unknown }).signatures;
  if (!signatures || typeof signatures !== 'object') return undefined;
  const byServer = (signatures as Record<string, unknown>)[serverName];
  if (!byServer || typeof byServer !== 'object') return undefined;
  const sig = (byServer as Record<string, unknown>)[keyId];
  if (typeof sig !== 'string') return undefined;
  try {
    return decodeBase64(sig);
  } catch {
    return undefined;
  }
}

/**
 * True if `obj` carries a valid signature by `serverName` under `keyId` for `publicKey`.
 * False if the signature is missing, malformed or wrong, or if the object has no canonical
 * JSON form.
 */
export function verifyJsonSignature(obj: object, serverName: string, keyId: string, publicKey: Uint8Array): boolean {
  const signature = getSignature(obj, serverName, keyId);
  if (!signature) return false;
  let bytes: Buffer;
  try {
    bytes = canonicalJsonBytes(signablePart(obj));
  } catch {
    return false;
  }
  return verifyBytes(bytes, signature, publicKey);
}
