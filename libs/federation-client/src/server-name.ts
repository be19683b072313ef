/**
 * Server names as discovery needs them: the grammar check of @tessera/protocol's
 * parseServerName (appendices, "Server Name"), plus what connecting needs on top of the
 * grammar: IP literals that are real addresses and ports from 1 to 65535.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { parseServerName } from '@tessera/protocol';

export interface ServerNameParts {
  /** Without brackets for IPv6. */
  host: string;
  port?: number;
  kind: 'dns' | 'ipv4' | 'ipv6';
}

/** The parts of a server name, or undefined if it is not one we can connect to. */
export function splitServerName(s: string): ServerNameParts | undefined {
  let parsed;
  try {
    parsed = parseServerName(s);
  } catch {
    return undefined;
  }
  const { kind, port } = parsed;
  if (port !== undefined && (port < 1 || port > 65535)) return undefined;
  const host = kind === 'ipv6' ? parsed.host.slice(1, -1) : parsed.host;
  if (kind === 'ipv6' && !isIPv6(host)) return undefined;
  if (kind === 'ipv4' && !isIPv4(host)) return undefined;
  return { host, port, kind };
}
