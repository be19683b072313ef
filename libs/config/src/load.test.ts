import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, findConfigFile, isServerName, loadConfig, parseDuration } from './index.js';

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
    expect(c.registration).toEqual({ enableRegistration: true, registrationSharedSecret: 's3cret' });
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
