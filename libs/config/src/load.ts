/**
 * Loads the configuration: YAML file, then environment overrides, then validation.
 *
 * Which file: `--config <path>` (or `--config=<path>`), else CONFIG_FILE, else ./homeserver.yaml
 * when it exists, else defaults only. Relative paths inside the file are resolved against the
 * file's folder (so a mounted config works from any working directory); paths from the
 * environment and defaults against the working directory.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { ClientApiConfig, HomeserverConfig, JwtLoginConfig, OldSigningKey, RateLimitConfig, SupportContact } from './config.js';
import { parseDuration } from './duration.js';
import { ConfigError } from './errors.js';

export interface LoadConfigOptions {
  argv?: readonly string[];
  env?: Readonly<Record<string, string | undefined>>;
  cwd?: string;
}

const TOP_LEVEL_KEYS = [
  'server_name',
  'data_dir',
  'signing_key_path',
  'old_signing_keys',
  'key_refresh_interval',
  'listeners',
  'tls_certificate_path',
  'tls_private_key_path',
  'database',
  'nats',
  'redis',
  'well_known',
  'enable_registration',
  'registration_shared_secret',
  'rate_limits',
  'access_tokens',
  'jwt_login',
  'max_request_size',
  'max_upload_size',
  'enable_authenticated_media',
  'push',
  'log_level',
  'registration_requires_token',
  'refreshable_access_token_lifetime',
  'refresh_token_lifetime',
  'nonrefreshable_access_token_lifetime',
  'session_lifetime',
  'url_preview_enabled',
  'url_preview_ip_range_whitelist',
  'url_preview_ip_range_blacklist',
  'url_preview_url_blacklist',
  'max_spider_size',
] as const;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Signature algorithms jose verifies for org.matrix.login.jwt (HS* take a shared secret, the others a PEM public key). */
const JWT_ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

/** HS256 access tokens need a secret of at least 256 bits (RFC 7518 section 3.2). */
const MIN_JWT_SECRET_LENGTH = 32;

const DEFAULT_RATE_LIMITS = { perUser: { perSecond: 10, burst: 50 }, perIp: { perSecond: 20, burst: 100 } };

/** Finds the config file path from argv / env / the working directory; undefined when none. */
export function findConfigFile(options: LoadConfigOptions = {}): string | undefined {
  const argv = options.argv ?? process.argv.slice(2);
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--config' || arg === '-c') {
      const next = argv[i + 1];
      if (!next) throw new ConfigError('command line', '--config', 'needs a file path after it');
      return resolve(cwd, next);
    }
    if (arg.startsWith('--config=')) return resolve(cwd, arg.slice('--config='.length));
  }
  if (env.CONFIG_FILE) return resolve(cwd, env.CONFIG_FILE);
  const fallback = resolve(cwd, 'homeserver.yaml');
  return existsSync(fallback) ? fallback : undefined;
}

export function loadConfig(options: LoadConfigOptions = {}): HomeserverConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const file = findConfigFile(options);
  const raw = file ? readYaml(file) : {};
  return buildConfig(raw, { file, env, cwd });
}

function readYaml(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, '(file)', `cannot be read: ${(err as Error).message}`);
  }
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) {
    const first = doc.errors[0];
    const where = first.linePos?.[0] ? `line ${first.linePos[0].line}, column ${first.linePos[0].col}` : '(yaml)';
    throw new ConfigError(file, where, `is not valid YAML: ${first.message.split('\n')[0]}`);
  }
  const value = doc.toJS() as unknown;
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(file, '(top level)', 'must be a mapping of keys to values');
  }
  return value as Record<string, unknown>;
}

interface BuildContext {
  file?: string;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
}

/** Builds and validates a config from already-parsed YAML (exported for tests and tools). */
export function buildConfig(raw: Record<string, unknown>, ctx: BuildContext): HomeserverConfig {
  const source = ctx.file ?? 'configuration';
  const fileDir = ctx.file ? dirname(ctx.file) : ctx.cwd;
  const { env } = ctx;
  const fail = (field: string, problem: string): never => {
    throw new ConfigError(source, field, problem);
  };
  const failEnv = (name: string, problem: string): never => {
    throw new ConfigError('environment', name, problem);
  };

  for (const key of Object.keys(raw)) {
    if (!(TOP_LEVEL_KEYS as readonly string[]).includes(key)) {
      fail(key, `is not a known setting (known: ${TOP_LEVEL_KEYS.join(', ')})`);
    }
  }

  // Readers for the file's values: each names the field on failure.
  const str = (obj: Record<string, unknown>, key: string, field: string): string | undefined => {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' || v.trim() === '') fail(field, `must be a non-empty string, got ${JSON.stringify(v)}`);
    return v as string;
  };
  const map = (obj: Record<string, unknown>, key: string, field: string, allowed: readonly string[]): Record<string, unknown> => {
    const v = obj[key];
    if (v === undefined || v === null) return {};
    if (typeof v !== 'object' || Array.isArray(v)) fail(field, 'must be a mapping');
    for (const k of Object.keys(v as object)) {
      if (!allowed.includes(k)) fail(`${field}.${k}`, `is not a known setting (known: ${allowed.join(', ')})`);
    }
    return v as Record<string, unknown>;
  };
  const bool = (obj: Record<string, unknown>, key: string, field: string): boolean | undefined => {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') fail(field, `must be true or false, got ${JSON.stringify(v)}`);
    return v as boolean;
  };
  const port = (obj: Record<string, unknown>, key: string, field: string): number | undefined => {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    if (!isPort(v)) fail(field, `must be a port number between 1 and 65535, got ${JSON.stringify(v)}`);
    return v as number;
  };
  /** A list of CIDRs: from the environment as a comma-separated string, else from the file as a list. */
  const cidrList = (envName: string, value: unknown, field: string): string[] => {
    const fromEnv = env[envName];
    if (fromEnv !== undefined) return fromEnv.split(',').map((c) => c.trim()).filter((c) => c !== '');
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value) || !value.every((c) => typeof c === 'string' && c.trim() !== '')) {
      fail(field, `must be a list of CIDR strings (e.g. ["10.0.0.0/8"]), got ${JSON.stringify(value)}`);
    }
    return (value as string[]).map((c) => c.trim());
  };
  /** A size in bytes, or a number with K, M or G (1024-based, as Synapse's "50M"): the environment's, else the file's. */
  const size = (envName: string, value: unknown, field: string, fallback: number, min: number, example: string): number => {
    const v = env[envName] ?? value;
    if (v === undefined || v === '') return fallback;
    const n = parseSize(v);
    if (n === undefined || n < min) {
      const problem = `must be a number of bytes (optionally with K, M or G, e.g. "${example}") of at least ${min}, got ${JSON.stringify(v)}`;
      if (env[envName] !== undefined) failEnv(envName, problem);
      fail(field, problem);
    }
    return n!;
  };
  const filePath = (p: string | undefined) => (p === undefined ? undefined : resolve(fileDir, p));
  const envPath = (name: string) => (env[name] ? resolve(ctx.cwd, env[name]!) : undefined);
  const envPort = (name: string): number | undefined => {
    const v = env[name];
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    if (!/^\d+$/.test(v) || !isPort(n)) failEnv(name, `must be a port number between 1 and 65535, got ${JSON.stringify(v)}`);
    return n;
  };
  const envBool = (name: string): boolean | undefined => {
    const v = env[name];
    if (v === undefined || v === '') return undefined;
    if (/^(1|true|yes)$/i.test(v)) return true;
    if (/^(0|false|no)$/i.test(v)) return false;
    return failEnv(name, `must be true or false, got ${JSON.stringify(v)}`);
  };
  const envUrl = (name: string, protocols: string[]): string | undefined => {
    const v = env[name];
    if (v === undefined || v === '') return undefined;
    if (!isUrl(v, protocols)) failEnv(name, `must be a ${protocols.join(' or ')} URL, got ${JSON.stringify(v)}`);
    return v;
  };
  const fileUrl = (obj: Record<string, unknown>, key: string, field: string, protocols: string[]): string | undefined => {
    const v = str(obj, key, field);
    if (v !== undefined && !isUrl(v, protocols)) fail(field, `must be a ${protocols.join(' or ')} URL, got ${JSON.stringify(v)}`);
    return v;
  };

  // server_name
  let serverName = env.SERVER_NAME || str(raw, 'server_name', 'server_name') || 'localhost';
  if (!isServerName(serverName)) {
    const problem = `${JSON.stringify(serverName)} is not a valid server name (a DNS name, IPv4 address or [IPv6] address, with an optional :port)`;
    if (env.SERVER_NAME) failEnv('SERVER_NAME', problem);
    fail('server_name', problem);
  }
  serverName = serverName.toString();

  const dataDir = envPath('DATA_DIR') ?? filePath(str(raw, 'data_dir', 'data_dir')) ?? resolve(ctx.cwd, 'data');
  const signingKeyPath =
    envPath('SIGNING_KEY_PATH') ?? filePath(str(raw, 'signing_key_path', 'signing_key_path')) ?? resolve(dataDir, 'signing.key');

  // old_signing_keys: { "ed25519:abc": { key: "...", expired_ts: 123 } } as Synapse
  const oldSigningKeys: Record<string, OldSigningKey> = {};
  const oldRaw = raw.old_signing_keys;
  if (oldRaw !== undefined && oldRaw !== null) {
    if (typeof oldRaw !== 'object' || Array.isArray(oldRaw)) fail('old_signing_keys', 'must be a mapping of key ids to {key, expired_ts}');
    for (const keyId of Object.keys(oldRaw as Record<string, unknown>)) {
      const field = `old_signing_keys.${keyId}`;
      if (!/^ed25519:[a-zA-Z0-9_]+$/.test(keyId)) fail(field, 'key id must look like ed25519:<version> (letters, digits, underscore)');
      const e = map(oldRaw as Record<string, unknown>, keyId, field, ['key', 'expired_ts']);
      const key = str(e, 'key', `${field}.key`);
      if (!key || !/^[A-Za-z0-9+/]{43}$/.test(key)) fail(`${field}.key`, 'must be an unpadded base64 Ed25519 public key (43 characters)');
      const expiredTs = e.expired_ts;
      if (typeof expiredTs !== 'number' || !Number.isSafeInteger(expiredTs) || expiredTs < 0) {
        fail(`${field}.expired_ts`, 'must be a timestamp in milliseconds since the epoch');
      }
      oldSigningKeys[keyId] = { key: key!, expiredTs: expiredTs as number };
    }
  }

  let keyValidityMs = 86_400_000; // Synapse's default key_refresh_interval: one day
  if (raw.key_refresh_interval !== undefined) {
    const d = parseDuration(raw.key_refresh_interval);
    if (d === undefined) fail('key_refresh_interval', 'must be a duration such as "1d", "12h" or a number of milliseconds');
    keyValidityMs = d!;
  }

  // listeners
  const listeners = map(raw, 'listeners', 'listeners', ['client', 'federation', 'health']);
  const lc = map(listeners, 'client', 'listeners.client', ['bind_address', 'port']);
  const lf = map(listeners, 'federation', 'listeners.federation', ['bind_address', 'port']);
  const lh = map(listeners, 'health', 'listeners.health', ['bind_address', 'port']);
  const bindEnv = env.BIND_ADDRESS || undefined;
  const bind = (obj: Record<string, unknown>, field: string) => bindEnv ?? str(obj, 'bind_address', `${field}.bind_address`) ?? '127.0.0.1';

  const certFile = envPath('TLS_CERTIFICATE_PATH') ?? filePath(str(raw, 'tls_certificate_path', 'tls_certificate_path'));
  const keyFile = envPath('TLS_PRIVATE_KEY_PATH') ?? filePath(str(raw, 'tls_private_key_path', 'tls_private_key_path'));
  if ((certFile === undefined) !== (keyFile === undefined)) {
    fail(certFile ? 'tls_private_key_path' : 'tls_certificate_path', 'TLS needs both tls_certificate_path and tls_private_key_path');
  }
  for (const [field, p] of [['tls_certificate_path', certFile], ['tls_private_key_path', keyFile]] as const) {
    if (p !== undefined && !existsSync(p)) fail(field, `file ${p} does not exist`);
  }

  // database
  const db = map(raw, 'database', 'database', ['url', 'data_dir']);
  const databaseUrl = envUrl('DATABASE_URL', ['postgres', 'postgresql']) ?? fileUrl(db, 'url', 'database.url', ['postgres', 'postgresql']);
  const dbDir = filePath(str(db, 'data_dir', 'database.data_dir')) ?? resolve(dataDir, 'db');

  const nats = map(raw, 'nats', 'nats', ['url', 'prefix']);
  const natsUrl = envUrl('NATS_URL', ['nats', 'tls', 'ws', 'wss']) ?? fileUrl(nats, 'url', 'nats.url', ['nats', 'tls', 'ws', 'wss']);
  const prefix = env.BUS_PREFIX || str(nats, 'prefix', 'nats.prefix') || 'tessera';
  if (!/^[A-Za-z0-9_-]+$/.test(prefix)) {
    const problem = `must be letters, digits, '-' or '_' (a NATS subject token), got ${JSON.stringify(prefix)}`;
    if (env.BUS_PREFIX) failEnv('BUS_PREFIX', problem);
    fail('nats.prefix', problem);
  }

  const redis = map(raw, 'redis', 'redis', ['url', 'key_prefix']);
  const redisUrl = envUrl('REDIS_URL', ['redis', 'rediss']) ?? fileUrl(redis, 'url', 'redis.url', ['redis', 'rediss']);
  const redisKeyPrefix = env.REDIS_KEY_PREFIX || str(redis, 'key_prefix', 'redis.key_prefix');
  if (redisKeyPrefix !== undefined && /\s/.test(redisKeyPrefix)) {
    const problem = `must not contain spaces, got ${JSON.stringify(redisKeyPrefix)}`;
    if (env.REDIS_KEY_PREFIX) failEnv('REDIS_KEY_PREFIX', problem);
    fail('redis.key_prefix', problem);
  }

  // well_known: served only when configured
  const wk = map(raw, 'well_known', 'well_known', ['client', 'server', 'support']);
  const wkc = map(wk, 'client', 'well_known.client', ['base_url', 'identity_server_base_url']);
  const wks = map(wk, 'server', 'well_known.server', ['delegation']);
  const clientBaseUrl =
    envUrl('WELL_KNOWN_CLIENT_BASE_URL', ['http', 'https']) ?? fileUrl(wkc, 'base_url', 'well_known.client.base_url', ['http', 'https']);
  const identityServer = fileUrl(wkc, 'identity_server_base_url', 'well_known.client.identity_server_base_url', ['http', 'https']);
  if (identityServer && !clientBaseUrl) fail('well_known.client.base_url', 'is required when identity_server_base_url is set');
  const delegation = env.WELL_KNOWN_SERVER || str(wks, 'delegation', 'well_known.server.delegation');
  if (delegation !== undefined && !isServerName(delegation)) {
    const problem = `${JSON.stringify(delegation)} is not a valid host[:port] for m.server`;
    if (env.WELL_KNOWN_SERVER) failEnv('WELL_KNOWN_SERVER', problem);
    fail('well_known.server.delegation', problem);
  }

  // well_known.support: contacts and/or a support page (spec: at least one of them).
  const wksu = map(wk, 'support', 'well_known.support', ['contacts', 'support_page']);
  const supportPage = fileUrl(wksu, 'support_page', 'well_known.support.support_page', ['http', 'https']);
  let supportContacts: SupportContact[] | undefined;
  if (wksu.contacts !== undefined && wksu.contacts !== null) {
    if (!Array.isArray(wksu.contacts)) fail('well_known.support.contacts', 'must be a list of {role, matrix_id, email_address}');
    supportContacts = (wksu.contacts as unknown[]).map((entry, i) => {
      const field = `well_known.support.contacts[${i}]`;
      const c = map({ entry }, 'entry', field, ['role', 'matrix_id', 'email_address']);
      const role = str(c, 'role', `${field}.role`);
      if (role === undefined) fail(`${field}.role`, 'is required (m.role.admin, m.role.security or a namespaced role)');
      const matrixId = str(c, 'matrix_id', `${field}.matrix_id`);
      if (matrixId !== undefined && !/^@[^:\s]+:\S+$/.test(matrixId)) fail(`${field}.matrix_id`, `must be a Matrix user id such as @admin:example.org, got ${JSON.stringify(matrixId)}`);
      const emailAddress = str(c, 'email_address', `${field}.email_address`);
      if (emailAddress !== undefined && !/^[^@\s]+@[^@\s]+$/.test(emailAddress)) fail(`${field}.email_address`, `must be an email address, got ${JSON.stringify(emailAddress)}`);
      if (matrixId === undefined && emailAddress === undefined) fail(field, 'needs matrix_id or email_address');
      return { role: role!, matrixId, emailAddress };
    });
    if (supportContacts.length === 0 && supportPage === undefined) fail('well_known.support.contacts', 'must list at least one contact when support_page is not set');
  }
  if (wk.support !== undefined && wk.support !== null && supportContacts === undefined && supportPage === undefined) {
    fail('well_known.support', 'needs contacts or support_page');
  }

  const enableRegistration = envBool('ENABLE_REGISTRATION') ?? bool(raw, 'enable_registration', 'enable_registration') ?? false;
  const registrationSharedSecret = env.REGISTRATION_SHARED_SECRET || str(raw, 'registration_shared_secret', 'registration_shared_secret');
  const registrationRequiresToken = envBool('REGISTRATION_REQUIRES_TOKEN') ?? bool(raw, 'registration_requires_token', 'registration_requires_token') ?? false;

  // rate_limits: token buckets per user and per IP; enabled: false turns both off.
  const rl = map(raw, 'rate_limits', 'rate_limits', ['enabled', 'per_user', 'per_ip']);
  const rateLimitsEnabled = envBool('RATE_LIMITS_ENABLED') ?? bool(rl, 'enabled', 'rate_limits.enabled') ?? true;
  const envNumber = (name: string, min: number, integer = false): number | undefined => {
    const v = env[name];
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    if (!/^\d+(\.\d+)?$/.test(v) || n < min || (integer && !Number.isInteger(n))) failEnv(name, `must be ${integer ? 'a whole number' : 'a number'} of at least ${min}, got ${JSON.stringify(v)}`);
    return n;
  };
  const fileNumber = (obj: Record<string, unknown>, key: string, field: string, min: number, integer = false): number | undefined => {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) {
      fail(field, `must be ${integer ? 'a whole number' : 'a number'} of at least ${min}, got ${JSON.stringify(v)}`);
    }
    return v as number;
  };
  const bucket = (key: 'per_user' | 'per_ip', envName: string, defaults: RateLimitConfig): RateLimitConfig => {
    const field = `rate_limits.${key}`;
    const b = map(rl, key, field, ['per_second', 'burst']);
    const perSecond =
      envNumber(`${envName}_PER_SECOND`, 0) ?? fileNumber(b, 'per_second', `${field}.per_second`, 0) ?? defaults.perSecond;
    const burst = envNumber(`${envName}_BURST`, 1, true) ?? fileNumber(b, 'burst', `${field}.burst`, 1, true) ?? defaults.burst;
    return rateLimitsEnabled ? { perSecond, burst } : { perSecond: 0, burst };
  };
  const rateLimits = {
    perUser: bucket('per_user', 'RATE_LIMIT_PER_USER', DEFAULT_RATE_LIMITS.perUser),
    perIp: bucket('per_ip', 'RATE_LIMIT_PER_IP', DEFAULT_RATE_LIMITS.perIp),
  };

  // access_tokens: opaque (default) or JWT signed with a secret of this server.
  const at = map(raw, 'access_tokens', 'access_tokens', ['format', 'jwt_secret']);
  const accessTokenFormat = env.ACCESS_TOKEN_FORMAT || str(at, 'format', 'access_tokens.format') || 'opaque';
  if (accessTokenFormat !== 'opaque' && accessTokenFormat !== 'jwt') {
    const problem = `must be opaque or jwt, got ${JSON.stringify(accessTokenFormat)}`;
    if (env.ACCESS_TOKEN_FORMAT) failEnv('ACCESS_TOKEN_FORMAT', problem);
    fail('access_tokens.format', problem);
  }
  const jwtAccessTokenSecret = env.ACCESS_TOKEN_JWT_SECRET || str(at, 'jwt_secret', 'access_tokens.jwt_secret');
  if (accessTokenFormat === 'jwt' && (jwtAccessTokenSecret === undefined || jwtAccessTokenSecret.length < MIN_JWT_SECRET_LENGTH)) {
    const problem = `must be set to a secret of at least ${MIN_JWT_SECRET_LENGTH} characters when access_tokens.format is jwt`;
    if (env.ACCESS_TOKEN_JWT_SECRET) failEnv('ACCESS_TOKEN_JWT_SECRET', problem);
    fail('access_tokens.jwt_secret', problem);
  }

  // jwt_login: offered only when a secret (or public key) is set.
  const jl = map(raw, 'jwt_login', 'jwt_login', ['secret', 'algorithm', 'issuer', 'audience', 'subject_claim']);
  const jwtLoginSecret = env.JWT_LOGIN_SECRET || str(jl, 'secret', 'jwt_login.secret');
  let jwtLogin: JwtLoginConfig | undefined;
  if (jwtLoginSecret !== undefined) {
    const algorithm = env.JWT_LOGIN_ALGORITHM || str(jl, 'algorithm', 'jwt_login.algorithm') || 'HS256';
    if (!(JWT_ALGORITHMS as readonly string[]).includes(algorithm)) {
      const problem = `must be one of ${JWT_ALGORITHMS.join(', ')}, got ${JSON.stringify(algorithm)}`;
      if (env.JWT_LOGIN_ALGORITHM) failEnv('JWT_LOGIN_ALGORITHM', problem);
      fail('jwt_login.algorithm', problem);
    }
    if (!algorithm.startsWith('HS') && !jwtLoginSecret.includes('-----BEGIN PUBLIC KEY-----')) {
      const problem = `must be a PEM public key (-----BEGIN PUBLIC KEY-----) for ${algorithm}`;
      if (env.JWT_LOGIN_SECRET) failEnv('JWT_LOGIN_SECRET', problem);
      fail('jwt_login.secret', problem);
    }
    jwtLogin = {
      secret: jwtLoginSecret,
      algorithm,
      issuer: str(jl, 'issuer', 'jwt_login.issuer'),
      audience: str(jl, 'audience', 'jwt_login.audience'),
      subjectClaim: str(jl, 'subject_claim', 'jwt_login.subject_claim') ?? 'sub',
    };
  } else if (Object.keys(jl).length > 0) {
    fail('jwt_login.secret', 'is required when jwt_login is set');
  }
  const clientApi: ClientApiConfig = {
    rateLimits,
    accessTokenFormat: accessTokenFormat as ClientApiConfig['accessTokenFormat'],
    jwtAccessTokenSecret: accessTokenFormat === 'jwt' ? jwtAccessTokenSecret : undefined,
    jwtLogin,
  };
  // refreshable_access_token_lifetime: how long an access token issued with a refresh token lives (Synapse's default: 5m).
  if (raw.refreshable_access_token_lifetime !== undefined && raw.refreshable_access_token_lifetime !== null) {
    const d = parseDuration(raw.refreshable_access_token_lifetime);
    if (d === undefined) fail('refreshable_access_token_lifetime', 'must be a duration such as "5m", "1h" or a number of milliseconds');
    clientApi.refreshableAccessTokenLifetimeMs = d;
  }
  // refresh_token_lifetime: how long a refresh token may be used (Synapse's default: until it is used).
  if (raw.refresh_token_lifetime !== undefined && raw.refresh_token_lifetime !== null) {
    const d = parseDuration(raw.refresh_token_lifetime);
    if (d === undefined) fail('refresh_token_lifetime', 'must be a duration such as "1d", "30d" or a number of milliseconds');
    clientApi.refreshTokenLifetimeMs = d;
  }
  // nonrefreshable_access_token_lifetime: how long an access token issued without a refresh token lives (Synapse's default: forever).
  if (raw.nonrefreshable_access_token_lifetime !== undefined && raw.nonrefreshable_access_token_lifetime !== null) {
    const d = parseDuration(raw.nonrefreshable_access_token_lifetime);
    if (d === undefined) fail('nonrefreshable_access_token_lifetime', 'must be a duration such as "1h", "7d" or a number of milliseconds');
    clientApi.nonrefreshableAccessTokenLifetimeMs = d;
  }
  // session_lifetime: how long a login lasts, refreshes included (Synapse's default: forever). As
  // Synapse, no token lifetime set beside it may exceed it.
  if (raw.session_lifetime !== undefined && raw.session_lifetime !== null) {
    const d = parseDuration(raw.session_lifetime) ?? fail('session_lifetime', 'must be a duration such as "30d", "1y" or a number of milliseconds');
    clientApi.sessionLifetimeMs = d;
    const longer = (
      [
        ['refreshable_access_token_lifetime', clientApi.refreshableAccessTokenLifetimeMs],
        ['nonrefreshable_access_token_lifetime', clientApi.nonrefreshableAccessTokenLifetimeMs],
        ['refresh_token_lifetime', clientApi.refreshTokenLifetimeMs],
      ] as const
    ).find(([, ms]) => ms !== undefined && ms > d);
    if (longer) fail(longer[0], `must not exceed session_lifetime (${JSON.stringify(raw.session_lifetime)})`);
  }

  let maxRequestSize = 1024 * 1024;
  const mrs = env.MAX_REQUEST_SIZE ?? raw.max_request_size;
  if (mrs !== undefined && mrs !== '') {
    const n = typeof mrs === 'string' && /^\d+$/.test(mrs) ? Number(mrs) : mrs;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1024) {
      const problem = `must be a number of bytes of at least 1024, got ${JSON.stringify(mrs)}`;
      if (env.MAX_REQUEST_SIZE !== undefined) failEnv('MAX_REQUEST_SIZE', problem);
      fail('max_request_size', problem);
    }
    maxRequestSize = n as number;
  }

  const maxUploadSize = size('MAX_UPLOAD_SIZE', raw.max_upload_size, 'max_upload_size', 50 * 1024 * 1024, 1, '50M');
  const enableAuthenticatedMedia = envBool('ENABLE_AUTHENTICATED_MEDIA') ?? bool(raw, 'enable_authenticated_media', 'enable_authenticated_media') ?? true;

  // push.allowed_cidrs: checked as CIDRs by client-api at start.
  const pushAllowedCidrs = cidrList('PUSH_ALLOWED_CIDRS', map(raw, 'push', 'push', ['allowed_cidrs']).allowed_cidrs, 'push.allowed_cidrs');

  // URL previews: off by default (Synapse's url_preview_enabled); the whitelist as push.allowed_cidrs.
  const urlPreviewEnabled = envBool('URL_PREVIEW_ENABLED') ?? bool(raw, 'url_preview_enabled', 'url_preview_enabled') ?? false;
  const urlPreviewAllowedCidrs = cidrList('URL_PREVIEW_IP_RANGE_WHITELIST', raw.url_preview_ip_range_whitelist, 'url_preview_ip_range_whitelist');
  const urlPreviewMaxSize = size('MAX_SPIDER_SIZE', raw.max_spider_size, 'max_spider_size', 10 * 1024 * 1024, 1024, '10M');
  // Refused on top of the special-purpose ranges (always refused here, unlike Synapse where this list replaces them); the whitelist wins.
  const urlPreviewBlockedCidrs = cidrList('URL_PREVIEW_IP_RANGE_BLACKLIST', raw.url_preview_ip_range_blacklist, 'url_preview_ip_range_blacklist');
  const urlPreviewUrlBlacklist = urlBlacklist(raw.url_preview_url_blacklist, fail);

  const logLevel = (env.LOG_LEVEL || str(raw, 'log_level', 'log_level') || 'info') as HomeserverConfig['logLevel'];
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    const problem = `must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`;
    if (env.LOG_LEVEL) failEnv('LOG_LEVEL', problem);
    fail('log_level', problem);
  }

  return {
    configFile: ctx.file,
    serverName,
    dataDir,
    signingKeyPath,
    oldSigningKeys,
    keyValidityMs,
    listeners: {
      client: { bindAddress: bind(lc, 'listeners.client'), port: envPort('CLIENT_PORT') ?? port(lc, 'port', 'listeners.client.port') ?? 8008 },
      federation: {
        bindAddress: bind(lf, 'listeners.federation'),
        port: envPort('FEDERATION_PORT') ?? port(lf, 'port', 'listeners.federation.port') ?? 8448,
        tls: certFile && keyFile ? { certificatePath: certFile, privateKeyPath: keyFile } : undefined,
      },
      health: { bindAddress: bind(lh, 'listeners.health'), port: envPort('HEALTH_PORT') ?? port(lh, 'port', 'listeners.health.port') },
    },
    database: { url: databaseUrl, dataDir: dbDir },
    nats: { url: natsUrl, prefix },
    redis: { url: redisUrl, keyPrefix: redisKeyPrefix },
    wellKnown: {
      client: clientBaseUrl ? { baseUrl: clientBaseUrl, identityServerBaseUrl: identityServer } : undefined,
      server: delegation ? { delegation } : undefined,
      support: supportContacts !== undefined || supportPage !== undefined ? { contacts: supportContacts, supportPage } : undefined,
    },
    registration: { enableRegistration, registrationSharedSecret, registrationRequiresToken },
    clientApi,
    maxRequestSize,
    media: { maxUploadSize, enableAuthenticatedMedia },
    push: { allowedCidrs: pushAllowedCidrs },
    logLevel,
    urlPreview: {
      enabled: urlPreviewEnabled,
      allowedCidrs: urlPreviewAllowedCidrs,
      maxSize: urlPreviewMaxSize,
      blockedCidrs: urlPreviewBlockedCidrs,
      urlBlacklist: urlPreviewUrlBlacklist,
    },
  };
}

/** The URL components a url_preview_url_blacklist entry may name (Python's urlsplit, plus urlparse's params). */
const URL_BLACKLIST_COMPONENTS = ['scheme', 'netloc', 'path', 'params', 'query', 'fragment', 'username', 'password', 'hostname', 'port'];

/**
 * url_preview_url_blacklist: a list of maps from URL component to a glob, or a regular
 * expression when it starts with "^" (checked here to compile). Numbers (a port) are read as text.
 */
function urlBlacklist(value: unknown, fail: (field: string, problem: string) => never): Array<Record<string, string>> {
  const field = 'url_preview_url_blacklist';
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) fail(field, `must be a list of maps from URL component to pattern (e.g. [{ netloc: "*.example.com" }]), got ${JSON.stringify(value)}`);
  return (value as unknown[]).map((entry, i) => {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      fail(`${field}[${i}]`, `must be a map from URL component to pattern, got ${JSON.stringify(entry)}`);
    }
    const out: Record<string, string> = {};
    for (const [key, pattern] of Object.entries(entry as Record<string, unknown>)) {
      if (!URL_BLACKLIST_COMPONENTS.includes(key)) fail(`${field}[${i}].${key}`, `is not a URL component (known: ${URL_BLACKLIST_COMPONENTS.join(', ')})`);
      if (typeof pattern !== 'string' && !(typeof pattern === 'number' && Number.isInteger(pattern))) {
        fail(`${field}[${i}].${key}`, `must be a glob or a regular expression starting with "^", got ${JSON.stringify(pattern)}`);
      }
      const text = String(pattern);
      if (text.startsWith('^')) {
        try {
          new RegExp(text);
        } catch (err) {
          fail(`${field}[${i}].${key}`, `is not a valid regular expression: ${(err as Error).message}`);
        }
      }
      out[key] = text;
    }
    return out;
  });
}

/** A size in bytes: an integer, or a string of digits with an optional K, M or G suffix (1024-based). */
function parseSize(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^(\d+)\s*([KMG]?)$/i.exec(v.trim());
  if (!m) return undefined;
  const n = Number(m[1]) * { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
  return Number.isSafeInteger(n) ? n : undefined;
}

function isPort(v: unknown): boolean {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535;
}

function isUrl(v: string, protocols: string[]): boolean {
  try {
    const u = new URL(v);
    return protocols.includes(u.protocol.replace(/:$/, ''));
  } catch {
    return false;
  }
}

/**
 * The spec's server name grammar (appendix "Server Name"): hostname [":" port], where hostname
 * is an IPv4 literal, a bracketed IPv6 literal, or a DNS name of letters, digits, '-' and '.'.
 */
export function isServerName(name: string): boolean {
  const m = /^(\[[0-9A-Fa-f:.]{2,45}\]|[0-9A-Za-z.-]{1,255})(?::(\d{1,5}))?$/.exec(name);
  if (!m) return false;
  if (m[2] !== undefined && !isPort(Number(m[2]))) return false;
  const host = m[1];
  if (host.startsWith('[')) return host.slice(1, -1).includes(':');
  if (/^\d+\.\d+\.\d+\.\d+$/.test(host)) return host.split('.').every((o) => Number(o) <= 255);
  return !host.startsWith('.') && !host.endsWith('.') && !host.includes('..');
}
