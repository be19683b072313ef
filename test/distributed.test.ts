/**
 * The distributed mode: every service as its own OS process over real PostgreSQL and NATS
 * (own database, own subject prefix, free ports), as docker compose or Kubernetes runs them.
 * A remote server's view: fetch the keys through the federation edge and verify them.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatSigningKeyFile, generateSigningKey } from '@tessera/protocol';
import { createTestDatabase, NATS_URL, REDIS_URL, services, uniqueName, validateResponse, type TestDatabase } from '@tessera/testing';
import { freePort, startApp, stopApp, waitUntilReady, type AppProcess } from './support/processes.js';
import { fetchAndVerifyServerKeys } from './support/server-keys.js';

const SERVICES = ['persistence', 'room-server', 'fanout-sender', 'client-api', 'federation-ingress'] as const;

describe.skipIf(!services.postgres || !services.nats)('distributed mode: one process per service', () => {
  const serverName = `${uniqueName('dist')}.test`;
  const key = generateSigningKey();
  let db: TestDatabase;
  const procs = new Map<string, AppProcess>();
  const healthUrls = new Map<string, string>();
  let clientBase = '';
  let federationBase = '';

  beforeAll(async () => {
    db = await createTestDatabase();
    const dir = mkdtempSync(join(tmpdir(), 'tessera-dist-'));
    // Deployments mount one key into every process (compose, Kubernetes Secret).
    const keyPath = join(dir, 'signing.key');
    writeFileSync(keyPath, formatSigningKeyFile([key]), { mode: 0o600 });
    const clientPort = await freePort();
    const federationPort = await freePort();
    clientBase = `http://127.0.0.1:${clientPort}`;
    federationBase = `http://127.0.0.1:${federationPort}`;
    const common = {
      SERVER_NAME: serverName,
      DATABASE_URL: db.url,
      NATS_URL,
      REDIS_URL,
      BUS_PREFIX: uniqueName('bus'),
      SIGNING_KEY_PATH: keyPath,
      DATA_DIR: dir,
      CLIENT_PORT: String(clientPort),
      FEDERATION_PORT: String(federationPort),
    };
    for (const name of SERVICES) {
      const healthPort = await freePort();
      const base = name === 'client-api' ? clientBase : name === 'federation-ingress' ? federationBase : `http://127.0.0.1:${healthPort}`;
      healthUrls.set(name, `${base}/health/ready`);
      procs.set(name, startApp(name, { ...common, HEALTH_PORT: String(healthPort) }));
    }
    await Promise.all(SERVICES.map((name) => waitUntilReady(procs.get(name)!, healthUrls.get(name)!)));
  });

  afterAll(async () => {
    await Promise.all([...procs.values()].map(stopApp));
    await db?.drop();
  });

  it('each service answers its own liveness and readiness probes', async () => {
    for (const name of SERVICES) {
      const ready = await fetch(healthUrls.get(name)!);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toEqual({ ready: true, checks: { shutdown: 'ok', database: 'ok', bus: 'ok' } });
      const live = await fetch(healthUrls.get(name)!.replace('/ready', '/live'));
      expect(live.status).toBe(200);
    }
  });

  it('serves signed server keys through the federation edge, verifiable by a remote server', async () => {
    const body = await fetchAndVerifyServerKeys(federationBase, serverName);
    expect(body.verify_keys).toEqual({ [key.keyId]: { key: key.publicKeyBase64 } });
  });

  it('serves the client and federation version endpoints', async () => {
    const versions = await (await fetch(`${clientBase}/_matrix/client/versions`)).json();
    validateResponse('client-server', 'GET', '/_matrix/client/versions', 200, versions);
    const fed = await (await fetch(`${federationBase}/_matrix/federation/v1/version`)).json();
    validateResponse('server-server', 'GET', '/_matrix/federation/v1/version', 200, fed);
    // Each edge serves only its own API.
    expect((await fetch(`${clientBase}/_matrix/key/v2/server`)).status).toBe(404);
    expect((await fetch(`${federationBase}/_matrix/client/versions`)).status).toBe(404);
  });

  it('every process shuts down cleanly on SIGTERM', async () => {
    const codes = await Promise.all(SERVICES.map((name) => stopApp(procs.get(name)!)));
    expect(codes).toEqual(SERVICES.map(() => 0));
  });
});
