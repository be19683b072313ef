/**
 * Starts the client-api service as it runs in production (libs/http's runner, Nest + Fastify
 * app, migrations), with the room pipeline it needs for rooms (room-server and persistence in
 * the same process over the in-process bus), on a free port, against real PostgreSQL or PGlite
 * and real Redis or the in-memory store, and talks to it over real HTTP. Every JSON response is checked
 * against the spec's OpenAPI document (the path template is found from the request path).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Global, Module } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { expect } from 'vitest';
import { buildConfig } from '@tessera/config';
import { startServices, type RunningServices, type ServiceDefinition } from '@tessera/http';
import { persistenceService } from '@tessera/persistence-service';
import { roomServerService } from '@tessera/room-server-service';
import { createTestDatabase, MATRIX_SPEC_DIR, REDIS_URL, uniqueName, validateResponse, type TestDatabase } from '@tessera/testing';
import { freePort } from '../support/processes.js';
import { ClientApiModule, CLIENT_API_SETTINGS_OVERRIDES, clientApiService, type ClientApiOverrides } from '@tessera/client-api-service';

export interface HarnessOptions {
  database: 'postgres' | 'pglite';
  redis: boolean;
  /** Extra homeserver.yaml settings (snake_case). */
  config?: Record<string, unknown>;
  overrides?: ClientApiOverrides;
}

export interface Reply<T = any> {
  status: number;
  headers: Headers;
  body: T;
  /** The body's bytes as received (media downloads are not JSON). */
  bytes: Uint8Array;
}

export interface CallOptions {
  body?: unknown;
  /** A raw body: a string (for malformed JSON), or bytes (media uploads; no content type is added for them). */
  rawBody?: string | Uint8Array;
  token?: string;
  headers?: Record<string, string>;
}

// ---- spec path templates, to validate each response against the right operation ----
const spec = JSON.parse(readFileSync(join(MATRIX_SPEC_DIR, 'openapi/client-server.json'), 'utf8')) as { paths: Record<string, Record<string, unknown>> };
const templates = Object.keys(spec.paths)
  .map((key) => key.trim())
  .filter((key, i, all) => all.indexOf(key) === i)
  .map((template) => ({
    template,
    methods: new Set(Object.keys(spec.paths[template] ?? spec.paths[`${template} `] ?? {}).concat(Object.keys(spec.paths[`${template} `] ?? {}))),
    // Literal segments first: /pushrules/global/ must not match a {param} template.
    literal: template.split('/').filter((s) => !s.startsWith('{')).length,
    pattern: new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+')}$`),
  }))
  .sort((a, b) => b.literal - a.literal);

/** The spec's template for a concrete path (r0 read as v3), or undefined when the spec has none. */
export function specTemplate(method: string, path: string): string | undefined {
  const bare = path.split('?')[0]!.replace('/_matrix/client/r0/', '/_matrix/client/v3/');
  return templates.find((t) => t.methods.has(method.toLowerCase()) && t.pattern.test(bare))?.template;
}

/** Checks a JSON response: against the spec's schema when the spec documents that status, else as a Matrix error. */
export function checkAgainstSpec(method: string, path: string, status: number, body: unknown): void {
  const template = specTemplate(method, path);
  if (template === undefined) {
    // Not a spec endpoint (Synapse's admin API) or an unknown path: it must still be a proper Matrix error when it fails.
    if (status >= 400) expectMatrixError(body);
    return;
  }
  try {
    validateResponse('client-server', method, template, status, body);
  } catch (error) {
    if (/documents no \d+ response|has no JSON schema/.test((error as Error).message) && status >= 400) {
      // The spec lists only some error statuses per endpoint (e.g. 401 from the auth guard is
      // general to all authenticated endpoints): check the general error shape instead.
      expectMatrixError(body);
      return;
    }
    throw error;
  }
}

function expectMatrixError(body: unknown): void {
  // A user-interactive auth challenge (401) is the spec's AuthenticationResponse, not an error body.
  if (typeof body === 'object' && body !== null && 'flows' in body) {
    expect(body).toMatchObject({ flows: expect.any(Array), params: expect.any(Object), session: expect.any(String) });
    return;
  }
  expect(body, 'a Matrix error body').toMatchObject({ errcode: expect.stringMatching(/^M_[A-Z_]+$/), error: expect.any(String) });
}

export class ClientApiHarness {
  validated = 0;

  private constructor(
    readonly base: string,
    readonly serverName: string,
    private readonly running: RunningServices,
    private readonly cleanup: () => Promise<void>,
  ) {}

  /**
   * client-api with the room pipeline it talks to over the bus (room-server, persistence) in
   * this process, as the embedded homeserver runs them; real PostgreSQL + Redis or PGlite +
   * the in-memory store.
   */
  static async start(options: HarnessOptions): Promise<ClientApiHarness> {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-client-api-'));
    let testDb: TestDatabase | undefined;
    if (options.database === 'postgres') testDb = await createTestDatabase();
    const serverName = `${uniqueName('hs')}.test`;
    const clientPort = await freePort();
    const config = buildConfig(
      {
        server_name: serverName,
        data_dir: dir,
        enable_registration: true,
        log_level: 'warn',
        listeners: { client: { bind_address: '127.0.0.1', port: clientPort }, federation: { bind_address: '127.0.0.1', port: await freePort() } },
        ...(testDb ? { database: { url: testDb.url } } : {}),
        ...(options.redis ? { redis: { url: REDIS_URL } } : {}),
        ...options.config,
      },
      { env: {}, cwd: dir },
    );

    const overrides: ClientApiOverrides = { passwordScryptCost: 1024, redisKeyPrefix: `${uniqueName('test')}:`, ...options.overrides };
    @Global()
    @Module({ providers: [{ provide: CLIENT_API_SETTINGS_OVERRIDES, useValue: overrides }], exports: [CLIENT_API_SETTINGS_OVERRIDES] })
    class OverridesModule {}
    @Module({ imports: [OverridesModule, ClientApiModule] })
    class TestClientApiModule {}

    const clientApi: ServiceDefinition = { ...clientApiService, module: TestClientApiModule };
    const running = await startServices([persistenceService, roomServerService, clientApi], { mode: 'embedded', name: 'client-api-test', config });
    return new ClientApiHarness(`http://127.0.0.1:${clientPort}`, serverName, running, async () => {
      await testDb?.drop();
      rmSync(dir, { recursive: true, force: true });
    });
  }

  /** The client-api Nest application (to reach its providers). */
  get nest(): NestFastifyApplication {
    return this.running.apps.get('client')!;
  }

  get db() {
    return this.running.runtime.db;
  }

  /** The process's bus (in-process here), as federation-ingress and fanout-sender see it. */
  get bus() {
    return this.running.runtime.bus;
  }

  async call<T = any>(method: string, path: string, options: CallOptions = {}): Promise<Reply<T>> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    let body: string | Uint8Array | undefined;
    if (options.rawBody !== undefined) body = options.rawBody;
    else if (options.body !== undefined) body = JSON.stringify(options.body);
    if (typeof body === 'string' && !headers['content-type']) headers['content-type'] = 'application/json';
    const response = await fetch(`${this.base}${path}`, { method, headers, body });
    const bytes = new Uint8Array(await response.arrayBuffer());
    let json: unknown;
    if (response.headers.get('content-type')?.includes('application/json')) {
      json = JSON.parse(new TextDecoder().decode(bytes));
      checkAgainstSpec(method, path, response.status, json);
      this.validated++;
    }
    // Every response, errors included, carries CORS headers (spec: "Web browser clients").
    expect(response.headers.get('access-control-allow-origin')).toBe('*');
    return { status: response.status, headers: response.headers, body: json as T, bytes };
  }

  /** Registers through the m.login.dummy flow; returns the login. */
  async register(username: string, password = 'correct horse battery staple', extra: Record<string, unknown> = {}) {
    const first = await this.call('POST', '/_matrix/client/v3/register', { body: { username, password, ...extra } });
    expect(first.status).toBe(401);
    const done = await this.call('POST', '/_matrix/client/v3/register', {
      body: { username, password, auth: { type: 'm.login.dummy', session: first.body.session }, ...extra },
    });
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    return done.body as { user_id: string; access_token: string; device_id: string };
  }

  async login(user: string, password = 'correct horse battery staple', extra: Record<string, unknown> = {}) {
    const reply = await this.call('POST', '/_matrix/client/v3/login', { body: { type: 'm.login.password', identifier: { type: 'm.id.user', user }, password, ...extra } });
    expect(reply.status, JSON.stringify(reply.body)).toBe(200);
    return reply.body as { user_id: string; access_token: string; device_id: string };
  }

  /** A room created by `creator` that `member` has joined (so both share it, for typing, receipts, device lists). */
  async sharedRoom(creator: { access_token: string }, member: { user_id: string; access_token: string }): Promise<string> {
    const created = await this.call('POST', '/_matrix/client/v3/createRoom', { token: creator.access_token, body: { preset: 'private_chat', invite: [member.user_id] } });
    expect(created.status, JSON.stringify(created.body)).toBe(200);
    const roomId = created.body.room_id as string;
    const joined = await this.call('POST', `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, { token: member.access_token, body: {} });
    expect(joined.status, JSON.stringify(joined.body)).toBe(200);
    return roomId;
  }

  /** Sends a message; returns its event id. */
  async send(sender: { access_token: string }, roomId: string, body: string): Promise<string> {
    const txn = uniqueName('txn');
    const sent = await this.call('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${txn}`, { token: sender.access_token, body: { msgtype: 'm.text', body } });
    expect(sent.status, JSON.stringify(sent.body)).toBe(200);
    return sent.body.event_id as string;
  }

  async close(): Promise<void> {
    await this.running.close();
    await this.cleanup();
  }
}
