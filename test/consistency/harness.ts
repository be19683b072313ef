/**
 * Homeservers of ours federating on loopback for the consistency tests. Each runs every
 * service (persistence, room-server, federation-ingress, fanout-sender, client-api) in this
 * process with its own PostgreSQL database and its own NATS subject prefix; its federation
 * listener speaks HTTPS with a certificate of a test CA and its name is 127.0.0.1:<port> (no
 * DNS needed). Outbound federation trusts only that CA and may reach loopback (set in
 * process.env by createFederationPki). Tests drive the servers through the client API over
 * HTTP; responses are checked against the spec's OpenAPI document.
 *
 * A server can be stopped and started again under the same name, database and signing key
 * (stop() then restart()), and partitioned from others: the TLS-terminating
 * proxy in front of its federation listener refuses the other side's requests (see
 * FederationProxy).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpsRequest, createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Global, Module } from '@nestjs/common';
import { expect } from 'vitest';
import { buildConfig, type HomeserverConfig } from '@tessera/config';
import { startServices, type RunningServices, type ServiceDefinition } from '@tessera/http';
import { CLIENT_API_SETTINGS_OVERRIDES, ClientApiModule, clientApiService, type ClientApiOverrides } from '@tessera/client-api-service';
import { fanoutSenderService } from '@tessera/fanout-sender-service';
import { federationIngressService } from '@tessera/federation-ingress-service';
import { persistenceService } from '@tessera/persistence-service';
import { roomServerService } from '@tessera/room-server-service';
import { parseXMatrixHeader } from '@tessera/federation-client';
import type { SigningKey } from '@tessera/protocol';
import { getCurrentState, type Db } from '@tessera/storage';
import { createTestDatabase, NATS_URL, uniqueName, type TestDatabase } from '@tessera/testing';
import { checkAgainstSpec } from '../client-api/harness.js';
import { createFederationPki, type FederationPki } from '../federation/harness.js';
import { freePort } from '../support/processes.js';

export { createFederationPki, type FederationPki };

export interface Login {
  user_id: string;
  access_token: string;
  device_id: string;
}

export interface Reply<T = any> {
  status: number;
  body: T;
}

// Fast retries between our test servers: a server that comes back is served within a second or two.
process.env.FANOUT_BACKOFF_INITIAL_MS ??= '200';
process.env.FANOUT_BACKOFF_MAX_MS ??= '1000';
process.env.FANOUT_POLL_MS ??= '500';

function clientApiWith(overrides: ClientApiOverrides): ServiceDefinition {
  @Global()
  @Module({ providers: [{ provide: CLIENT_API_SETTINGS_OVERRIDES, useValue: overrides }], exports: [CLIENT_API_SETTINGS_OVERRIDES] })
  class OverridesModule {}
  @Module({ imports: [OverridesModule, ClientApiModule] })
  class TestClientApiModule {}
  return { ...clientApiService, module: TestClientApiModule };
}

/**
 * The network between the servers: each server's name points at a TLS-terminating proxy in
 * front of its federation listener. The proxy refuses (503) signed requests whose X-Matrix
 * origin is cut off from this server, which is how a partition is made; key requests are
 * unsigned and pass.
 */
export class FederationProxy {
  private constructor(
    readonly port: number,
    /** Origins whose requests are refused. */
    readonly blocked: Set<string>,
    private readonly close_: () => Promise<void>,
  ) {}

  static async start(pki: FederationPki, backendPort: () => number): Promise<FederationProxy> {
    const tls = { cert: readFileSync(pki.certPath, 'utf8'), key: readFileSync(pki.keyPath, 'utf8') };
    const blocked = new Set<string>();
    const server = createHttpsServer(tls, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        let origin: string | undefined;
        try {
          const auth = req.headers.authorization;
          if (auth) origin = parseXMatrixHeader(auth).origin;
        } catch {
          // Not X-Matrix: the backend answers it.
        }
        if (origin && blocked.has(origin)) {
          res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ errcode: 'M_UNKNOWN', error: 'partitioned' }));
          return;
        }
        const upstream = httpsRequest(
          { host: '127.0.0.1', port: backendPort(), method: req.method, path: req.url, headers: req.headers, ca: pki.ca.certPem },
          (up) => {
            res.writeHead(up.statusCode ?? 502, up.headers);
            up.pipe(res);
          },
        );
        upstream.on('error', (err) => {
          if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ errcode: 'M_UNKNOWN', error: `backend unreachable: ${err.message}` }));
        });
        upstream.end(Buffer.concat(chunks));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new FederationProxy((server.address() as AddressInfo).port, blocked, () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }));
  }

  close(): Promise<void> {
    return this.close_();
  }
}

/** Cuts the servers of `a` from those of `b`, both ways (signed federation requests refused). */
export function partition(a: TestHomeserver[], b: TestHomeserver[]): void {
  for (const x of a) for (const y of b) {
    x.proxy.blocked.add(y.serverName);
    y.proxy.blocked.add(x.serverName);
  }
}

export function heal(servers: TestHomeserver[]): void {
  for (const s of servers) s.proxy.blocked.clear();
}

export const enc = encodeURIComponent;
export const v3 = (path: string) => `/_matrix/client/v3/${path}`;

export class TestHomeserver {
  private running: RunningServices | undefined;
  private readonly tokens = new Map<string, string>();

  private constructor(
    readonly serverName: string,
    readonly federationPort: number,
    readonly clientPort: number,
    readonly database: TestDatabase,
    private readonly dir: string,
    private readonly config: HomeserverConfig,
    readonly proxy: FederationProxy,
  ) {}

  static async start(pki: FederationPki): Promise<TestHomeserver> {
    const federationPort = await freePort();
    const clientPort = await freePort();
    const proxy = await FederationProxy.start(pki, () => federationPort);
    const serverName = `127.0.0.1:${proxy.port}`;
    const database = await createTestDatabase();
    const dir = mkdtempSync(join(tmpdir(), 'tessera-consistency-'));
    const config = buildConfig(
      {
        server_name: serverName,
        data_dir: dir,
        enable_registration: true,
        log_level: 'warn',
        tls_certificate_path: pki.certPath,
        tls_private_key_path: pki.keyPath,
        listeners: { client: { bind_address: '127.0.0.1', port: clientPort }, federation: { bind_address: '127.0.0.1', port: federationPort } },
        database: { url: database.url },
        nats: { url: NATS_URL, prefix: uniqueName('hs') },
      },
      { env: {}, cwd: dir },
    );
    const hs = new TestHomeserver(serverName, federationPort, clientPort, database, dir, config, proxy);
    await hs.restart();
    return hs;
  }

  get isRunning(): boolean {
    return this.running !== undefined;
  }

  get db(): Db {
    if (!this.running) throw new Error(`${this.serverName} is stopped`);
    return this.running.runtime.db;
  }

  get signingKey(): SigningKey {
    if (!this.running) throw new Error(`${this.serverName} is stopped`);
    return this.running.runtime.signingKeys.current;
  }

  /** Starts the services (again): same name, database, signing key and ports. */
  async restart(): Promise<void> {
    if (this.running) return;
    const off = { perSecond: 0, burst: 0 };
    const clientApi = clientApiWith({ passwordScryptCost: 1024, rateLimit: { perUser: off, perIp: off } });
    this.running = await startServices([persistenceService, roomServerService, federationIngressService, fanoutSenderService, clientApi], {
      mode: 'embedded',
      name: `hs-${this.federationPort}`,
      config: this.config,
    });
  }

  /** Stops every service; the database and key are kept for restart() unless `drop`. */
  async stop(options: { drop?: boolean } = {}): Promise<void> {
    const r = this.running;
    this.running = undefined;
    await r?.close();
    if (options.drop) {
      await this.proxy.close();
      await this.database.drop();
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  // ---- client API over HTTP ----

  async call<T = any>(method: string, path: string, options: { body?: unknown; token?: string } = {}): Promise<Reply<T>> {
    const headers: Record<string, string> = {};
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(`http://127.0.0.1:${this.clientPort}${path}`, { method, headers, body });
    const text = await response.text();
    let json: unknown;
    if (response.headers.get('content-type')?.includes('application/json')) {
      json = JSON.parse(text);
      checkAgainstSpec(method, path, response.status, json);
    }
    return { status: response.status, body: json as T };
  }

  async ok<T = any>(method: string, path: string, options: { body?: unknown; token?: string } = {}): Promise<T> {
    const reply = await this.call<T>(method, path, options);
    expect(reply.status, `${this.serverName} ${method} ${path}: ${JSON.stringify(reply.body)}`).toBe(200);
    return reply.body;
  }

  async register(username: string): Promise<Login> {
    const password = 'correct horse battery staple';
    const first = await this.call('POST', v3('register'), { body: { username, password } });
    expect(first.status).toBe(401);
    const login = await this.ok<Login>('POST', v3('register'), { body: { username, password, auth: { type: 'm.login.dummy', session: first.body.session } } });
    this.tokens.set(login.user_id, login.access_token);
    return login;
  }

  /** The access token of a user registered here. */
  token(userId: string): string {
    const t = this.tokens.get(userId);
    if (!t) throw new Error(`${userId} is not registered on ${this.serverName}`);
    return t;
  }

  async send(userId: string, roomId: string, body: string): Promise<string> {
    const txn = uniqueName('txn');
    const r = await this.ok<{ event_id: string }>('PUT', v3(`rooms/${enc(roomId)}/send/m.room.message/${txn}`), {
      token: this.token(userId), body: { msgtype: 'm.text', body },
    });
    return r.event_id;
  }

  async setState(userId: string, roomId: string, type: string, stateKey: string, content: Record<string, unknown>): Promise<Reply<{ event_id: string }>> {
    const path = stateKey === '' ? `rooms/${enc(roomId)}/state/${enc(type)}` : `rooms/${enc(roomId)}/state/${enc(type)}/${enc(stateKey)}`;
    return this.call('PUT', v3(path), { token: this.token(userId), body: content });
  }

  /** The room's current state as the client API shows it: (type, state_key) -> event id. */
  async clientState(userId: string, roomId: string): Promise<Map<string, string>> {
    const events = await this.ok<Array<{ type: string; state_key: string; event_id: string }>>('GET', v3(`rooms/${enc(roomId)}/state`), { token: this.token(userId) });
    return new Map(events.map((e) => [`${e.type}\u0000${e.state_key}`, e.event_id]));
  }

  /** The room's current state in the event log: (type, state_key) -> event id. */
  async storedState(roomId: string): Promise<Map<string, string>> {
    return new Map((await getCurrentState(this.db, roomId)).map(([t, k, id]) => [`${t}\u0000${k}`, id]));
  }

  /** Whether the event is stored in this server's log as part of the room's timeline. */
  async hasEvents(eventIds: string[]): Promise<boolean> {
    const { rows } = await this.db.query<{ n: number }>('SELECT count(*)::int AS n FROM events WHERE event_id = ANY($1) AND NOT outlier AND rejected_reason IS NULL', [eventIds]);
    return rows[0]!.n === eventIds.length;
  }
}

function sorted(m: Map<string, string>): Array<[string, string]> {
  return [...m.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

export function stateEntries(m: Map<string, string>): Array<[string, string]> {
  return sorted(m);
}

/** Polls until `check` holds; a bound on waiting, not a timing assertion. */
export async function eventually(what: string | (() => string), check: () => boolean | Promise<boolean>, deadlineMs = 60_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > end) {
      throw new Error(`not reached within ${deadlineMs} ms: ${typeof what === 'string' ? what : what()}${lastError ? ` (last error: ${String(lastError)})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits until every server holds the same current state of the room; returns it. */
export async function converged(servers: TestHomeserver[], roomId: string, deadlineMs = 60_000): Promise<Map<string, string>> {
  let states: Array<Map<string, string>> = [];
  await eventually(
    () => `the servers hold the same state of ${roomId}:\n${states.map((s, i) => `${servers[i]!.serverName}: ${JSON.stringify(sorted(s))}`).join('\n')}`,
    async () => {
      states = await Promise.all(servers.map((s) => s.storedState(roomId)));
      const first = JSON.stringify(sorted(states[0]!));
      return states[0]!.size > 0 && states.every((s) => JSON.stringify(sorted(s)) === first);
    },
    deadlineMs,
  );
  return states[0]!;
}
