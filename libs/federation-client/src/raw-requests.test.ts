import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKey } from '@tessera/protocol';
import { FederationError } from './errors.js';
import { FederationClient } from './federation-client.js';
import { createTestCa, startHttpsServer, StaticResolver, type TestCa } from './testing/test-pki.js';
import { parseXMatrixHeader } from './x-matrix.js';

const LOOPBACK = ['127.0.0.0/8', '::1/128'];

/** getRaw (answers as they come, for media) and fetchUrl (Location URLs given by a remote). */
describe('FederationClient raw requests over real HTTPS', () => {
  let ca: TestCa;
  let server: Awaited<ReturnType<typeof startHttpsServer>>;
  let client: FederationClient;
  let name: string;
  const bytes = Buffer.from([0, 1, 2, 255, 13, 10]);

  beforeAll(async () => {
    ca = createTestCa();
    server = await startHttpsServer(ca.issue(['media.test', 'cdn.test', '127.0.0.1']), (req, res) => {
      const url = req.url ?? '';
      if (url.startsWith('/_matrix/federation/v1/media/download/')) {
        const auth = req.headers.authorization ? parseXMatrixHeader(req.headers.authorization) : undefined;
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-origin': auth?.origin ?? 'none', 'x-url': url }).end(bytes);
      } else if (url === '/missing') {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"errcode":"M_UNRECOGNIZED"}');
      } else if (url === '/bytes') {
        res.writeHead(200, { 'content-type': 'image/png', 'x-signed': String(req.headers.authorization !== undefined) }).end(bytes);
      } else if (url.startsWith('/hop/')) {
        const left = Number(url.slice('/hop/'.length));
        res.writeHead(302, { location: left === 0 ? '/bytes' : `/hop/${left - 1}` }).end();
      } else if (url === '/to-private') {
        res.writeHead(307, { location: 'https://private.test/secret' }).end();
      } else res.writeHead(404).end();
    });
    name = `media.test:${server.port}`;
    const dns = new StaticResolver().setAddress('media.test', '127.0.0.1').setAddress('cdn.test', '127.0.0.1').setAddress('private.test', '10.1.2.3');
    client = new FederationClient({ serverName: 'origin.test', signingKey: generateSigningKey('k1'), ca: ca.certPem, resolver: dns, allowedCidrs: LOOPBACK });
  });

  afterAll(async () => {
    client.close();
    await server.close();
    ca.dispose();
  });

  it('getRaw signs the request and returns the bytes and headers as they came', async () => {
    const res = await client.getRaw(name, '/_matrix/federation/v1/media/download/abc', { query: { timeout_ms: 5 } });
    expect(res.status).toBe(200);
    expect(res.body.equals(bytes)).toBe(true);
    expect(res.headers['x-origin']).toBe('origin.test');
    expect(res.headers['x-url']).toBe('/_matrix/federation/v1/media/download/abc?timeout_ms=5');
  });

  it('getRaw returns error statuses rather than throwing, and caps the size', async () => {
    const missing = await client.getRaw(name, '/missing');
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body.toString())).toEqual({ errcode: 'M_UNRECOGNIZED' });
    await expect(client.getRaw(name, '/_matrix/federation/v1/media/download/abc', { maxResponseBytes: 3 })).rejects.toMatchObject({ kind: 'invalid_response' });
  });

  it('fetchUrl fetches unsigned, follows redirects, and stops after five', async () => {
    const direct = await client.fetchUrl(name, `https://cdn.test:${server.port}/bytes`);
    expect(direct.status).toBe(200);
    expect(direct.headers['x-signed']).toBe('false');
    expect(direct.body.equals(bytes)).toBe(true);
    const redirected = await client.fetchUrl(name, `https://cdn.test:${server.port}/hop/4`);
    expect(redirected.status).toBe(200);
    expect(redirected.headers['content-type']).toBe('image/png');
    await expect(client.fetchUrl(name, `https://cdn.test:${server.port}/hop/5`)).rejects.toMatchObject({ kind: 'invalid_response' });
  });

  it('fetchUrl keeps the IP policy and refuses what is not https', async () => {
    await expect(client.fetchUrl(name, 'https://private.test/secret')).rejects.toMatchObject({ kind: 'blocked' });
    await expect(client.fetchUrl(name, 'https://10.0.0.1/secret')).rejects.toMatchObject({ kind: 'blocked' });
    await expect(client.fetchUrl(name, `https://cdn.test:${server.port}/to-private`)).rejects.toMatchObject({ kind: 'blocked' });
    await expect(client.fetchUrl(name, `http://cdn.test:${server.port}/bytes`)).rejects.toBeInstanceOf(FederationError);
    await expect(client.fetchUrl(name, 'not a url')).rejects.toMatchObject({ kind: 'invalid_response' });
  });
});
