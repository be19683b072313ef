import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKey, signJson } from '@tessera/protocol';
import { FederationError } from './errors.js';
import { FederationClient } from './federation-client.js';
import { KeyRing } from './key-ring.js';
import { createTestCa, startHttpsServer, StaticResolver, type TestCa } from './testing/test-pki.js';
import { verifyRequest } from './x-matrix.js';
import { FederationAuthError } from './errors.js';

const LOOPBACK = ['127.0.0.0/8', '::1/128'];

function send(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/**
 * Two servers of ours on loopback: "origin" publishes its keys; "remote" authenticates every
 * request with verifyRequest and a KeyRing that fetches the origin's keys over HTTPS.
 */
describe('FederationClient over real HTTPS', () => {
  let ca: TestCa;
  let otherCa: TestCa;
  const originKey = generateSigningKey('o1');
  const remoteKey = generateSigningKey('r1');
  let origin: Awaited<ReturnType<typeof startHttpsServer>>;
  let remote: Awaited<ReturnType<typeof startHttpsServer>>;
  let originName: string;
  let remoteName: string;
  let dns: StaticResolver;
  let client: FederationClient;
  let remoteClient: FederationClient;

  beforeAll(async () => {
    ca = createTestCa();
    otherCa = createTestCa('Some Other CA');
    const tls = ca.issue(['origin.test', 'remote.test', '127.0.0.1']);
    origin = await startHttpsServer(tls, (req, res) => {
      if (req.url === '/_matrix/key/v2/server') {
        send(res, 200, signJson({ server_name: originName, valid_until_ts: Date.now() + 3_600_000, verify_keys: { [originKey.keyId]: { key: originKey.publicKeyBase64 } }, old_verify_keys: {} }, originName, originKey));
      } else send(res, 404, { errcode: 'M_NOT_FOUND', error: 'no such path' });
    });
    originName = `origin.test:${origin.port}`;
    dns = new StaticResolver().setAddress('origin.test', '127.0.0.1').setAddress('remote.test', '127.0.0.1').setAddress('wrong.test', '127.0.0.1').setAddress('rebind.test', '10.0.0.7', '127.0.0.1');
    remoteClient = new FederationClient({ serverName: 'remote.test', signingKey: remoteKey, ca: ca.certPem, resolver: dns, allowedCidrs: LOOPBACK });
    const remoteKeys = new KeyRing({ client: remoteClient });
    remote = await startHttpsServer(tls, (req, res, body) => {
      const url = req.url ?? '';
      if (url.startsWith('/_matrix/federation/v1/echo')) {
        verifyRequest(
          { method: req.method!, uri: url, header: req.headers.authorization, content: body === '' ? undefined : JSON.parse(body), destination: remoteName },
          remoteKeys.keyLookup(),
        ).then(
          (who) => send(res, 200, { origin: who.origin, method: req.method, uri: url, content: body === '' ? null : JSON.parse(body), host: req.headers.host }),
          (err: FederationAuthError) => send(res, err.status, err.toJSON()),
        );
      } else if (url === '/_matrix/federation/v1/not-json') {
        res.writeHead(200).end('<html>');
      } else if (url === '/_matrix/federation/v1/big') {
        res.writeHead(200).end(JSON.stringify({ data: 'x'.repeat(5000) }));
      } else if (url === '/_matrix/federation/v1/hang') {
        // never answers
      } else send(res, 404, { errcode: 'M_NOT_FOUND', error: 'no such path' });
    });
    remoteName = `remote.test:${remote.port}`;
    client = new FederationClient({ serverName: originName, signingKey: originKey, ca: ca.certPem, resolver: dns, allowedCidrs: LOOPBACK });
  });

  afterAll(async () => {
    client.close();
    remoteClient.close();
    await origin.close();
    await remote.close();
    ca.dispose();
    otherCa.dispose();
  });

  it('sends a signed PUT that the remote authenticates with the origin key it fetched', async () => {
    const res = await client.put<Record<string, unknown>>(remoteName, '/_matrix/federation/v1/echo/txn%201', { pdus: [], n: 1 });
    expect(res).toEqual({ origin: originName, method: 'PUT', uri: '/_matrix/federation/v1/echo/txn%201', content: { pdus: [], n: 1 }, host: remoteName });
  });

  it('signs GET query strings and POST bodies', async () => {
    expect(await client.get(remoteName, '/_matrix/federation/v1/echo', { query: { limit: 5, v: ['a b', 'c'] } })).toMatchObject({
      uri: '/_matrix/federation/v1/echo?limit=5&v=a%20b&v=c',
      content: null,
    });
    expect(await client.post(remoteName, '/_matrix/federation/v1/echo', { x: 'é' })).toMatchObject({ method: 'POST', content: { x: 'é' } });
  });

  it('a request signed by an unknown key is refused by the remote with 401 M_UNAUTHORIZED, mapped to a FederationError', async () => {
    const impostor = new FederationClient({ serverName: originName, signingKey: generateSigningKey('o1'), ca: ca.certPem, resolver: dns, allowedCidrs: LOOPBACK });
    const err = await impostor.put(remoteName, '/_matrix/federation/v1/echo/t', {}).catch((e: unknown) => e);
    impostor.close();
    expect(err).toBeInstanceOf(FederationError);
    expect(err).toMatchObject({ kind: 'http', status: 401, errcode: 'M_UNAUTHORIZED', destination: remoteName });
    expect((err as Error).message).toMatch(/does not verify/);
  });

  it('maps non-2xx answers and non-JSON answers to errors', async () => {
    await expect(client.get(remoteName, '/_matrix/federation/v1/nothing')).rejects.toMatchObject({ kind: 'http', status: 404, errcode: 'M_NOT_FOUND' });
    await expect(client.get(remoteName, '/_matrix/federation/v1/not-json')).rejects.toMatchObject({ kind: 'invalid_response' });
  });

  it('talks to an IP-literal server name, checking the certificate against the IP', async () => {
    const res = await client.get<Record<string, unknown>>(`127.0.0.1:${remote.port}`, '/_matrix/federation/v1/nothing').catch((e: FederationError) => e);
    expect(res).toMatchObject({ kind: 'http', status: 404 });
  });

  it('refuses a certificate from another CA', async () => {
    const wrong = new FederationClient({ serverName: originName, signingKey: originKey, ca: otherCa.certPem, resolver: dns, allowedCidrs: LOOPBACK });
    const err = await wrong.get(remoteName, '/_matrix/federation/v1/echo').catch((e: unknown) => e);
    wrong.close();
    expect(err).toMatchObject({ kind: 'network' });
    expect((err as Error).message).toMatch(/certificate/i);
  });

  it('refuses a certificate that does not name the server', async () => {
    const err = await client.get(`wrong.test:${remote.port}`, '/_matrix/federation/v1/echo').catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'network' });
    expect((err as Error).message).toMatch(/wrong\.test|altnames/i);
  });

  it('refuses loopback without an allow-list, by name (at connect time) and by IP literal', async () => {
    const strict = new FederationClient({ serverName: originName, signingKey: originKey, ca: ca.certPem, resolver: dns });
    await expect(strict.get(remoteName, '/_matrix/federation/v1/echo')).rejects.toMatchObject({ kind: 'blocked' });
    await expect(strict.get(`127.0.0.1:${remote.port}`, '/_matrix/federation/v1/echo')).rejects.toMatchObject({ kind: 'blocked' });
    await expect(strict.get(`[::1]:${remote.port}`, '/_matrix/federation/v1/echo')).rejects.toThrow(/special-purpose range ::\/96/);
    strict.close();
  });

  it('connects only to allowed addresses of a name whose DNS answer mixes private and allowed ones', async () => {
    // rebind.test answers 10.0.0.7 (refused) and 127.0.0.1 (allowed here); the certificate does
    // not name rebind.test, so reaching the TLS check proves the connection went to 127.0.0.1.
    const err = await client.get(`rebind.test:${remote.port}`, '/_matrix/federation/v1/echo').catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'network' });
    expect((err as Error).message).toMatch(/rebind\.test|altnames/i);
    const onlyPrivate = new StaticResolver().setAddress('rebind.test', '10.0.0.7');
    const c = new FederationClient({ serverName: originName, signingKey: originKey, ca: ca.certPem, resolver: onlyPrivate, allowedCidrs: LOOPBACK });
    await expect(c.get(`rebind.test:${remote.port}`, '/x')).rejects.toMatchObject({ kind: 'blocked' });
    c.close();
  });

  it('gives up after the deadline and refuses oversized answers', async () => {
    await expect(client.request({ destination: remoteName, method: 'GET', path: '/_matrix/federation/v1/hang', timeoutMs: 300 })).rejects.toMatchObject({ kind: 'timeout' });
    const small = new FederationClient({ serverName: originName, signingKey: originKey, ca: ca.certPem, resolver: dns, allowedCidrs: LOOPBACK, maxResponseBytes: 1000 });
    await expect(small.get(remoteName, '/_matrix/federation/v1/big')).rejects.toMatchObject({ kind: 'invalid_response' });
    small.close();
  });
});
