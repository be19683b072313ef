import { Writable } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { createInProcessBus } from '@tessera/bus';
import { instrumentBus } from './bus.js';
import { installHttpObservability } from './http.js';
import { createServiceLogger } from './logger.js';
import { createMetrics } from './metrics.js';
import { currentRequestId } from './request-context.js';

// A real Fastify server on a real port; a route that calls over an instrumented bus whose
// handler logs, so the test sees the request id travel edge -> bus -> handler -> log line.
async function start() {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line));
      cb();
    },
  });
  const logger = createServiceLogger({ service: 'client-api', level: 'info', destination });
  const metrics = createMetrics({ service: 'client-api', processMetrics: false });
  const bus = instrumentBus(createInProcessBus(), { metrics });
  await bus.handle<{ room: string }, { requestId?: string }>('rooms.lookup', async ({ room }) => {
    logger.info({ room }, 'looked up');
    return { requestId: currentRequestId() };
  });
  const app = Fastify();
  installHttpObservability(app, { metrics, logger });
  app.get('/rooms/:roomId', async (request) => {
    const { roomId } = request.params as { roomId: string };
    return bus.request('rooms.lookup', { room: roomId });
  });
  app.post('/echo', async (request) => ({ body: request.body, requestId: currentRequestId() }));
  app.get('/health/live', async () => ({ status: 'ok' }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  return { app, base, lines, metrics, bus };
}

describe('installHttpObservability', () => {
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
  });

  it('takes X-Request-Id from the client, echoes it, and carries it over the bus into log lines', async () => {
    const s = await start();
    app = s.app;
    const res = await fetch(`${s.base}/rooms/!abc:example.org`, { headers: { 'x-request-id': 'client-chosen-1' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('client-chosen-1');
    expect(await res.json()).toEqual({ requestId: 'client-chosen-1' });
    const handlerLine = s.lines.find((l) => l.msg === 'looked up');
    expect(handlerLine).toMatchObject({ service: 'client-api', request_id: 'client-chosen-1', room: '!abc:example.org' });
    const completed = s.lines.find((l) => l.msg === 'request completed');
    expect(completed).toMatchObject({ request_id: 'client-chosen-1', method: 'GET', route: '/rooms/:roomId', status: 200 });
    await s.bus.close();
  });

  it('generates an id when there is none or it is unacceptable, also for requests with a body', async () => {
    const s = await start();
    app = s.app;
    const plain = await fetch(`${s.base}/echo`, { method: 'POST', body: JSON.stringify({ a: 1 }), headers: { 'content-type': 'application/json' } });
    const generated = plain.headers.get('x-request-id');
    expect(generated).toMatch(/^[0-9a-f-]{36}$/);
    expect(await plain.json()).toEqual({ body: { a: 1 }, requestId: generated });
    const bad = await fetch(`${s.base}/echo`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json', 'x-request-id': 'a b' } });
    const replaced = bad.headers.get('x-request-id');
    expect(replaced).not.toBe('a b');
    expect(((await bad.json()) as { requestId: string }).requestId).toBe(replaced);
    await s.bus.close();
  });

  it('serves /metrics with latency by route pattern, never by raw path', async () => {
    const s = await start();
    app = s.app;
    await fetch(`${s.base}/rooms/!one:x`);
    await fetch(`${s.base}/rooms/!two:x`);
    await fetch(`${s.base}/no/such/path`);
    await fetch(`${s.base}/health/live`);
    const res = await fetch(`${s.base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    const count = (labels: string) => {
      const line = text.split('\n').find((l) => l.startsWith('tessera_http_request_duration_seconds_count{') && labels.split(',').every((p) => l.includes(p)));
      return line ? Number(line.split(' ').pop()) : undefined;
    };
    expect(count('method="GET",route="/rooms/:roomId",status_code="200"')).toBe(2);
    expect(count('route="unmatched",status_code="404"')).toBe(1);
    expect(text).not.toContain('!one:x');
    expect(text).toMatch(/tessera_bus_request_duration_seconds_count\{[^}]*subject="rooms.lookup"[^}]*\} 2/);
    // Probe completions are logged at trace level only, so they do not flood the logs.
    expect(s.lines.filter((l) => l.route === '/health/live')).toEqual([]);
    await s.bus.close();
  });
});
