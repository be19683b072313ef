/**
 * Federation figures, two homeservers of ours over HTTPS on loopback (test CA), PostgreSQL:
 * - inbound PDUs per second through federation-ingress -> room-server -> persistence, sent by
 *   a simulated remote server in /send transactions of 50, beside the raw Ed25519 verify rate
 *   measured in the same run;
 * - a send_join answer of a room with FED_BENCH_MEMBERS (default 10,000) members, validated
 *   (every hash, signature and auth rule) and persisted by the joining server: wall time.
 *   Goal: <= 5 s.
 */
import { createPublicKey, verify } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import {
  canonicalJsonBytes, computeEventId, getRoomVersion, hashAndSignEvent, signBytes, stateKey, type Pdu,
} from '@tessera/protocol';
import {
  ROOMSERVER_FEDERATION, ROOMSERVER_INPUT,
  type CreateRoomReply, type JoinRemoteRequest, type RemoteMembershipReply, type RoomServerRequest,
} from '@tessera/bus';
import { getCurrentState, getEvents, getForwardExtremities } from '@tessera/storage';
import { createFederationPki, FederatingServer } from '../test/federation/harness.js';

function rawVerifyRate(key: { publicKey: Uint8Array; seed?: Uint8Array }, sign: (b: Uint8Array) => Uint8Array): number {
  const msg = canonicalJsonBytes({ hello: 'world', n: 1, pad: 'x'.repeat(800) });
  const sig = sign(msg);
  const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(key.publicKey)]);
  const pub = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  for (let i = 0; i < 500; i++) verify(null, msg, pub, sig);
  const start = process.hrtime.bigint();
  let n = 0;
  while (process.hrtime.bigint() - start < 1_000_000_000n) {
    verify(null, msg, pub, sig);
    n++;
  }
  return n / (Number(process.hrtime.bigint() - start) / 1e9);
}

export async function main(): Promise<void> {
  // (Not @tessera/testing's `services`: its 1 s probe runs while this bench's imports load and
  // can time out; starting the servers below fails clearly when PostgreSQL is down.)
  const pki = createFederationPki();
  const hs1 = await FederatingServer.start(pki);
  const hs2 = await FederatingServer.start(pki);
  try {
    const key2 = hs2.signingKey;
    console.log(`BENCH fed_raw_ed25519_verify ${rawVerifyRate(key2, (b) => signBytes(b, key2)).toFixed(0)} verifies/s`);

    // --- Inbound PDUs per second -------------------------------------------------------------
    const alice = `@alice:${hs1.serverName}`;
    const bob = `@bob:${hs2.serverName}`;
    const { roomId } = await hs1.bus.request<RoomServerRequest, CreateRoomReply>(ROOMSERVER_INPUT, { op: 'createRoom', sender: alice, preset: 'public_chat' });
    await hs2.bus.request<JoinRemoteRequest, RemoteMembershipReply>(ROOMSERVER_FEDERATION, { op: 'joinRemote', roomId, userId: bob, serverNames: [hs1.serverName] });
    const rv = getRoomVersion('10');
    const state = new Map((await getCurrentState(hs1.db, roomId)).map(([t, k, id]) => [stateKey(t, k), id]));
    const auth = [state.get(stateKey('m.room.create', ''))!, state.get(stateKey('m.room.power_levels', ''))!, state.get(stateKey('m.room.member', bob))!];
    const ext = (await getForwardExtremities(hs1.db, roomId))[0]!;
    let prev = ext.eventId;
    let depth = ext.depth;
    const total = Number(process.env.FED_BENCH_PDUS ?? 2000);
    const pdus: Pdu[] = [];
    for (let i = 0; i < total; i++) {
      const pdu = hashAndSignEvent({
        room_id: roomId, sender: bob, type: 'm.room.message', content: { msgtype: 'm.text', body: `message ${i}` },
        prev_events: [prev], auth_events: auth, depth: ++depth, origin_server_ts: Date.now(), origin: hs2.serverName,
      }, hs2.serverName, key2, rv);
      prev = computeEventId(pdu, rv);
      pdus.push(pdu);
    }
    const client = hs2.client();
    const start = performance.now();
    for (let i = 0; i < pdus.length; i += 50) {
      const res = await client.put<{ pdus: Record<string, { error?: string }> }>(hs1.serverName, `/_matrix/federation/v1/send/bench-${i}`, {
        origin: hs2.serverName, origin_server_ts: Date.now(), pdus: pdus.slice(i, i + 50),
      });
      const failed = Object.values(res.pdus).filter((r) => r.error);
      if (failed.length > 0) throw new Error(`PDUs refused in the bench: ${failed[0]!.error}`);
    }
    const seconds = (performance.now() - start) / 1000;
    console.log(`BENCH fed_inbound_pdus ${(total / seconds).toFixed(0)} pdus/s`);
    client.close();

    // --- send_join of a big room ---------------------------------------------------------------
    const members = Number(process.env.FED_BENCH_MEMBERS ?? 10_000);
    const big = await hs1.bus.request<RoomServerRequest, CreateRoomReply>(ROOMSERVER_INPUT, { op: 'createRoom', sender: alice, preset: 'public_chat' });
    const fill = performance.now();
    const parallel = 16;
    for (let i = 0; i < members; i += parallel) {
      await Promise.all(Array.from({ length: Math.min(parallel, members - i) }, (_, j) =>
        hs1.bus.request(ROOMSERVER_INPUT, { op: 'membership', action: 'join', roomId: big.roomId, sender: `@m${i + j}:${hs1.serverName}` }, { timeoutMs: 120_000 })));
    }
    console.log(`# filled a room with ${members} members in ${((performance.now() - fill) / 1000).toFixed(1)} s`);
    const joinStart = performance.now();
    const joined = await hs2.bus.request<JoinRemoteRequest, RemoteMembershipReply>(ROOMSERVER_FEDERATION, { op: 'joinRemote', roomId: big.roomId, userId: `@carol:${hs2.serverName}`, serverNames: [hs1.serverName] }, { timeoutMs: 600_000 });
    const joinSeconds = (performance.now() - joinStart) / 1000;
    const held = (await getEvents(hs2.db, [joined.eventId])).get(joined.eventId);
    if (!held || held.streamPos === null) throw new Error('the join was not persisted as a timeline event');
    console.log(`BENCH fed_send_join_${members}_members ${joinSeconds.toFixed(2)} s`);
  } finally {
    await hs2.stop();
    await hs1.stop();
    pki.dispose();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
