/**
 * Server names as discovery needs them (appendices, "Server Name"):
 *   server_name = hostname [ ":" port ]
 *   hostname    = IPv4address / "[" IPv6address "]" / dns-name
 *   port        = 1*5DIGIT
 *   dns-name    = 1*255( ALPHA / DIGIT / "-" / "." )
 */
import { isIPv4, isIPv6 } from 'node:net';

export interface ServerNameParts {
  /** Without brackets for IPv6. */
  host: string;
  port?: number;
  kind: 'dns' | 'ipv4' | 'ipv6';
}

const DNS_NAME = /^[A-Za-z0-9.-]{1,255}$/;
const PORT = /^[0-9]{1,5}$/;

export function splitServerName(s: string): ServerNameParts | undefined {
  if (typeof s !== 'string' || s.length === 0 || s.length > 255 + 8) return undefined;
  let hostPart: string;
  let portPart: string | undefined;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close === -1) return undefined;
    hostPart = s.slice(0, close + 1);
    const rest = s.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return undefined;
      portPart = rest.slice(1);
    }
  } else {
    const colon = s.lastIndexOf(':');
    if (colon !== -1) {
      hostPart = s.slice(0, colon);
      portPart = s.slice(colon + 1);
    } else {
      hostPart = s;
    }
  }
  let port: number | undefined;
  if (portPart !== undefined) {
    if (!PORT.test(portPart)) return undefined;
    port = Number(portPart);
    if (port < 1 || port > 65535) return undefined;
  }
  if (hostPart.startsWith('[')) {
    const inner = hostPart.slice(1, -1);
    return isIPv6(inner) && !inner.includes('%') ? { host: inner, port, kind: 'ipv6' } : undefined;
  }
  if (isIPv4(hostPart)) return { host: hostPart, port, kind: 'ipv4' };
  if (!DNS_NAME.test(hostPart)) return undefined;
  return { host: hostPart, port, kind: 'dns' };
}
