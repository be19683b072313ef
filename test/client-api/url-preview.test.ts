/**
 * URL previews (GET /_matrix/client/v1/media/preview_url and the deprecated
 * /_matrix/media/v3/preview_url) against a real local HTTP server serving pages and images:
 * OpenGraph and its fallbacks, the og:image stored as local media, redirects, size cap,
 * deadline, content types, the database cache, and the address policy (private addresses
 * refused unless url_preview_ip_range_whitelist lists them). Disabled by default, as Synapse.
 * Every JSON answer is validated against the spec's OpenAPI by the harness.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConfig } from '@tessera/config';
import { services } from '@tessera/testing';
import { decodeHtml, parseOpenGraph } from '../../libs/services/client-api/src/media/url-preview/open-graph.js';
import { imageDimensions } from '../../libs/services/client-api/src/media/url-preview/image-dimensions.js';
import { ClientApiHarness } from './harness.js';

const setups = [
  { name: 'PostgreSQL + Redis', database: 'postgres' as const, redis: true, available: services.postgres && services.redis },
  { name: 'PGlite + in-memory store', database: 'pglite' as const, redis: false, available: true },
];

const V1 = '/_matrix/client/v1/media/preview_url';
const LEGACY = '/_matrix/media/v3/preview_url';
/** max_spider_size of the enabled server: small, so "too large" is cheap. */
const MAX_SPIDER = 8 * 1024;

/** A 1x1 PNG. */
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==', 'base64');
/** A 3x2 GIF header (enough for its dimensions). */
const GIF = Buffer.from([...Buffer.from('GIF89a'), 3, 0, 2, 0, 0, 0, 0, 0x3b]);

const PAGE = `<!doctype html>
<html><head>
<meta charset="utf-8">
<title>Fallback title</title>
<meta property="og:title" content="Matrix &amp; friends" />
<meta property="og:description" content="An   open network
 for secure communication" />
<meta property="og:image" content="/static/logo.png">
<meta property="og:image:width" content="999">
<meta property="og:site_name" content="Example">
<script>document.write('<meta property="og:title" content="not this">')</script>
</head><body><p>Hello</p></body></html>`;

const TITLED = `<html><head><title>  Plain &#233;l&eacute;gant &lt;page&gt; </title>
<meta name="Description" content="What the page is about">
<link rel="icon" href="/favicon.ico"></head><body><img src="/tiny.png" width="1" height="1"></body></html>`;

/** The local web server: a fixed set of paths, and a count of requests per path. */
class PageServer {
  readonly hits = new Map<string, number>();
  private server!: http.Server;
  port = 0;

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  url(path: string, host = '127.0.0.1'): string {
    return `http://${host}:${this.port}${path}`;
  }

  hitsOf(path: string): number {
    return this.hits.get(path) ?? 0;
  }

  get total(): number {
    return [...this.hits.values()].reduce((a, b) => a + b, 0);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0]!;
    this.hits.set(path, this.hitsOf(path) + 1);
    const send = (status: number, type: string | undefined, body: string | Buffer, headers: Record<string, string> = {}) => {
      res.writeHead(status, { ...(type ? { 'content-type': type } : {}), ...headers });
      res.end(body);
    };
    if (path.startsWith('/page')) return send(200, 'text/html; charset=utf-8', PAGE);
    if (path === '/titled.html') return send(200, 'text/html', TITLED);
    if (path === '/cyrillic.html') {
      // "дка" in windows-1251, declared by the Content-Type header.
      return send(200, 'text/html; charset="windows-1251"', Buffer.concat([Buffer.from('<html><head><meta property="og:title" content="'), Buffer.from([0xe4, 0xea, 0xe0]), Buffer.from('"></head></html>')]));
    }
    if (path === '/static/logo.png') return send(200, 'image/png', PNG);
    if (path === '/picture.gif') return send(200, 'image/gif', GIF, { 'content-disposition': 'inline; filename="cat.gif"' });
    if (path === '/broken-image.html') return send(200, 'text/html', '<html><head><meta property="og:title" content="No picture"><meta property="og:image" content="/nowhere.png"><meta property="og:image:width" content="5"></head></html>');
    if (path === '/redirect') return send(302, undefined, '', { location: '/page-after-redirect' });
    if (path === '/loop') return send(302, undefined, '', { location: '/loop' });
    if (path === '/big.html') return send(200, 'text/html', `<html><head><title>big</title></head><body>${'x'.repeat(MAX_SPIDER * 2)}</body></html>`);
    if (path === '/big-chunked.html') {
      // No Content-Length: the cap applies while reading.
      res.writeHead(200, { 'content-type': 'text/html' });
      for (let i = 0; i < 4; i++) res.write('y'.repeat(MAX_SPIDER));
      res.end();
      return;
    }
    if (path === '/data.json') return send(200, 'application/json', '{"hello":"world"}');
    if (path === '/video.mp4') return send(200, 'video/mp4', 'not really a video');
    if (path === '/slow') {
      // Headers, then nothing: the preview's deadline ends it.
      res.writeHead(200, { 'content-type': 'text/html' });
      res.write('<html>');
      return;
    }
    send(404, 'text/plain', 'no such page');
  }
}

function query(url: string, ts?: number): string {
  return `?url=${encodeURIComponent(url)}${ts === undefined ? '' : `&ts=${ts}`}`;
}

describe('OpenGraph parsing', () => {
  it('reads og tags, decodes entities, skips scripts and collapses the description', () => {
    expect(parseOpenGraph(PAGE)).toEqual({
      'og:title': 'Matrix & friends',
      'og:description': 'An open network\n\nfor secure communication',
      'og:image': '/static/logo.png',
      'og:image:width': '999',
      'og:site_name': 'Example',
    });
  });

  it('falls back to <title>, meta description, the largest image, twitter cards', () => {
    expect(parseOpenGraph(TITLED)).toEqual({ 'og:title': 'Plain élégant <page>', 'og:description': 'What the page is about', 'og:image': '/tiny.png' });
    const sized = '<body><img src="a.png" width="20" height="20"><img src="b.png" width="300" height="200"><h1> Heading </h1></body>';
    expect(parseOpenGraph(sized)).toEqual({ 'og:title': 'Heading', 'og:image': 'b.png' });
    const twitter = '<meta name="twitter:title" content="From Twitter"><meta name="twitter:card" content="summary"><meta property="og:description" content="d">';
    expect(parseOpenGraph(twitter)).toEqual({ 'og:title': 'From Twitter', 'og:description': 'd' });
    expect(parseOpenGraph('')).toEqual({});
    expect(parseOpenGraph('<meta property="og:title" content="unterminated')).toEqual({});
  });

  it('decodes the charset of the header or of a meta tag', () => {
    const bytes = Buffer.concat([Buffer.from('<meta http-equiv="Content-Type" content="text/html; charset=windows-1251"><title>'), Buffer.from([0xe4, 0xea, 0xe0]), Buffer.from('</title>')]);
    expect(parseOpenGraph(decodeHtml(bytes, 'text/html'))['og:title']).toBe('дка');
    expect(parseOpenGraph(decodeHtml(Buffer.from('<title>é</title>'), 'text/html; charset=utf-8'))['og:title']).toBe('é');
  });

  it('reads image dimensions from headers', () => {
    expect(imageDimensions(PNG)).toEqual({ width: 1, height: 1 });
    expect(imageDimensions(GIF)).toEqual({ width: 3, height: 2 });
    expect(imageDimensions(Buffer.from('not an image'))).toBeUndefined();
  });
});

describe('URL preview configuration', () => {
  const build = (raw: Record<string, unknown>, env: Record<string, string> = {}) => buildConfig(raw, { env, cwd: '/tmp' }).urlPreview;

  it('is off by default, with no whitelist and a 10M cap (as Synapse)', () => {
    expect(build({})).toEqual({ enabled: false, allowedCidrs: [], blockedCidrs: [], urlBlacklist: [], maxSize: 10 * 1024 * 1024 });
  });

  it('reads the file and the environment, and refuses malformed values', () => {
    expect(build({ url_preview_enabled: true, url_preview_ip_range_whitelist: ['127.0.0.1/32'], max_spider_size: '1M' })).toEqual({
      enabled: true,
      allowedCidrs: ['127.0.0.1/32'],
      blockedCidrs: [],
      urlBlacklist: [],
      maxSize: 1024 * 1024,
    });
    expect(build({}, { URL_PREVIEW_ENABLED: 'true', URL_PREVIEW_IP_RANGE_WHITELIST: '10.0.0.0/8, 127.0.0.1/32', MAX_SPIDER_SIZE: '4096' })).toEqual({
      enabled: true,
      allowedCidrs: ['10.0.0.0/8', '127.0.0.1/32'],
      blockedCidrs: [],
      urlBlacklist: [],
      maxSize: 4096,
    });
    expect(() => build({ url_preview_enabled: 'yes' })).toThrow(/url_preview_enabled/);
    expect(() => build({ url_preview_ip_range_whitelist: '10.0.0.0/8' })).toThrow(/url_preview_ip_range_whitelist/);
    expect(() => build({ max_spider_size: 'huge' })).toThrow(/max_spider_size/);
  });
});

for (const setup of setups) {
  describe.skipIf(!setup.available)(`URL previews (${setup.name})`, () => {
    const pages = new PageServer();
    let hs: ClientApiHarness;
    let alice: { user_id: string; access_token: string };

    beforeAll(async () => {
      await pages.start();
      hs = await ClientApiHarness.start({
        database: setup.database,
        redis: setup.redis,
        config: { url_preview_enabled: true, url_preview_ip_range_whitelist: ['127.0.0.1/32'], max_spider_size: MAX_SPIDER, rate_limits: { enabled: false } },
        overrides: { urlPreview: { timeoutMs: 1_500, maxRedirects: 5 } },
      });
      alice = await hs.register('alice');
    });
    afterAll(async () => {
      await hs?.close();
      await pages.stop();
    });

    const preview = (url: string, ts?: number, base = V1) => hs.call('GET', `${base}${query(url, ts)}`, { token: alice.access_token });

    it('previews a page: OpenGraph, with its og:image stored as local media', async () => {
      const reply = await preview(pages.url('/page.html'));
      expect(reply.status, JSON.stringify(reply.body)).toBe(200);
      expect(reply.body).toEqual({
        'og:title': 'Matrix & friends',
        'og:description': 'An open network\n\nfor secure communication',
        'og:site_name': 'Example',
        'og:image': expect.stringMatching(new RegExp(`^mxc://${hs.serverName.replace(/\./g, '\\.')}/[A-Za-z]{24}$`)),
        'og:image:type': 'image/png',
        'og:image:width': 1,
        'og:image:height': 1,
        'matrix:image:size': PNG.length,
      });
      expect(pages.hitsOf('/static/logo.png')).toBe(1);
      const mxc = (reply.body['og:image'] as string).slice('mxc://'.length);
      const download = await hs.call('GET', `/_matrix/client/v1/media/download/${mxc}`, { token: alice.access_token });
      expect(download.status).toBe(200);
      expect(Buffer.from(download.bytes).equals(PNG)).toBe(true);
      expect(download.headers.get('content-type')).toBe('image/png');
    });

    it('serves a preview again from the database, for any ts, on both endpoints', async () => {
      const url = pages.url('/page-cached.html');
      const first = await preview(url);
      expect(first.status).toBe(200);
      expect(pages.hitsOf('/page-cached.html')).toBe(1);
      // ts before the fetch: "the server may return a newer version"; after it: the same one.
      for (const ts of [undefined, 1, Date.now() + 60_000]) {
        const again = await preview(url, ts);
        expect(again.status).toBe(200);
        expect(again.body).toEqual(first.body);
      }
      const legacy = await preview(url, undefined, LEGACY);
      expect(legacy.status).toBe(200);
      expect(legacy.body).toEqual(first.body);
      expect(pages.hitsOf('/page-cached.html')).toBe(1);
      const { rows } = await hs.db.query<{ count: number }>('SELECT count(*)::int AS count FROM url_previews WHERE url = $1', [url]);
      expect(rows[0]!.count).toBe(1);
    });

    it('answers concurrent requests for a new URL with one fetch', async () => {
      const url = pages.url('/page-burst.html');
      const replies = await Promise.all([1, 2, 3].map(() => preview(url)));
      for (const reply of replies) expect(reply.status).toBe(200);
      expect(pages.hitsOf('/page-burst.html')).toBe(1);
    });

    it('falls back to <title> and meta description, and the first image', async () => {
      const reply = await preview(pages.url('/titled.html'), undefined, LEGACY);
      expect(reply.status, JSON.stringify(reply.body)).toBe(200);
      // /tiny.png does not exist here: the preview goes without an image (as Synapse).
      expect(reply.body).toEqual({ 'og:title': 'Plain élégant <page>', 'og:description': 'What the page is about' });
      expect(pages.hitsOf('/tiny.png')).toBe(1);
    });

    it('drops the image and its details when the image cannot be fetched', async () => {
      const reply = await preview(pages.url('/broken-image.html'));
      expect(reply.status).toBe(200);
      expect(reply.body).toEqual({ 'og:title': 'No picture' });
    });

    it('decodes the charset the Content-Type names', async () => {
      const reply = await preview(pages.url('/cyrillic.html'));
      expect(reply.status).toBe(200);
      expect(reply.body['og:title']).toBe('дка');
    });

    it('previews an image URL as that image', async () => {
      const reply = await preview(pages.url('/picture.gif'));
      expect(reply.status, JSON.stringify(reply.body)).toBe(200);
      expect(reply.body).toEqual({
        'og:description': 'cat.gif',
        'og:image': expect.stringMatching(/^mxc:\/\//),
        'og:image:type': 'image/gif',
        'og:image:width': 3,
        'og:image:height': 2,
        'matrix:image:size': GIF.length,
      });
    });

    it('follows redirects, a bounded number of them', async () => {
      const reply = await preview(pages.url('/redirect'));
      expect(reply.status, JSON.stringify(reply.body)).toBe(200);
      expect(reply.body['og:title']).toBe('Matrix & friends');
      expect(pages.hitsOf('/page-after-redirect')).toBe(1);

      const loop = await preview(pages.url('/loop'));
      expect(loop.status).toBe(502);
      expect(loop.body.errcode).toBe('M_UNKNOWN');
      expect(loop.body.error).toMatch(/redirect/i);
      expect(pages.hitsOf('/loop')).toBe(6);
    });

    it('refuses what is larger than max_spider_size', async () => {
      for (const path of ['/big.html', '/big-chunked.html']) {
        const reply = await preview(pages.url(path));
        expect(reply.status, path).toBe(502);
        expect(reply.body.errcode).toBe('M_TOO_LARGE');
      }
    });

    it('answers {} for JSON and refuses types it cannot preview, as Synapse', async () => {
      const json = await preview(pages.url('/data.json'));
      expect(json.status).toBe(200);
      expect(json.body).toEqual({});

      const video = await preview(pages.url('/video.mp4'));
      expect(video.status).toBe(502);
      expect(video.body).toEqual({ errcode: 'M_UNKNOWN', error: "Requested file's content type not allowed for this operation: video/mp4" });
    });

    it('answers 502 M_UNKNOWN when the page fails or does not answer in time', async () => {
      const missing = await preview(pages.url('/missing'));
      expect(missing.status).toBe(502);
      expect(missing.body).toEqual({ errcode: 'M_UNKNOWN', error: 'Got error 404' });

      const slow = await preview(pages.url('/slow'));
      expect(slow.status).toBe(502);
      expect(slow.body.errcode).toBe('M_UNKNOWN');

      // Nothing listens on port 9 of 127.0.0.1 (discard); connection refused.
      const refused = await preview('http://127.0.0.1:9/');
      expect(refused.status).toBe(502);
      expect(refused.body.errcode).toBe('M_UNKNOWN');
    });

    it('still refuses private addresses the whitelist does not list', async () => {
      const hitsBefore = pages.total;
      const other = await preview(`http://10.0.0.1:${pages.port}/page.html`);
      expect(other.status).toBe(403);
      expect(other.body.errcode).toBe('M_UNKNOWN');
      const v6 = await preview(`http://[::1]:${pages.port}/page.html`);
      expect(v6.status).toBe(403);
      expect(pages.total).toBe(hitsBefore);
    });

    it('checks its parameters and the access token', async () => {
      const noToken = await hs.call('GET', `${V1}${query(pages.url('/page.html'))}`);
      expect(noToken.status).toBe(401);
      expect(noToken.body.errcode).toBe('M_MISSING_TOKEN');

      const noUrl = await hs.call('GET', V1, { token: alice.access_token });
      expect(noUrl.status).toBe(400);
      expect(noUrl.body.errcode).toBe('M_MISSING_PARAM');

      for (const bad of ['not a url', 'ftp://127.0.0.1/file', 'data:text/html,<title>x</title>']) {
        const reply = await preview(bad);
        expect(reply.status, bad).toBe(400);
        expect(reply.body.errcode).toBe('M_INVALID_PARAM');
      }

      const badTs = await hs.call('GET', `${V1}${query(pages.url('/page.html'))}&ts=yesterday`, { token: alice.access_token });
      expect(badTs.status).toBe(400);
      expect(badTs.body.errcode).toBe('M_INVALID_PARAM');
    });
  });

  describe.skipIf(!setup.available)(`URL preview blacklists (${setup.name})`, () => {
    const pages = new PageServer();
    let hs: ClientApiHarness;
    let token: string;
    const BLOCKED = { errcode: 'M_UNKNOWN', error: 'URL blocked by url pattern blacklist entry' };

    beforeAll(async () => {
      await pages.start();
      hs = await ClientApiHarness.start({
        database: setup.database,
        redis: setup.redis,
        config: {
          url_preview_enabled: true,
          // The whitelist wins over the blacklist, as Synapse: 127.0.0.1 stays reachable.
          url_preview_ip_range_whitelist: ['127.0.0.1/32'],
          url_preview_ip_range_blacklist: ['127.0.0.0/8', '93.184.0.0/16', '2001:db9::/32'],
          url_preview_url_blacklist: [
            { netloc: `127.0.0.1:${pages.port}`, path: '/page-blocked*' },
            { path: '^/secret/' },
            { path: '/page-after-*' },
            { path: '/static/*' },
            { username: '*' },
            { scheme: 'http', port: pages.port, query: 'no=*' },
          ],
          max_spider_size: MAX_SPIDER,
          rate_limits: { enabled: false },
        },
        overrides: { urlPreview: { timeoutMs: 1_500, maxRedirects: 5 } },
      });
      token = (await hs.register('dave')).access_token;
    });
    afterAll(async () => {
      await hs?.close();
      await pages.stop();
    });

    const preview = (url: string) => hs.call('GET', `${V1}${query(url)}`, { token });

    it('refuses a URL matching every component of one entry with 403, without fetching it', async () => {
      const before = pages.total;
      for (const url of [
        pages.url('/page-blocked.html'),
        pages.url('/secret/page.html'),
        `http://user@127.0.0.1:${pages.port}/page.html`,
        `http://user:pw@127.0.0.1:${pages.port}/page.html`,
        pages.url('/page.html?no=thanks'),
      ]) {
        const reply = await preview(url);
        expect(reply.status, url).toBe(403);
        expect(reply.body, url).toEqual(BLOCKED);
      }
      expect(pages.total).toBe(before);
    });

    it('previews what only some components of an entry match', async () => {
      // The netloc differs (localhost:port is not 127.0.0.1:port): the first entry does not apply.
      const byName = await preview(pages.url('/page-blocked.html', 'localhost'));
      expect(byName.status, JSON.stringify(byName.body)).toBe(200);
      expect(pages.hitsOf('/page-blocked.html')).toBe(1);
      // /not-secret/ does not start with /secret/; ?yes=1 is not no=*.
      for (const path of ['/page-not-secret/x.html', '/page.html?yes=1']) {
        const reply = await preview(pages.url(path));
        expect(reply.status, path).toBe(200);
        expect(reply.body['og:title'], path).toBe('Matrix & friends');
        // The og:image under /static/ is blacklisted: the preview goes without it, unfetched.
        expect(reply.body['og:image'], path).toBeUndefined();
      }
      expect(pages.hitsOf('/static/logo.png')).toBe(0);
    });

    it('refuses a redirect to a blacklisted URL', async () => {
      const reply = await preview(pages.url('/redirect'));
      expect(reply.status).toBe(403);
      expect(reply.body).toEqual(BLOCKED);
      expect(pages.hitsOf('/redirect')).toBe(1);
      expect(pages.hitsOf('/page-after-redirect')).toBe(0);
    });

    it('refuses public addresses url_preview_ip_range_blacklist lists', async () => {
      for (const address of ['93.184.216.34', '[::ffff:93.184.216.34]', '[2001:db9::1]']) {
        const reply = await preview(`http://${address}/`);
        expect(reply.status, address).toBe(403);
        expect(reply.body.errcode).toBe('M_UNKNOWN');
        expect(reply.body.error).toMatch(/^IP address blocked: .* url_preview_ip_range_blacklist/);
      }
    });
  });

  describe.skipIf(!setup.available)(`URL preview cache expiry (${setup.name})`, () => {
    const pages = new PageServer();
    let hs: ClientApiHarness;
    let token: string;

    beforeAll(async () => {
      await pages.start();
      hs = await ClientApiHarness.start({
        database: setup.database,
        redis: setup.redis,
        config: { url_preview_enabled: true, url_preview_ip_range_whitelist: ['127.0.0.1/32'], rate_limits: { enabled: false } },
        overrides: { urlPreview: { timeoutMs: 1_500, cacheMs: 1_500, cleanupIntervalMs: 100 } },
      });
      token = (await hs.register('erin')).access_token;
    });
    afterAll(async () => {
      await hs?.close();
      await pages.stop();
    });

    it('serves a preview until it expires, sweeps the expired row, then fetches the page again', async () => {
      const url = pages.url('/page-expiring.html');
      const count = async () => (await hs.db.query<{ count: number }>('SELECT count(*)::int AS count FROM url_previews WHERE url = $1', [url])).rows[0]!.count;
      const preview = () => hs.call('GET', `${V1}${query(url)}`, { token });
      expect((await preview()).status).toBe(200);
      expect((await preview()).status).toBe(200);
      expect(pages.hitsOf('/page-expiring.html')).toBe(1);
      expect(await count()).toBe(1);
      // The periodic cleanup removes it once expired, with no new preview stored meanwhile.
      await expect.poll(count, { timeout: 5_000, interval: 50 }).toBe(0);
      const again = await preview();
      expect(again.status).toBe(200);
      expect(again.body['og:title']).toBe('Matrix & friends');
      expect(pages.hitsOf('/page-expiring.html')).toBe(2);
    });
  });

  describe.skipIf(!setup.available)(`URL previews by default (${setup.name})`, () => {
    const pages = new PageServer();
    let disabled: ClientApiHarness;
    let enabled: ClientApiHarness;
    let tokenDisabled: string;
    let tokenEnabled: string;

    beforeAll(async () => {
      await pages.start();
      disabled = await ClientApiHarness.start({ database: setup.database, redis: setup.redis, config: { rate_limits: { enabled: false } } });
      enabled = await ClientApiHarness.start({ database: setup.database, redis: setup.redis, config: { url_preview_enabled: true, rate_limits: { enabled: false } } });
      tokenDisabled = (await disabled.register('bob')).access_token;
      tokenEnabled = (await enabled.register('carol')).access_token;
    });
    afterAll(async () => {
      await disabled?.close();
      await enabled?.close();
      await pages.stop();
    });

    it('are disabled: 404 M_UNRECOGNIZED as an unknown endpoint, with or without a token', async () => {
      for (const base of [V1, LEGACY, '/_matrix/media/r0/preview_url']) {
        for (const token of [tokenDisabled, undefined]) {
          const reply = await disabled.call('GET', `${base}${query(pages.url('/page.html'))}`, { token });
          expect(reply.status, base).toBe(404);
          expect(reply.body.errcode).toBe('M_UNRECOGNIZED');
        }
      }
      expect(pages.total).toBe(0);
    });

    it('once enabled, refuse loopback and private addresses unless whitelisted: literal 403, by name 502', async () => {
      const literal = await enabled.call('GET', `${V1}${query(pages.url('/page.html'))}`, { token: tokenEnabled });
      expect(literal.status).toBe(403);
      expect(literal.body.errcode).toBe('M_UNKNOWN');
      expect(literal.body.error).toMatch(/^IP address blocked/);

      const byName = await enabled.call('GET', `${LEGACY}${query(pages.url('/page.html', 'localhost'))}`, { token: tokenEnabled });
      expect(byName.status).toBe(502);
      expect(byName.body.errcode).toBe('M_UNKNOWN');
      expect(byName.body.error).toMatch(/^DNS resolution failure during URL preview generation/);

      for (const address of ['169.254.169.254', '192.168.1.1', '[fe80::1]', '[::ffff:127.0.0.1]']) {
        const reply = await enabled.call('GET', `${V1}${query(`http://${address}:${pages.port}/`)}`, { token: tokenEnabled });
        expect(reply.status, address).toBe(403);
      }
      expect(pages.total).toBe(0);
    });
  });
}
