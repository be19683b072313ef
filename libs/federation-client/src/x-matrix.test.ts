import { describe, expect, it } from 'vitest';
import { generateSigningKey } from '@tessera/protocol';
import { FederationAuthError } from './errors.js';
import { parseXMatrixHeader, signRequest, verifyRequest } from './x-matrix.js';

const key = generateSigningKey('k1');
const other = generateSigningKey('k2');
const keys = new Map([[`origin.test ed25519:k1`, key.publicKey], [`origin.test ed25519:k2`, other.publicKey]]);
const getKey = async (server: string, keyId: string) => keys.get(`${server} ${keyId}`);

const base = { method: 'PUT', uri: '/_matrix/federation/v1/send/txn1?x=%20y', origin: 'origin.test', destination: 'dest.test', content: { pdus: [], edus: [] } };

async function authError(p: Promise<unknown>): Promise<FederationAuthError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(FederationAuthError);
  return err as FederationAuthError;
}

describe('signRequest / verifyRequest', () => {
  it('writes the header the spec recommends and it verifies', async () => {
    const header = signRequest(base, key);
    expect(header).toMatch(/^X-Matrix origin="origin.test",destination="dest.test",key="ed25519:k1",sig="[A-Za-z0-9+/]+"$/);
    const ok = await verifyRequest({ method: 'PUT', uri: base.uri, header, content: base.content, destination: 'dest.test' }, getKey);
    expect(ok).toEqual({ origin: 'origin.test', keyId: 'ed25519:k1' });
  });

  it('signs without content when there is no body', async () => {
    const header = signRequest({ ...base, method: 'GET', content: undefined }, key);
    await expect(verifyRequest({ method: 'GET', uri: base.uri, header, destination: 'dest.test' }, getKey)).resolves.toBeTruthy();
    const e = await authError(verifyRequest({ method: 'GET', uri: base.uri, header, content: {}, destination: 'dest.test' }, getKey));
    expect(e.message).toMatch(/does not verify/);
  });

  it.each([
    ['method', { method: 'POST' }],
    ['uri', { uri: '/_matrix/federation/v1/send/txn2' }],
    ['content', { content: { pdus: [1], edus: [] } }],
  ])('refuses a request whose %s differs from what was signed', async (_what, change) => {
    const header = signRequest(base, key);
    const e = await authError(verifyRequest({ method: 'PUT', uri: base.uri, content: base.content, destination: 'dest.test', header, ...change }, getKey));
    expect(e.status).toBe(401);
    expect(e.errcode).toBe('M_UNAUTHORIZED');
  });

  it('refuses a request meant for another server with 401', async () => {
    const header = signRequest(base, key);
    const e = await authError(verifyRequest({ ...base, header, destination: 'elsewhere.test' }, getKey));
    expect(e.status).toBe(401);
    expect(e.message).toMatch(/destination "dest.test" is not this server/);
  });

  it('accepts a header without destination (older servers) when signed for us', async () => {
    const full = signRequest(base, key);
    const header = full.replace(',destination="dest.test"', '');
    await expect(verifyRequest({ ...base, header }, getKey)).resolves.toEqual({ origin: 'origin.test', keyId: 'ed25519:k1' });
  });

  it('refuses a signature by another key than the one named', async () => {
    const header = signRequest(base, other).replace('ed25519:k2', 'ed25519:k1');
    const e = await authError(verifyRequest({ ...base, header }, getKey));
    expect(e.message).toMatch(/does not verify/);
  });

  it('refuses unknown keys, a missing header, other schemes, and refused origins', async () => {
    const header = signRequest(base, generateSigningKey('k9'));
    expect((await authError(verifyRequest({ ...base, header }, getKey))).message).toMatch(/no valid key ed25519:k9 is known for origin.test/);
    expect((await authError(verifyRequest({ ...base, header: undefined }, getKey))).message).toBe('Missing Authorization header');
    expect((await authError(verifyRequest({ ...base, header: 'Bearer abc' }, getKey))).message).toMatch(/X-Matrix scheme/);
    const forbidden = await authError(verifyRequest({ ...base, header: signRequest(base, key) }, getKey, { isOriginAllowed: () => false }));
    expect(forbidden.status).toBe(403);
    expect(forbidden.errcode).toBe('M_FORBIDDEN');
  });

  it('tries each X-Matrix header and accepts the one that verifies', async () => {
    const good = signRequest(base, key);
    const bad = signRequest({ ...base, uri: '/other' }, key);
    await expect(verifyRequest({ ...base, header: ['Bearer x', bad, good] }, getKey)).resolves.toBeTruthy();
  });

  it('turns a key lookup failure into M_UNAUTHORIZED', async () => {
    const e = await authError(verifyRequest({ ...base, header: signRequest(base, key) }, async () => { throw new Error('boom'); }));
    expect(e.message).toMatch(/could not fetch key ed25519:k1 of origin.test: boom/);
  });
});

describe('parseXMatrixHeader', () => {
  it('accepts quoted and unquoted values, any name case, spaces and tabs around commas, unknown params', () => {
    expect(parseXMatrixHeader('x-matrix  ORIGIN=origin.test , Destination="dest.test",\tkey=ed25519:k1,foo="bar", sig=abc/+9')).toEqual({
      origin: 'origin.test',
      destination: 'dest.test',
      key: 'ed25519:k1',
      sig: 'abc/+9',
    });
  });

  it('unescapes backslashes in quoted values', () => {
    expect(parseXMatrixHeader('X-Matrix origin="a\\"b",key="ed25519:\\k",sig="s"')).toMatchObject({ origin: 'a"b', key: 'ed25519:k' });
  });

  it.each([
    ['X-Matrix', /lacks origin, key, sig/],
    ['X-Matrix origin="a",key="ed25519:x"', /lacks sig/],
    ['X-Matrix origin="a,key=b,sig=c', /not closed/],
    ['X-Matrix origin', /has no "=value"/],
    ['X-Matrix origin=a b,key=c,sig=d', /expected "," after the value of "origin"/],
    ['X-Matrix origin=a,origin=b,key=c,sig=d', /appears twice/],
    ['X-Matrix origin=,key=c,sig=d', /empty value/],
    ['Basic abc', /X-Matrix scheme/],
    ['X-Matrixorigin=a', /X-Matrix scheme/],
  ])('refuses %j', (header, message) => {
    expect(() => parseXMatrixHeader(header)).toThrow(message);
  });
});
