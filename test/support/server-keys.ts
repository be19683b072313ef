import { expect } from 'vitest';
import { decodeBase64, verifyJsonSignature } from '@tessera/protocol';
import { validateResponse } from '@tessera/testing';

/**
 * Fetches GET /_matrix/key/v2/server from `base`, checks it against the spec's schema and
 * verifies its signature with the key it publishes, as a remote server would. Returns it.
 */
export async function fetchAndVerifyServerKeys(base: string, serverName: string) {
  const res = await fetch(`${base}/_matrix/key/v2/server`);
  expect(res.status).toBe(200);
  const body = (await res.json()) as {
    server_name: string;
    valid_until_ts: number;
    verify_keys: Record<string, { key: string }>;
    old_verify_keys: Record<string, unknown>;
    signatures: Record<string, Record<string, string>>;
  };
  validateResponse('server-server', 'GET', '/_matrix/key/v2/server', 200, body);
  expect(body.server_name).toBe(serverName);
  expect(body.valid_until_ts).toBeGreaterThan(Date.now());
  const keyIds = Object.keys(body.verify_keys);
  expect(keyIds.length).toBeGreaterThan(0);
  for (const keyId of keyIds) {
    const publicKey = decodeBase64(body.verify_keys[keyId]!.key);
    expect(verifyJsonSignature(body, serverName, keyId, publicKey)).toBe(true);
    // A tampered response must not verify: the check above is not vacuous.
    expect(verifyJsonSignature({ ...body, valid_until_ts: body.valid_until_ts + 1 }, serverName, keyId, publicKey)).toBe(false);
  }
  return body;
}
