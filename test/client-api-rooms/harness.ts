/**
 * The whole homeserver in this process (as apps/homeserver runs it: every service module,
 * one runtime) on free ports, against PGlite + the in-process bus, or PostgreSQL + NATS +
 * Redis. Tests talk to it over real HTTP; every JSON response is validated against the
 * spec's OpenAPI document.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Global, Module } from '@nestjs/common';
import { expect } from 'vitest';
import { buildConfig } from '@tessera/config';
import { startServices, type RunningServices, type ServiceDefinition } from '@tessera/http';
import { CLIENT_API_SETTINGS_OVERRIDES, ClientApiModule, clientApiService, type ClientApiOverrides } from '@tessera/client-api-service';
import { fanoutSenderService } from '@tessera/fanout-sender-service';
import { federationIngressService } from '@tessera/federation-ingress-service';
import { persistenceService } from '@tessera/persistence-service';
import { roomServerService } from '@tessera/room-server-service';
import { createTestDatabase, NATS_URL, REDIS_URL, uniqueName, type TestDatabase } from '@tessera/testing';
import { checkAgainstSpec } from '../client-api/harness.js';
import { freePort } from '../support/processes.js';

export interface Login {
  user_id: string;
  access_token: string;
  device_id: string;
}

export interface Reply<T = any> {
  status: number;
  body: T;
}

export type Backend = 'embedded' | 'postgres';

/** client-api with test settings: fast password hashing, rate limits off unless a test asks. */
function clientApiWith(overrides: ClientApiOverrides): ServiceDefinition {
  @Global()
  @Module({ providers: [{ provide: CLIENT_API_SETTINGS_OVERRIDES, useValue: overrides }], exports: [CLIENT_API_SETTINGS_OVERRIDES] })
  class OverridesModule {}
  @Module({ imports: [OverridesModule, ClientApiModule] })
  class TestClientApiModule {}
  return { ...clientApiService, module: TestClientApiModule };
}

/** Several services share the event log's migrations; one process applies each once. */
function withUniqueMigrations(services: ServiceDefinition[]): ServiceDefinition[] {
  const seen = new Set<string>();
  return services.map((s) => ({ ...s, migrations: (s.migrations ?? []).filter((m) => !seen.has(m.id) && !!seen.add(m.id)) }));
}

export class Homeserver {
  validated = 0;

  private constructor(
    readonly base: string,
    readonly serverName: string,
    readonly running: RunningServices,
    private readonly cleanup: () => Promise<void>,
  ) {}

  static async start(backend: Backend, overrides: ClientApiOverrides = {}): Promise<Homeserver> {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-rooms-'));
    let testDb: TestDatabase | undefined;
    if (backend === 'postgres') testDb = await createTestDatabase();
    const serverName = `${uniqueName('hs')}.test`;
    const clientPort = await freePort();
    const config = buildConfig(
      {
        server_name: serverName,
        data_dir: dir,
        enable_registration: true,
        log_level: 'warn',
        listeners: { client: { bind_address: '127.0.0.1', port: clientPort }, federation: { bind_address: '127.0.0.1', port: await freePort() } },
        ...(testDb ? { database: { url: testDb.url }, nats: { url: NATS_URL, prefix: uniqueName('bus') }, redis: { url: REDIS_URL } } : {}),
      },
      { env: {}, cwd: dir },
    );
    const off = { perSecond: 0, burst: 0 };
    const clientApi = clientApiWith({ passwordScryptCost: 1024, redisKeyPrefix: `${uniqueName('t')}:`, rateLimit: { perUser: off, perIp: off }, ...overrides });
    const running = await startServices(withUniqueMigrations([persistenceService, roomServerService, fanoutSenderService, clientApi, federationIngressService]), {
      mode: 'embedded',
      name: 'rooms-test',
      config,
    });
    return new Homeserver(`http://127.0.0.1:${clientPort}`, serverName, running, async () => {
      await testDb?.drop();
      rmSync(dir, { recursive: true, force: true });
    });
  }

  get db() {
    return this.running.runtime.db;
  }

  /** The client-api Nest application (to reach providers in tests). */
  get clientApp() {
    return this.running.apps.get('client')!;
  }

  async call<T = any>(method: string, path: string, options: { body?: unknown; rawBody?: string; token?: string } = {}): Promise<Reply<T>> {
    const headers: Record<string, string> = {};
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    const body = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(`${this.base}${path}`, { method, headers, body });
    const text = await response.text();
    let json: unknown;
    if (response.headers.get('content-type')?.includes('application/json')) {
      json = JSON.parse(text);
      checkAgainstSpec(method, path, response.status, json);
      this.validated++;
    }
    return { status: response.status, body: json as T };
  }

  /** A call that must succeed (200); returns the body. */
  async ok<T = any>(method: string, path: string, options: { body?: unknown; token?: string } = {}): Promise<T> {
    const reply = await this.call<T>(method, path, options);
    expect(reply.status, `${method} ${path}: ${JSON.stringify(reply.body)}`).toBe(200);
    return reply.body;
  }

  async register(username: string): Promise<Login> {
    const password = 'correct horse battery staple';
    const first = await this.call('POST', '/_matrix/client/v3/register', { body: { username, password } });
    expect(first.status).toBe(401);
    return this.ok<Login>('POST', '/_matrix/client/v3/register', {
      body: { username, password, auth: { type: 'm.login.dummy', session: first.body.session } },
    });
  }

  async close(): Promise<void> {
    await this.running.close();
    await this.cleanup();
  }
}

export const enc = encodeURIComponent;
export const v3 = (path: string) => `/_matrix/client/v3/${path}`;
