/**
 * The operator's command line:
 *
 *   npm run --silent admin -- <command> [options]
 *
 *   register-user [SERVER_URL]      register a user through the shared-secret admin endpoint
 *                                   (as Synapse's register_new_matrix_user)
 *   generate-signing-key            print (or write) a new Ed25519 signing key, Synapse's format
 *   old-signing-key FILE            the old_signing_keys entry for a key being retired
 *   migrate                         apply every service's migrations to DATABASE_URL
 *   health [NAME=URL ...]           readiness of each service, as a table
 *   state-resolve FILE...           resolve a room's state from PDU files (tools/state-resolve.ts)
 *   create-registration-token [SERVER_URL]
 *                                   create a registration token (m.login.registration_token) through
 *                                   Synapse's admin API, as a server admin
 *   list-registration-tokens [SERVER_URL]
 *                                   the registration tokens with their uses, as JSON lines
 *
 * Exit codes: 0 done, 1 the operation failed (server refused, service not ready), 2 bad usage.
 */
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { formatSigningKeyFile, generateSigningKey, parseSigningKeyFile } from '@tessera/protocol';

const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));

/** Bad usage: printed with the command's usage line, exit code 2. */
class UsageError extends Error {}
/** The operation ran and failed: printed as is, exit code 1. */
class FailedError extends Error {}

const USAGE: Record<string, string> = {
  'register-user':
    'register-user [-u USER] [-p PASSWORD] [-a|--no-admin] [-k SHARED_SECRET | -c CONFIG] [--display-name NAME] [-t USER_TYPE] [SERVER_URL (default http://localhost:8008)]',
  'generate-signing-key': 'generate-signing-key [--version VERSION] [--output FILE]',
  'old-signing-key': 'old-signing-key FILE [--expired-ts MS]',
  migrate: 'migrate [--database-url URL]   (default: $DATABASE_URL)',
  health: 'health [--timeout MS] [NAME=URL ...]   (default: every service on localhost at its default port)',
  'state-resolve': 'state-resolve FILE...',
  'create-registration-token':
    'create-registration-token [--token TOKEN | --length N] [--uses-allowed N] [--expiry-time MS | --valid-for DURATION] (--access-token TOKEN | -u ADMIN_USER -p PASSWORD) [SERVER_URL (default http://localhost:8008)]',
  'list-registration-tokens': 'list-registration-tokens [--valid | --invalid] (--access-token TOKEN | -u ADMIN_USER -p PASSWORD) [SERVER_URL (default http://localhost:8008)]',
};

function usage(): string {
  return `usage: npm run --silent admin -- <command> [options]\n${Object.values(USAGE)
    .map((u) => `  ${u}`)
    .join('\n')}\n`;
}

type Options = NonNullable<ParseArgsConfig['options']>;

function parse<const O extends Options>(command: string, args: string[], options: O) {
  try {
    return parseArgs({ args, options, allowPositionals: true as const, strict: true as const });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\nusage: ${USAGE[command]}`);
  }
}

// ---------------------------------------------------------------------------------------------
// register-user

/**
 * The shared-secret registration of Synapse's admin API, which client-api serves:
 * GET /_synapse/admin/v1/register gives a nonce; the POST carries
 * mac = HMAC-SHA1(secret, nonce \0 username \0 password \0 "admin"|"notadmin" [\0 user_type]).
 */
export function registrationMac(secret: string, nonce: string, user: string, password: string, admin: boolean, userType?: string): string {
  const hmac = createHmac('sha1', secret);
  hmac.update(nonce).update('\x00').update(user).update('\x00').update(password).update('\x00').update(admin ? 'admin' : 'notadmin');
  if (userType !== undefined) hmac.update('\x00').update(userType);
  return hmac.digest('hex');
}

async function prompt(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: false });
  try {
    process.stderr.write(question);
    return (await rl.question('')).trim();
  } finally {
    rl.close();
  }
}

async function sharedSecretFrom(values: { 'shared-secret'?: string; config?: string }): Promise<string> {
  if (values['shared-secret']) return values['shared-secret'];
  if (values.config) {
    const { loadConfig } = await import('@tessera/config');
    const config = loadConfig({ argv: ['--config', values.config], env: {} });
    const secret = config.registration.registrationSharedSecret;
    if (!secret) throw new UsageError(`${values.config} has no registration_shared_secret`);
    return secret;
  }
  if (process.env.REGISTRATION_SHARED_SECRET) return process.env.REGISTRATION_SHARED_SECRET;
  throw new UsageError(`no shared secret: give -k SECRET, -c CONFIG_FILE or set REGISTRATION_SHARED_SECRET\nusage: ${USAGE['register-user']}`);
}

async function readJson(res: Response, what: string): Promise<Record<string, unknown>> {
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new FailedError(`${what}: HTTP ${res.status}, not JSON: ${text.slice(0, 200)}`);
  }
  if (!res.ok) {
    const b = body as { errcode?: string; error?: string };
    throw new FailedError(`${what}: the server refused (HTTP ${res.status}): ${b.errcode ?? '?'} ${b.error ?? ''}`.trim());
  }
  return body as Record<string, unknown>;
}

async function registerUser(args: string[]): Promise<void> {
  const { values, positionals } = parse('register-user', args, {
    user: { type: 'string', short: 'u' },
    password: { type: 'string', short: 'p' },
    admin: { type: 'boolean', short: 'a' },
    'no-admin': { type: 'boolean' },
    'shared-secret': { type: 'string', short: 'k' },
    config: { type: 'string', short: 'c' },
    'display-name': { type: 'string' },
    'user-type': { type: 'string', short: 't' },
  });
  if (positionals.length > 1) throw new UsageError(`one server URL at most\nusage: ${USAGE['register-user']}`);
  const server = (positionals[0] ?? 'http://localhost:8008').replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+/.test(server)) throw new UsageError(`the server URL must be http(s)://host[:port], got ${JSON.stringify(server)}`);
  if (values.admin && values['no-admin']) throw new UsageError('--admin and --no-admin together');
  const secret = await sharedSecretFrom(values);
  const user = values.user ?? (await prompt('New user localpart: '));
  if (!user) throw new UsageError('a user name is needed (-u USER)');
  const password = values.password ?? (await prompt('Password: '));
  if (!password) throw new UsageError('a password is needed (-p PASSWORD)');
  const admin = values.admin ?? false;
  const userType = values['user-type'];

  const endpoint = `${server}/_synapse/admin/v1/register`;
  let nonceRes: Response;
  try {
    nonceRes = await fetch(endpoint);
  } catch (err) {
    throw new FailedError(`cannot reach ${endpoint}: ${(err as Error).cause ?? (err as Error).message}`);
  }
  const { nonce } = await readJson(nonceRes, 'getting a registration nonce');
  if (typeof nonce !== 'string') throw new FailedError(`the server gave no nonce at ${endpoint}`);
  const body: Record<string, unknown> = {
    nonce,
    username: user,
    password,
    admin,
    mac: registrationMac(secret, nonce, user, password, admin, userType),
  };
  if (userType !== undefined) body.user_type = userType;
  if (values['display-name'] !== undefined) body.displayname = values['display-name'];
  const res = await fetch(endpoint, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const result = await readJson(res, 'registering');
  process.stdout.write(`Success! Registered ${String(result.user_id)}${admin ? ' (admin)' : ''}\n`);
}

// ---------------------------------------------------------------------------------------------
// registration tokens

const ADMIN_LOGIN_OPTIONS = {
  'access-token': { type: 'string' },
  user: { type: 'string', short: 'u' },
  password: { type: 'string', short: 'p' },
} as const;

/**
 * Runs `work` with an admin's access token: --access-token (or ADMIN_ACCESS_TOKEN), or a login
 * with -u/-p whose session is logged out afterwards.
 */
async function asAdmin<T>(
  command: string,
  server: string,
  values: { 'access-token'?: string; user?: string; password?: string },
  work: (token: string) => Promise<T>,
): Promise<T> {
  const given = values['access-token'] ?? process.env.ADMIN_ACCESS_TOKEN;
  if (given) return work(given);
  if (!values.user) throw new UsageError(`an admin's access token (--access-token, ADMIN_ACCESS_TOKEN) or login (-u USER -p PASSWORD) is needed\nusage: ${USAGE[command]}`);
  const password = values.password ?? (await prompt('Password: '));
  let res: Response;
  try {
    res = await fetch(`${server}/_matrix/client/v3/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'm.login.password', identifier: { type: 'm.id.user', user: values.user }, password, initial_device_display_name: 'tessera admin tool' }),
    });
  } catch (err) {
    throw new FailedError(`cannot reach ${server}: ${(err as Error).cause ?? (err as Error).message}`);
  }
  const { access_token: token } = await readJson(res, 'logging in');
  if (typeof token !== 'string') throw new FailedError('the login gave no access token');
  try {
    return await work(token);
  } finally {
    await fetch(`${server}/_matrix/client/v3/logout`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' }).catch(() => undefined);
  }
}

function serverUrl(command: string, positionals: string[]): string {
  if (positionals.length > 1) throw new UsageError(`one server URL at most\nusage: ${USAGE[command]}`);
  const server = (positionals[0] ?? 'http://localhost:8008').replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+/.test(server)) throw new UsageError(`the server URL must be http(s)://host[:port], got ${JSON.stringify(server)}`);
  return server;
}

function wholeNumber(command: string, name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) throw new UsageError(`--${name} must be a whole number, got ${JSON.stringify(value)}\nusage: ${USAGE[command]}`);
  return Number(value);
}

/** POST /_synapse/admin/v1/registration_tokens/new; prints the token, then its record as JSON on stderr. */
async function createRegistrationToken(args: string[]): Promise<void> {
  const command = 'create-registration-token';
  const { values, positionals } = parse(command, args, {
    ...ADMIN_LOGIN_OPTIONS,
    token: { type: 'string' },
    length: { type: 'string' },
    'uses-allowed': { type: 'string' },
    'expiry-time': { type: 'string' },
    'valid-for': { type: 'string' },
  });
  const server = serverUrl(command, positionals);
  if (values.token !== undefined && values.length !== undefined) throw new UsageError(`--token and --length together\nusage: ${USAGE[command]}`);
  if (values['expiry-time'] !== undefined && values['valid-for'] !== undefined) throw new UsageError(`--expiry-time and --valid-for together\nusage: ${USAGE[command]}`);
  const body: Record<string, unknown> = {};
  if (values.token !== undefined) body.token = values.token;
  const length = wholeNumber(command, 'length', values.length);
  if (length !== undefined) body.length = length;
  const usesAllowed = wholeNumber(command, 'uses-allowed', values['uses-allowed']);
  if (usesAllowed !== undefined) body.uses_allowed = usesAllowed;
  const expiry = wholeNumber(command, 'expiry-time', values['expiry-time']);
  if (expiry !== undefined) body.expiry_time = expiry;
  if (values['valid-for'] !== undefined) {
    const { parseDuration } = await import('@tessera/config');
    const ms = parseDuration(values['valid-for']);
    if (ms === undefined) throw new UsageError(`--valid-for must be a duration such as 7d, 12h or 30m, got ${JSON.stringify(values['valid-for'])}`);
    body.expiry_time = Date.now() + ms;
  }
  const created = await asAdmin(command, server, values, async (token) => {
    const res = await fetch(`${server}/_synapse/admin/v1/registration_tokens/new`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return readJson(res, 'creating the registration token');
  });
  process.stdout.write(`${String(created.token)}\n`);
  process.stderr.write(`${JSON.stringify(created)}\n`);
}

async function listRegistrationTokens(args: string[]): Promise<void> {
  const command = 'list-registration-tokens';
  const { values, positionals } = parse(command, args, { ...ADMIN_LOGIN_OPTIONS, valid: { type: 'boolean' }, invalid: { type: 'boolean' } });
  const server = serverUrl(command, positionals);
  if (values.valid && values.invalid) throw new UsageError(`--valid and --invalid together\nusage: ${USAGE[command]}`);
  const query = values.valid ? '?valid=true' : values.invalid ? '?valid=false' : '';
  const listed = await asAdmin(command, server, values, async (token) => {
    const res = await fetch(`${server}/_synapse/admin/v1/registration_tokens${query}`, { headers: { authorization: `Bearer ${token}` } });
    return readJson(res, 'listing registration tokens');
  });
  for (const t of (listed.registration_tokens as unknown[]) ?? []) process.stdout.write(`${JSON.stringify(t)}\n`);
}

// ---------------------------------------------------------------------------------------------
// signing keys

function generateKey(args: string[]): void {
  const { values, positionals } = parse('generate-signing-key', args, {
    version: { type: 'string' },
    output: { type: 'string', short: 'o' },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}\nusage: ${USAGE['generate-signing-key']}`);
  if (values.version !== undefined && !/^[A-Za-z0-9_]+$/.test(values.version)) {
    throw new UsageError(`--version must be letters, digits and _ only, got ${JSON.stringify(values.version)}`);
  }
  const key = generateSigningKey(values.version);
  const text = formatSigningKeyFile([key]);
  if (values.output === undefined) {
    process.stdout.write(text);
    return;
  }
  // Never replace a key: a server whose key changes unannounced breaks its federation.
  if (existsSync(values.output)) throw new FailedError(`${values.output} exists; a signing key is never overwritten (move it away first)`);
  writeFileSync(values.output, text, { mode: 0o600, flag: 'wx' });
  process.stdout.write(`wrote ${key.keyId} to ${values.output} (public key ${key.publicKeyBase64})\n`);
}

/** The YAML entry that keeps a retired key verifiable by remote servers (old_verify_keys). */
function oldSigningKey(args: string[]): void {
  const { values, positionals } = parse('old-signing-key', args, { 'expired-ts': { type: 'string' } });
  if (positionals.length !== 1) throw new UsageError(`one key file\nusage: ${USAGE['old-signing-key']}`);
  const file = positionals[0]!;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new FailedError(`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let keys;
  try {
    keys = parseSigningKeyFile(text);
  } catch (err) {
    throw new FailedError(`${file}: not a signing key file: ${(err as Error).message}`);
  }
  const expiredTs = values['expired-ts'] === undefined ? Date.now() : Number(values['expired-ts']);
  if (!Number.isSafeInteger(expiredTs) || expiredTs < 0) throw new UsageError('--expired-ts must be milliseconds since the epoch');
  const lines = ['old_signing_keys:', ...keys.map((k) => `  "${k.keyId}": { key: "${k.publicKeyBase64}", expired_ts: ${expiredTs} }`)];
  process.stdout.write(`${lines.join('\n')}\n`);
}

// ---------------------------------------------------------------------------------------------
// migrate

async function runMigrations(args: string[]): Promise<void> {
  const { values, positionals } = parse('migrate', args, { 'database-url': { type: 'string' } });
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}\nusage: ${USAGE.migrate}`);
  const url = values['database-url'] ?? process.env.DATABASE_URL;
  if (!url) throw new UsageError(`no database: set DATABASE_URL or give --database-url\nusage: ${USAGE.migrate}`);
  if (!/^postgres(ql)?:\/\//.test(url)) throw new UsageError('the database URL must start with postgres:// or postgresql://');
  const [{ createDb, migrate }, migrations] = await Promise.all([import('@tessera/storage'), allMigrations()]);
  const db = await createDb({ url, poolSize: 2 });
  try {
    const { applied } = await migrate(db, migrations);
    if (applied.length === 0) process.stdout.write(`schema up to date (${migrations.length} migrations)\n`);
    else process.stdout.write(`applied ${applied.length} of ${migrations.length} migrations:\n${applied.map((id) => `  ${id}\n`).join('')}`);
  } catch (err) {
    throw new FailedError(`migration failed: ${(err as Error).message}`);
  } finally {
    await db.close();
  }
}

/** Every migration a service applies at startup (the same lists, deduplicated: two services may share one). */
async function allMigrations() {
  const services = await serviceDefinitions();
  const byId = new Map<string, { id: string; sql: string }>();
  for (const s of services) {
    for (const m of s.migrations ?? []) {
      const seen = byId.get(m.id);
      if (seen && seen.sql !== m.sql) throw new FailedError(`migration ${m.id} differs between services`);
      byId.set(m.id, m);
    }
  }
  return [...byId.values()];
}

async function serviceDefinitions() {
  const [client, federation, room, persistence, fanout] = await Promise.all([
    import('@tessera/client-api-service'),
    import('@tessera/federation-ingress-service'),
    import('@tessera/room-server-service'),
    import('@tessera/persistence-service'),
    import('@tessera/fanout-sender-service'),
  ]);
  return [
    client.clientApiService,
    federation.federationIngressService,
    room.roomServerService,
    persistence.persistenceService,
    fanout.fanoutSenderService,
  ];
}

// ---------------------------------------------------------------------------------------------
// health

/** Where each service answers on one machine with the default configuration (apps/<service>/src/main.ts). */
const DEFAULT_HEALTH_URLS: Array<[string, string]> = [
  ['client-api', 'http://localhost:8008/health/ready'],
  ['federation-ingress', 'http://localhost:8448/health/ready'],
  ['room-server', 'http://localhost:8101/health/ready'],
  ['persistence', 'http://localhost:8102/health/ready'],
  ['fanout-sender', 'http://localhost:8103/health/ready'],
];

interface HealthRow {
  service: string;
  url: string;
  status: 'ready' | 'not ready' | 'unreachable';
  http: string;
  detail: string;
}

async function probe(service: string, url: string, timeoutMs: number): Promise<HealthRow> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    let detail = '';
    try {
      const body = JSON.parse(text) as { checks?: Record<string, string> };
      const failing = Object.entries(body.checks ?? {}).filter(([, v]) => v !== 'ok');
      detail = failing.map(([k, v]) => `${k}: ${v}`).join('; ');
    } catch {
      detail = text.slice(0, 80);
    }
    return { service, url, status: res.status === 200 ? 'ready' : 'not ready', http: String(res.status), detail };
  } catch (err) {
    const cause = (err as Error).cause as { code?: string } | undefined;
    const reason = (err as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (cause?.code ?? (err as Error).message);
    return { service, url, status: 'unreachable', http: '-', detail: reason };
  }
}

function table(rows: HealthRow[]): string {
  const header: HealthRow = { service: 'SERVICE', url: 'URL', status: 'STATUS' as HealthRow['status'], http: 'HTTP', detail: 'DETAIL' };
  const cols: Array<keyof HealthRow> = ['service', 'status', 'http', 'url', 'detail'];
  const width = Object.fromEntries(cols.map((c) => [c, Math.max(...[header, ...rows].map((r) => r[c].length))]));
  return [header, ...rows].map((r) => cols.map((c) => r[c].padEnd(width[c]!)).join('  ').trimEnd()).join('\n') + '\n';
}

async function health(args: string[]): Promise<void> {
  const { values, positionals } = parse('health', args, { timeout: { type: 'string' } });
  const timeoutMs = values.timeout === undefined ? 3000 : Number(values.timeout);
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) throw new UsageError('--timeout must be a positive number of milliseconds');
  const targets: Array<[string, string]> = positionals.length === 0 ? DEFAULT_HEALTH_URLS : positionals.map(parseTarget);
  const rows = await Promise.all(targets.map(([service, url]) => probe(service, url, timeoutMs)));
  process.stdout.write(table(rows));
  const down = rows.filter((r) => r.status !== 'ready');
  if (down.length > 0) throw new FailedError(`${down.length} of ${rows.length} services not ready: ${down.map((r) => r.service).join(', ')}`);
}

/** NAME=URL; a URL without a path gets /health/ready. */
function parseTarget(arg: string): [string, string] {
  const eq = arg.indexOf('=');
  if (eq <= 0) throw new UsageError(`expected NAME=URL, got ${JSON.stringify(arg)}\nusage: ${USAGE.health}`);
  const name = arg.slice(0, eq);
  let url: URL;
  try {
    url = new URL(arg.slice(eq + 1));
  } catch {
    throw new UsageError(`${name}: not a URL: ${JSON.stringify(arg.slice(eq + 1))}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`${name}: the URL must be http or https`);
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/health/ready';
  return [name, url.toString()];
}

// ---------------------------------------------------------------------------------------------
// state-resolve

/** Runs tools/state-resolve.ts with the same Node and loader, passing its output and exit code through. */
function stateResolve(args: string[]): Promise<number> {
  const script = fileURLToPath(new URL('./state-resolve.ts', import.meta.url));
  if (!existsSync(script)) throw new FailedError(`${script} is missing`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, script, ...args], { cwd: REPO_ROOT, stdio: 'inherit' });
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

// ---------------------------------------------------------------------------------------------

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  switch (command) {
    case 'register-user':
      await registerUser(args);
      return 0;
    case 'generate-signing-key':
      generateKey(args);
      return 0;
    case 'old-signing-key':
      oldSigningKey(args);
      return 0;
    case 'migrate':
      await runMigrations(args);
      return 0;
    case 'health':
      await health(args);
      return 0;
    case 'state-resolve':
      return stateResolve(args);
    case 'create-registration-token':
      await createRegistrationToken(args);
      return 0;
    case 'list-registration-tokens':
      await listRegistrationTokens(args);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(usage());
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}\n${usage()}`);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      if (err instanceof UsageError) {
        process.stderr.write(`admin: ${err.message}\n`);
        process.exitCode = 2;
      } else if (err instanceof FailedError) {
        process.stderr.write(`admin: ${err.message}\n`);
        process.exitCode = 1;
      } else {
        process.stderr.write(`admin: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
        process.exitCode = 1;
      }
    },
  );
}
