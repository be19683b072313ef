/**
 * Media over federation: two homeservers of ours on loopback (test/consistency/harness.ts:
 * every service, real HTTPS with a test CA), a user of hs2 downloading what a user of hs1
 * uploaded through hs2's authenticated client endpoints, hs2 fetching it with the federation
 * media API (multipart/mixed) and caching it. Plus two stand-in remotes speaking HTTPS with the
 * same CA: an older server without the federation media API (hs2 falls back to the legacy
 * /_matrix/media/v3 download) and one that answers with a Location part.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMediaMultipart, createFederationClient, parseMediaMultipart, readFederationEnvironment } from '@tessera/federation-client';
import { services } from '@tessera/testing';
import { checkAgainstSpec, ClientApiHarness } from '../client-api/harness.js';
import { createFederationPki, partition, heal, TestHomeserver, type FederationPki } from '../consistency/harness.js';

const TEST_TIMEOUT = 180_000;
const V1 = '/_matrix/client/v1/media';
const LEGACY = '/_matrix/media/v3';
/** A 1x1 PNG. */
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==', 'base64');
/** Nothing listens on port 1 of loopback. */
const UNREACHABLE = '127.0.0.1:1';

interface RawReply {
  status: number;
  headers: Headers;
  bytes: Buffer;
  json: any;
}

/** A client API request whose answer may be bytes; JSON answers are checked against the spec. */
async function raw(hs: TestHomeserver, method: string, path: string, options: { token?: string; body?: Buffer; contentType?: string } = {}): Promise<RawReply> {
  const headers: Record<string, string> = {};
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.contentType) headers['content-type'] = options.contentType;
  const response = await fetch(`http://127.0.0.1:${hs.clientPort}${path}`, { method, headers, body: options.body });
  const bytes = Buffer.from(await response.arrayBuffer());
  let json: unknown;
  if (response.headers.get('content-type')?.startsWith('application/json') && !path.includes('/download/') && !path.includes('/thumbnail/')) {
    json = JSON.parse(bytes.toString('utf8'));
    checkAgainstSpec(method, path, response.status, json);
  } else if (response.status >= 400) {
    json = JSON.parse(bytes.toString('utf8'));
    checkAgainstSpec(method, path, response.status, json);
  }
  return { status: response.status, headers: response.headers, bytes, json };
}

/** The headers the client API serves media with, to compare hs2's answer with hs1's own. */
function servedHeaders(reply: RawReply): Record<string, string | null> {
  const names = ['content-type', 'content-disposition', 'content-security-policy', 'cross-origin-resource-policy', 'x-content-type-options', 'cache-control'];
  return Object.fromEntries(names.map((n) => [n, reply.headers.get(n)]));
}

/** A stand-in remote homeserver on loopback: HTTPS with the test CA's certificate, counting requests. */
async function standInServer(pki: FederationPki, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ serverName: string; port: number; requests: string[]; close(): Promise<void> }> {
  const requests: string[] = [];
  const server: Server = createServer({ cert: readFileSync(pki.certPath, 'utf8'), key: readFileSync(pki.keyPath, 'utf8') }, (req, res) => {
    requests.push(req.url ?? '');
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    serverName: `127.0.0.1:${port}`,
    port,
    requests,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

describe.skipIf(!services.postgres || !services.nats)('media over federation', () => {
  let pki: FederationPki;
  let hs1: TestHomeserver;
  let hs2: TestHomeserver;
  let alice: string;
  let dan: string;

  beforeAll(async () => {
    pki = createFederationPki();
    [hs1, hs2] = await Promise.all([TestHomeserver.start(pki), TestHomeserver.start(pki)]);
    alice = (await hs1.register('alice')).user_id;
    dan = (await hs2.register('dan')).user_id;
  }, 120_000);

  afterAll(async () => {
    for (const hs of [hs1, hs2]) await hs?.stop({ drop: true });
    pki?.dispose();
  });

  /** Uploads on hs1 as alice; the media's serverName/mediaId. */
  async function uploadOnHs1(bytes: Buffer, contentType: string, filename?: string): Promise<string> {
    const query = filename === undefined ? '' : `?filename=${encodeURIComponent(filename)}`;
    const reply = await raw(hs1, 'POST', `${LEGACY}/upload${query}`, { token: hs1.token(alice), body: bytes, contentType });
    expect(reply.status, reply.bytes.toString()).toBe(200);
    const uri: string = reply.json.content_uri;
    expect(uri.startsWith(`mxc://${hs1.serverName}/`)).toBe(true);
    return uri.slice('mxc://'.length);
  }

  it('serves hs1 media to a user of hs2 with the bytes and the headers hs1 serves it with', async () => {
    const cases: Array<[Buffer, string, string | undefined]> = [
      [PNG, 'image/png', 'café photo.png'],
      [Buffer.from('<html><script>alert(1)</script></html>'), 'text/html', 'page.html'],
      [Buffer.from([0, 1, 2, 3, 13, 10, 45, 45, 13, 10]), 'application/octet-stream', undefined],
    ];
    for (const [bytes, type, name] of cases) {
      const media = await uploadOnHs1(bytes, type, name);
      const local = await raw(hs1, 'GET', `${V1}/download/${media}`, { token: hs1.token(alice) });
      const remote = await raw(hs2, 'GET', `${V1}/download/${media}`, { token: hs2.token(dan) });
      expect(remote.status, remote.bytes.toString()).toBe(200);
      expect(remote.bytes.equals(bytes)).toBe(true);
      expect(servedHeaders(remote)).toEqual(servedHeaders(local));
    }
    // The named file variant, and the exact headers of the first case.
    const png = await uploadOnHs1(PNG, 'image/png', 'café photo.png');
    const first = await raw(hs2, 'GET', `${V1}/download/${png}`, { token: hs2.token(dan) });
    expect(first.headers.get('content-type')).toBe('image/png');
    expect(first.headers.get('content-disposition')).toBe("inline; filename*=utf-8''caf%C3%A9%20photo.png");
    const named = await raw(hs2, 'GET', `${V1}/download/${png}/other.png`, { token: hs2.token(dan) });
    expect(named.status).toBe(200);
    expect(named.bytes.equals(PNG)).toBe(true);
    expect(named.headers.get('content-disposition')).toBe('inline; filename=other.png');
    // Authenticated endpoint: no token, no media.
    expect((await raw(hs2, 'GET', `${V1}/download/${png}`)).status).toBe(401);
  }, TEST_TIMEOUT);

  it('serves thumbnails of hs1 media to hs2, and refuses what cannot be thumbnailed', async () => {
    const media = await uploadOnHs1(PNG, 'image/png', 'dot.png');
    const thumb = await raw(hs2, 'GET', `${V1}/thumbnail/${media}?width=32&height=32&method=scale`, { token: hs2.token(dan) });
    expect(thumb.status, thumb.bytes.toString()).toBe(200);
    expect(thumb.bytes.equals(PNG)).toBe(true);
    expect(thumb.headers.get('content-type')).toBe('image/png');
    expect(thumb.headers.get('content-disposition')).toBe('inline; filename=thumbnail.png');

    const text = await uploadOnHs1(Buffer.from('just text'), 'text/plain', 'notes.txt');
    const refused = await raw(hs2, 'GET', `${V1}/thumbnail/${text}?width=32&height=32`, { token: hs2.token(dan) });
    expect(refused.status).toBe(400);
    expect(refused.json.errcode).toBe('M_UNKNOWN');
    const bad = await raw(hs2, 'GET', `${V1}/thumbnail/${media}?width=32`, { token: hs2.token(dan) });
    expect(bad.status).toBe(400);
  }, TEST_TIMEOUT);

  it('answers 404 for media hs1 does not have, 502 for a server that cannot be reached, 504 for media not uploaded yet', async () => {
    const unknown = await raw(hs2, 'GET', `${V1}/download/${hs1.serverName}/NoSuchMediaHere`, { token: hs2.token(dan) });
    expect(unknown.status).toBe(404);
    expect(unknown.json.errcode).toBe('M_NOT_FOUND');
    const unknownThumb = await raw(hs2, 'GET', `${V1}/thumbnail/${hs1.serverName}/NoSuchMediaHere?width=1&height=1`, { token: hs2.token(dan) });
    expect(unknownThumb.status).toBe(404);
    expect(unknownThumb.json.errcode).toBe('M_NOT_FOUND');
    const down = await raw(hs2, 'GET', `${V1}/download/${UNREACHABLE}/abcdef`, { token: hs2.token(dan) });
    expect(down.status).toBe(502);
    expect(down.json.errcode).toBe('M_UNKNOWN');

    // A media id created on hs1 whose bytes are not there yet: hs1 says so, hs2 passes it on.
    const created = await raw(hs1, 'POST', '/_matrix/media/v1/create', { token: hs1.token(alice) });
    const media = (created.json.content_uri as string).slice('mxc://'.length);
    const notYet = await raw(hs2, 'GET', `${V1}/download/${media}?timeout_ms=0`, { token: hs2.token(dan) });
    expect(notYet.status).toBe(504);
    expect(notYet.json.errcode).toBe('M_NOT_YET_UPLOADED');
    const put = await raw(hs1, 'PUT', `${LEGACY}/upload/${media}`, { token: hs1.token(alice), body: Buffer.from('late bytes'), contentType: 'text/plain' });
    expect(put.status).toBe(200);
    const late = await raw(hs2, 'GET', `${V1}/download/${media}`, { token: hs2.token(dan) });
    expect(late.status).toBe(200);
    expect(late.bytes.toString()).toBe('late bytes');
  }, TEST_TIMEOUT);

  it('answers the federation endpoints with multipart/mixed to signed requests only', async () => {
    const media = await uploadOnHs1(PNG, 'image/png', 'x.png');
    const mediaId = media.split('/')[1]!;
    const client = createFederationClient(hs2.serverName, hs2.signingKey, readFederationEnvironment());
    try {
      const answer = await client.getRaw(hs1.serverName, `/_matrix/federation/v1/media/download/${mediaId}`);
      expect(answer.status).toBe(200);
      expect(answer.headers['content-type']).toMatch(/^multipart\/mixed; boundary=/);
      const parsed = parseMediaMultipart(answer.headers['content-type'], answer.body);
      expect(parsed.metadata).toEqual({});
      expect(parsed.media).toMatchObject({ kind: 'content', contentType: 'image/png', contentDisposition: 'attachment; filename=x.png' });
      expect(parsed.media.kind === 'content' && parsed.media.content.equals(PNG)).toBe(true);

      const thumb = await client.getRaw(hs1.serverName, `/_matrix/federation/v1/media/thumbnail/${mediaId}`, { query: { width: 8, height: 8, method: 'crop' } });
      expect(thumb.status).toBe(200);
      expect(parseMediaMultipart(thumb.headers['content-type'], thumb.body).media).toMatchObject({ kind: 'content', contentType: 'image/png' });

      const missing = await client.getRaw(hs1.serverName, '/_matrix/federation/v1/media/download/NoSuchMediaHere');
      expect(missing.status).toBe(404);
      expect(JSON.parse(missing.body.toString()).errcode).toBe('M_NOT_FOUND');
      const noSize = await client.getRaw(hs1.serverName, `/_matrix/federation/v1/media/thumbnail/${mediaId}`);
      expect(noSize.status).toBe(400);
      // A still thumbnail is never an animated image (spec MUST): the animated original is refused then.
      const animatedId = (await uploadOnHs1(gif(2), 'image/gif')).split('/')[1]!;
      const still = await client.getRaw(hs1.serverName, `/_matrix/federation/v1/media/thumbnail/${animatedId}`, { query: { width: 8, height: 8, animated: 'false' } });
      expect(still.status).toBe(400);
      const moving = await client.getRaw(hs1.serverName, `/_matrix/federation/v1/media/thumbnail/${animatedId}`, { query: { width: 8, height: 8, animated: 'true' } });
      expect(moving.status).toBe(200);
      const unsigned = await client.getRaw(hs1.serverName, `/_matrix/federation/v1/media/download/${mediaId}`, { signed: false });
      expect(unsigned.status).toBe(401);
      expect(JSON.parse(unsigned.body.toString()).errcode).toBe('M_UNAUTHORIZED');
    } finally {
      client.close();
    }
  }, TEST_TIMEOUT);

  it('keeps fetched media: served again while hs1 refuses hs2, and after hs1 is stopped', async () => {
    const media = await uploadOnHs1(PNG, 'image/png', 'kept.png');
    const never = await uploadOnHs1(Buffer.from('never fetched'), 'text/plain');
    const first = await raw(hs2, 'GET', `${V1}/download/${media}`, { token: hs2.token(dan) });
    expect(first.status).toBe(200);
    const thumb = await raw(hs2, 'GET', `${V1}/thumbnail/${media}?width=16&height=16`, { token: hs2.token(dan) });
    expect(thumb.status).toBe(200);

    partition([hs1], [hs2]);
    try {
      // The partition is real: what hs2 has not fetched yet cannot be had.
      const cut = await raw(hs2, 'GET', `${V1}/download/${never}`, { token: hs2.token(dan) });
      expect(cut.status).toBe(502);
      const again = await raw(hs2, 'GET', `${V1}/download/${media}`, { token: hs2.token(dan) });
      expect(again.status).toBe(200);
      expect(again.bytes.equals(PNG)).toBe(true);
      expect(servedHeaders(again)).toEqual(servedHeaders(first));
    } finally {
      heal([hs1, hs2]);
    }

    await hs1.stop();
    const stopped = await raw(hs2, 'GET', `${V1}/download/${media}`, { token: hs2.token(dan) });
    expect(stopped.status).toBe(200);
    expect(stopped.bytes.equals(PNG)).toBe(true);
    const thumbAgain = await raw(hs2, 'GET', `${V1}/thumbnail/${media}?width=16&height=16`, { token: hs2.token(dan) });
    expect(thumbAgain.status).toBe(200);
    expect(thumbAgain.bytes.equals(PNG)).toBe(true);
  }, TEST_TIMEOUT);

  it('falls back to the legacy download on a server without the federation media API (404 M_UNRECOGNIZED)', async () => {
    const old = await standInServer(pki, (req, res) => {
      const url = req.url ?? '';
      if (url.startsWith('/_matrix/federation/v1/media/')) {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' }));
      } else if (url.startsWith(`/_matrix/media/v3/download/${encodeURIComponent(`127.0.0.1:${(req.socket.address() as AddressInfo).port}`)}/oldmedia?`)) {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-disposition': 'attachment; filename="old notes.txt"' }).end('from an old server');
      } else {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errcode: 'M_NOT_FOUND', error: 'nothing here' }));
      }
    });
    try {
      const reply = await raw(hs2, 'GET', `${V1}/download/${old.serverName}/oldmedia`, { token: hs2.token(dan) });
      expect(reply.status, reply.bytes.toString()).toBe(200);
      expect(reply.bytes.toString()).toBe('from an old server');
      expect(reply.headers.get('content-type')).toBe('text/plain; charset=UTF-8');
      expect(reply.headers.get('content-disposition')).toBe("inline; filename*=utf-8''old%20notes.txt");
      expect(old.requests.map((u) => u.split('?')[0])).toEqual([
        '/_matrix/federation/v1/media/download/oldmedia',
        `/_matrix/media/v3/download/${encodeURIComponent(old.serverName)}/oldmedia`,
      ]);
      expect(new URL(old.requests[1]!, 'https://x').searchParams.get('allow_remote')).toBe('false');
      // Cached: no further request.
      expect((await raw(hs2, 'GET', `${V1}/download/${old.serverName}/oldmedia`, { token: hs2.token(dan) })).status).toBe(200);
      expect(old.requests).toHaveLength(2);
      // The old server has no such media either way: 404.
      const missing = await raw(hs2, 'GET', `${V1}/download/${old.serverName}/gone`, { token: hs2.token(dan) });
      expect(missing.status).toBe(404);
      expect(missing.json.errcode).toBe('M_NOT_FOUND');
    } finally {
      await old.close();
    }
  }, TEST_TIMEOUT);

  it('follows a Location part, and refuses answers that are not the spec\'s', async () => {
    const cdn = await standInServer(pki, (req, res) => {
      const url = req.url ?? '';
      const self = `https://127.0.0.1:${(req.socket.address() as AddressInfo).port}`;
      const multipart = (part: Parameters<typeof buildMediaMultipart>[0]) => {
        const built = buildMediaMultipart(part);
        res.writeHead(200, { 'content-type': built.contentType }).end(built.body);
      };
      if (url.startsWith('/_matrix/federation/v1/media/download/located')) multipart({ kind: 'location', location: `${self}/cdn/located.gif` });
      else if (url.startsWith('/_matrix/federation/v1/media/download/private')) multipart({ kind: 'location', location: 'https://10.20.30.40/secret' });
      else if (url.startsWith('/_matrix/federation/v1/media/download/garbled')) res.writeHead(200, { 'content-type': 'multipart/mixed; boundary=x' }).end('not multipart');
      else if (url === '/cdn/located.gif') res.writeHead(200, { 'content-type': 'image/gif', 'content-disposition': 'inline; filename=anim.gif' }).end('GIF89a-bytes');
      else res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errcode: 'M_NOT_FOUND', error: 'nothing here' }));
    });
    try {
      const located = await raw(hs2, 'GET', `${V1}/download/${cdn.serverName}/located`, { token: hs2.token(dan) });
      expect(located.status, located.bytes.toString()).toBe(200);
      expect(located.bytes.toString()).toBe('GIF89a-bytes');
      expect(located.headers.get('content-type')).toBe('image/gif');
      expect(located.headers.get('content-disposition')).toBe('inline; filename=anim.gif');
      expect(cdn.requests.filter((u) => u === '/cdn/located.gif')).toHaveLength(1);

      // A Location at a private address is refused by the same IP policy as federation.
      const blocked = await raw(hs2, 'GET', `${V1}/download/${cdn.serverName}/private`, { token: hs2.token(dan) });
      expect(blocked.status).toBe(502);
      expect(blocked.json.errcode).toBe('M_UNKNOWN');
      const garbled = await raw(hs2, 'GET', `${V1}/download/${cdn.serverName}/garbled`, { token: hs2.token(dan) });
      expect(garbled.status).toBe(502);
      expect(garbled.json.errcode).toBe('M_UNKNOWN');
    } finally {
      await cdn.close();
    }
  }, TEST_TIMEOUT);
});

/** A 1x1 GIF of `frames` frames. */
const gif = (frames: number) =>
  Buffer.from([
    ...Buffer.from('GIF89a'),
    1, 0, 1, 0, 0x80, 0, 0,
    0, 0, 0, 255, 255, 255,
    ...Array.from({ length: frames }, () => [0x21, 0xf9, 0x04, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00]).flat(),
    0x3b,
  ]);

/**
 * What our client API does with the answers of a remote it cannot trust: one client-api
 * (PGlite, max_upload_size 4096) and a stand-in remote answering each media id its own way.
 */
describe('remote media: limits and odd answers', () => {
  const MAX = 4096;
  let pki: FederationPki;
  let hs: ClientApiHarness;
  let token: string;
  let remote: Awaited<ReturnType<typeof standInServer>>;

  beforeAll(async () => {
    pki = createFederationPki();
    remote = await standInServer(pki, (req, res) => {
      const url = new URL(req.url ?? '', 'https://x');
      const id = url.pathname.split('/').pop();
      const multipart = (contentType: string, content: Buffer) => {
        const built = buildMediaMultipart({ kind: 'content', contentType, contentDisposition: null, content });
        res.writeHead(200, { 'content-type': built.contentType }).end(built.body);
      };
      const error = (status: number, errcode: string) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ errcode, error: errcode }));
      if (!url.pathname.startsWith('/_matrix/federation/v1/media/')) error(404, 'M_NOT_FOUND');
      else if (id === 'exact') multipart('application/octet-stream', Buffer.alloc(MAX, 7));
      else if (id === 'big') multipart('application/octet-stream', Buffer.alloc(MAX + 1, 7));
      else if (id === 'huge') multipart('application/octet-stream', Buffer.alloc(512 * 1024, 7));
      else if (id === 'anim') multipart('image/gif', gif(2));
      else if (id === 'notimage') multipart('text/html', Buffer.from('<p>not an image</p>'));
      else if (id === 'cannot') error(400, 'M_UNKNOWN');
      else if (id === 'notyet') error(504, 'M_NOT_YET_UPLOADED');
      else if (id === 'busy') error(429, 'M_LIMIT_EXCEEDED');
      else error(404, 'M_NOT_FOUND');
    });
    hs = await ClientApiHarness.start({ database: 'pglite', redis: false, config: { max_upload_size: MAX, rate_limits: { enabled: false } } });
    token = (await hs.register('carol')).access_token;
  });

  afterAll(async () => {
    await hs?.close();
    await remote?.close();
    pki?.dispose();
  });

  const get = (path: string, auth = true) => hs.call('GET', path, auth ? { token } : {});

  it('takes media up to max_upload_size, and answers 502 M_TOO_LARGE beyond it', async () => {
    const exact = await get(`${V1}/download/${remote.serverName}/exact`);
    expect(exact.status).toBe(200);
    expect(exact.bytes.byteLength).toBe(MAX);
    for (const id of ['big', 'huge']) {
      expect(await get(`${V1}/download/${remote.serverName}/${id}`)).toMatchObject({ status: 502, body: { errcode: 'M_TOO_LARGE' } });
    }
  });

  it('passes on what the remote says: not found, not yet uploaded, cannot thumbnail; 502 otherwise', async () => {
    expect(await get(`${V1}/download/${remote.serverName}/nothing`)).toMatchObject({ status: 404, body: { errcode: 'M_NOT_FOUND' } });
    expect(await get(`${V1}/download/${remote.serverName}/notyet`)).toMatchObject({ status: 504, body: { errcode: 'M_NOT_YET_UPLOADED' } });
    expect(await get(`${V1}/thumbnail/${remote.serverName}/cannot?width=8&height=8`)).toMatchObject({ status: 400, body: { errcode: 'M_UNKNOWN' } });
    expect(await get(`${V1}/download/${remote.serverName}/busy`)).toMatchObject({ status: 502, body: { errcode: 'M_UNKNOWN' } });
    // A "thumbnail" that is no image is not passed on.
    expect(await get(`${V1}/thumbnail/${remote.serverName}/notimage?width=8&height=8`)).toMatchObject({ status: 502, body: { errcode: 'M_UNKNOWN' } });
  });

  it('never answers animated=false with an animated thumbnail, whatever the remote sent', async () => {
    expect(await get(`${V1}/thumbnail/${remote.serverName}/anim?width=8&height=8&animated=false`)).toMatchObject({ status: 400, body: { errcode: 'M_UNKNOWN' } });
    const animated = await get(`${V1}/thumbnail/${remote.serverName}/anim?width=8&height=8&animated=true`);
    expect(animated.status).toBe(200);
    expect(animated.headers.get('content-type')).toBe('image/gif');
    expect(Buffer.from(animated.bytes).equals(gif(2))).toBe(true);
  });

  it('keeps remote media off the frozen unauthenticated endpoints, and allow_remote=false asks nobody', async () => {
    const before = remote.requests.length;
    expect(await get(`${LEGACY}/download/${remote.serverName}/exact`, false)).toMatchObject({ status: 404, body: { errcode: 'M_NOT_FOUND' } });
    expect(await get(`${LEGACY}/download/${remote.serverName}/anim`, false)).toMatchObject({ status: 404, body: { errcode: 'M_NOT_FOUND' } });
    expect(await get(`${LEGACY}/download/${remote.serverName}/anim?allow_remote=false`, false)).toMatchObject({ status: 404, body: { errcode: 'M_NOT_FOUND' } });
    expect(await get(`${LEGACY}/download/${remote.serverName}/anim?allow_remote=maybe`, false)).toMatchObject({ status: 400, body: { errcode: 'M_INVALID_PARAM' } });
    expect(remote.requests.length).toBe(before);
  });
});
