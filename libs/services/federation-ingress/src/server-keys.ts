import { canonicalJson, signJson } from '@tessera/protocol';
import type { LoadedSigningKeys, OldSigningKey } from '@tessera/config';

/** The body of GET /_matrix/key/v2/server (spec: Server-Server API, "Publishing Keys"). */
export interface ServerKeys {
  server_name: string;
  valid_until_ts: number;
  verify_keys: Record<string, { key: string }>;
  old_verify_keys: Record<string, { key: string; expired_ts: number }>;
  signatures?: Record<string, Record<string, string>>;
}

/**
 * Builds the server's key response and signs it with every current key (each key in
 * verify_keys signs, as the spec requires the response be signed by each of them). Its keys
 * are in canonical order, so the body as sent, less its `signatures`, is the signed bytes: a
 * checker that verifies the raw body (Complement's key test, as Synapse serves it) succeeds.
 */
export function buildServerKeys(
  serverName: string,
  keys: LoadedSigningKeys,
  oldKeys: Record<string, OldSigningKey>,
  validUntilTs: number,
): ServerKeys {
  const verify_keys: ServerKeys['verify_keys'] = {};
  for (const key of keys.all) verify_keys[key.keyId] = { key: key.publicKeyBase64 };
  const old_verify_keys: ServerKeys['old_verify_keys'] = {};
  for (const [keyId, old] of Object.entries(oldKeys)) {
    if (!verify_keys[keyId]) old_verify_keys[keyId] = { key: old.key, expired_ts: old.expiredTs };
  }
  let body: ServerKeys = { server_name: serverName, valid_until_ts: validUntilTs, verify_keys, old_verify_keys };
  for (const key of keys.all) body = signJson(body, serverName, key);
  return JSON.parse(canonicalJson(body)) as ServerKeys;
}
