import { createHash } from 'node:crypto';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { decodeBase64, encodeUnpaddedBase64 } from './base64.js';
import { canonicalJson } from './canonical-json.js';
import type { Pdu } from './event-types.js';
import {
  EventFormatError,
  checkContentHash,
  checkEvent,
  computeContentHash,
  computeEventId,
  computeReferenceHash,
  hashAndSignEvent,
  hashSignAndIdEvent,
  pduToRoomEvent,
  redactEvent,
  roomIdForCreateEvent,
  verifyEventSignature,
} from './events.js';
import { ROOM_VERSIONS, getRoomVersion } from './room-versions.js';
import { generateSigningKey, signingKeyFromSeed } from './signing.js';

const key = signingKeyFromSeed(decodeBase64('YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1'), '1');
const ALL_VERSIONS = [...ROOM_VERSIONS.values()];
const PRE_V11 = ALL_VERSIONS.filter((v) => Number(v.id) < 11);
const V11_ON = ALL_VERSIONS.filter((v) => Number(v.id) >= 11);

// test-vectors.md section D
const minimalEvent = (): Pdu =>
  ({
    room_id: '!x:domain',
    sender: '@a:domain',
    origin: 'domain',
    origin_server_ts: 1000000,
    signatures: {},
    hashes: {},
    type: 'X',
    content: {},
    prev_events: [],
    auth_events: [],
    depth: 3,
    unsigned: { age_ts: 1000000 },
  }) as unknown as Pdu;

const redactableEvent = (): Pdu =>
  ({
    content: { body: 'Here is the message content' },
    event_id: '$0:domain',
    origin: 'domain',
    origin_server_ts: 1000000,
    type: 'm.room.message',
    room_id: '!r:domain',
    sender: '@u:domain',
    signatures: {},
    unsigned: { age_ts: 1000000 },
  }) as unknown as Pdu;

const SIGNED_REDACTED_1 =
  '{"auth_events":[],"content":{},"depth":3,"hashes":{"sha256":"5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"},"origin":"domain","origin_server_ts":1000000,"prev_events":[],"room_id":"!x:domain","sender":"@a:domain","type":"X"}';
const SIGNED_REDACTED_2 =
  '{"content":{},"event_id":"$0:domain","hashes":{"sha256":"onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"},"origin":"domain","origin_server_ts":1000000,"room_id":"!r:domain","sender":"@u:domain","type":"m.room.message"}';

describe('event signing: the spec vectors (pre-v11 redaction, see the note in test-vectors.md)', () => {
  it.each(PRE_V11.map((v) => [v.id, v] as const))('minimal event, room version %s', (_id, version) => {
    const signed = hashAndSignEvent(minimalEvent(), 'domain', key, version);
    expect(signed).toEqual({
      auth_events: [],
      content: {},
      depth: 3,
      hashes: { sha256: '5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos' },
      origin: 'domain',
      origin_server_ts: 1000000,
      prev_events: [],
      room_id: '!x:domain',
      sender: '@a:domain',
      signatures: {
        domain: { 'ed25519:1': 'KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg' },
      },
      type: 'X',
      unsigned: { age_ts: 1000000 },
    });
    expect(verifyEventSignature(signed, 'domain', 'ed25519:1', key.publicKey, version)).toBe(true);
    expect(checkContentHash(signed)).toBe(true);
  });

  it.each(PRE_V11.map((v) => [v.id, v] as const))('event with redactable content, room version %s', (_id, version) => {
    const signed = hashAndSignEvent(redactableEvent(), 'domain', key, version);
    expect(signed).toEqual({
      content: { body: 'Here is the message content' },
      event_id: '$0:domain',
      hashes: { sha256: 'onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g' },
      origin: 'domain',
      origin_server_ts: 1000000,
      type: 'm.room.message',
      room_id: '!r:domain',
      sender: '@u:domain',
      signatures: {
        domain: { 'ed25519:1': 'Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA' },
      },
      unsigned: { age_ts: 1000000 },
    });
    expect(verifyEventSignature(signed, 'domain', 'ed25519:1', key.publicKey, version)).toBe(true);
  });

  it('signs exactly the redacted canonical JSON given in test-vectors.md', () => {
    const v1 = getRoomVersion('1');
    for (const [event, text] of [
      [minimalEvent(), SIGNED_REDACTED_1],
      [redactableEvent(), SIGNED_REDACTED_2],
    ] as const) {
      const signed = hashAndSignEvent(event, 'domain', key, v1);
      const { signatures: _s, unsigned: _u, ...rest } = redactEvent(signed, v1);
      expect(canonicalJson(rest)).toBe(text);
      // tweetnacl, an independent implementation, agrees with the signature
      const sig = decodeBase64(signed.signatures!.domain!['ed25519:1']!);
      expect(nacl.sign.detached.verify(Buffer.from(text), sig, key.publicKey)).toBe(true);
    }
  });

  it.each(V11_ON.map((v) => [v.id, v] as const))('v11 rules drop origin: the signatures derived in test-vectors.md (v%s)', (_id, version) => {
    const one = hashAndSignEvent(minimalEvent(), 'domain', key, version);
    expect(one.hashes!.sha256).toBe('5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos');
    expect(one.signatures!.domain!['ed25519:1']).toBe('Jxp+1glFcZM+nnHpY0EkedRR7u0VmKsJYGnQqIvqus3UvL5X/p1y6wSkLhGoTBel6MZ9lrMIzUqrjqFquWJKBw');
    const two = hashAndSignEvent(redactableEvent(), 'domain', key, version);
    expect(two.hashes!.sha256).toBe('onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g');
    expect(two.signatures!.domain!['ed25519:1']).toBe('4WQB/6LN2OtkUN/+18xUNB/U4RTX1N3EeKBdlCxux08YO8izKDrSRqML1XB8V97IK7AujkNO1xMl7TaBLA4kDw');
  });
});

describe('content hash', () => {
  it('ignores unsigned, signatures and hashes', () => {
    const e = minimalEvent();
    const h = computeContentHash(e);
    expect(computeContentHash({ ...e, unsigned: { other: 1 }, signatures: { x: {} }, hashes: { sha256: 'zz' } })).toBe(h);
    expect(computeContentHash({ ...e, depth: 4 })).not.toBe(h);
  });
  it('refuses a tampered or missing hash', () => {
    const signed = hashAndSignEvent(minimalEvent(), 'domain', key, getRoomVersion('10'));
    expect(checkContentHash({ ...signed, content: { x: 1 } })).toBe(false);
    expect(checkContentHash({ ...signed, hashes: undefined })).toBe(false);
    expect(checkContentHash({ ...signed, hashes: { sha256: 5 } })).toBe(false);
    expect(checkContentHash({ ...signed, content: { f: 0.5 } })).toBe(false);
  });
});

describe('event signatures', () => {
  const version = getRoomVersion('10');
  const message: Pdu = {
    room_id: '!r:domain',
    sender: '@u:domain',
    type: 'm.room.message',
    content: { body: 'hello', msgtype: 'm.text' },
    prev_events: ['$a'],
    auth_events: ['$b', '$c'],
    depth: 7,
    origin_server_ts: 1234,
  };
  const signed = hashAndSignEvent(message, 'domain', key, version);

  it('survive redaction and unsigned changes (they cover the redacted form)', () => {
    expect(verifyEventSignature(redactEvent(signed, version), 'domain', 'ed25519:1', key.publicKey, version)).toBe(true);
    expect(verifyEventSignature({ ...signed, unsigned: { age: 5 } }, 'domain', 'ed25519:1', key.publicKey, version)).toBe(true);
    // content is not covered by the signature, but the content hash catches the change
    const edited = { ...signed, content: { body: 'changed' } };
    expect(verifyEventSignature(edited, 'domain', 'ed25519:1', key.publicKey, version)).toBe(true);
    expect(checkContentHash(edited)).toBe(false);
  });
  it('are refused when a signed field, the hash or the signature is tampered with', () => {
    expect(verifyEventSignature({ ...signed, depth: 8 }, 'domain', 'ed25519:1', key.publicKey, version)).toBe(false);
    expect(verifyEventSignature({ ...signed, hashes: { sha256: 'x' } }, 'domain', 'ed25519:1', key.publicKey, version)).toBe(false);
    const sig = decodeBase64(signed.signatures!.domain!['ed25519:1']!);
    sig[0] ^= 0x80;
    const tampered = { ...signed, signatures: { domain: { 'ed25519:1': encodeUnpaddedBase64(sig) } } };
    expect(verifyEventSignature(tampered, 'domain', 'ed25519:1', key.publicKey, version)).toBe(false);
    expect(verifyEventSignature(signed, 'domain', 'ed25519:1', generateSigningKey().publicKey, version)).toBe(false);
    expect(verifyEventSignature(signed, 'elsewhere', 'ed25519:1', key.publicKey, version)).toBe(false);
  });
  it('keeps existing signatures when a second server signs', () => {
    const other = generateSigningKey('x');
    const both = hashAndSignEvent(signed, 'other.org', other, version);
    expect(verifyEventSignature(both, 'domain', 'ed25519:1', key.publicKey, version)).toBe(true);
    expect(verifyEventSignature(both, 'other.org', 'ed25519:x', other.publicKey, version)).toBe(true);
  });
  it('checkEvent gives the content hash, event id and signatures in one pass', () => {
    const result = checkEvent(signed, version, [
      { serverName: 'domain', keyId: 'ed25519:1', publicKey: key.publicKey },
      { serverName: 'domain', keyId: 'ed25519:2', publicKey: key.publicKey },
    ]);
    expect(result).toEqual({ eventId: computeEventId(signed, version), contentHashValid: true, signaturesValid: [true, false] });
    const bad = checkEvent({ ...signed, content: { x: 1.5 } }, version, [{ serverName: 'domain', keyId: 'ed25519:1', publicKey: key.publicKey }]);
    expect(bad.contentHashValid).toBe(false);
    expect(bad.signaturesValid).toEqual([true]); // content is redacted away before signing
  });
});

describe('reference hashes and event ids', () => {
  const sha = (s: string) => createHash('sha256').update(s).digest();
  it('reference hash = sha256 of the redacted canonical form without signatures (vector event 1)', () => {
    const signed = hashAndSignEvent(minimalEvent(), 'domain', key, getRoomVersion('3'));
    expect(computeReferenceHash(signed, getRoomVersion('3')).equals(sha(SIGNED_REDACTED_1))).toBe(true);
    // signatures, unsigned and redacted-away content do not change it
    const changed = { ...signed, signatures: {}, unsigned: { x: 1 }, content: { body: 'x' } };
    expect(computeReferenceHash(changed, getRoomVersion('3')).equals(sha(SIGNED_REDACTED_1))).toBe(true);
  });
  it('hashSignAndIdEvent = hashAndSignEvent + computeEventId, in every room version, redactable content included', () => {
    for (const version of ALL_VERSIONS) {
      // Room versions 1 and 2 carry their own event_id.
      const own = version.eventIdFormat === 'v1' ? { event_id: '$own:domain' } : {};
      for (const pdu of [{ ...minimalEvent(), ...own }, { ...redactableEvent(), ...own }, { ...redactableEvent(), ...own, unsigned: { age_ts: 5 } } as Pdu]) {
        const expected = hashAndSignEvent(pdu, 'domain', key, version);
        const { pdu: signed, eventId } = hashSignAndIdEvent(pdu, 'domain', key, version);
        expect(signed).toEqual(expected);
        expect(eventId).toBe(computeEventId(expected, version));
      }
    }
  });

  it('v1 and v2 rooms: the event_id field', () => {
    expect(computeEventId(redactableEvent(), getRoomVersion('1'))).toBe('$0:domain');
    expect(computeEventId(redactableEvent(), getRoomVersion('2'))).toBe('$0:domain');
    expect(() => computeEventId(minimalEvent(), getRoomVersion('1'))).toThrow(EventFormatError);
  });
  it('v3: $ + standard unpadded base64; v4+: URL-safe', () => {
    // find an event whose hash has + or / so that the two formats differ
    let event: Pdu = minimalEvent();
    for (let d = 0; ; d++) {
      event = { ...minimalEvent(), depth: d };
      if (/[+/]/.test(computeReferenceHash(event, getRoomVersion('3')).toString('base64'))) break;
    }
    const hash = computeReferenceHash(event, getRoomVersion('3'));
    const std = `$${hash.toString('base64').replace(/=+$/, '')}`;
    expect(computeEventId(event, getRoomVersion('3'))).toBe(std);
    expect(std).toHaveLength(44);
    for (const v of ['4', '5', '6', '7', '8', '9', '10']) {
      expect(computeEventId(event, getRoomVersion(v))).toBe(std.replace(/\+/g, '-').replace(/\//g, '_'));
    }
    // v11+ redaction drops `origin`, so the hash differs
    expect(computeEventId(event, getRoomVersion('11'))).not.toBe(computeEventId(event, getRoomVersion('10')));
    expect(computeEventId(event, getRoomVersion('11'))).toMatch(/^\$[A-Za-z0-9_-]{43}$/);
  });
  it('v12: the room id is ! + the create event reference hash, URL-safe', () => {
    const v12 = getRoomVersion('12');
    const create = hashAndSignEvent(
      {
        type: 'm.room.create',
        state_key: '',
        sender: '@creator:domain',
        content: { room_version: '12' },
        prev_events: [],
        auth_events: [],
        depth: 1,
        origin_server_ts: 5,
      },
      'domain',
      key,
      v12,
    );
    const roomId = roomIdForCreateEvent(create, v12);
    expect(roomId).toMatch(/^![A-Za-z0-9_-]{43}$/);
    expect(roomId.slice(1)).toBe(computeEventId(create, v12).slice(1));
    expect(() => roomIdForCreateEvent(create, getRoomVersion('11'))).toThrow(/does not derive room ids/);
    expect(() => roomIdForCreateEvent({ ...create, type: 'm.room.member' }, v12)).toThrow(/only an m.room.create/);
  });
});

describe('pduToRoomEvent', () => {
  it('flattens v1/v2 [id, hashes] edges and keeps the event_id', () => {
    const pdu = {
      ...redactableEvent(),
      prev_events: [['$p:domain', { sha256: 'abc' }]],
      auth_events: [['$a:domain', { sha256: 'def' }], ['$b:domain', { sha256: 'ghi' }]],
      depth: 2,
    } as Pdu;
    const event = pduToRoomEvent(pdu, getRoomVersion('2'));
    expect(event.event_id).toBe('$0:domain');
    expect(event.prev_events).toEqual(['$p:domain']);
    expect(event.auth_events).toEqual(['$a:domain', '$b:domain']);
    expect(event.content).toEqual(pdu.content);
  });
  it('computes the id for v3+', () => {
    const pdu = { ...minimalEvent(), prev_events: ['$x'], auth_events: ['$y'] } as Pdu;
    const event = pduToRoomEvent(pdu, getRoomVersion('10'));
    expect(event.event_id).toBe(computeEventId(pdu, getRoomVersion('10')));
    expect(event.prev_events).toEqual(['$x']);
  });
  it('refuses malformed edges with a clear error', () => {
    const pdu = { ...minimalEvent(), prev_events: [5] } as unknown as Pdu;
    expect(() => pduToRoomEvent(pdu, getRoomVersion('10'))).toThrow(/prev_events\[0\]/);
  });
});

// ---------------------------------------------------------------------------------------------
// Redaction, table-driven over versions 1-12: for each key, the versions that keep it.

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => String(from + i));
const ALL = range(1, 12);

interface ContentCase {
  type: string;
  key: string;
  value: unknown;
  keptIn: string[];
}

const contentCases: ContentCase[] = [
  { type: 'm.room.member', key: 'membership', value: 'join', keptIn: ALL },
  { type: 'm.room.member', key: 'displayname', value: 'Alice', keptIn: [] },
  { type: 'm.room.member', key: 'join_authorised_via_users_server', value: '@x:y', keptIn: range(9, 12) },
  { type: 'm.room.create', key: 'creator', value: '@a:b', keptIn: ALL },
  { type: 'm.room.create', key: 'room_version', value: '1', keptIn: range(11, 12) },
  { type: 'm.room.create', key: 'm.federate', value: false, keptIn: range(11, 12) },
  { type: 'm.room.join_rules', key: 'join_rule', value: 'public', keptIn: ALL },
  { type: 'm.room.join_rules', key: 'allow', value: [], keptIn: range(8, 12) },
  ...['ban', 'events', 'events_default', 'kick', 'redact', 'state_default', 'users', 'users_default'].map((key) => ({
    type: 'm.room.power_levels',
    key,
    value: 50,
    keptIn: ALL,
  })),
  { type: 'm.room.power_levels', key: 'invite', value: 0, keptIn: range(11, 12) },
  { type: 'm.room.power_levels', key: 'notifications', value: { room: 50 }, keptIn: [] },
  { type: 'm.room.aliases', key: 'aliases', value: ['#a:b'], keptIn: range(1, 5) },
  { type: 'm.room.history_visibility', key: 'history_visibility', value: 'shared', keptIn: ALL },
  { type: 'm.room.redaction', key: 'redacts', value: '$e', keptIn: range(11, 12) },
  { type: 'm.room.redaction', key: 'reason', value: 'spam', keptIn: [] },
  { type: 'm.room.message', key: 'body', value: 'hi', keptIn: [] },
  { type: 'm.room.topic', key: 'topic', value: 't', keptIn: [] },
  { type: 'm.room.name', key: 'name', value: 'n', keptIn: [] },
];

const topLevelCases: { key: string; keptIn: string[] }[] = [
  ...['event_id', 'type', 'room_id', 'sender', 'state_key', 'content', 'hashes', 'signatures', 'depth', 'prev_events', 'auth_events', 'origin_server_ts'].map(
    (key) => ({ key, keptIn: ALL }),
  ),
  { key: 'origin', keptIn: range(1, 10) },
  { key: 'membership', keptIn: range(1, 10) },
  { key: 'prev_state', keptIn: range(1, 10) },
  { key: 'unsigned', keptIn: [] },
  { key: 'redacts', keptIn: [] },
  { key: 'age_ts', keptIn: [] },
  { key: 'custom_field', keptIn: [] },
];

describe('redaction per room version', () => {
  const table = ALL.flatMap((v) => contentCases.map((c) => [v, c.type, c.key, c.keptIn.includes(v), c.value] as const));
  it.each(table)('v%s %s content.%s kept: %s', (v, type, key, kept, value) => {
    const event = { type, content: { [key]: value, other_unknown_key: 1 }, sender: '@a:b' };
    const redacted = redactEvent(event, getRoomVersion(v));
    // v11+ keeps every key of m.room.create content, unknown ones included
    const keepsAll = Number(v) >= 11 && type === 'm.room.create';
    expect(redacted.content).toEqual(keepsAll ? { [key]: value, other_unknown_key: 1 } : kept ? { [key]: value } : {});
  });

  const topTable = ALL.flatMap((v) => topLevelCases.map((c) => [v, c.key, c.keptIn.includes(v)] as const));
  it.each(topTable)('v%s top-level %s kept: %s', (v, key, kept) => {
    const event = { type: 'm.room.message', content: {}, [key]: key === 'content' ? {} : 'value' };
    const redacted = redactEvent(event, getRoomVersion(v)) as Record<string, unknown>;
    expect(key in redacted).toBe(kept);
  });

  it.each(ALL)('v%s m.room.member third_party_invite keeps only signed from v11', (v) => {
    const content = { membership: 'invite', third_party_invite: { display_name: 'x', signed: { mxid: '@a:b', token: 't' } } };
    const redacted = redactEvent({ type: 'm.room.member', content }, getRoomVersion(v));
    expect(redacted.content).toEqual(
      Number(v) >= 11 ? { membership: 'invite', third_party_invite: { signed: { mxid: '@a:b', token: 't' } } } : { membership: 'invite' },
    );
  });

  it('v11 m.room.member: third_party_invite without signed is dropped entirely', () => {
    const redacted = redactEvent({ type: 'm.room.member', content: { membership: 'invite', third_party_invite: { display_name: 'x' } } }, getRoomVersion('11'));
    expect(redacted.content).toEqual({ membership: 'invite' });
  });

  it('does not change its input and gives content {} when content is missing or not an object', () => {
    const event = { type: 'm.room.member', content: { membership: 'join', displayname: 'A' }, unsigned: { a: 1 } };
    const copy = structuredClone(event);
    redactEvent(event, getRoomVersion('10'));
    expect(event).toEqual(copy);
    expect(redactEvent({ type: 'm.room.message' }, getRoomVersion('10'))).toEqual({ type: 'm.room.message', content: {} });
    expect(redactEvent({ type: 'm.room.message', content: [1] }, getRoomVersion('10'))).toEqual({ type: 'm.room.message', content: {} });
  });
});
