/**
 * For tests: a throw-away certificate authority and server certificates made with the openssl
 * CLI, and a static DNS resolver that points names at loopback.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DnsResolver, ResolvedAddress, SrvRecord } from '../dns-resolver.js';

export interface TestCa {
  certPem: string;
  /** A server certificate for these names (DNS names or IP addresses), signed by this CA. */
  issue(names: string[]): { key: string; cert: string };
  dispose(): void;
}

export function createTestCa(commonName = 'Tessera Test CA'): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-ca-'));
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', `/CN=${commonName}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  let n = 0;
  return {
    certPem: readFileSync(join(dir, 'ca.pem'), 'utf8'),
    issue(names) {
      n++;
      const san = names.map((x) => (/^[0-9.]+$/.test(x) || x.includes(':') ? `IP:${x}` : `DNS:${x}`)).join(',');
      writeFileSync(join(dir, `leaf${n}.ext`), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
      run(['req', ...ec, '-keyout', `leaf${n}.key`, '-out', `leaf${n}.csr`, '-subj', `/CN=${names[0]}`]);
      run(['x509', '-req', '-in', `leaf${n}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `leaf${n}.pem`,
        '-days', '2', '-extfile', `leaf${n}.ext`]);
      return { key: readFileSync(join(dir, `leaf${n}.key`), 'utf8'), cert: readFileSync(join(dir, `leaf${n}.pem`), 'utf8') };
    },
    dispose() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A resolver answering from tables; names not listed have no records. */
export class StaticResolver implements DnsResolver {
  readonly addresses = new Map<string, ResolvedAddress[]>();
  readonly srv = new Map<string, SrvRecord[]>();
  /** Every question asked, in order (to check which steps discovery took). */
  readonly asked: string[] = [];

  setAddress(hostname: string, ...addresses: string[]): this {
    this.addresses.set(hostname, addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })));
    return this;
  }

  setSrv(name: string, ...records: SrvRecord[]): this {
    this.srv.set(name, records);
    return this;
  }

  async lookup(hostname: string): Promise<ResolvedAddress[]> {
    this.asked.push(`A ${hostname}`);
    const found = this.addresses.get(hostname);
    if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    return found;
  }

  async resolveSrv(name: string): Promise<SrvRecord[]> {
    this.asked.push(`SRV ${name}`);
    return this.srv.get(name) ?? [];
  }
}

/** An HTTPS server on 127.0.0.1 with an ephemeral port; close() also drops open connections. */
export async function startHttpsServer(
  tls: { key: string; cert: string },
  handler: (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse, body: string) => void,
): Promise<{ port: number; close(): Promise<void> }> {
  const { createServer } = await import('node:https');
  const server = createServer(tls, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handler(req, res, Buffer.concat(chunks).toString('utf8')));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as import('node:net').AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
