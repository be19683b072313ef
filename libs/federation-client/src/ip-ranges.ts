/**
 * Which IP addresses outbound federation may connect to.
 *
 * A homeserver connects to addresses that remote parties choose (server names, .well-known
 * delegation, SRV targets, DNS answers). Without a guard, any of them could point us at our own
 * private network (SSRF). So every address in a special-purpose range (private, loopback,
 * link-local, CGNAT, multicast, unspecified, documentation, ...) is refused unless the
 * operator's allow-list names it. IPv4 addresses embedded in IPv6 (mapped, NAT64, 6to4) are
 * judged by the IPv4 address they carry.
 */
import { isIPv4, isIPv6 } from 'node:net';

export class CidrError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CidrError';
  }
}

/** An address as bytes: 4 for IPv4, 16 for IPv6. */
type Bytes = Uint8Array;

interface Cidr {
  bytes: Bytes;
  prefix: number;
  text: string;
}

export function parseIPv4(s: string): Bytes | undefined {
  if (!isIPv4(s)) return undefined;
  return Uint8Array.from(s.split('.').map(Number));
}

export function parseIPv6(input: string): Bytes | undefined {
  // Zone ids (fe80::1%eth0) name an interface, not part of the address.
  const s = input.startsWith('[') && input.endsWith(']') ? input.slice(1, -1) : input;
  const bare = s.includes('%') ? s.slice(0, s.indexOf('%')) : s;
  if (!isIPv6(bare)) return undefined;
  let head = bare;
  let tailV4: Bytes | undefined;
  const lastColon = bare.lastIndexOf(':');
  if (bare.slice(lastColon + 1).includes('.')) {
    tailV4 = parseIPv4(bare.slice(lastColon + 1));
    if (!tailV4) return undefined;
    head = bare.slice(0, lastColon + 1) + '0:0'; // placeholder groups, replaced below
  }
  const [left, right] = head.includes('::') ? head.split('::') : [head, undefined];
  const leftGroups = left ? left.split(':') : [];
  const rightGroups = right === undefined ? [] : right ? right.split(':') : [];
  const missing = 8 - leftGroups.length - rightGroups.length;
  const groups = right === undefined ? leftGroups : [...leftGroups, ...Array(missing).fill('0'), ...rightGroups];
  if (groups.length !== 8) return undefined;
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  if (tailV4) out.set(tailV4, 12);
  return out;
}

function parseAddress(s: string): Bytes | undefined {
  return parseIPv4(s) ?? parseIPv6(s);
}

/** Parses "10.0.0.0/8", "::1/128" or a bare address (a /32 or /128). Throws CidrError. */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  const addr = slash === -1 ? text : text.slice(0, slash);
  const bytes = parseAddress(addr.trim());
  if (!bytes) throw new CidrError(`"${text}" is not an IP address or CIDR range (expected e.g. 127.0.0.0/8 or ::1/128)`);
  const max = bytes.length * 8;
  const prefixText = slash === -1 ? String(max) : text.slice(slash + 1).trim();
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) {
    throw new CidrError(`"${text}": prefix length must be a number from 0 to ${max}`);
  }
  return { bytes, prefix: Number(prefixText), text };
}

function inCidr(addr: Bytes, cidr: Cidr): boolean {
  if (addr.length !== cidr.bytes.length) return false;
  let bits = cidr.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((addr[i]! & mask) !== (cidr.bytes[i]! & mask)) return false;
  }
  return true;
}

/** IANA special-purpose IPv4 ranges that are not public unicast destinations. */
const BLOCKED_V4 = [
  '0.0.0.0/8', // "this network", unspecified
  '10.0.0.0/8', // private
  '100.64.0.0/10', // CGNAT shared address space
  '127.0.0.0/8', // loopback
  '169.254.0.0/16', // link-local
  '172.16.0.0/12', // private
  '192.0.0.0/24', // IETF protocol assignments
  '192.0.2.0/24', // documentation
  '192.88.99.0/24', // 6to4 relay anycast (deprecated)
  '192.168.0.0/16', // private
  '198.18.0.0/15', // benchmarking
  '198.51.100.0/24', // documentation
  '203.0.113.0/24', // documentation
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved, includes broadcast 255.255.255.255
].map(parseCidr);

const BLOCKED_V6 = [
  '::/96', // unspecified, loopback and the deprecated IPv4-compatible block
  '100::/64', // discard-only
  '2001:db8::/32', // documentation
  'fc00::/7', // unique local (ULA)
  'fe80::/10', // link-local
  'fec0::/10', // site-local (deprecated)
  'ff00::/8', // multicast
].map(parseCidr);

const V4_MAPPED = parseCidr('::ffff:0:0/96');
const NAT64 = parseCidr('64:ff9b::/96');
const SIX_TO_FOUR = parseCidr('2002::/16');

/** The IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4), if any. */
function embeddedIPv4(v6: Bytes): Bytes | undefined {
  if (inCidr(v6, V4_MAPPED) || inCidr(v6, NAT64)) return v6.slice(12, 16);
  if (inCidr(v6, SIX_TO_FOUR)) return v6.slice(2, 6);
  return undefined;
}

export class IpPolicy {
  private readonly allowed: Cidr[];
  private readonly blocked: Cidr[];

  /**
   * allowedCidrs: ranges that may be reached even though they are special-purpose (e.g. 127.0.0.0/8 in tests).
   * blockedCidrs: ranges refused on top of the special-purpose ones, even when public; allowedCidrs still win.
   * listNames: the settings the two lists come from, named in refusals (a push gateway's refusal
   * names push.allowed_cidrs, a URL preview's url_preview_ip_range_whitelist).
   */
  constructor(
    allowedCidrs: readonly string[] = [],
    blockedCidrs: readonly string[] = [],
    private readonly listNames: { allowed?: string; blocked?: string } = {},
  ) {
    this.allowed = allowedCidrs.map(parseCidr);
    this.blocked = blockedCidrs.map(parseCidr);
  }

  /** Why the address is refused, or undefined when it may be connected to. */
  refusal(address: string): string | undefined {
    const bytes = parseAddress(address);
    if (!bytes) return `"${address}" is not an IP address`;
    if (this.allowed.some((c) => inCidr(bytes, c))) return undefined;
    const v4 = bytes.length === 16 ? embeddedIPv4(bytes) : bytes;
    if (v4 && v4 !== bytes && this.allowed.some((c) => inCidr(v4, c))) return undefined;
    const blocked = this.blocked.find((c) => inCidr(bytes, c) || (v4 !== undefined && inCidr(v4, c)));
    if (blocked) return `${address} is in the range ${blocked.text} that ${this.listNames.blocked ?? 'the block-list'} lists`;
    const hit =
      (v4 && BLOCKED_V4.find((c) => inCidr(v4, c))) ?? (bytes.length === 16 ? BLOCKED_V6.find((c) => inCidr(bytes, c)) : undefined);
    if (hit) {
      return `${address} is in the special-purpose range ${hit.text}; it is refused unless ${this.listNames.allowed ?? 'the allow-list'} lists it`;
    }
    return undefined;
  }

  isAllowed(address: string): boolean {
    return this.refusal(address) === undefined;
  }
}
