import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DnsResolver } from './dns-resolver.js';
import { GuardedHttpClient, GuardedRequestError } from './guarded-request.js';
import { IpPolicy } from './ip-ranges.js';

/** Names of the tests' own: `local.test` is 127.0.0.1, `nowhere.test` has no address. */
const resolver: DnsResolver = {
  async lookup(hostname) {
    if (hostname === 'local.test') return [{ address: '127.0.0.1', family: 4 }];
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
  },
  async resolveSrv() {
    return [];
  },
};

const failure = (promise: Promise<unknown>) => promise.then(
  () => {
    throw new Error('expected a failure');
  },
  (err: unknown) => err as GuardedRequestError,
);

describe('GuardedHttpClient against a local HTTP server', () => {
  let server: http.Server;
  let port = 0;
  const hits: string[] = [];
  const clients: GuardedHttpClient[] = [];
  const client = (options: ConstructorParameters<typeof GuardedHttpClient>[0]) => {
    const made = new GuardedHttpClient({ resolver, ...options });
    clients.push(made);
    return made;
  };
  const url = (path: string, host = '127.0.0.1') => `http://${host}:${port}${path}`;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      hits.push(req.url ?? '');
      if (req.url === '/echo') {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          res.writeHead(200, { 'content-type': 'application/json', 'x-method': req.method ?? '' });
          res.end(Buffer.concat(chunks));
        });
        return;
      }
      if (req.url === '/redirect') {
        res.writeHead(302, { location: '/elsewhere' });
        res.end('moved');
        return;
      }
      if (req.url === '/declared-big') {
        res.writeHead(200, { 'content-length': 4096 });
        res.end('z'.repeat(4096));
        return;
      }
      if (req.url === '/chunked-big') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        for (let i = 0; i < 8; i++) res.write('y'.repeat(512));
        res.end();
        return;
      }
      if (req.url === '/stall-body') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('partial');
        return;
      }
      if (req.url === '/stall') return; // never answers
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('hello');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('GETs and POSTs to an allowed address: status, headers and body', async () => {
    const http = client({ allowedCidrs: ['127.0.0.0/8'] });
    const got = await http.request(url('/hello'), { timeoutMs: 2_000, maxBytes: 1024 });
    expect(got.status).toBe(200);
    expect(got.headers['content-type']).toBe('text/plain');
    expect(got.body.toString()).toBe('hello');

    const posted = await http.request(url('/echo', 'local.test'), { method: 'POST', body: Buffer.from('{"a":1}'), headers: { 'content-type': 'application/json' }, timeoutMs: 2_000, maxBytes: 1024 });
    expect(posted.status).toBe(200);
    expect(posted.headers['x-method']).toBe('POST');
    expect(posted.body.toString()).toBe('{"a":1}');
  });

  it('does not follow redirects, and lets the caller skip or refuse a body', async () => {
    const http = client({ allowedCidrs: ['127.0.0.1/32'] });
    const moved = await http.request(url('/redirect'), { timeoutMs: 2_000, maxBytes: 1024 });
    expect(moved.status).toBe(302);
    expect(moved.headers.location).toBe('/elsewhere');
    expect(moved.body.toString()).toBe('moved');
    expect(hits).not.toContain('/elsewhere');

    const skipped = await http.request(url('/redirect'), { timeoutMs: 2_000, maxBytes: 1024, readBody: (head) => head.status < 300 });
    expect(skipped.status).toBe(302);
    expect(skipped.body.length).toBe(0);

    const refusal = new Error('not that type');
    await expect(http.request(url('/hello'), { timeoutMs: 2_000, maxBytes: 1024, readBody: () => { throw refusal; } })).rejects.toBe(refusal);
  });

  it('fails with too-large beyond maxBytes, declared or counted, keeping the status', async () => {
    const http = client({ allowedCidrs: ['127.0.0.0/8'] });
    for (const path of ['/declared-big', '/chunked-big']) {
      const err = await failure(http.request(url(path), { timeoutMs: 2_000, maxBytes: 1000 }));
      expect(err, path).toBeInstanceOf(GuardedRequestError);
      expect(err.kind, path).toBe('too-large');
      expect(err.status, path).toBe(200);
      expect(err.message).toMatch(/larger than 1000 bytes/);
    }
    // At the limit exactly: read.
    expect((await http.request(url('/declared-big'), { timeoutMs: 2_000, maxBytes: 4096 })).body.length).toBe(4096);
  });

  it('fails with timeout when no complete answer comes in time, headers or body', async () => {
    const http = client({ allowedCidrs: ['127.0.0.0/8'] });
    for (const path of ['/stall', '/stall-body']) {
      const started = Date.now();
      const err = await failure(http.request(url(path), { timeoutMs: 200, maxBytes: 1024 }));
      expect(err.kind, path).toBe('timeout');
      expect(Date.now() - started).toBeLessThan(2_000);
    }
  });

  it('refuses private addresses unless allowed: IP literals and names resolving to them', async () => {
    const strict = client({ describeRefusal: (where, why) => `refused ${where}: ${why}` });
    const before = hits.length;
    const literal = await failure(strict.request(url('/hello'), { timeoutMs: 2_000, maxBytes: 1024 }));
    expect(literal.kind).toBe('refused');
    expect(literal.details.ipLiteral).toBe(true);
    expect(literal.message).toMatch(/^refused http:\/\/127\.0\.0\.1:\d+\/hello: 127\.0\.0\.1 is in the special-purpose range 127\.0\.0\.0\/8/);
    for (const host of ['[::1]', '10.0.0.1', '[::ffff:127.0.0.1]']) {
      expect((await failure(strict.request(url('/hello', host), { timeoutMs: 2_000, maxBytes: 1024 }))).kind, host).toBe('refused');
    }
    const byName = await failure(strict.request(url('/hello', 'local.test'), { timeoutMs: 2_000, maxBytes: 1024 }));
    expect(byName.kind).toBe('refused');
    expect(byName.details.ipLiteral).toBeUndefined();
    expect(byName.message).toMatch(/^refused local\.test: /);
    expect(hits.length).toBe(before);

    // Allowed wins over blocked.
    const both = client({ allowedCidrs: ['127.0.0.1/32'], blockedCidrs: ['127.0.0.0/8'] });
    expect((await both.request(url('/hello', 'local.test'), { timeoutMs: 2_000, maxBytes: 1024 })).status).toBe(200);
  });

  it('tells a name without address, a refused connection and a malformed URL apart', async () => {
    const http = client({ allowedCidrs: ['127.0.0.0/8'] });
    expect((await failure(http.request('http://nowhere.test/', { timeoutMs: 2_000, maxBytes: 1024 }))).kind).toBe('unresolved');
    // Nothing listens on port 9 (discard).
    expect((await failure(http.request('http://127.0.0.1:9/', { timeoutMs: 2_000, maxBytes: 1024 }))).kind).toBe('network');
    for (const bad of ['not a url', 'ftp://127.0.0.1/']) {
      expect((await failure(http.request(bad, { timeoutMs: 2_000, maxBytes: 1024 }))).kind, bad).toBe('invalid-url');
    }
  });
});

describe('IpPolicy with a block-list', () => {
  it('refuses public addresses it names, IPv4 embedded in IPv6 included; the allow-list still wins', () => {
    const policy = new IpPolicy([], ['93.184.0.0/16', '2001:4860::/32']);
    expect(policy.refusal('93.184.216.34')).toMatch(/93\.184\.0\.0\/16 that the block-list lists/);
    expect(policy.isAllowed('::ffff:93.184.216.34')).toBe(false);
    expect(policy.isAllowed('2001:4860:4860::8888')).toBe(false);
    expect(policy.isAllowed('8.8.8.8')).toBe(true);
    expect(policy.isAllowed('10.0.0.1')).toBe(false);
    const allowing = new IpPolicy(['93.184.216.34/32'], ['93.184.0.0/16']);
    expect(allowing.isAllowed('93.184.216.34')).toBe(true);
    expect(allowing.isAllowed('93.184.216.35')).toBe(false);
  });

  it('names the settings its lists come from in its refusals', () => {
    const named = new IpPolicy([], ['93.184.0.0/16'], { allowed: 'url_preview_ip_range_whitelist', blocked: 'url_preview_ip_range_blacklist' });
    expect(named.refusal('93.184.216.34')).toBe('93.184.216.34 is in the range 93.184.0.0/16 that url_preview_ip_range_blacklist lists');
    expect(named.refusal('10.0.0.1')).toBe('10.0.0.1 is in the special-purpose range 10.0.0.0/8; it is refused unless url_preview_ip_range_whitelist lists it');
  });
});
