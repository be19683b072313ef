/**
 * Metrics and logs of real service processes (distributed mode over PostgreSQL and NATS):
 * each serves /metrics on its HTTP listener, tags its JSON log lines with the service and the
 * request id, and echoes X-Request-Id.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatSigningKeyFile, generateSigningKey } from '@tessera/protocol';
import { createTestDatabase, NATS_URL, services, uniqueName, type TestDatabase } from '@tessera/testing';
import { freePort, startApp, stopApp, waitUntilReady, type AppProcess } from '../support/processes.js';

function jsonLines(output: string): Array<Record<string, unknown>> {
  return output
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The value of the first sample of `name` whose labels include all of `labels`. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

describe.skipIf(!services.postgres || !services.nats)('observability of service processes', () => {
  let db: TestDatabase;
  const procs: AppProcess[] = [];
  let federationBase = '';
  let roomServerBase = '';
  let federation: AppProcess;

  beforeAll(async () => {
    db = await createTestDatabase();
    const dir = mkdtempSync(join(tmpdir(), 'tessera-obs-'));
    const keyPath = join(dir, 'signing.key');
    writeFileSync(keyPath, formatSigningKeyFile([generateSigningKey()]), { mode: 0o600 });
    const federationPort = await freePort();
    const healthPort = await freePort();
    federationBase = `http://127.0.0.1:${federationPort}`;
    roomServerBase = `http://127.0.0.1:${healthPort}`;
    const common = {
      SERVER_NAME: `${uniqueName('obs')}.test`,
      DATABASE_URL: db.url,
      NATS_URL,
      BUS_PREFIX: uniqueName('obsbus'),
      SIGNING_KEY_PATH: keyPath,
      DATA_DIR: dir,
      FEDERATION_PORT: String(federationPort),
      CLIENT_PORT: String(await freePort()),
      HEALTH_PORT: String(healthPort),
      LOG_LEVEL: 'info',
    };
    federation = startApp('federation-ingress', common);
    const roomServer = startApp('room-server', common);
    procs.push(federation, roomServer);
    await waitUntilReady(federation, `${federationBase}/health/ready`);
    await waitUntilReady(roomServer, `${roomServerBase}/health/ready`);
  });

  afterAll(async () => {
    for (const p of procs) await stopApp(p);
    await db?.drop();
  });

  it('echoes X-Request-Id and logs the request with it, as JSON tagged with the service', async () => {
    const res = await fetch(`${federationBase}/_matrix/federation/v1/version`, { headers: { 'x-request-id': 'obs-test-1' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('obs-test-1');
    const generated = await fetch(`${federationBase}/_matrix/key/v2/server`);
    expect(generated.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    // The log line is written when the response completes: poll the output briefly.
    let line: Record<string, unknown> | undefined;
    for (let i = 0; i < 100 && !line; i++) {
      line = jsonLines(federation.output()).find((l) => l.request_id === 'obs-test-1' && l.msg === 'request completed');
      if (!line) await new Promise((r) => setTimeout(r, 50));
    }
    expect(line).toMatchObject({ service: 'federation-ingress', route: '/_matrix/federation/v1/version', status: 200, method: 'GET' });
    for (const l of jsonLines(federation.output())) expect(l.service).toBe('federation-ingress');
  });

  it('serves /metrics on the federation listener, with HTTP latency by route', async () => {
    await fetch(`${federationBase}/_matrix/federation/v1/version`);
    const res = await fetch(`${federationBase}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(sample(text, 'tessera_http_request_duration_seconds_count', { route: '/_matrix/federation/v1/version', status_code: '200', service: 'federation-ingress' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'process_resident_memory_bytes', { service: 'federation-ingress' })).toBeGreaterThan(0);
    expect(text).toContain('# TYPE tessera_bus_request_duration_seconds histogram');
  });

  it('serves /metrics on the health listener of a bus-only service', async () => {
    const res = await fetch(`${roomServerBase}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(sample(text, 'process_resident_memory_bytes', { service: 'room-server' })).toBeGreaterThan(0);
    expect(text).toContain('# TYPE tessera_state_resolution_duration_seconds histogram');
  });
});
