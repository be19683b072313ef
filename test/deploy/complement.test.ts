/**
 * The Complement image (deploy/complement): its Dockerfile checked as data (no Docker engine
 * runs here), and its entrypoint script run for real outside a container, with a CA made here
 * in place of the one Complement mounts: the homeserver must answer the client API on plain HTTP,
 * federation on HTTPS with a certificate for SERVER_NAME signed by that CA, accept `complement`
 * as the registration shared secret, and start again on the same data (Complement may run the
 * entrypoint several times in one container).
 */
import { execFileSync } from 'node:child_process';
import { createHmac, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, REPO_ROOT, startCommand, stopApp, waitUntilReady, type AppProcess } from '../support/processes.js';

const dockerfile = readFileSync(join(REPO_ROOT, 'deploy/complement/Dockerfile'), 'utf8');
const SCRIPT = join(REPO_ROOT, 'deploy/complement/complement-entrypoint.sh');
const SERVER_NAME = 'hs1.complement.test';

describe('the Complement Dockerfile', () => {
  it('exposes 8008 and 8448, runs the entrypoint script it copies, and has a health check on /versions', () => {
    expect(dockerfile).toMatch(/^EXPOSE 8008 8448$/m);
    expect(dockerfile).toMatch(/^COPY .*complement-entrypoint\.sh \/app\/deploy\/complement-entrypoint\.sh$/m);
    expect(dockerfile).toMatch(/^ENTRYPOINT \["\/app\/deploy\/complement-entrypoint\.sh"\]$/m);
    expect(dockerfile).toMatch(/^HEALTHCHECK .*\/_matrix\/client\/versions/m);
    // openssl signs the server certificate at start; the base image has no CLI for it.
    expect(dockerfile).toMatch(/apt-get install .*openssl/);
  });
});

describe('the Complement entrypoint, run outside a container', () => {
  let dir: string;
  let caDir: string;
  let clientPort: number;
  let federationPort: number;
  let proc: AppProcess | undefined;

  const start = async () => {
    proc = startCommand('complement-entrypoint', 'sh', [SCRIPT], {
      SERVER_NAME,
      COMPLEMENT_CA_DIR: caDir,
      APP_DIR: REPO_ROOT,
      DATA_DIR: join(dir, 'data'),
      CLIENT_PORT: String(clientPort),
      FEDERATION_PORT: String(federationPort),
      BIND_ADDRESS: '127.0.0.1',
      LOG_LEVEL: 'warn',
    });
    await waitUntilReady(proc, `http://127.0.0.1:${clientPort}/_matrix/client/versions`);
  };

  /** A GET over TLS to the federation port, trusting only the test CA, for SERVER_NAME. */
  const federationGet = (path: string) =>
    new Promise<{ status: number; body: any; certificate: X509Certificate }>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: federationPort, path, servername: SERVER_NAME, ca: readFileSync(join(caDir, 'ca.crt')) },
        (res) => {
          const certificate = new X509Certificate((res.socket as import('node:tls').TLSSocket).getPeerCertificate().raw);
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text), certificate }));
        },
      );
      req.on('error', reject);
      req.end();
    });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-complement-'));
    caDir = join(dir, 'ca');
    execFileSync('mkdir', ['-p', caDir]);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=Complement test CA',
      '-keyout', join(caDir, 'ca.key'), '-out', join(caDir, 'ca.crt')], { stdio: 'ignore' });
    // As Complement mounts it: the CA folder read-only (the script must not write next to the CA).
    execFileSync('chmod', ['0555', caDir]);
    clientPort = await freePort();
    federationPort = await freePort();
    await start();
  }, 120_000);

  afterAll(async () => {
    if (proc) await stopApp(proc);
    if (dir) {
      execFileSync('chmod', ['0755', caDir]);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('serves federation over TLS with a certificate for SERVER_NAME signed by the CA, and signs as SERVER_NAME', async () => {
    const version = await federationGet('/_matrix/federation/v1/version');
    expect(version.status).toBe(200);
    expect(version.body.server.name).toBeTypeOf('string');
    const ca = new X509Certificate(readFileSync(join(caDir, 'ca.crt')));
    expect(version.certificate.checkIssued(ca)).toBe(true);
    expect(version.certificate.verify(ca.publicKey)).toBe(true);
    expect(version.certificate.subjectAltName).toBe(`DNS:${SERVER_NAME}`);
    const keys = await federationGet('/_matrix/key/v2/server');
    expect(keys.status).toBe(200);
    expect(keys.body.server_name).toBe(SERVER_NAME);
  });

  it('registers users with the shared secret `complement`, and openly with m.login.dummy', async () => {
    const base = `http://127.0.0.1:${clientPort}`;
    const { nonce } = (await (await fetch(`${base}/_synapse/admin/v1/register`)).json()) as { nonce: string };
    const mac = createHmac('sha1', 'complement').update(`${nonce}\x00admin\x00complement-password\x00admin`).digest('hex');
    const admin = await fetch(`${base}/_synapse/admin/v1/register`, {
      method: 'POST',
      body: JSON.stringify({ nonce, username: 'admin', password: 'complement-password', admin: true, mac }),
    });
    expect(admin.status).toBe(200);
    expect(((await admin.json()) as { user_id: string }).user_id).toBe(`@admin:${SERVER_NAME}`);
    const open = await fetch(`${base}/_matrix/client/v3/register`, {
      method: 'POST',
      body: JSON.stringify({ username: 'alice', password: 'complement-password', auth: { type: 'm.login.dummy' } }),
    });
    expect(open.status).toBe(200);
  });

  it('starts again on the same data with the same certificate', async () => {
    const before = (await federationGet('/_matrix/federation/v1/version')).certificate.fingerprint256;
    expect(await stopApp(proc!)).toBe(0);
    await start();
    expect((await federationGet('/_matrix/federation/v1/version')).certificate.fingerprint256).toBe(before);
    const login = await fetch(`http://127.0.0.1:${clientPort}/_matrix/client/v3/login`, {
      method: 'POST',
      body: JSON.stringify({ type: 'm.login.password', identifier: { type: 'm.id.user', user: 'alice' }, password: 'complement-password' }),
    });
    expect(login.status).toBe(200);
  });
});
