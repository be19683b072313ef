/**
 * The embedded default as a real process: `apps/homeserver` with PGlite and the in-process bus
 * (no DATABASE_URL / NATS_URL), as `npm start` runs it (its build, then node with the start
 * script's arguments). Data survives a restart.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateResponse } from '@tessera/testing';
import { buildNpmStart, freePort, startApp, stopApp, waitUntilReady, type AppProcess } from './support/processes.js';
import { fetchAndVerifyServerKeys } from './support/server-keys.js';

describe('embedded homeserver process', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-embedded-'));
  const configFile = join(dir, 'homeserver.yaml');
  writeFileSync(
    configFile,
    [
      'server_name: embedded.test',
      'data_dir: ./data',
      'well_known:',
      '  client: { base_url: "https://embedded.test" }',
      '  server: { delegation: "embedded.test:443" }',
      '',
    ].join('\n'),
  );
  const running: AppProcess[] = [];
  let npmStartArgs: string[] = [];
  beforeAll(async () => {
    npmStartArgs = await buildNpmStart();
  });
  afterAll(async () => {
    await Promise.all(running.map(stopApp));
  });

  async function start(extraEnv: Record<string, string> = {}) {
    const client = await freePort();
    const federation = await freePort();
    const proc = startApp('homeserver', { CONFIG_FILE: configFile, CLIENT_PORT: String(client), FEDERATION_PORT: String(federation), ...extraEnv }, npmStartArgs);
    running.push(proc);
    await waitUntilReady(proc, `http://127.0.0.1:${client}/health/ready`);
    return { proc, client: `http://127.0.0.1:${client}`, federation: `http://127.0.0.1:${federation}` };
  }

  it('serves versions, federation version, well-known and signed keys; keeps its key and data across a restart', async () => {
    const first = await start();
    const versions = (await (await fetch(`${first.client}/_matrix/client/versions`)).json()) as { versions: string[] };
    validateResponse('client-server', 'GET', '/_matrix/client/versions', 200, versions);
    expect(versions.versions).toContain('v1.16');

    const fedVersion = (await (await fetch(`${first.federation}/_matrix/federation/v1/version`)).json()) as { server: { name: string } };
    validateResponse('server-server', 'GET', '/_matrix/federation/v1/version', 200, fedVersion);
    expect(fedVersion.server.name).toBe('tessera');

    const wkClient = await (await fetch(`${first.client}/.well-known/matrix/client`)).json();
    expect(wkClient).toEqual({ 'm.homeserver': { base_url: 'https://embedded.test' } });
    const wkServer = await (await fetch(`${first.federation}/.well-known/matrix/server`)).json();
    expect(wkServer).toEqual({ 'm.server': 'embedded.test:443' });

    const live = await fetch(`${first.client}/health/live`);
    expect(live.status).toBe(200);
    const keys = await fetchAndVerifyServerKeys(first.federation, 'embedded.test');
    // The key was generated on first start, in Synapse's format, where data_dir says.
    const keyFile = readFileSync(join(dir, 'data', 'signing.key'), 'utf8');
    const [, version] = keyFile.trim().split(' ');
    expect(Object.keys(keys.verify_keys)).toEqual([`ed25519:${version}`]);

    expect(await stopApp(first.proc)).toBe(0);

    const second = await start();
    const keysAfter = await fetchAndVerifyServerKeys(second.federation, 'embedded.test');
    expect(keysAfter.verify_keys).toEqual(keys.verify_keys);
    expect(await stopApp(second.proc)).toBe(0);

    // The PGlite database kept its owner: another server_name on the same data is refused.
    const other = startApp('homeserver', {
      CONFIG_FILE: configFile,
      SERVER_NAME: 'other.test',
      CLIENT_PORT: String(await freePort()),
      FEDERATION_PORT: String(await freePort()),
    }, npmStartArgs);
    running.push(other);
    expect(await other.exited).toBe(1);
    expect(other.output()).toContain('this database belongs to server "embedded.test"');
  });

  it('stops at startup with one message naming the file and the field when the config is broken', async () => {
    const broken = join(dir, 'broken.yaml');
    writeFileSync(broken, 'server_name: embedded.test\nlisteners:\n  client: { port: "eighty" }\n');
    const proc = startApp('homeserver', { CONFIG_FILE: broken }, npmStartArgs);
    running.push(proc);
    expect(await proc.exited).toBe(1);
    expect(proc.output()).toContain(`configuration error: ${broken}: listeners.client.port: must be a port number`);
  });

  it('stops at startup naming the key file when the signing key is broken', async () => {
    const keyPath = join(dir, 'broken.key');
    writeFileSync(keyPath, 'ed25519 a_1 not-base64!\n');
    const proc = startApp('homeserver', { CONFIG_FILE: configFile, SIGNING_KEY_PATH: keyPath, DATA_DIR: join(dir, 'data2') }, npmStartArgs);
    running.push(proc);
    expect(await proc.exited).toBe(1);
    expect(proc.output()).toContain(`configuration error: ${keyPath}: signing key:`);
  });
});
