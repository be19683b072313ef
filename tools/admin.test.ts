/**
 * The admin command line, run as operators run it: a child process. Each subcommand is tested
 * on its own, against real parts (a real client-api over HTTP, real PostgreSQL, real probes).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientApiService } from '@tessera/client-api-service';
import { specPath } from '@tessera/spec-data';
import { buildConfig, loadOrCreateSigningKey } from '@tessera/config';
import { startServices, type RunningServices } from '@tessera/http';
import { parseSigningKeyFile } from '@tessera/protocol';
import { persistenceService } from '@tessera/persistence-service';
import { roomServerService } from '@tessera/room-server-service';
import { createTestDatabase, services, type TestDatabase } from '@tessera/testing';
import { freePort } from '../test/support/processes.js';

const repo = fileURLToPath(new URL('..', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'tessera-admin-'));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `npm run admin -- ...args` the way npm does (tsx loader), without npm in between. */
function admin(args: string[], options: { env?: Record<string, string | undefined>; input?: string } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, ...options.env };
    for (const [k, v] of Object.entries(options.env ?? {})) if (v === undefined) delete env[k];
    const child = spawn(process.execPath, ['--import', 'tsx', 'tools/admin.ts', ...args], { cwd: repo, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

describe('admin (no command)', () => {
  it('prints the usage with exit code 2, and refuses an unknown command', async () => {
    const none = await admin([]);
    expect(none.code).toBe(2);
    expect(none.stdout).toMatch(/register-user .*\n.*generate-signing-key/s);
    const unknown = await admin(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
  });
});

describe('admin generate-signing-key', () => {
  it('prints a key in Synapse format that the server loads', async () => {
    const r = await admin(['generate-signing-key', '--version', 'a_test1']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ed25519 a_test1 [A-Za-z0-9+/]{43}\n$/);
    const [key] = parseSigningKeyFile(r.stdout);
    expect(key!.keyId).toBe('ed25519:a_test1');
    const path = join(tmp, 'printed.key');
    writeFileSync(path, r.stdout);
    const loaded = loadOrCreateSigningKey(path);
    expect(loaded.created).toBe(false);
    expect(loaded.current.publicKeyBase64).toBe(key!.publicKeyBase64);
  });

  it('writes a new key file readable only by its owner, and never overwrites one', async () => {
    const path = join(tmp, 'written.key');
    const first = await admin(['generate-signing-key', '--output', path]);
    expect(first.code).toBe(0);
    const text = readFileSync(path, 'utf8');
    const [key] = parseSigningKeyFile(text);
    expect(first.stdout).toContain(key!.keyId);
    expect(first.stdout).toContain(key!.publicKeyBase64);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const again = await admin(['generate-signing-key', '--output', path]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('never overwritten');
    expect(readFileSync(path, 'utf8')).toBe(text);
  });

  it('refuses a bad version or unknown option with exit code 2', async () => {
    const bad = await admin(['generate-signing-key', '--version', 'no spaces']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--version');
    const unknown = await admin(['generate-signing-key', '--frob']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("Unknown option '--frob'");
  });
});

describe('admin old-signing-key', () => {
  it('prints the old_signing_keys entry the config loader accepts', async () => {
    const path = join(tmp, 'retiring.key');
    expect((await admin(['generate-signing-key', '--version', 'old1', '--output', path])).code).toBe(0);
    const r = await admin(['old-signing-key', path, '--expired-ts', '1767225600000']);
    expect(r.code).toBe(0);
    const config = buildConfig(parse(r.stdout), { env: {}, cwd: tmp });
    const [key] = parseSigningKeyFile(readFileSync(path, 'utf8'));
    expect(config.oldSigningKeys).toEqual({ 'ed25519:old1': { key: key!.publicKeyBase64, expiredTs: 1767225600000 } });
  });

  it('names the file that is missing or not a key', async () => {
    const missing = await admin(['old-signing-key', join(tmp, 'nope.key')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('nope.key: cannot read: ENOENT');
    const junk = join(tmp, 'junk.key');
    writeFileSync(junk, 'hello\n');
    const notKey = await admin(['old-signing-key', junk]);
    expect(notKey.code).toBe(1);
    expect(notKey.stderr).toContain('junk.key: not a signing key file');
  });
});

describe.skipIf(!services.postgres)('admin migrate', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('applies every service migration once, then reports the schema up to date', async () => {
    const first = await admin(['migrate'], { env: { DATABASE_URL: db.url } });
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const applied = first.stdout.split('\n').filter((l) => l.startsWith('  ')).map((l) => l.trim());
    const expected = [...new Set([...clientApiService.migrations!, ...roomServerService.migrations!].map((m) => m.id))];
    for (const id of expected) expect(applied).toContain(id);
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ id: string }>('SELECT id FROM schema_migrations ORDER BY id');
      expect(rows.map((r) => r.id)).toEqual([...applied].sort());
    } finally {
      await client.end();
    }
    const second = await admin(['migrate', '--database-url', db.url], { env: { DATABASE_URL: undefined } });
    expect(second.code).toBe(0);
    expect(second.stdout).toBe(`schema up to date (${applied.length} migrations)\n`);
  });

  it('needs a PostgreSQL URL, and says so when the database cannot be reached', async () => {
    const none = await admin(['migrate'], { env: { DATABASE_URL: undefined } });
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('set DATABASE_URL');
    const wrong = await admin(['migrate', '--database-url', 'mysql://x']);
    expect(wrong.code).toBe(2);
    const port = await freePort();
    const down = await admin(['migrate', '--database-url', `postgres://postgres@127.0.0.1:${port}/x`]);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/ECONNREFUSED|connect/);
  });
});

/** A real service in this process (embedded runtime, PGlite in a temp folder) on a free port. */
async function startInProcess(which: 'room-server' | 'client-api', raw: Record<string, unknown> = {}): Promise<{ running: RunningServices; base: string }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'tessera-admin-svc-'));
  const config = buildConfig(raw, {
    env: { DATA_DIR: dir, CLIENT_PORT: String(port), HEALTH_PORT: String(port), SERVER_NAME: 'admin.test', LOG_LEVEL: 'silent' },
    cwd: dir,
  });
  // client-api reads the event log's tables too: it runs beside persistence, as in every deployment.
  const list = which === 'client-api' ? [persistenceService, clientApiService] : [roomServerService];
  const running = await startServices(list, { mode: 'embedded', name: which, config });
  return { running, base: `http://127.0.0.1:${port}` };
}

describe('admin health', () => {
  let ready: { running: RunningServices; base: string };
  let draining: { running: RunningServices; base: string };
  beforeAll(async () => {
    ready = await startInProcess('room-server');
    draining = await startInProcess('room-server');
    draining.running.runtime.drain();
  });
  afterAll(async () => {
    await ready?.running.close();
    await draining?.running.close();
  });

  it('prints one row per service and fails when any is not ready', async () => {
    const gone = `http://127.0.0.1:${await freePort()}`;
    const r = await admin(['health', `room-server=${ready.base}`, `persistence=${draining.base}/health/ready`, `fanout-sender=${gone}`]);
    expect(r.code).toBe(1);
    const rows = r.stdout.trimEnd().split('\n');
    expect(rows[0]).toMatch(/^SERVICE\s+STATUS\s+HTTP\s+URL\s+DETAIL$/);
    expect(rows[1]).toMatch(new RegExp(`^room-server\\s+ready\\s+200\\s+${ready.base}/health/ready$`));
    expect(rows[2]).toMatch(/^persistence\s+not ready\s+503\s+\S+\s+shutdown: shutting down$/);
    expect(rows[3]).toMatch(/^fanout-sender\s+unreachable\s+-\s+\S+\s+ECONNREFUSED$/);
    expect(r.stderr).toContain('2 of 3 services not ready: persistence, fanout-sender');
  });

  it('exits 0 when every service is ready', async () => {
    const r = await admin(['health', `room-server=${ready.base}`]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
  });

  it('refuses a target that is not NAME=URL', async () => {
    const r = await admin(['health', 'localhost:8008']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('expected NAME=URL');
  });
});

describe('admin register-user', () => {
  const secret = 'correct horse battery staple';
  let server: { running: RunningServices; base: string };
  beforeAll(async () => {
    server = await startInProcess('client-api', { registration_shared_secret: secret });
  });
  afterAll(async () => {
    await server?.running.close();
  });

  async function login(user: string, password: string): Promise<number> {
    const res = await fetch(`${server.base}/_matrix/client/v3/login`, {
      method: 'POST',
      body: JSON.stringify({ type: 'm.login.password', identifier: { type: 'm.id.user', user }, password }),
    });
    return res.status;
  }

  it('registers a user through the shared-secret endpoint; the user can log in', async () => {
    const r = await admin(['register-user', '-u', 'alice', '-p', 'wonderland', '-k', secret, server.base]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('Success! Registered @alice:admin.test\n');
    expect(await login('alice', 'wonderland')).toBe(200);
    expect(await login('alice', 'wrong')).toBe(403);
  });

  it('reads the secret from a config file and the password from stdin, and registers admins', async () => {
    const configFile = join(tmp, 'homeserver.yaml');
    writeFileSync(configFile, `server_name: admin.test\nregistration_shared_secret: "${secret}"\n`);
    const r = await admin(['register-user', '-u', 'bob', '--admin', '-c', configFile, server.base], { input: 'builder\n' });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('Success! Registered @bob:admin.test (admin)\n');
    expect(await login('bob', 'builder')).toBe(200);
  });

  it('reports the server refusing a wrong secret or a taken name, and creates nothing', async () => {
    const wrong = await admin(['register-user', '-u', 'carol', '-p', 'pw', '-k', 'not the secret', server.base]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('M_FORBIDDEN');
    expect(await login('carol', 'pw')).toBe(403);
    const taken = await admin(['register-user', '-u', 'alice', '-p', 'other', '-k', secret, server.base]);
    expect(taken.code).toBe(1);
    expect(taken.stderr).toContain('M_USER_IN_USE');
    expect(await login('alice', 'wonderland')).toBe(200);
  });

  it('needs a secret and a reachable server', async () => {
    const noSecret = await admin(['register-user', '-u', 'dave', '-p', 'pw', server.base], { env: { REGISTRATION_SHARED_SECRET: undefined } });
    expect(noSecret.code).toBe(2);
    expect(noSecret.stderr).toContain('no shared secret');
    const gone = `http://127.0.0.1:${await freePort()}`;
    const down = await admin(['register-user', '-u', 'dave', '-p', 'pw', '-k', secret, gone]);
    expect(down.code).toBe(1);
    expect(down.stderr).toContain(`cannot reach ${gone}/_synapse/admin/v1/register`);
  });
});

describe('admin state-resolve', () => {
  const fixtures = specPath('state-res', 'ruma-fixtures') + '/';
  const files = ['bootstrap-public-chat.json', 'ban-vs-power-levels-alice.json', 'ban-vs-power-levels-bob.json'].map((f) => join(fixtures, f));

  it.skipIf(!existsSync(files[0]!))('gives the output of tools/state-resolve.ts', async () => {
    const direct = await new Promise<Result>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'tools/state-resolve.ts', ...files], { cwd: repo });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.once('close', (code) => resolve({ code, stdout, stderr }));
    });
    const viaAdmin = await admin(['state-resolve', ...files]);
    expect(viaAdmin).toEqual(direct);
    expect(viaAdmin.code).toBe(0);
    expect(JSON.parse(viaAdmin.stdout).length).toBeGreaterThan(0);
  });

  it('passes the exit code of bad input through', async () => {
    const r = await admin(['state-resolve', join(tmp, 'missing.json')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('missing.json');
  });
});
