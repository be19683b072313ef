import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '@tessera/testing';
import { ClientApiHarness, type Reply } from './harness.js';

const setups = [
  { name: 'PostgreSQL + Redis', database: 'postgres' as const, redis: true, available: services.postgres && services.redis },
  { name: 'PGlite + in-memory store', database: 'pglite' as const, redis: false, available: true },
];

/** A small upload limit, so that "too large" is cheap to send. */
const MAX_UPLOAD = 4096;
const DAY_MS = 24 * 60 * 60 * 1000;

/** A 1x1 PNG. */
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==', 'base64');
/** A 1x1 GIF of `frames` frames. */
const gif = (frames: number) =>
  Buffer.from([
    ...Buffer.from('GIF89a'),
    1, 0, 1, 0, 0x80, 0, 0,
    0, 0, 0, 255, 255, 255,
    ...Array.from({ length: frames }, () => [0x21, 0xf9, 0x04, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00]).flat(),
    0x3b,
  ]);

const V1 = '/_matrix/client/v1/media';
const LEGACY = '/_matrix/media/v3';

/** serverName/mediaId of an mxc:// URI. */
function mxcPath(uri: string): string {
  const match = /^mxc:\/\/([^/]+)\/([A-Za-z0-9_-]+)$/.exec(uri);
  expect(match, uri).not.toBeNull();
  return `${match![1]}/${match![2]}`;
}

function expectServedSafely(reply: Reply) {
  expect(reply.headers.get('content-security-policy')).toMatch(/^sandbox; default-src 'none'; script-src 'none';/);
  expect(reply.headers.get('cross-origin-resource-policy')).toBe('cross-origin');
  expect(reply.headers.get('x-content-type-options')).toBe('nosniff');
}

for (const setup of setups) {
  describe.skipIf(!setup.available)(`content repository (${setup.name})`, () => {
    let hs: ClientApiHarness;
    let alice: { user_id: string; access_token: string };
    let bob: { user_id: string; access_token: string };

    beforeAll(async () => {
      hs = await ClientApiHarness.start({
        database: setup.database,
        redis: setup.redis,
        config: { max_upload_size: MAX_UPLOAD, rate_limits: { enabled: false } },
      });
      alice = await hs.register('alice');
      bob = await hs.register('bob');
    });
    afterAll(async () => {
      await hs?.close();
    });

    const upload = async (content: Uint8Array, contentType: string | undefined, filename?: string, token = alice.access_token) => {
      const query = filename === undefined ? '' : `?filename=${encodeURIComponent(filename)}`;
      const reply = await hs.call('POST', `${LEGACY}/upload${query}`, { token, rawBody: content, headers: contentType ? { 'content-type': contentType } : {} });
      expect(reply.status, JSON.stringify(reply.body)).toBe(200);
      return mxcPath(reply.body.content_uri);
    };

    it('advertises the upload limit, to authenticated users only', async () => {
      for (const path of [`${V1}/config`, `${LEGACY}/config`]) {
        expect(await hs.call('GET', path, { token: alice.access_token })).toMatchObject({ status: 200, body: { 'm.upload.size': MAX_UPLOAD } });
        expect(await hs.call('GET', path)).toMatchObject({ status: 401, body: { errcode: 'M_MISSING_TOKEN' } });
      }
    });

    it('round-trips bytes with their type and file name, and the security headers', async () => {
      const bytes = randomBytes(3000);
      const media = await upload(bytes, 'image/png', 'photo.png');
      expect(media.startsWith(`${hs.serverName}/`)).toBe(true);

      const download = await hs.call('GET', `${V1}/download/${media}`, { token: bob.access_token });
      expect(download.status).toBe(200);
      expect(Buffer.from(download.bytes).equals(bytes)).toBe(true);
      expect(download.headers.get('content-type')).toBe('image/png');
      expect(download.headers.get('content-disposition')).toBe('inline; filename=photo.png');
      expectServedSafely(download);

      // The file name in the path replaces the uploaded one (spec: MUST contain it), RFC 6266 encoded.
      const renamed = await hs.call('GET', `${V1}/download/${media}/${encodeURIComponent('chat photo é.png')}`, { token: bob.access_token });
      expect(Buffer.from(renamed.bytes).equals(bytes)).toBe(true);
      expect(renamed.headers.get('content-disposition')).toBe("inline; filename*=utf-8''chat%20photo%20%C3%A9.png");

      // The access token may come in the query string (spec: accessTokenQuery).
      const byQuery = await hs.call('GET', `${V1}/download/${media}?access_token=${alice.access_token}`);
      expect(Buffer.from(byQuery.bytes).equals(bytes)).toBe(true);
    });

    it('stores any body as bytes: JSON-looking text, no content type, an empty file; risky types are attachments', async () => {
      const text = Buffer.from('{"not": json');
      const textMedia = await upload(text, 'text/plain');
      const textDownload = await hs.call('GET', `${V1}/download/${textMedia}`, { token: alice.access_token });
      expect(Buffer.from(textDownload.bytes).equals(text)).toBe(true);
      expect(textDownload.headers.get('content-type')).toBe('text/plain; charset=UTF-8');
      expect(textDownload.headers.get('content-disposition')).toBe('inline');

      // JSON media is not parsed on upload (a plain fetch: the harness would read a JSON download as an API response).
      const json = Buffer.from('{"a": [1, 2, 3]}\n');
      const jsonMedia = await upload(json, 'application/json', 'data.json');
      const jsonDownload = await fetch(`${hs.base}${V1}/download/${jsonMedia}`, { headers: { authorization: `Bearer ${alice.access_token}` } });
      expect(Buffer.from(await jsonDownload.arrayBuffer()).equals(json)).toBe(true);
      expect(jsonDownload.headers.get('content-disposition')).toBe('inline; filename=data.json');

      const untyped = randomBytes(100);
      const untypedMedia = await upload(untyped, undefined, 'résumé.bin');
      const untypedDownload = await hs.call('GET', `${V1}/download/${untypedMedia}`, { token: alice.access_token });
      expect(Buffer.from(untypedDownload.bytes).equals(untyped)).toBe(true);
      expect(untypedDownload.headers.get('content-type')).toBe('application/octet-stream');
      expect(untypedDownload.headers.get('content-disposition')).toBe("attachment; filename*=utf-8''r%C3%A9sum%C3%A9.bin");

      const html = await upload(Buffer.from('<script>alert(1)</script>'), 'text/html', 'page.html');
      const htmlDownload = await hs.call('GET', `${V1}/download/${html}`, { token: alice.access_token });
      expect(htmlDownload.headers.get('content-type')).toBe('text/html; charset=UTF-8');
      expect(htmlDownload.headers.get('content-disposition')).toBe('attachment; filename=page.html');
      expectServedSafely(htmlDownload);

      const empty = await upload(new Uint8Array(0), 'text/plain');
      const emptyDownload = await hs.call('GET', `${V1}/download/${empty}`, { token: alice.access_token });
      expect(emptyDownload.status).toBe(200);
      expect(emptyDownload.bytes.byteLength).toBe(0);
    });

    it('requires authentication on uploads and on the v1 downloads and thumbnails', async () => {
      const media = await upload(PNG, 'image/png');
      for (const path of [`${V1}/download/${media}`, `${V1}/download/${media}/x.png`, `${V1}/thumbnail/${media}?width=32&height=32`]) {
        expect(await hs.call('GET', path)).toMatchObject({ status: 401, body: { errcode: 'M_MISSING_TOKEN' } });
        expect(await hs.call('GET', path, { token: 'nope' })).toMatchObject({ status: 401, body: { errcode: 'M_UNKNOWN_TOKEN' } });
      }
      const anonymous = await hs.call('POST', `${LEGACY}/upload`, { rawBody: PNG, headers: { 'content-type': 'image/png' } });
      expect(anonymous).toMatchObject({ status: 401, body: { errcode: 'M_MISSING_TOKEN' } });
      expect(await hs.call('POST', '/_matrix/media/v1/create')).toMatchObject({ status: 401, body: { errcode: 'M_MISSING_TOKEN' } });
    });

    it('freezes new media out of the unauthenticated endpoints, and serves media from before the freeze there', async () => {
      const bytes = randomBytes(500);
      const media = await upload(bytes, 'image/png', 'old.png');
      for (const path of [`${LEGACY}/download/${media}`, `${LEGACY}/download/${media}/name.png`, `${LEGACY}/thumbnail/${media}?width=32&height=32`]) {
        expect(await hs.call('GET', path)).toMatchObject({ status: 404, body: { errcode: 'M_NOT_FOUND' } });
      }
      // Media uploaded while enable_authenticated_media was off (as Synapse's authenticated = false).
      await hs.db.query('UPDATE local_media SET authenticated = false WHERE media_id = $1', [media.split('/')[1]]);
      const legacy = await hs.call('GET', `${LEGACY}/download/${media}`);
      expect(legacy.status).toBe(200);
      expect(Buffer.from(legacy.bytes).equals(bytes)).toBe(true);
      expect(legacy.headers.get('content-disposition')).toBe('inline; filename=old.png');
      expectServedSafely(legacy);
      const r0 = await hs.call('GET', `/_matrix/media/r0/download/${media}/renamed.png`);
      expect(r0.headers.get('content-disposition')).toBe('inline; filename=renamed.png');
      expect((await hs.call('GET', `${LEGACY}/thumbnail/${media}?width=32&height=32`)).status).toBe(200);
    });

    it('refuses uploads over max_upload_size with 413 M_TOO_LARGE, and stores nothing', async () => {
      const count = async () => (await hs.db.query<{ n: number }>('SELECT count(*) AS n FROM local_media')).rows[0]!.n;
      const before = await count();
      const tooLarge = await hs.call('POST', `${LEGACY}/upload`, { token: alice.access_token, rawBody: randomBytes(MAX_UPLOAD + 1), headers: { 'content-type': 'image/png' } });
      expect(tooLarge).toMatchObject({ status: 413, body: { errcode: 'M_TOO_LARGE' } });
      expect(await count()).toBe(before);
      await upload(randomBytes(MAX_UPLOAD), 'image/png');

      const created = await hs.call('POST', '/_matrix/media/v1/create', { token: alice.access_token });
      const tooLargePut = await hs.call('PUT', `${LEGACY}/upload/${mxcPath(created.body.content_uri)}`, {
        token: alice.access_token,
        rawBody: randomBytes(MAX_UPLOAD + 1),
        headers: { 'content-type': 'image/png' },
      });
      expect(tooLargePut).toMatchObject({ status: 413, body: { errcode: 'M_TOO_LARGE' } });
      expect((await hs.call('GET', `${V1}/download/${mxcPath(created.body.content_uri)}?timeout_ms=0`, { token: alice.access_token })).status).toBe(504);
    });

    it('answers 404 for unknown and malformed media, 502 for unreachable remote media, 400 for an invalid server name', async () => {
      const auth = { token: alice.access_token };
      expect(await hs.call('GET', `${V1}/download/${hs.serverName}/NoSuchMediaHere`, auth)).toMatchObject({ status: 404, body: { errcode: 'M_NOT_FOUND' } });
      expect(await hs.call('GET', `${V1}/download/${hs.serverName}/bad.id`, auth)).toMatchObject({ status: 404, body: { errcode: 'M_NOT_FOUND' } });
      expect(await hs.call('GET', `${V1}/thumbnail/${hs.serverName}/NoSuchMediaHere?width=1&height=1`, auth)).toMatchObject({ status: 404, body: { errcode: 'M_NOT_FOUND' } });
      expect(await hs.call('GET', `${LEGACY}/download/${hs.serverName}/NoSuchMediaHere`)).toMatchObject({ status: 404, body: { errcode: 'M_NOT_FOUND' } });
      // Remote media of a server that cannot be reached (nothing listens on port 1): 502; the
      // deprecated endpoints with allow_remote=false do not even ask (remote media over
      // federation itself: test/federation-client-api/remote-media.test.ts).
      expect(await hs.call('GET', `${V1}/download/127.0.0.1:1/abcdef`, auth)).toMatchObject({ status: 502, body: { errcode: 'M_UNKNOWN' } });
      expect(await hs.call('GET', `${LEGACY}/download/127.0.0.1:1/abcdef?allow_remote=false`)).toMatchObject({ status: 404, body: { errcode: 'M_NOT_FOUND' } });
      expect(await hs.call('GET', `${V1}/download/${encodeURIComponent('bad server!')}/abcdef`, auth)).toMatchObject({ status: 400, body: { errcode: 'M_INVALID_PARAM' } });
      expect(await hs.call('GET', `${V1}/download/${hs.serverName}/abc?timeout_ms=soon`, auth)).toMatchObject({ status: 400, body: { errcode: 'M_INVALID_PARAM' } });
    });

    it('uploads asynchronously: create, wait for the bytes, PUT once, by the creator only', async () => {
      const created = await hs.call('POST', '/_matrix/media/v1/create', { token: alice.access_token });
      expect(created.status).toBe(200);
      const now = Date.now();
      expect(created.body.unused_expires_at).toBeGreaterThan(now + DAY_MS - 60_000);
      expect(created.body.unused_expires_at).toBeLessThanOrEqual(now + DAY_MS);
      const media = mxcPath(created.body.content_uri);

      const notYet = await hs.call('GET', `${V1}/download/${media}?timeout_ms=0`, { token: bob.access_token });
      expect(notYet).toMatchObject({ status: 504, body: { errcode: 'M_NOT_YET_UPLOADED' } });
      const notYetThumbnail = await hs.call('GET', `${V1}/thumbnail/${media}?width=32&height=32&timeout_ms=0`, { token: bob.access_token });
      expect(notYetThumbnail).toMatchObject({ status: 504, body: { errcode: 'M_NOT_YET_UPLOADED' } });
      // Complement TestAsyncUpload "Not yet uploaded": the deprecated endpoint answers 504 too (as
      // Synapse: the freeze of authenticated media is judged only once the content is there).
      const notYetLegacy = await hs.call('GET', `${LEGACY}/download/${media}?timeout_ms=0`, { token: bob.access_token });
      expect(notYetLegacy).toMatchObject({ status: 504, body: { errcode: 'M_NOT_YET_UPLOADED' } });

      // A download started before the upload answers once the bytes arrive.
      const waiting = hs.call('GET', `${V1}/download/${media}?timeout_ms=10000`, { token: bob.access_token });
      await new Promise((resolve) => setTimeout(resolve, 300));

      const intruder = await hs.call('PUT', `${LEGACY}/upload/${media}`, { token: bob.access_token, rawBody: PNG, headers: { 'content-type': 'image/png' } });
      expect(intruder).toMatchObject({ status: 403, body: { errcode: 'M_FORBIDDEN' } });
      const put = await hs.call('PUT', `${LEGACY}/upload/${media}?filename=late.png`, { token: alice.access_token, rawBody: PNG, headers: { 'content-type': 'image/png' } });
      expect(put).toMatchObject({ status: 200, body: {} });

      const waited = await waiting;
      expect(waited.status).toBe(200);
      expect(Buffer.from(waited.bytes).equals(PNG)).toBe(true);
      expect(waited.headers.get('content-disposition')).toBe('inline; filename=late.png');

      const again = await hs.call('PUT', `${LEGACY}/upload/${media}`, { token: alice.access_token, rawBody: randomBytes(10), headers: { 'content-type': 'image/png' } });
      expect(again).toMatchObject({ status: 409, body: { errcode: 'M_CANNOT_OVERWRITE_MEDIA' } });
      const direct = await upload(PNG, 'image/png');
      const overwriteDirect = await hs.call('PUT', `${LEGACY}/upload/${direct}`, { token: alice.access_token, rawBody: randomBytes(10), headers: { 'content-type': 'image/png' } });
      expect(overwriteDirect).toMatchObject({ status: 409, body: { errcode: 'M_CANNOT_OVERWRITE_MEDIA' } });
      expect(Buffer.from((await hs.call('GET', `${V1}/download/${media}`, { token: alice.access_token })).bytes).equals(PNG)).toBe(true);

      const unknown = await hs.call('PUT', `${LEGACY}/upload/${hs.serverName}/NeverCreated`, { token: alice.access_token, rawBody: PNG, headers: { 'content-type': 'image/png' } });
      expect(unknown).toMatchObject({ status: 404, body: { errcode: 'M_NOT_FOUND' } });
      const elsewhere = await hs.call('PUT', `${LEGACY}/upload/other.example.org/${media.split('/')[1]}`, { token: alice.access_token, rawBody: PNG, headers: { 'content-type': 'image/png' } });
      expect(elsewhere).toMatchObject({ status: 404, body: { errcode: 'M_NOT_FOUND' } });
    });

    it('expires unused media ids and limits how many a user holds', async () => {
      const created = await hs.call('POST', '/_matrix/media/v1/create', { token: bob.access_token });
      const media = mxcPath(created.body.content_uri);
      // A day and a bit later.
      await hs.db.query('UPDATE local_media SET created_ts = created_ts - $2 WHERE media_id = $1', [media.split('/')[1], DAY_MS + 1000]);
      const late = await hs.call('PUT', `${LEGACY}/upload/${media}`, { token: bob.access_token, rawBody: PNG, headers: { 'content-type': 'image/png' } });
      expect(late).toMatchObject({ status: 404, body: { errcode: 'M_NOT_FOUND' } });
      expect(await hs.call('GET', `${V1}/download/${media}?timeout_ms=0`, { token: bob.access_token })).toMatchObject({ status: 404, body: { errcode: 'M_NOT_FOUND' } });

      // Bob holds no unexpired reservation now: 5 are allowed (Synapse's max_pending_media_uploads), the 6th waits.
      for (let i = 0; i < 5; i++) expect((await hs.call('POST', '/_matrix/media/v1/create', { token: bob.access_token })).status).toBe(200);
      const sixth = await hs.call('POST', '/_matrix/media/v1/create', { token: bob.access_token });
      expect(sixth).toMatchObject({ status: 429, body: { errcode: 'M_LIMIT_EXCEEDED' } });
      expect(sixth.body.retry_after_ms).toBeGreaterThan(DAY_MS - 60_000);
      // The expired reservation is gone from the table.
      expect((await hs.db.query('SELECT 1 FROM local_media WHERE media_id = $1', [media.split('/')[1]])).rows).toHaveLength(0);
    });

    it('answers thumbnails of images with the original image, and refuses what it cannot thumbnail', async () => {
      const auth = { token: alice.access_token };
      const png = await upload(PNG, 'image/png', 'avatar.png');
      for (const query of ['width=32&height=32&method=crop', 'width=800&height=600', 'width=96&height=96&method=scale&animated=false']) {
        const thumbnail = await hs.call('GET', `${V1}/thumbnail/${png}?${query}`, auth);
        expect(thumbnail.status).toBe(200);
        expect(Buffer.from(thumbnail.bytes).equals(PNG)).toBe(true);
        expect(thumbnail.headers.get('content-type')).toBe('image/png');
        expect(thumbnail.headers.get('content-disposition')).toBe('inline; filename=thumbnail.png');
        expectServedSafely(thumbnail);
      }

      const animated = await upload(gif(2), 'image/gif');
      expect((await hs.call('GET', `${V1}/thumbnail/${animated}?width=32&height=32&animated=true`, auth)).headers.get('content-type')).toBe('image/gif');
      expect(await hs.call('GET', `${V1}/thumbnail/${animated}?width=32&height=32&animated=false`, auth)).toMatchObject({ status: 400, body: { errcode: 'M_UNKNOWN' } });
      const still = await upload(gif(1), 'image/gif');
      expect((await hs.call('GET', `${V1}/thumbnail/${still}?width=32&height=32&animated=false`, auth)).status).toBe(200);

      const text = await upload(Buffer.from('hello'), 'text/plain');
      expect(await hs.call('GET', `${V1}/thumbnail/${text}?width=32&height=32`, auth)).toMatchObject({ status: 400, body: { errcode: 'M_UNKNOWN' } });
      const svg = await upload(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>'), 'image/svg+xml');
      expect(await hs.call('GET', `${V1}/thumbnail/${svg}?width=32&height=32`, auth)).toMatchObject({ status: 400, body: { errcode: 'M_UNKNOWN' } });

      expect(await hs.call('GET', `${V1}/thumbnail/${png}?height=32`, auth)).toMatchObject({ status: 400, body: { errcode: 'M_MISSING_PARAM' } });
      expect(await hs.call('GET', `${V1}/thumbnail/${png}?width=32&height=-1`, auth)).toMatchObject({ status: 400, body: { errcode: 'M_INVALID_PARAM' } });
      expect(await hs.call('GET', `${V1}/thumbnail/${png}?width=3.5&height=32`, auth)).toMatchObject({ status: 400, body: { errcode: 'M_INVALID_PARAM' } });
      expect(await hs.call('GET', `${V1}/thumbnail/${png}?width=32&height=32&method=zoom`, auth)).toMatchObject({ status: 400, body: { errcode: 'M_INVALID_PARAM' } });
    });
  });
}
