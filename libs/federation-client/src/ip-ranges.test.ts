import { describe, expect, it } from 'vitest';
import { CidrError, IpPolicy, parseCidr, parseIPv6 } from './ip-ranges.js';

describe('IpPolicy', () => {
  const policy = new IpPolicy();

  it.each([
    '0.0.0.0', '10.1.2.3', '100.64.0.1', '100.127.255.255', '127.0.0.1', '169.254.169.254', '172.16.0.1', '172.31.255.255',
    '192.168.1.1', '192.0.2.5', '198.18.0.1', '224.0.0.1', '239.255.255.255', '255.255.255.255',
    '::', '::1', 'fc00::1', 'fd12:3456::1', 'fe80::1', 'fe80::1%eth0', 'febf::1', 'ff02::1', '2001:db8::1',
    '::ffff:127.0.0.1', '::ffff:10.0.0.1', '::ffff:7f00:1', '64:ff9b::a00:1', '2002:c0a8:0101::1', '::127.0.0.1',
  ])('refuses special-purpose %s', (addr) => {
    expect(policy.isAllowed(addr)).toBe(false);
    expect(policy.refusal(addr)).toMatch(/special-purpose range/);
  });

  it.each(['8.8.8.8', '1.1.1.1', '100.63.255.255', '100.128.0.0', '172.32.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '2a00:1450::1', '64:ff9b::808:808'])(
    'allows public %s',
    (addr) => {
      expect(policy.refusal(addr)).toBeUndefined();
    },
  );

  it('an allow-list permits exactly its ranges, including IPv4-mapped forms of them', () => {
    const p = new IpPolicy(['127.0.0.0/8', '::1/128']);
    expect(p.isAllowed('127.0.0.1')).toBe(true);
    expect(p.isAllowed('127.255.0.9')).toBe(true);
    expect(p.isAllowed('::ffff:127.0.0.1')).toBe(true);
    expect(p.isAllowed('::1')).toBe(true);
    expect(p.isAllowed('10.0.0.1')).toBe(false);
    expect(p.isAllowed('fe80::1')).toBe(false);
  });

  it('refuses what is not an address', () => {
    expect(policy.refusal('example.org')).toMatch(/not an IP address/);
  });

  it('rejects bad CIDRs with a clear error', () => {
    expect(() => new IpPolicy(['10.0.0.0/33'])).toThrow(CidrError);
    expect(() => new IpPolicy(['banana/8'])).toThrow(/not an IP address or CIDR range/);
    expect(() => parseCidr('::1/129')).toThrow(/0 to 128/);
  });

  it('parses IPv6 forms', () => {
    expect(Buffer.from(parseIPv6('::1')!).toString('hex')).toBe('00000000000000000000000000000001');
    expect(Buffer.from(parseIPv6('[2001:db8::7f00:1]')!).toString('hex')).toBe('20010db80000000000000000' + '7f000001');
    expect(Buffer.from(parseIPv6('::ffff:1.2.3.4')!).toString('hex')).toBe('00000000000000000000ffff01020304');
    expect(parseIPv6('1::2::3')).toBeUndefined();
  });
});
