/**
 * Federating homeservers of ours in this process, for federation tests and benches: each runs
 * persistence + room-server + federation-ingress (+ fanout-sender, and client-api when asked)
 * with its own PostgreSQL database and its own bus (in-process, or NATS with its own prefix),
 * its federation listener on HTTPS (127.0.0.1, a free port) with a certificate of a test CA.
 *
 * Server names are `127.0.0.1:<port>`: an IP literal with an explicit port needs no DNS and
 * no .well-known, and the test CA issues the certificate for IP 127.0.0.1. Outbound requests
 * trust only the test CA and may reach loopback: FEDERATION_CA_FILE and
 * FEDERATION_ALLOWED_CIDRS are set in process.env by createFederationPki() (they are read when
 * each service starts).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig } from '@tessera/config';
import { startServices, type RunningServices, type ServiceDefinition } from '@tessera/http';
import { federationIngressService } from '@tessera/federation-ingress-service';
import { persistenceService } from '@tessera/persistence-service';
import { roomServerService } from '@tessera/room-server-service';
import { createTestCa, type TestCa } from '../../libs/federation-client/src/testing/test-pki.js';
import { createFederationClient, readFederationEnvironment, type FederationClient } from '@tessera/federation-client';
import { createTestDatabase, NATS_URL, uniqueName, type TestDatabase } from '@tessera/testing';
import type { SigningKey } from '@tessera/protocol';
import { freePort } from '../support/processes.js';

export interface FederationPki {
  ca: TestCa;
  dir: string;
  certPath: string;
  keyPath: string;
  dispose(): void;
}

/** A test CA, one loopback certificate (IP 127.0.0.1, DNS localhost), and the env the services read. */
export function createFederationPki(): FederationPki {
  const ca = createTestCa();
  const dir = mkdtempSync(join(tmpdir(), 'tessera-fed-pki-'));
  const leaf = ca.issue(['127.0.0.1', 'localhost']);
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  const caPath = join(dir, 'ca.pem');
  writeFileSync(certPath, leaf.cert);
  writeFileSync(keyPath, leaf.key);
  writeFileSync(caPath, ca.certPem);
  process.env.FEDERATION_CA_FILE = caPath;
  process.env.FEDERATION_ALLOWED_CIDRS = '127.0.0.0/8,::1/128';
  return {
    ca, dir, certPath, keyPath,
    dispose() {
      ca.dispose();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function withUniqueMigrations(services: ServiceDefinition[]): ServiceDefinition[] {
  const seen = new Set<string>();
  return services.map((s) => ({ ...s, migrations: (s.migrations ?? []).filter((m) => !seen.has(m.id) && !!seen.add(m.id)) }));
}

export interface StartOptions {
  /** Extra services (fanout-sender, client-api) to run in the same process. */
  extra?: ServiceDefinition[];
  /** NATS with a prefix of its own instead of the in-process bus. */
  nats?: boolean;
  /** Reuse this port (restarting a server under the same name). */
  port?: number;
  /** Reuse this database (restart). */
  database?: TestDatabase;
}

export class FederatingServer {
  private constructor(
    readonly serverName: string,
    readonly port: number,
    readonly database: TestDatabase,
    readonly running: RunningServices,
    private readonly dir: string,
  ) {}

  static async start(pki: FederationPki, options: StartOptions = {}): Promise<FederatingServer> {
    const port = options.port ?? (await freePort());
    const serverName = `127.0.0.1:${port}`;
    const database = options.database ?? (await createTestDatabase());
    const dir = mkdtempSync(join(tmpdir(), 'tessera-fed-hs-'));
    const config = buildConfig(
      {
        server_name: serverName,
        data_dir: dir,
        log_level: 'warn',
        tls_certificate_path: pki.certPath,
        tls_private_key_path: pki.keyPath,
        listeners: { client: { bind_address: '127.0.0.1', port: await freePort() }, federation: { bind_address: '127.0.0.1', port } },
        database: { url: database.url },
        ...(options.nats ? { nats: { url: NATS_URL, prefix: uniqueName('fed') } } : {}),
      },
      { env: {}, cwd: dir },
    );
    const running = await startServices(
      withUniqueMigrations([persistenceService, roomServerService, federationIngressService, ...(options.extra ?? [])]),
      { mode: 'embedded', name: `fed-${port}`, config },
    );
    return new FederatingServer(serverName, port, database, running, dir);
  }

  get db() {
    return this.running.runtime.db;
  }

  get bus() {
    return this.running.runtime.bus;
  }

  get signingKey(): SigningKey {
    return this.running.runtime.signingKeys.current;
  }

  /** An outbound client speaking as this server (signed with its key), trusting the test CA. */
  client(): FederationClient {
    return createFederationClient(this.serverName, this.signingKey, readFederationEnvironment());
  }

  /** Stops the services; the database is kept unless `drop`. */
  async stop(drop = true): Promise<void> {
    await this.running.close();
    if (drop) await this.database.drop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
