import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildConfig, ConfigError, findConfigFile, isServerName, loadConfig, parseDuration } from './index.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'tessera-config-'));
}

function writeConfig(text: string): { dir: string; file: string } {
  const dir = tempDir();
  const file = join(dir, 'homeserver.yaml');
  writeFileSync(file, text);
  return { dir, file };
}

/** Runs loadConfig and returns the ConfigError it throws (fails the test if none). */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('gives newcomer defaults without a file', () => {
    const cwd = tempDir();
    const c = loadConfig({ argv: [], env: {}, cwd });
    expect(c.configFile).toBeUndefined();
    expect(c.serverName).toBe('localhost');
    expect(c.listeners.client).toEqual({ bindAddress: '127.0.0.1', port: 8008 });
    expect(c.listeners.federation).toEqual({ bindAddress: '127.0.0.1', port: 8448, tls: undefined });
    expect(c.dataDir).toBe(join(cwd, 'data'));
    expect(c.signingKeyPath).toBe(join(cwd, 'data', 'signing.key'));
    expect(c.database).toEqual({ url: undefined, dataDir: join(cwd, 'data', 'db') });
    expect(c.nats).toEqual({ url: undefined, prefix: 'tessera' });
    expect(c.wellKnown).toEqual({ client: undefined, server: undefined });
    expect(c.registration.enableRegistration).toBe(false);
    expect(c.keyValidityMs).toBe(86_400_000);
  });

  it('reads ./homeserver.yaml from the working directory when present', () => {
    const { dir, file } = writeConfig('server_name: example.org\n');
    expect(findConfigFile({ argv: [], env: {}, cwd: dir })).toBe(file);
    expect(loadConfig({ argv: [], env: {}, cwd: dir }).serverName).toBe('example.org');
  });

  it('prefers --config over CONFIG_FILE', () => {
    const a = writeConfig('server_name: a.example\n');
    const b = writeConfig('server_name: b.example\n');
    const cwd = tempDir();
    expect(loadConfig({ argv: ['--config', a.file], env: { CONFIG_FILE: b.file }, cwd }).serverName).toBe('a.example');
    expect(loadConfig({ argv: [`--config=${a.file}`], env: {}, cwd }).serverName).toBe('a.example');
    expect(loadConfig({ argv: [], env: { CONFIG_FILE: b.file }, cwd }).serverName).toBe('b.example');
  });

  it('reads every section and resolves relative paths against the file folder', () => {
    const { dir, file } = writeConfig(`
server_name: matrix.example.org:8448
data_dir: ./state
signing_key_path: keys/hs.key
old_signing_keys:
  "ed25519:old1": { key: "${'A'.repeat(43)}", expired_ts: 1700000000000 }
key_refresh_interval: 12h
listeners:
  client: { bind_address: 0.0.0.0, port: 18008 }
  federation: { port: 18448 }
  health: { port: 9100 }
database: { url: "postgres://u@db:5432/hs" }
nats: { url: "nats://nats:4222", prefix: prod }
redis: { url: "redis://redis:6379" }
well_known:
  client: { base_url: "https://matrix.example.org" }
  server: { delegation: "matrix.example.org:443" }
enable_registration: true
registration_shared_secret: s3cret
max_request_size: 2097152
log_level: warn
`);
    const c = loadConfig({ argv: ['--config', file], env: {}, cwd: tempDir() });
    expect(c.serverName).toBe('matrix.example.org:8448');
    expect(c.dataDir).toBe(join(dir, 'state'));
    expect(c.signingKeyPath).toBe(join(dir, 'keys', 'hs.key'));
    expect(c.oldSigningKeys).toEqual({ 'ed25519:old1': { key: 'A'.repeat(43), expiredTs: 1700000000000 } });
    expect(c.keyValidityMs).toBe(12 * 3_600_000);
    expect(c.listeners.client).toEqual({ bindAddress: '0.0.0.0', port: 18008 });
    expect(c.listeners.federation.port).toBe(18448);
    expect(c.listeners.health.port).toBe(9100);
    expect(c.database.url).toBe('postgres://u@db:5432/hs');
    expect(c.nats).toEqual({ url: 'nats://nats:4222', prefix: 'prod' });
    expect(c.redis.url).toBe('redis://redis:6379');
    expect(c.wellKnown.client).toEqual({ baseUrl: 'https://matrix.example.org', identityServerBaseUrl: undefined });
    expect(c.wellKnown.server).toEqual({ delegation: 'matrix.example.org:443' });
    expect(c.registration).toEqual({ enableRegistration: true, registrationSharedSecret: 's3cret', registrationRequiresToken: false });
    expect(c.maxRequestSize).toBe(2097152);
    expect(c.logLevel).toBe('warn');
  });

  it('lets the environment override the file', () => {
    const { file } = writeConfig('server_name: file.example\nlisteners: { client: { port: 1 } }\n');
    const cwd = tempDir();
    const c = loadConfig({
      argv: ['--config', file],
      cwd,
      env: {
        SERVER_NAME: 'env.example',
        DATABASE_URL: 'postgresql://x@h/db',
        NATS_URL: 'nats://127.0.0.1:4222',
        REDIS_URL: 'redis://127.0.0.1:6379',
        SIGNING_KEY_PATH: 'k/signing.key',
        CLIENT_PORT: '28008',
        FEDERATION_PORT: '28448',
        HEALTH_PORT: '29000',
        DATA_DIR: 'd',
        BUS_PREFIX: 'run42',
        BIND_ADDRESS: '0.0.0.0',
        ENABLE_REGISTRATION: 'true',
        WELL_KNOWN_SERVER: 'fed.example:443',
      },
    });
    expect(c.serverName).toBe('env.example');
    expect(c.database.url).toBe('postgresql://x@h/db');
    expect(c.database.dataDir).toBe(join(cwd, 'd', 'db'));
    expect(c.nats).toEqual({ url: 'nats://127.0.0.1:4222', prefix: 'run42' });
    expect(c.redis.url).toBe('redis://127.0.0.1:6379');
    expect(c.signingKeyPath).toBe(join(cwd, 'k', 'signing.key'));
    expect(c.listeners.client).toEqual({ bindAddress: '0.0.0.0', port: 28008 });
    expect(c.listeners.federation.port).toBe(28448);
    expect(c.listeners.health).toEqual({ bindAddress: '0.0.0.0', port: 29000 });
    expect(c.registration.enableRegistration).toBe(true);
    expect(c.wellKnown.server).toEqual({ delegation: 'fed.example:443' });
  });

  it('turns on TLS only with both certificate and key', () => {
    const { dir, file } = writeConfig('tls_certificate_path: cert.pem\ntls_private_key_path: key.pem\n');
    writeFileSync(join(dir, 'cert.pem'), 'x');
    writeFileSync(join(dir, 'key.pem'), 'x');
    const c = loadConfig({ argv: ['--config', file], env: {}, cwd: dir });
    expect(c.listeners.federation.tls).toEqual({ certificatePath: join(dir, 'cert.pem'), privateKeyPath: join(dir, 'key.pem') });

    const half = writeConfig('tls_certificate_path: cert.pem\n');
    const err = configError(() => loadConfig({ argv: ['--config', half.file], env: {}, cwd: half.dir }));
    expect(err.field).toBe('tls_private_key_path');
  });

  describe('refuses broken configuration with the file and the field', () => {
    const cases: Array<[string, string, string]> = [
      ['server_name: "not a name"\n', 'server_name', 'not a valid server name'],
      ['listeners: { client: { port: 70000 } }\n', 'listeners.client.port', 'port number'],
      ['listeners: { client: { prot: 8008 } }\n', 'listeners.client.prot', 'not a known setting'],
      ['sever_name: x\n', 'sever_name', 'not a known setting'],
      ['database: { url: "mysql://x" }\n', 'database.url', 'postgres'],
      ['nats: { prefix: "a.b" }\n', 'nats.prefix', 'subject token'],
      ['enable_registration: "yes"\n', 'enable_registration', 'true or false'],
      ['key_refresh_interval: soon\n', 'key_refresh_interval', 'duration'],
      ['old_signing_keys: { "ed25519:x": { key: "short", expired_ts: 1 } }\n', 'old_signing_keys.ed25519:x.key', 'base64'],
      ['well_known: { server: { delegation: "bad host!" } }\n', 'well_known.server.delegation', 'm.server'],
      ['log_level: loud\n', 'log_level', 'one of'],
      ['- just\n- a list\n', '(top level)', 'mapping'],
      ['server_name: [unclosed\n', 'line ', 'not valid YAML'],
    ];
    for (const [text, field, problem] of cases) {
      it(`${field}: ${problem}`, () => {
        const { file } = writeConfig(text);
        const err = configError(() => loadConfig({ argv: ['--config', file], env: {}, cwd: tempDir() }));
        expect(err.source).toBe(file);
        expect(err.field).toContain(field);
        expect(err.message).toContain(file);
        expect(err.message).toContain(problem);
      });
    }
  });

  it('names the environment variable when an override is bad', () => {
    const err = configError(() => loadConfig({ argv: [], env: { CLIENT_PORT: 'eighty' }, cwd: tempDir() }));
    expect(err.message).toBe('environment: CLIENT_PORT: must be a port number between 1 and 65535, got "eighty"');
    const err2 = configError(() => loadConfig({ argv: [], env: { DATABASE_URL: 'nope' }, cwd: tempDir() }));
    expect(err2.field).toBe('DATABASE_URL');
  });

  it('names a missing config file', () => {
    const missing = join(tempDir(), 'nope.yaml');
    const err = configError(() => loadConfig({ argv: ['--config', missing], env: {}, cwd: tempDir() }));
    expect(err.message).toContain(missing);
    expect(err.message).toContain('cannot be read');
  });
});

describe('isServerName', () => {
  it.each(['localhost', 'example.org', 'example.org:8448', '1.2.3.4', '1.2.3.4:80', '[::1]', '[1234:5678::abcd]:443', 'a-b.c'])(
    'accepts %s',
    (name) => expect(isServerName(name)).toBe(true),
  );
  it.each(['', 'a b', 'example.org:', 'example.org:99999', '::1', '[1.2.3.4]', 'ex_ample.org', '.example', 'a..b', '300.1.1.1'])(
    'refuses %s',
    (name) => expect(isServerName(name)).toBe(false),
  );
});

describe('parseDuration', () => {
  it('reads units and plain milliseconds', () => {
    expect(parseDuration('1d')).toBe(86_400_000);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration(5000)).toBe(5000);
    expect(parseDuration('1.5h')).toBeUndefined();
    expect(parseDuration(-1)).toBeUndefined();
    expect(parseDuration('0s')).toBeUndefined();
  });
});

describe('client API settings', () => {
  const build = (raw: Record<string, unknown>, env: Record<string, string> = {}) => buildConfig(raw, { env, cwd: tempDir() });
  const buildError = (raw: Record<string, unknown>, env: Record<string, string> = {}) => configError(() => build(raw, env));
  const secret32 = 'x'.repeat(32);

  it('has defaults: rate limits on, opaque tokens, no JWT login, no Redis prefix', () => {
    const c = build({});
    expect(c.clientApi).toEqual({
      rateLimits: { perUser: { perSecond: 10, burst: 50 }, perIp: { perSecond: 20, burst: 100 } },
      accessTokenFormat: 'opaque',
      jwtAccessTokenSecret: undefined,
      jwtLogin: undefined,
    });
    expect(c.redis.keyPrefix).toBeUndefined();
  });

  it('reads rate_limits, access_tokens, jwt_login and redis.key_prefix from the file', () => {
    const c = build({
      rate_limits: { per_user: { per_second: 0.5, burst: 5 }, per_ip: { per_second: 100, burst: 1000 } },
      access_tokens: { format: 'jwt', jwt_secret: secret32 },
      jwt_login: { secret: 'idp secret', issuer: 'idp.example', audience: 'matrix', subject_claim: 'preferred_username' },
      redis: { url: 'redis://127.0.0.1:6379', key_prefix: 'hs1:' },
    });
    expect(c.clientApi.rateLimits).toEqual({ perUser: { perSecond: 0.5, burst: 5 }, perIp: { perSecond: 100, burst: 1000 } });
    expect(c.clientApi.accessTokenFormat).toBe('jwt');
    expect(c.clientApi.jwtAccessTokenSecret).toBe(secret32);
    expect(c.clientApi.jwtLogin).toEqual({ secret: 'idp secret', algorithm: 'HS256', issuer: 'idp.example', audience: 'matrix', subjectClaim: 'preferred_username' });
    expect(c.redis).toEqual({ url: 'redis://127.0.0.1:6379', keyPrefix: 'hs1:' });
  });

  it('turns every rate limit off with enabled: false (or RATE_LIMITS_ENABLED=false)', () => {
    const off = build({ rate_limits: { enabled: false, per_user: { per_second: 3, burst: 4 } } }).clientApi.rateLimits;
    expect(off.perUser.perSecond).toBe(0);
    expect(off.perIp.perSecond).toBe(0);
    const offByEnv = build({ rate_limits: { enabled: true } }, { RATE_LIMITS_ENABLED: 'false' }).clientApi.rateLimits;
    expect(offByEnv.perUser.perSecond).toBe(0);
    expect(offByEnv.perIp.perSecond).toBe(0);
  });

  it('lets the environment override the file', () => {
    const c = build(
      { rate_limits: { per_user: { per_second: 1, burst: 2 } }, redis: { key_prefix: 'file:' } },
      {
        RATE_LIMIT_PER_USER_PER_SECOND: '7',
        RATE_LIMIT_PER_USER_BURST: '70',
        RATE_LIMIT_PER_IP_PER_SECOND: '0',
        ACCESS_TOKEN_FORMAT: 'jwt',
        ACCESS_TOKEN_JWT_SECRET: secret32,
        JWT_LOGIN_SECRET: 'from env',
        JWT_LOGIN_ALGORITHM: 'HS512',
        REDIS_KEY_PREFIX: 'env:',
      },
    );
    expect(c.clientApi.rateLimits.perUser).toEqual({ perSecond: 7, burst: 70 });
    expect(c.clientApi.rateLimits.perIp).toEqual({ perSecond: 0, burst: 100 });
    expect(c.clientApi.accessTokenFormat).toBe('jwt');
    expect(c.clientApi.jwtLogin).toMatchObject({ secret: 'from env', algorithm: 'HS512', subjectClaim: 'sub' });
    expect(c.redis.keyPrefix).toBe('env:');
  });

  it('refuses bad values, naming the field', () => {
    expect(buildError({ rate_limits: { per_user: { per_second: -1 } } }).message).toContain('rate_limits.per_user.per_second');
    expect(buildError({ rate_limits: { per_ip: { burst: 0.5 } } }).message).toContain('rate_limits.per_ip.burst');
    expect(buildError({ rate_limits: { per_user: { rate: 1 } } }).message).toContain('rate_limits.per_user.rate');
    expect(buildError({ rate_limits: { enabled: 'no' } }).message).toContain('rate_limits.enabled');
    expect(buildError({ access_tokens: { format: 'macaroon' } }).message).toContain('access_tokens.format');
    expect(buildError({ access_tokens: { format: 'jwt' } }).message).toContain('access_tokens.jwt_secret');
    expect(buildError({ access_tokens: { format: 'jwt', jwt_secret: 'short' } }).message).toContain('at least 32 characters');
    expect(buildError({ jwt_login: { algorithm: 'HS256' } }).message).toContain('jwt_login.secret');
    expect(buildError({ jwt_login: { secret: 's', algorithm: 'none' } }).message).toContain('jwt_login.algorithm');
    expect(buildError({ jwt_login: { secret: 'not a key', algorithm: 'RS256' } }).message).toContain('PEM public key');
    expect(buildError({ redis: { key_prefix: 'a b' } }).message).toContain('redis.key_prefix');
    expect(buildError({}, { RATE_LIMIT_PER_IP_BURST: 'lots' }).message).toContain('RATE_LIMIT_PER_IP_BURST');
    expect(buildError({}, { ACCESS_TOKEN_FORMAT: 'other' }).message).toContain('ACCESS_TOKEN_FORMAT');
  });

  it('reads the token lifetimes as Synapse: none by default, durations or milliseconds', () => {
    const c = build({});
    expect(c.clientApi.refreshTokenLifetimeMs).toBeUndefined();
    expect(c.clientApi.nonrefreshableAccessTokenLifetimeMs).toBeUndefined();
    expect(c.clientApi.sessionLifetimeMs).toBeUndefined();
    const set = build({ refresh_token_lifetime: '30d', nonrefreshable_access_token_lifetime: 250, session_lifetime: '1y', refreshable_access_token_lifetime: '5m' });
    expect(set.clientApi.refreshTokenLifetimeMs).toBe(30 * 86_400_000);
    expect(set.clientApi.nonrefreshableAccessTokenLifetimeMs).toBe(250);
    expect(set.clientApi.sessionLifetimeMs).toBe(365 * 86_400_000);
    expect(set.clientApi.refreshableAccessTokenLifetimeMs).toBe(300_000);
    // null is unset, as in Synapse's sample config.
    expect(build({ refresh_token_lifetime: null, session_lifetime: null }).clientApi.refreshTokenLifetimeMs).toBeUndefined();
  });

  it('refuses bad token lifetimes, and any longer than session_lifetime (as Synapse)', () => {
    const refreshError = buildError({ refresh_token_lifetime: 'soon' });
    expect(refreshError.field).toBe('refresh_token_lifetime');
    expect(refreshError.message).toContain('must be a duration');
    expect(buildError({ nonrefreshable_access_token_lifetime: -5 }).field).toBe('nonrefreshable_access_token_lifetime');
    expect(buildError({ nonrefreshable_access_token_lifetime: '0s' }).field).toBe('nonrefreshable_access_token_lifetime');
    expect(buildError({ session_lifetime: '1.5d' }).field).toBe('session_lifetime');
    expect(buildError({ session_lifetime: '1h', refresh_token_lifetime: '2h' }).field).toBe('refresh_token_lifetime');
    expect(buildError({ session_lifetime: '1h', nonrefreshable_access_token_lifetime: '1d' }).message).toContain('must not exceed session_lifetime');
    expect(buildError({ session_lifetime: '1m', refreshable_access_token_lifetime: '5m' }).field).toBe('refreshable_access_token_lifetime');
    // The default refreshable lifetime (5m, not written) is cut to a shorter session instead, as Synapse does.
    expect(build({ session_lifetime: '1m' }).clientApi.sessionLifetimeMs).toBe(60_000);
  });
});

describe('media settings', () => {
  const build = (raw: Record<string, unknown>, env: Record<string, string> = {}) => buildConfig(raw, { env, cwd: tempDir() });

  it('defaults as Synapse: 50M uploads, authenticated media on', () => {
    expect(build({}).media).toEqual({ maxUploadSize: 50 * 1024 * 1024, enableAuthenticatedMedia: true });
  });

  it('reads bytes or K/M/G sizes and the freeze switch, the environment over the file', () => {
    expect(build({ max_upload_size: 4096, enable_authenticated_media: false }).media).toEqual({ maxUploadSize: 4096, enableAuthenticatedMedia: false });
    expect(build({ max_upload_size: '100M' }).media.maxUploadSize).toBe(100 * 1024 * 1024);
    expect(build({ max_upload_size: '2k' }).media.maxUploadSize).toBe(2048);
    expect(build({ max_upload_size: '1G' }, { MAX_UPLOAD_SIZE: '512', ENABLE_AUTHENTICATED_MEDIA: 'false' }).media).toEqual({
      maxUploadSize: 512,
      enableAuthenticatedMedia: false,
    });
  });

  it('refuses bad values, naming the field', () => {
    expect(configError(() => build({ max_upload_size: 'lots' })).message).toContain('max_upload_size');
    expect(configError(() => build({ max_upload_size: 0 })).message).toContain('max_upload_size');
    expect(configError(() => build({ max_upload_size: '1.5M' })).message).toContain('max_upload_size');
    expect(configError(() => build({ enable_authenticated_media: 'yes' })).message).toContain('enable_authenticated_media');
    expect(configError(() => build({}, { MAX_UPLOAD_SIZE: '-1' })).message).toContain('MAX_UPLOAD_SIZE');
  });
});

describe('URL preview blacklists', () => {
  const build = (raw: Record<string, unknown>, env: Record<string, string> = {}) => buildConfig(raw, { env, cwd: tempDir() }).urlPreview;

  it('are empty by default', () => {
    expect(build({})).toMatchObject({ blockedCidrs: [], urlBlacklist: [] });
  });

  it('read url_preview_ip_range_blacklist from the file, or the environment comma-separated', () => {
    expect(build({ url_preview_ip_range_blacklist: ['93.184.0.0/16', ' 2001:db8::/32 '] }).blockedCidrs).toEqual(['93.184.0.0/16', '2001:db8::/32']);
    expect(build({ url_preview_ip_range_blacklist: ['10.0.0.0/8'] }, { URL_PREVIEW_IP_RANGE_BLACKLIST: '1.2.3.0/24, 5.6.7.8' }).blockedCidrs).toEqual(['1.2.3.0/24', '5.6.7.8']);
    expect(configError(() => build({ url_preview_ip_range_blacklist: '10.0.0.0/8' })).message).toContain('url_preview_ip_range_blacklist');
    expect(configError(() => build({ url_preview_ip_range_blacklist: [42] })).message).toContain('url_preview_ip_range_blacklist');
  });

  it('read url_preview_url_blacklist entries: URL components to globs or "^" regexes, a port number as text', () => {
    const entries = [{ username: '*' }, { netloc: '*.google.com' }, { netloc: 'www.acme.com', path: '/foo' }, { netloc: '^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+$' }, { port: 8448 }];
    expect(build({ url_preview_url_blacklist: entries }).urlBlacklist).toEqual([
      { username: '*' },
      { netloc: '*.google.com' },
      { netloc: 'www.acme.com', path: '/foo' },
      { netloc: '^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+$' },
      { port: '8448' },
    ]);
    expect(build({ url_preview_url_blacklist: null }).urlBlacklist).toEqual([]);
  });

  it('refuse malformed url_preview_url_blacklist entries, naming the entry', () => {
    expect(configError(() => build({ url_preview_url_blacklist: { netloc: 'x' } })).field).toBe('url_preview_url_blacklist');
    expect(configError(() => build({ url_preview_url_blacklist: ['*.example.com'] })).field).toBe('url_preview_url_blacklist[0]');
    const unknown = configError(() => build({ url_preview_url_blacklist: [{ path: '/a' }, { host: 'example.com' }] }));
    expect(unknown.field).toBe('url_preview_url_blacklist[1].host');
    expect(unknown.message).toContain('hostname');
    expect(configError(() => build({ url_preview_url_blacklist: [{ path: ['/a'] }] })).field).toBe('url_preview_url_blacklist[0].path');
    const regex = configError(() => build({ url_preview_url_blacklist: [{ path: '^/(unclosed' }] }));
    expect(regex.field).toBe('url_preview_url_blacklist[0].path');
    expect(regex.message).toContain('regular expression');
  });

  it('are known settings of a file', () => {
    const { file } = writeConfig('server_name: example.org\nurl_preview_ip_range_blacklist: ["1.2.3.0/24"]\nurl_preview_url_blacklist:\n  - scheme: http\n');
    const config = loadConfig({ argv: ['--config', file], env: {}, cwd: tempDir() });
    expect(config.urlPreview.blockedCidrs).toEqual(['1.2.3.0/24']);
    expect(config.urlPreview.urlBlacklist).toEqual([{ scheme: 'http' }]);
  });
});
