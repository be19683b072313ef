/**
 * Protocol core figures: canonical JSON encodes/s of a ~1 KB event, and full verification of
 * a ~1 KB event per second (content hash check, redaction, reference hash / event id,
 * Ed25519 signature) beside raw node:crypto Ed25519 verifies/s measured in the same run.
 * Goal: full verification at >= 50% of the raw verify rate.
 */
import { createPublicKey, verify } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import {
  canonicalJson,
  canonicalJsonBytes,
  checkContentHash,
  checkEvent,
  computeEventId,
  generateSigningKey,
  getRoomVersion,
  hashAndSignEvent,
  redactEvent,
  signBytes,
  verifyEventSignature,
  type Pdu,
} from '@tessera/protocol';

function bench(name: string, unit: string, fn: () => unknown, seconds = 1): number {
  for (let i = 0; i < 200; i++) fn(); // warm up
  let n = 0;
  const start = process.hrtime.bigint();
  const budget = BigInt(Math.round(seconds * 1e9));
  let elapsed = 0n;
  while (elapsed < budget) {
    for (let i = 0; i < 100; i++) fn();
    n += 100;
    elapsed = process.hrtime.bigint() - start;
  }
  const rate = n / (Number(elapsed) / 1e9);
  console.log(`BENCH ${name} ${Math.round(rate)} ${unit}`);
  return rate;
}

function typicalEvent(): Pdu {
  return {
    room_id: '!OGEhHVWSdvArJzumhm:matrix.org',
    sender: '@alice:example.org',
    type: 'm.room.message',
    content: {
      msgtype: 'm.text',
      body: 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. '.repeat(2),
      format: 'org.matrix.custom.html',
      formatted_body: '<p>Lorem ipsum dolor sit amet, <b>consectetur</b> adipiscing elit, sed do eiusmod tempor.</p>',
      'm.mentions': { user_ids: ['@bob:example.org'] },
    },
    prev_events: ['$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg'],
    auth_events: [
      '$acR1l0raoZnm60CBwAVgqbZqoO_mYU81xysh1u7XcJk',
      '$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Za',
      '$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zb',
    ],
    depth: 12345,
    origin_server_ts: 1700000000000,
    unsigned: { age: 1234 },
  };
}

export function main(): void {
  const version = getRoomVersion('10');
  const key = generateSigningKey('bench');
  const event = hashAndSignEvent(typicalEvent(), 'example.org', key, version);
  const size = canonicalJsonBytes(event).length;
  console.log(`BENCH protocol.event_size ${size} bytes`);

  bench('protocol.canonical_json_encode', 'ops/s', () => canonicalJson(event));

  // Baseline: raw node:crypto Ed25519 verification of the same-sized message, KeyObject reused.
  const publicKeyObject = createPublicKey({
    key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), key.publicKey]),
    format: 'der',
    type: 'spki',
  });
  const message = canonicalJsonBytes(event);
  const sigOverMessage = signBytes(message, key);
  if (!verify(null, message, publicKeyObject, sigOverMessage)) throw new Error('raw baseline signature does not verify');
  const raw = bench('protocol.raw_ed25519_verify', 'ops/s', () => verify(null, message, publicKeyObject, sigOverMessage));

  const signer = [{ serverName: 'example.org', keyId: key.keyId, publicKey: key.publicKey }];
  const once = checkEvent(event, version, signer);
  if (!once.contentHashValid || !once.signaturesValid[0]) throw new Error('benchmark event does not verify');
  const full = bench('protocol.event_full_verify', 'ops/s', () => checkEvent(event, version, signer));
  console.log(`BENCH protocol.event_full_verify_vs_raw ${((100 * full) / raw).toFixed(1)} %`);

  // The same work through the separate functions (redaction and encoding done twice).
  const separate = bench('protocol.event_full_verify_separate_calls', 'ops/s', () => {
    checkContentHash(event);
    computeEventId(event, version);
    verifyEventSignature(event, 'example.org', key.keyId, key.publicKey, version);
  });
  console.log(`BENCH protocol.event_full_verify_separate_calls_vs_raw ${((100 * separate) / raw).toFixed(1)} %`);

  bench('protocol.redact_event', 'ops/s', () => redactEvent(event, version));
  bench('protocol.hash_and_sign_event', 'ops/s', () => hashAndSignEvent(typicalEvent(), 'example.org', key, version));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) main();
