/**
 * The DNS questions federation asks, behind an interface so that tests (and deployments with
 * their own resolver) can answer them: address records for a hostname and SRV records.
 */
import { promises as dns } from 'node:dns';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

export interface SrvRecord {
  name: string;
  port: number;
  priority: number;
  weight: number;
}

export interface DnsResolver {
  /** The addresses of a hostname (CNAME, AAAA and A records). Rejects when there are none. */
  lookup(hostname: string): Promise<ResolvedAddress[]>;
  /** The SRV records of a name such as `_matrix-fed._tcp.example.org`; [] when there are none. */
  resolveSrv(name: string): Promise<SrvRecord[]>;
}

const NO_RECORD = new Set(['ENOTFOUND', 'ENODATA', 'NXDOMAIN', 'ENONAME']);

/** The operating system's resolver (getaddrinfo for addresses, c-ares for SRV). */
export const systemResolver: DnsResolver = {
  async lookup(hostname) {
    const found = await dns.lookup(hostname, { all: true, verbatim: true });
    return found.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
  },
  async resolveSrv(name) {
    try {
      return await dns.resolveSrv(name);
    } catch (err) {
      if (NO_RECORD.has((err as NodeJS.ErrnoException).code ?? '')) return [];
      throw err;
    }
  },
};

/**
 * Picks one SRV target per RFC 2782: lowest priority first, then weighted random among equals.
 * A single "." target means the service is decidedly not offered: treated as no record.
 */
export function pickSrvTarget(records: readonly SrvRecord[], random: () => number = Math.random): SrvRecord | undefined {
  const usable = records.filter((r) => r.name !== '' && r.name !== '.');
  if (usable.length === 0) return undefined;
  const best = Math.min(...usable.map((r) => r.priority));
  const group = usable.filter((r) => r.priority === best);
  const total = group.reduce((sum, r) => sum + r.weight, 0);
  if (total === 0) return group[Math.floor(random() * group.length)];
  let pick = random() * total;
  for (const r of group) {
    pick -= r.weight;
    if (pick < 0) return r;
  }
  return group[group.length - 1];
}
