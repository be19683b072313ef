import { describe, expect, it } from 'vitest';
import {
  IdentifierError,
  isValidLocalpartForRegistration,
  isValidUserId,
  parseEventId,
  parseRoomAlias,
  parseRoomId,
  parseServerName,
  parseUserId,
} from './identifiers.js';

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(IdentifierError);
    return (e as Error).message;
  }
  throw new Error('expected an IdentifierError');
}

describe('server names', () => {
  it.each([
    ['matrix.org', { host: 'matrix.org', kind: 'dns' }],
    ['matrix.org:8888', { host: 'matrix.org', port: 8888, kind: 'dns' }],
    ['1.2.3.4', { host: '1.2.3.4', kind: 'ipv4' }],
    ['1.2.3.4:1234', { host: '1.2.3.4', port: 1234, kind: 'ipv4' }],
    ['[1234:5678::abcd]', { host: '[1234:5678::abcd]', kind: 'ipv6' }],
    ['[1234:5678::abcd]:5678', { host: '[1234:5678::abcd]', port: 5678, kind: 'ipv6' }],
    ['[::ffff:1.2.3.4]', { host: '[::ffff:1.2.3.4]', kind: 'ipv6' }],
    ['localhost', { host: 'localhost', kind: 'dns' }],
    ['my-server.example-1.com', { host: 'my-server.example-1.com', kind: 'dns' }],
    ['EXAMPLE.com', { host: 'EXAMPLE.com', kind: 'dns' }],
  ])('%s', (input, expected) => {
    expect(parseServerName(input)).toEqual(expected);
  });
  it.each([
    ['', /empty/],
    [':8448', /empty host/],
    ['exa_mple.com', /invalid character '_' in its host/],
    ['example.com:', /invalid port ''/],
    ['example.com:123456', /invalid port '123456'/],
    ['example.com:80a', /invalid port '80a'/],
    ['[1234::abcd', /without its closing '\]'/],
    ['[12g4::1]', /invalid IPv6 literal '12g4::1'/],
    ['[]', /invalid IPv6 literal ''/],
    ['[::1]x', /'x' after the host/],
    ['a'.repeat(256), /longer than 255/],
    ['exämple.com', /invalid character 'ä'/],
  ])('refuses %j', (input, message) => {
    expect(errorOf(() => parseServerName(input))).toMatch(message);
  });
});

describe('user ids', () => {
  it.each([
    ['@alice:example.org', 'alice', 'example.org', false],
    ['@a.b_c=d-e/f+g:example.org:8448', 'a.b_c=d-e/f+g', 'example.org:8448', false],
    ['@bob:[::1]:8008', 'bob', '[::1]:8008', false],
    ['@Alice:example.org', 'Alice', 'example.org', true],
    ['@a!b"c#~:example.org', 'a!b"c#~', 'example.org', true],
  ])('%s', (input, localpart, serverName, historical) => {
    expect(parseUserId(input)).toEqual({ localpart, serverName, historical });
  });
  it.each([
    ['alice:example.org', /does not start with '@'/],
    ['@x', /user id '@x' has no ':' separating localpart and server name/],
    ['@:example.org', /empty localpart/],
    ['@al ice:example.org', /invalid character " " in its localpart/],
    ['@alïce:example.org', /invalid character "ï" in its localpart/],
    ['@alice:exa mple.org', /invalid server name: .*invalid character ' ' in its host/],
    ['@alice:', /invalid server name: server name is empty/],
    [`@${'a'.repeat(250)}:example.org`, /user id is 263 bytes long; the limit is 255/],
  ])('refuses %j', (input, message) => {
    expect(errorOf(() => parseUserId(input))).toMatch(message);
  });
  it('exactly 255 bytes is allowed', () => {
    const id = `@${'a'.repeat(255 - 1 - ':example.org'.length)}:example.org`;
    expect(Buffer.byteLength(id)).toBe(255);
    expect(isValidUserId(id)).toBe(true);
    expect(isValidUserId(`@a${id.slice(1)}`)).toBe(false);
  });
  it('registration localparts use the strict grammar', () => {
    expect(isValidLocalpartForRegistration('alice.b_c=d-e/f+g9')).toBe(true);
    expect(isValidLocalpartForRegistration('Alice')).toBe(false);
    expect(isValidLocalpartForRegistration('a!b')).toBe(false);
    expect(isValidLocalpartForRegistration('')).toBe(false);
    expect(isValidLocalpartForRegistration('a:b')).toBe(false);
  });
});

describe('room ids', () => {
  const v12 = '!' + 'A'.repeat(20) + '-_' + 'b9'.repeat(10) + 'z';
  it.each([
    ['!abc:example.org', { opaque: 'abc', serverName: 'example.org' }],
    ['!OGEhHVWSdvArJzumhm:matrix.org', { opaque: 'OGEhHVWSdvArJzumhm', serverName: 'matrix.org' }],
    ['!x:1.2.3.4:80', { opaque: 'x', serverName: '1.2.3.4:80' }],
    [v12, { opaque: v12.slice(1) }],
  ])('%s', (input, expected) => {
    expect(parseRoomId(input)).toEqual(expected);
  });
  it.each([
    ['abc:example.org', /does not start with '!'/],
    ['!abc', /no ':' separating opaque id and server name, and is not a room version 12 id/],
    ['!' + 'A'.repeat(42), /not a room version 12 id/],
    ['!' + 'A'.repeat(42) + '+', /not a room version 12 id/],
    ['!:example.org', /empty opaque id/],
    ['!abc:bad_host', /invalid server name: .*'_'/],
    [`!${'a'.repeat(255)}:example.org`, /bytes long; the limit is 255/],
  ])('refuses %j', (input, message) => {
    expect(errorOf(() => parseRoomId(input))).toMatch(message);
  });
});

describe('event ids', () => {
  it.each([
    ['$0:domain', { opaque: '0', serverName: 'domain' }],
    ['$acR1l0raoZnm60CBwAVgqbZqoO/mYU81xysh1u7XcJk', { opaque: 'acR1l0raoZnm60CBwAVgqbZqoO/mYU81xysh1u7XcJk' }],
    ['$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg', { opaque: 'Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg' }],
  ])('%s', (input, expected) => {
    expect(parseEventId(input)).toEqual(expected);
  });
  it.each([
    ['0:domain', /does not start with '\$'/],
    ['$abc', /not a hash id/],
    ['$:domain', /empty opaque id/],
    ['$a:', /invalid server name/],
  ])('refuses %j', (input, message) => {
    expect(errorOf(() => parseEventId(input))).toMatch(message);
  });
});

describe('room aliases', () => {
  it.each([
    ['#room:example.org', { localpart: 'room', serverName: 'example.org' }],
    ['#Room.With-chars:example.org:8448', { localpart: 'Room.With-chars', serverName: 'example.org:8448' }],
  ])('%s', (input, expected) => {
    expect(parseRoomAlias(input)).toEqual(expected);
  });
  it.each([
    ['room:example.org', /does not start with '#'/],
    ['#room', /no ':' separating localpart and server name/],
    ['#:example.org', /empty localpart/],
    ['#room:ex!ample', /invalid server name/],
    [`#${'r'.repeat(250)}:example.org`, /the limit is 255/],
  ])('refuses %j', (input, message) => {
    expect(errorOf(() => parseRoomAlias(input))).toMatch(message);
  });
});
