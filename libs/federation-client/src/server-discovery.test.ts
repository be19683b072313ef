import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpsTransport } from './https-transport.js';
import { cacheLifetimeMs, ServerResolver } from './server-discovery.js';
import { createTestCa, StaticResolver, type TestCa } from './testing/test-pki.js';
import { httpsWellKnownFetcher, type WellKnownResponse } from './well-known.js';

const srv = (name: string, port: number, priority = 10, weight = 0) => ({ name, port, priority, weight });
const json = (body: unknown, extra: Partial<WellKnownResponse> = {}): WellKnownResponse => ({ status: 200, body: JSON.stringify(body), ...extra });

/** A .well-known table; hostnames not listed answer 404. Counts fetches per hostname. */
function wellKnownTable(table: Record<string, WellKnownResponse | Error>) {
  const fetched: string[] = [];
  const fetcher = async (hostname: string) => {
    fetched.push(hostname);
    const r = table[hostname];
    if (r instanceof Error) throw r;
    return r ?? { status: 404, body: '{"errcode":"M_NOT_FOUND"}' };
  };
  return { fetcher, fetched };
}

describe('ServerResolver: the spec steps in order', () => {
  it('1: IPv4 and IPv6 literals, with and without port, skip DNS and .well-known', async () => {
    const dns = new StaticResolver();
    const wk = wellKnownTable({});
    const r = new ServerResolver({ resolver: dns, fetchWellKnown: wk.fetcher });
    expect(await r.resolveServer('1.2.3.4')).toMatchObject({ step: 'ip-literal', address: '1.2.3.4', port: 8448, tlsServerName: '1.2.3.4', hostHeader: '1.2.3.4' });
    expect(await r.resolveServer('1.2.3.4:99')).toMatchObject({ address: '1.2.3.4', port: 99, hostHeader: '1.2.3.4:99' });
    expect(await r.resolveServer('[2001:db8::1]')).toMatchObject({ step: 'ip-literal', address: '2001:db8::1', port: 8448, hostHeader: '[2001:db8::1]' });
    expect(await r.resolveServer('[2001:db8::1]:8000')).toMatchObject({ address: '2001:db8::1', port: 8000, hostHeader: '[2001:db8::1]:8000', tlsServerName: '2001:db8::1' });
    expect(dns.asked).toEqual([]);
    expect(wk.fetched).toEqual([]);
  });

  it('2: an explicit port skips .well-known and SRV', async () => {
    const dns = new StaticResolver().setSrv('_matrix-fed._tcp.example.test', srv('other.test', 1));
    const wk = wellKnownTable({ 'example.test': json({ 'm.server': 'x.test:1' }) });
    const r = new ServerResolver({ resolver: dns, fetchWellKnown: wk.fetcher });
    expect(await r.resolveServer('example.test:8449')).toEqual({
      serverName: 'example.test:8449', step: 'explicit-port', address: 'example.test', port: 8449, tlsServerName: 'example.test', hostHeader: 'example.test:8449',
    });
    expect(dns.asked).toEqual([]);
    expect(wk.fetched).toEqual([]);
  });

  it('3.1: delegation to an IP literal', async () => {
    const wk = wellKnownTable({ 'a.test': json({ 'm.server': '[2001:db8::5]:9000' }), 'b.test': json({ 'm.server': '5.6.7.8' }) });
    const r = new ServerResolver({ resolver: new StaticResolver(), fetchWellKnown: wk.fetcher });
    expect(await r.resolveServer('a.test')).toMatchObject({ step: 'well-known-ip-literal', address: '2001:db8::5', port: 9000, hostHeader: '[2001:db8::5]:9000', tlsServerName: '2001:db8::5' });
    expect(await r.resolveServer('b.test')).toMatchObject({ step: 'well-known-ip-literal', address: '5.6.7.8', port: 8448, hostHeader: '5.6.7.8' });
  });

  it('3.2: delegation with a port skips SRV', async () => {
    const dns = new StaticResolver().setSrv('_matrix-fed._tcp.matrix.a.test', srv('nope.test', 1));
    const r = new ServerResolver({ resolver: dns, fetchWellKnown: wellKnownTable({ 'a.test': json({ 'm.server': 'matrix.a.test:443' }) }).fetcher });
    expect(await r.resolveServer('a.test')).toEqual({
      serverName: 'a.test', step: 'well-known-explicit-port', address: 'matrix.a.test', port: 443, tlsServerName: 'matrix.a.test', hostHeader: 'matrix.a.test:443',
    });
    expect(dns.asked).toEqual([]);
  });

  it('3.3: delegation without port uses SRV _matrix-fed._tcp of the delegated name; certificate and Host stay the delegated name', async () => {
    const dns = new StaticResolver()
      .setSrv('_matrix-fed._tcp.matrix.a.test', srv('target.test.', 7000))
      .setSrv('_matrix._tcp.matrix.a.test', srv('old.test', 1));
    const r = new ServerResolver({ resolver: dns, fetchWellKnown: wellKnownTable({ 'a.test': json({ 'm.server': 'matrix.a.test' }) }).fetcher });
    expect(await r.resolveServer('a.test')).toEqual({
      serverName: 'a.test', step: 'well-known-srv-matrix-fed', address: 'target.test', port: 7000, tlsServerName: 'matrix.a.test', hostHeader: 'matrix.a.test',
    });
    expect(dns.asked).toEqual(['SRV _matrix-fed._tcp.matrix.a.test']);
  });

  it('3.4: then the deprecated _matrix._tcp; 3.5: then port 8448', async () => {
    const dns = new StaticResolver().setSrv('_matrix._tcp.m.a.test', srv('old.test', 7001));
    const r = new ServerResolver({
      resolver: dns,
      fetchWellKnown: wellKnownTable({ 'a.test': json({ 'm.server': 'm.a.test' }), 'b.test': json({ 'm.server': 'm.b.test' }) }).fetcher,
    });
    expect(await r.resolveServer('a.test')).toMatchObject({ step: 'well-known-srv-matrix', address: 'old.test', port: 7001, tlsServerName: 'm.a.test', hostHeader: 'm.a.test' });
    expect(await r.resolveServer('b.test')).toMatchObject({ step: 'well-known-default-port', address: 'm.b.test', port: 8448, tlsServerName: 'm.b.test', hostHeader: 'm.b.test' });
    expect(dns.asked).toEqual(['SRV _matrix-fed._tcp.m.a.test', 'SRV _matrix._tcp.m.a.test', 'SRV _matrix-fed._tcp.m.b.test', 'SRV _matrix._tcp.m.b.test']);
  });

  it('4-6: without .well-known: SRV _matrix-fed, then _matrix, then 8448, all with the server name for TLS and Host', async () => {
    const dns = new StaticResolver()
      .setSrv('_matrix-fed._tcp.a.test', srv('fed.test', 8000, 20), srv('fed-best.test', 8001, 10))
      .setSrv('_matrix._tcp.b.test', srv('legacy.test', 8002))
      .setSrv('_matrix-fed._tcp.c.test', { name: '.', port: 0, priority: 0, weight: 0 });
    const r = new ServerResolver({ resolver: dns, fetchWellKnown: wellKnownTable({}).fetcher });
    expect(await r.resolveServer('a.test')).toEqual({ serverName: 'a.test', step: 'srv-matrix-fed', address: 'fed-best.test', port: 8001, tlsServerName: 'a.test', hostHeader: 'a.test' });
    expect(await r.resolveServer('b.test')).toMatchObject({ step: 'srv-matrix', address: 'legacy.test', port: 8002, tlsServerName: 'b.test', hostHeader: 'b.test' });
    // "." means no service: falls through to the legacy record, then to 8448.
    expect(await r.resolveServer('c.test')).toMatchObject({ step: 'default-port', address: 'c.test', port: 8448, tlsServerName: 'c.test', hostHeader: 'c.test' });
  });

  it.each([
    ['non-200', { status: 500, body: '{"m.server":"x.test"}' }],
    ['not JSON', { status: 200, body: '<html>' }],
    ['not an object', { status: 200, body: '["x.test"]' }],
    ['m.server missing', { status: 200, body: '{}' }],
    ['m.server invalid', { status: 200, body: '{"m.server":"bad name!"}' }],
    ['m.server with bad port', { status: 200, body: '{"m.server":"x.test:99999"}' }],
  ])('an invalid .well-known (%s) goes on to step 4', async (_why, response) => {
    const dns = new StaticResolver().setSrv('_matrix-fed._tcp.a.test', srv('fed.test', 8000));
    const r = new ServerResolver({ resolver: dns, fetchWellKnown: wellKnownTable({ 'a.test': response }).fetcher });
    expect(await r.resolveServer('a.test')).toMatchObject({ step: 'srv-matrix-fed', address: 'fed.test', tlsServerName: 'a.test' });
  });

  it('a network error fetching .well-known goes on to step 4', async () => {
    const r = new ServerResolver({ resolver: new StaticResolver(), fetchWellKnown: wellKnownTable({ 'a.test': new Error('ECONNREFUSED') }).fetcher });
    expect(await r.resolveServer('a.test')).toMatchObject({ step: 'default-port', address: 'a.test', port: 8448 });
  });

  it('refuses an invalid server name', async () => {
    const r = new ServerResolver({ resolver: new StaticResolver() });
    await expect(r.resolveServer('bad_name!')).rejects.toThrow(/not a valid server name/);
    await expect(r.resolveServer('a.test:0')).rejects.toThrow(/not a valid server name/);
  });
});

describe('ServerResolver: .well-known caching', () => {
  const HOUR = 3_600_000;

  function setup(responses: Record<string, WellKnownResponse | Error>) {
    let now = 1_000_000;
    const wk = wellKnownTable(responses);
    const r = new ServerResolver({ resolver: new StaticResolver(), fetchWellKnown: wk.fetcher, now: () => now });
    return { r, wk, advance: (ms: number) => (now += ms), responses };
  }

  it('caches a success for 24 h by default', async () => {
    const { r, wk, advance } = setup({ 'a.test': json({ 'm.server': 'm.a.test:1' }) });
    await r.resolveServer('a.test');
    advance(24 * HOUR - 1);
    await r.resolveServer('a.test');
    expect(wk.fetched).toHaveLength(1);
    advance(1);
    await r.resolveServer('a.test');
    expect(wk.fetched).toHaveLength(2);
  });

  it('respects Cache-Control max-age, capped at 48 h; no-store is not cached', async () => {
    const { r, wk, advance } = setup({
      'short.test': json({ 'm.server': 'm.test:1' }, { cacheControl: 'public, max-age=60' }),
      'long.test': json({ 'm.server': 'm.test:1' }, { cacheControl: 'max-age=31536000' }),
      'none.test': json({ 'm.server': 'm.test:1' }, { cacheControl: 'no-store' }),
    });
    for (const h of ['short.test', 'long.test', 'none.test']) await r.resolveServer(h);
    advance(60_000);
    for (const h of ['short.test', 'long.test', 'none.test']) await r.resolveServer(h);
    expect(wk.fetched.filter((h) => h === 'short.test')).toHaveLength(2);
    expect(wk.fetched.filter((h) => h === 'none.test')).toHaveLength(2);
    expect(wk.fetched.filter((h) => h === 'long.test')).toHaveLength(1);
    advance(48 * HOUR);
    await r.resolveServer('long.test');
    expect(wk.fetched.filter((h) => h === 'long.test')).toHaveLength(2);
  });

  it('caches errors for a shorter time, backing off exponentially up to an hour', async () => {
    const { r, wk, advance } = setup({ 'down.test': new Error('ECONNREFUSED') });
    const fetches = () => wk.fetched.length;
    await r.resolveServer('down.test'); // failure 1: 5 min
    advance(5 * 60_000 - 1);
    await r.resolveServer('down.test');
    expect(fetches()).toBe(1);
    const expected = [5, 10, 20, 40, 60, 60].map((m) => m * 60_000);
    for (let i = 1; i < expected.length; i++) {
      advance(expected[i - 1]! - (i === 1 ? 5 * 60_000 - 1 : 0));
      await r.resolveServer('down.test');
      expect(fetches()).toBe(i + 1);
      advance(expected[i]! - 1);
      await r.resolveServer('down.test');
      expect(fetches()).toBe(i + 1);
      advance(-(expected[i]! - 1)); // back to the fetch time; next loop advances the full period
    }
  });

  it('reads Expires when there is no max-age', () => {
    expect(cacheLifetimeMs({ expires: new Date(10_000 + 5000).toUTCString() }, 10_000)).toBeGreaterThan(0);
    expect(cacheLifetimeMs({ cacheControl: 'max-age=10', expires: 'Thu, 01 Jan 1970 00:00:00 GMT' }, 0)).toBe(10_000);
    expect(cacheLifetimeMs({}, 0)).toBeUndefined();
  });

  it('shares one fetch between concurrent resolutions', async () => {
    const { r, wk } = setup({ 'a.test': json({ 'm.server': 'm.a.test:1' }) });
    await Promise.all([r.resolveServer('a.test'), r.resolveServer('a.test'), r.resolveServer('a.test')]);
    expect(wk.fetched).toHaveLength(1);
  });
});

describe('httpsWellKnownFetcher over real HTTPS', () => {
  let ca: TestCa;
  let server: https.Server;
  let port: number;
  let transport: HttpsTransport;

  beforeAll(async () => {
    ca = createTestCa();
    const { key, cert } = ca.issue(['a.test', 'b.test', 'loop.test', 'evil.test']);
    server = https.createServer({ key, cert }, (req, res) => {
      const host = (req.headers.host ?? '').split(':')[0];
      if (host === 'a.test') {
        res.writeHead(301, { location: `https://b.test:${port}/.well-known/matrix/server` }).end();
      } else if (host === 'b.test') {
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=120' }).end('{"m.server":"delegated.test:8443"}');
      } else if (host === 'loop.test') {
        res.writeHead(302, { location: req.url === '/.well-known/matrix/server' ? '/again' : '/.well-known/matrix/server' }).end();
      } else if (host === 'evil.test') {
        res.writeHead(302, { location: `http://b.test:${port}/x` }).end();
      } else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    const dns = new StaticResolver().setAddress('a.test', '127.0.0.1').setAddress('b.test', '127.0.0.1').setAddress('loop.test', '127.0.0.1').setAddress('evil.test', '127.0.0.1');
    transport = new HttpsTransport({ ca: ca.certPem, resolver: dns, allowedCidrs: ['127.0.0.0/8'] });
  });

  afterAll(async () => {
    transport.close();
    await new Promise((resolve) => server.close(resolve));
    ca.dispose();
  });

  it('follows redirects and reports the caching headers of the final answer', async () => {
    const fetch = httpsWellKnownFetcher(transport, { port });
    const res = await fetch('a.test');
    expect(res).toMatchObject({ status: 200, cacheControl: 'max-age=120' });
    expect(JSON.parse(res.body)).toEqual({ 'm.server': 'delegated.test:8443' });
    const r = new ServerResolver({ resolver: new StaticResolver(), fetchWellKnown: fetch });
    expect(await r.resolveServer('a.test')).toMatchObject({ step: 'well-known-explicit-port', address: 'delegated.test', port: 8443, hostHeader: 'delegated.test:8443' });
  });

  it('stops a redirect loop and refuses a downgrade to http', async () => {
    const fetch = httpsWellKnownFetcher(transport, { port });
    await expect(fetch('loop.test')).rejects.toThrow(/redirect loop/);
    await expect(fetch('evil.test')).rejects.toThrow(/non-HTTPS/);
  });
});
