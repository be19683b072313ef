import { Body, Controller, Get, Global, Module, Post, Put } from '@nestjs/common';
import { RouteConfig, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConfig } from '@tessera/config';
import { validateResponse } from '@tessera/testing';
import { CONFIG, createHttpApp, MatrixError, RAW_BODY_ROUTE, WellKnownModule } from './index.js';

/** Counts calls, so that tests can tell a pre-flight never reached endpoint logic. */
const calls = { echo: 0 };

@Controller('test')
class TestController {
  @Post('echo')
  echo(@Body() body: unknown) {
    calls.echo++;
    return { received: body === undefined ? null : body };
  }

  @Post('raw')
  @RouteConfig(RAW_BODY_ROUTE)
  raw(@Body() body: unknown) {
    return { bytes: Buffer.isBuffer(body) ? body.toString('base64') : null };
  }

  @Get('matrix-error')
  matrixError() {
    throw new MatrixError(429, 'M_LIMIT_EXCEEDED', 'Too many requests', { retry_after_ms: 2000 });
  }

  @Get('crash')
  crash() {
    throw new TypeError('cannot read properties of undefined');
  }

  @Put('async-crash')
  async asyncCrash() {
    await Promise.resolve();
    throw new Error('database exploded');
  }
}

const config = buildConfig(
  { well_known: { client: { base_url: 'https://matrix.example.org' }, server: { delegation: 'matrix.example.org:443' } } },
  { env: {}, cwd: process.cwd() },
);

@Global()
@Module({ providers: [{ provide: CONFIG, useValue: config }], exports: [CONFIG] })
class TestConfigModule {}

@Module({ imports: [TestConfigModule, WellKnownModule], controllers: [TestController] })
class TestModule {}

let app: NestFastifyApplication;
let base: string;

beforeAll(async () => {
  app = await createHttpApp(TestModule, { bodyLimit: 4096, rawBodyLimit: 8192, logger: pino({ level: 'silent' }) });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.getHttpServer().address() as { port: number };
  base = `http://127.0.0.1:${address.port}`;
});

afterAll(async () => {
  await app?.close();
});

function expectCors(res: Response) {
  expect(res.headers.get('access-control-allow-origin')).toBe('*');
  expect(res.headers.get('access-control-allow-methods')).toBe('GET, POST, PUT, DELETE, OPTIONS');
  expect(res.headers.get('access-control-allow-headers')).toBe('X-Requested-With, Content-Type, Authorization');
}

async function expectMatrixError(res: Response, status: number, errcode: string) {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  expectCors(res);
  const body = (await res.json()) as Record<string, unknown>;
  expect(body.errcode).toBe(errcode);
  expect(typeof body.error).toBe('string');
  return body;
}

describe('CORS', () => {
  it('answers a pre-flight on any path without running the endpoint', async () => {
    const before = calls.echo;
    for (const path of ['/test/echo', '/_matrix/client/v3/nothing/here', '/']) {
      const res = await fetch(`${base}${path}`, {
        method: 'OPTIONS',
        headers: { Origin: 'https://app.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization' },
      });
      expect(res.status).toBe(204);
      expectCors(res);
    }
    expect(calls.echo).toBe(before);
  });

  it('sends the headers on successful and error responses alike', async () => {
    const ok = await fetch(`${base}/test/echo`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    expect(ok.status).toBe(200); // never Nest's default 201: no Matrix response is 201
    expectCors(ok);
    await expectMatrixError(await fetch(`${base}/nowhere`), 404, 'M_UNRECOGNIZED');
  });
});

describe('Matrix error shapes', () => {
  it('unknown path: 404 M_UNRECOGNIZED', async () => {
    await expectMatrixError(await fetch(`${base}/_matrix/client/v3/unknown_endpoint`), 404, 'M_UNRECOGNIZED');
  });

  it('known path, wrong method: 405 M_UNRECOGNIZED', async () => {
    await expectMatrixError(await fetch(`${base}/test/echo`), 405, 'M_UNRECOGNIZED');
    await expectMatrixError(await fetch(`${base}/test/crash?x=1`, { method: 'DELETE' }), 405, 'M_UNRECOGNIZED');
  });

  it('malformed JSON: 400 M_NOT_JSON, with or without a content type', async () => {
    await expectMatrixError(
      await fetch(`${base}/test/echo`, { method: 'POST', body: '{"a":', headers: { 'content-type': 'application/json' } }),
      400,
      'M_NOT_JSON',
    );
    // fetch adds text/plain for a string body; the spec does not require a content type.
    await expectMatrixError(await fetch(`${base}/test/echo`, { method: 'POST', body: 'not json' }), 400, 'M_NOT_JSON');
  });

  it('parses JSON bodies sent without application/json, and leaves an empty body to the endpoint', async () => {
    const res = await fetch(`${base}/test/echo`, { method: 'POST', body: '{"hello":"world"}' });
    expect(await res.json()).toEqual({ received: { hello: 'world' } });
    const empty = await fetch(`${base}/test/echo`, { method: 'POST', headers: { 'content-type': 'application/json' } });
    expect(await empty.json()).toEqual({ received: null });
  });

  it('body over the limit: 413 M_TOO_LARGE', async () => {
    const body = JSON.stringify({ big: 'x'.repeat(5000) });
    await expectMatrixError(
      await fetch(`${base}/test/echo`, { method: 'POST', body, headers: { 'content-type': 'application/json' } }),
      413,
      'M_TOO_LARGE',
    );
  });

  it('a thrown MatrixError keeps its status, errcode and extra fields', async () => {
    const body = await expectMatrixError(await fetch(`${base}/test/matrix-error`), 429, 'M_LIMIT_EXCEEDED');
    expect(body).toEqual({ errcode: 'M_LIMIT_EXCEEDED', error: 'Too many requests', retry_after_ms: 2000 });
  });

  it('an unexpected failure is 500 M_UNKNOWN without internals, and the server keeps serving', async () => {
    const body = await expectMatrixError(await fetch(`${base}/test/crash`), 500, 'M_UNKNOWN');
    expect(JSON.stringify(body)).not.toContain('undefined');
    await expectMatrixError(await fetch(`${base}/test/async-crash`, { method: 'PUT' }), 500, 'M_UNKNOWN');
    const again = await fetch(`${base}/test/echo`, { method: 'POST', body: '{"still":"up"}' });
    expect(await again.json()).toEqual({ received: { still: 'up' } });
  });
});

describe('raw-body routes (media uploads)', () => {
  it('get the bytes whatever the content type, JSON and none included, up to their own limit', async () => {
    const contentTypes: Array<Record<string, string>> = [{ 'content-type': 'application/json' }, { 'content-type': 'text/plain' }, { 'content-type': 'image/png' }, {}];
    for (const headers of contentTypes) {
      const bytes = Buffer.from('{"not": parsed', 'utf8');
      const res = await fetch(`${base}/test/raw`, { method: 'POST', body: bytes, headers });
      expect(await res.json()).toEqual({ bytes: bytes.toString('base64') });
    }
    // Over the JSON limit (4096) but within the raw limit (8192).
    const big = Buffer.alloc(6000, 7);
    expect(await (await fetch(`${base}/test/raw`, { method: 'POST', body: big, headers: { 'content-type': 'application/octet-stream' } })).json()).toEqual({
      bytes: big.toString('base64'),
    });
    await expectMatrixError(await fetch(`${base}/test/raw`, { method: 'POST', body: Buffer.alloc(9000), headers: { 'content-type': 'application/octet-stream' } }), 413, 'M_TOO_LARGE');
    // Other routes keep the JSON limit and parsing.
    await expectMatrixError(await fetch(`${base}/test/echo`, { method: 'POST', body: JSON.stringify({ big: 'x'.repeat(5000) }) }), 413, 'M_TOO_LARGE');
  });
});

describe('well-known', () => {
  it('serves the configured client and server discovery documents', async () => {
    const client = await fetch(`${base}/.well-known/matrix/client`);
    expect(client.status).toBe(200);
    expectCors(client);
    const clientBody = await client.json();
    expect(clientBody).toEqual({ 'm.homeserver': { base_url: 'https://matrix.example.org' } });
    validateResponse('client-server', 'GET', '/.well-known/matrix/client', 200, clientBody);

    const server = await fetch(`${base}/.well-known/matrix/server`);
    const serverBody = await server.json();
    expect(serverBody).toEqual({ 'm.server': 'matrix.example.org:443' });
    validateResponse('server-server', 'GET', '/.well-known/matrix/server', 200, serverBody);
  });
});
