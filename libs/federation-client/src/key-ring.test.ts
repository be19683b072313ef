import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generateSigningKey, signJson, type SigningKey } from '@tessera/protocol';
import { FederationClient } from './federation-client.js';
import { KeyRing, keyRingKey, type KeyStore } from './key-ring.js';
import type { ServerKey } from './server-keys.js';
import { createTestCa, startHttpsServer, StaticResolver, type TestCa } from './testing/test-pki.js';

const DAY = 86_400_000;

/**
 * One HTTPS server plays every remote (a.test, b.test, notary.test) by Host header; each test
 * sets what they publish. Server names carry the port so discovery reaches loopback.
 */
describe('KeyRing against real HTTPS servers', () => {
  let ca: TestCa;
  let server: Awaited<ReturnType<typeof startHttpsServer>>;
  let client: FederationClient;
  let A: string;
  let B: string;
  let NOTARY: string;
  let now: number;
  /** What each host answers on /_matrix/key/v2/server (undefined: 404). */
  let published: Map<string, unknown>;
  /** What the notary answers on the query endpoints, per queried server. */
  let notaryDocs: Map<string, unknown>;
  const requests: string[] = [];
  const notaryKey = generateSigningKey('n1');
  const aKey = generateSigningKey('a1');

  const keysDoc = (name: string, key: SigningKey, validUntil: number, extra: Record<string, unknown> = {}) =>
    signJson({ server_name: name, valid_until_ts: validUntil, verify_keys: { [key.keyId]: { key: key.publicKeyBase64 } }, old_verify_keys: {}, ...extra }, name, key);

  beforeAll(async () => {
    ca = createTestCa();
    server = await startHttpsServer(ca.issue(['a.test', 'b.test', 'notary.test']), (req, res, body) => {
      const host = req.headers.host!;
      requests.push(`${host} ${req.method} ${req.url}`);
      const send = (status: number, doc: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(doc));
      if (req.url === '/_matrix/key/v2/server') {
        const doc = published.get(host);
        return doc === undefined ? send(404, { errcode: 'M_NOT_FOUND', error: 'no keys' }) : send(200, doc);
      }
      if (host === NOTARY && req.method === 'POST' && req.url === '/_matrix/key/v2/query') {
        const asked = Object.keys((JSON.parse(body) as { server_keys: Record<string, unknown> }).server_keys);
        return send(200, { server_keys: asked.map((s) => notaryDocs.get(s)).filter(Boolean) });
      }
      const m = /^\/_matrix\/key\/v2\/query\/([^?]+)\?minimum_valid_until_ts=\d+$/.exec(req.url ?? '');
      if (host === NOTARY && req.method === 'GET' && m) {
        const doc = notaryDocs.get(decodeURIComponent(m[1]!));
        return send(200, { server_keys: doc ? [doc] : [] });
      }
      send(404, { errcode: 'M_UNRECOGNIZED', error: 'unknown' });
    });
    A = `a.test:${server.port}`;
    B = `b.test:${server.port}`;
    NOTARY = `notary.test:${server.port}`;
    const dns = new StaticResolver().setAddress('a.test', '127.0.0.1').setAddress('b.test', '127.0.0.1').setAddress('notary.test', '127.0.0.1');
    client = new FederationClient({ serverName: 'us.test', signingKey: generateSigningKey(), ca: ca.certPem, resolver: dns, allowedCidrs: ['127.0.0.0/8'] });
  });

  afterAll(async () => {
    client.close();
    await server.close();
    ca.dispose();
  });

  beforeEach(() => {
    now = Date.now();
    published = new Map();
    notaryDocs = new Map();
    requests.length = 0;
  });

  const ring = (extra: Partial<ConstructorParameters<typeof KeyRing>[0]> = {}) => new KeyRing({ client, now: () => now, refetchCooldownMs: 0, ...extra });
  const fetchesOf = (host: string) => requests.filter((r) => r.startsWith(host)).length;

  it('fetches a key directly, checks it, and serves it from cache afterwards', async () => {
    published.set(A, keysDoc(A, aKey, now + DAY));
    const keys = ring();
    const k = await keys.getVerifyKey(A, aKey.keyId);
    expect(k).toMatchObject({ serverName: A, keyId: aKey.keyId, publicKeyBase64: aKey.publicKeyBase64, validUntilTs: now + DAY });
    expect(Buffer.from(k!.publicKey).equals(Buffer.from(aKey.publicKey))).toBe(true);
    await keys.getVerifyKey(A, aKey.keyId);
    expect(fetchesOf(A)).toBe(1);
    expect(await keys.keyLookup()(A, aKey.keyId)).toEqual(k!.publicKey);
  });

  it.each([
    ['names another server', () => keysDoc('someone.else', aKey, now + DAY)],
    ['is signed by a key that is not in verify_keys', () => signJson({ server_name: A, valid_until_ts: now + DAY, verify_keys: { [aKey.keyId]: { key: aKey.publicKeyBase64 } } }, A, generateSigningKey('zz'))],
    ['has a bad self-signature', () => ({ ...keysDoc(A, aKey, now + DAY), valid_until_ts: now + 2 * DAY })],
    ['is not signed at all', () => ({ server_name: A, valid_until_ts: now + DAY, verify_keys: { [aKey.keyId]: { key: aKey.publicKeyBase64 } } })],
    ['has a key of the wrong length', () => signJson({ server_name: A, valid_until_ts: now + DAY, verify_keys: { [aKey.keyId]: { key: 'AAAA' } } }, A, aKey)],
  ])('refuses a keys document that %s', async (_why, doc) => {
    published.set(A, doc());
    const errors: string[] = [];
    const keys = ring({ onFetchError: (_s, _src, e) => errors.push(e.message) });
    expect(await keys.getVerifyKey(A, aKey.keyId)).toBeUndefined();
    expect(errors).toHaveLength(1);
  });

  it('refetches a key whose valid_until_ts has passed, and one that must be valid later than cached', async () => {
    published.set(A, keysDoc(A, aKey, now + 1000));
    const keys = ring();
    expect(await keys.getVerifyKey(A, aKey.keyId)).toBeDefined();
    published.set(A, keysDoc(A, aKey, now + DAY));
    now += 2000;
    expect(await keys.getVerifyKey(A, aKey.keyId)).toMatchObject({ validUntilTs: now - 2000 + DAY });
    expect(fetchesOf(A)).toBe(2);
    // A room v5+ event from the future of the cached validity: refetch, and refuse if still short.
    expect(await keys.getVerifyKey(A, aKey.keyId, now + 2 * DAY)).toBeUndefined();
    expect(fetchesOf(A)).toBe(3);
    // An old room version passes 0: the cached key serves.
    expect(await keys.getVerifyKey(A, aKey.keyId, 0)).toBeDefined();
    expect(fetchesOf(A)).toBe(3);
  });

  it('caps validity at 7 days after the fetch', async () => {
    published.set(A, keysDoc(A, aKey, now + 365 * DAY));
    const k = await ring().getVerifyKey(A, aKey.keyId);
    expect(k!.validUntilTs).toBe(now + 7 * DAY);
  });

  it('serves old_verify_keys for times before their expired_ts only', async () => {
    const old = generateSigningKey('a0');
    published.set(A, keysDoc(A, aKey, now + DAY, { old_verify_keys: { [old.keyId]: { key: old.publicKeyBase64, expired_ts: now - 10 * DAY } } }));
    const keys = ring();
    expect(await keys.getVerifyKey(A, old.keyId, now - 11 * DAY)).toMatchObject({ expiredTs: now - 10 * DAY, publicKeyBase64: old.publicKeyBase64 });
    expect(await keys.getVerifyKey(A, old.keyId, now - 9 * DAY)).toBeUndefined();
    expect(await keys.getVerifyKey(A, old.keyId)).toBeUndefined();
  });

  it('asks a notary (GET single) when the server cannot be reached, checking both signatures', async () => {
    notaryDocs.set(A, signJson(keysDoc(A, aKey, now + DAY), NOTARY, notaryKey));
    const keys = ring({ notaries: [{ serverName: NOTARY, verifyKeys: { [notaryKey.keyId]: notaryKey.publicKeyBase64 } }] });
    expect(await keys.getVerifyKey(A, aKey.keyId)).toMatchObject({ publicKeyBase64: aKey.publicKeyBase64 });
    expect(requests).toContain(`${NOTARY} GET /_matrix/key/v2/query/${encodeURIComponent(A)}?minimum_valid_until_ts=${now}`);
  });

  it('batches missing keys of several servers into one notary POST', async () => {
    const bKey = generateSigningKey('b1');
    notaryDocs.set(A, signJson(keysDoc(A, aKey, now + DAY), NOTARY, notaryKey));
    notaryDocs.set(B, signJson(keysDoc(B, bKey, now + DAY), NOTARY, notaryKey));
    const keys = ring({ fetchDirect: false, notaries: [{ serverName: NOTARY, verifyKeys: { [notaryKey.keyId]: notaryKey.publicKeyBase64 } }] });
    const found = await keys.getVerifyKeys([{ serverName: A, keyId: aKey.keyId }, { serverName: B, keyId: bKey.keyId }]);
    expect(found.get(keyRingKey(A, aKey.keyId))?.publicKeyBase64).toBe(aKey.publicKeyBase64);
    expect(found.get(keyRingKey(B, bKey.keyId))?.publicKeyBase64).toBe(bKey.publicKeyBase64);
    expect(requests).toEqual([`${NOTARY} POST /_matrix/key/v2/query`]);
  });

  it('refuses notary answers without a valid notary signature, or without the origin self-signature', async () => {
    const pinned = { serverName: NOTARY, verifyKeys: { [notaryKey.keyId]: notaryKey.publicKeyBase64 } };
    notaryDocs.set(A, signJson(keysDoc(A, aKey, now + DAY), NOTARY, generateSigningKey('n1')));
    expect(await ring({ fetchDirect: false, notaries: [pinned] }).getVerifyKey(A, aKey.keyId)).toBeUndefined();
    // The notary may not alter what the origin signed: a changed document fails the origin's self-signature.
    const altered = { ...keysDoc(A, aKey, now + DAY), valid_until_ts: now + 3 * DAY };
    notaryDocs.set(A, signJson(altered, NOTARY, notaryKey));
    expect(await ring({ fetchDirect: false, notaries: [pinned] }).getVerifyKey(A, aKey.keyId)).toBeUndefined();
    // Unaltered and notary-signed: accepted (proves the two refusals above were for the stated reasons).
    notaryDocs.set(A, signJson(keysDoc(A, aKey, now + DAY), NOTARY, notaryKey));
    expect(await ring({ fetchDirect: false, notaries: [pinned] }).getVerifyKey(A, aKey.keyId)).toBeDefined();
  });

  it('fetches an unpinned notary key directly from the notary', async () => {
    published.set(NOTARY, keysDoc(NOTARY, notaryKey, now + DAY));
    notaryDocs.set(A, signJson(keysDoc(A, aKey, now + DAY), NOTARY, notaryKey));
    const keys = ring({ fetchDirect: false, notaries: [{ serverName: NOTARY }] });
    expect(await keys.getVerifyKey(A, aKey.keyId)).toBeDefined();
    expect(requests[0]).toBe(`${NOTARY} GET /_matrix/key/v2/server`);
  });

  it('writes fetched keys to the store and reads them back without fetching', async () => {
    const saved = new Map<string, ServerKey>();
    const store: KeyStore = {
      get: async (s, k) => saved.get(keyRingKey(s, k)),
      put: async (keys) => keys.forEach((k) => saved.set(keyRingKey(k.serverName, k.keyId), k)),
    };
    published.set(A, keysDoc(A, aKey, now + DAY));
    await ring({ store }).getVerifyKey(A, aKey.keyId);
    expect(saved.size).toBe(1);
    published.clear();
    expect(await ring({ store }).getVerifyKey(A, aKey.keyId)).toMatchObject({ publicKeyBase64: aKey.publicKeyBase64 });
    expect(fetchesOf(A)).toBe(1);
  });

  it('does not refetch within the cooldown for unknown key ids', async () => {
    published.set(A, keysDoc(A, aKey, now + DAY));
    const keys = ring({ refetchCooldownMs: 30_000 });
    expect(await keys.getVerifyKey(A, 'ed25519:nope')).toBeUndefined();
    expect(await keys.getVerifyKey(A, 'ed25519:nope2')).toBeUndefined();
    expect(fetchesOf(A)).toBe(1);
    now += 30_000;
    expect(await keys.getVerifyKey(A, 'ed25519:nope')).toBeUndefined();
    expect(fetchesOf(A)).toBe(2);
    // The key fetched along the way is in the cache.
    expect(keys.cachedKey(A, aKey.keyId)).toBeDefined();
  });

  it('shares one fetch between concurrent lookups', async () => {
    published.set(A, keysDoc(A, aKey, now + DAY));
    const keys = ring();
    await Promise.all([keys.getVerifyKey(A, aKey.keyId), keys.getVerifyKey(A, aKey.keyId), keys.getVerifyKey(A, aKey.keyId)]);
    expect(fetchesOf(A)).toBe(1);
  });
});
