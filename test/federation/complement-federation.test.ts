/**
 * What Complement's federation tests expect of a resident server, reproduced with a stand-in
 * remote (HTTPS with the test CA, its own signing key, answering only the paths a test gives
 * it, as Complement's federation.Server does) against a homeserver of ours:
 * - TestInboundFederationKeys: the key response verifies over its raw body less `signatures`;
 * - TestSendJoinPartialStateResponse: send_join's servers_in_room are those before the join;
 * - TestInboundFederationRejectsEventsWithRejectedAuthEvents: missing auth events are fetched
 *   (/event_auth, then /event), an event citing a rejected one is rejected, and later events
 *   that cite the rejected ones as prev events are still accepted;
 * - TestOutboundFederationIgnoresMissingEventWithBadJSONForRoomVersion6: when
 *   get_missing_events gives nothing usable, the event is refused without asking /state;
 * - TestFederationRedactSendsWithoutEvent: a redaction of an event not held here is sent.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  computeEventId, decodeBase64, generateSigningKey, getRoomVersion, hashAndSignEvent, signJson, verifyBytes,
  type Pdu, type SigningKey,
} from '@tessera/protocol';
import { ROOMSERVER_INPUT, type CreateRoomReply, type EventIdReply, type RoomServerRequest } from '@tessera/bus';
import { createFederationClient, readFederationEnvironment, type FederationClient } from '@tessera/federation-client';
import { getEvent, getForwardExtremities } from '@tessera/storage';
import { services } from '@tessera/testing';
import { createFederationPki, FederatingServer, type FederationPki } from './harness.js';
import { buildRemotePdu } from './pdus.js';

const enc = encodeURIComponent;

interface StandIn {
  serverName: string;
  key: SigningKey;
  requests: string[];
  /** Answers for paths (without query); anything else is 404. */
  routes: Map<string, unknown>;
  client: FederationClient;
  close(): Promise<void>;
}

async function standInRemote(pki: FederationPki): Promise<StandIn> {
  const key = generateSigningKey();
  const requests: string[] = [];
  const routes = new Map<string, unknown>();
  let serverName = '';
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '').split('?')[0]!;
    requests.push(`${req.method} ${path}`);
    req.resume();
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (path === '/_matrix/key/v2/server') {
      const body = { server_name: serverName, valid_until_ts: Date.now() + 3_600_000, verify_keys: { [key.keyId]: { key: key.publicKeyBase64 } }, old_verify_keys: {} };
      return json(200, signJson(body, serverName, key));
    }
    if (routes.has(path)) return json(200, routes.get(path));
    if (path.startsWith('/_matrix/federation/v1/send/')) return json(200, { pdus: {} });
    return json(404, { errcode: 'M_NOT_FOUND', error: 'not served by the stand-in' });
  };
  const server: Server = createServer({ cert: readFileSync(pki.certPath, 'utf8'), key: readFileSync(pki.keyPath, 'utf8') }, handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  serverName = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = createFederationClient(serverName, key, readFederationEnvironment());
  return {
    serverName, key, requests, routes, client,
    close: () => new Promise<void>((resolve) => {
      client.close();
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

describe.skipIf(!services.postgres)('Complement federation expectations (stand-in remote)', () => {
  let pki: FederationPki;
  let hs1: FederatingServer;
  let remote: StandIn;
  let alice: string;
  let charlie: string;

  beforeAll(async () => {
    pki = createFederationPki();
    hs1 = await FederatingServer.start(pki);
    remote = await standInRemote(pki);
    alice = `@alice:${hs1.serverName}`;
    charlie = `@charlie:${remote.serverName}`;
  }, 60_000);

  afterAll(async () => {
    await remote?.close();
    await hs1?.stop();
    pki?.dispose();
  });

  async function createRoom(version = '10'): Promise<string> {
    const created = await hs1.bus.request<RoomServerRequest, CreateRoomReply>(ROOMSERVER_INPUT, { op: 'createRoom', sender: alice, preset: 'public_chat', room_version: version });
    return created.roomId;
  }

  /** make_join + send_join (v2, omit_members) as the stand-in's user; the send_join answer. */
  async function joinAsRemote(roomId: string, userId: string): Promise<any> {
    const made = await remote.client.get<any>(hs1.serverName, `/_matrix/federation/v1/make_join/${enc(roomId)}/${enc(userId)}`, { query: { ver: ['10'] } });
    const rv = getRoomVersion(made.room_version);
    const signed = hashAndSignEvent({ ...made.event, origin_server_ts: Date.now() }, remote.serverName, remote.key, rv);
    return remote.client.put<any>(hs1.serverName, `/_matrix/federation/v2/send_join/${enc(roomId)}/${enc(computeEventId(signed, rv))}`, signed, { query: { omit_members: 'true' } });
  }

  /** Re-signs a PDU as the stand-in after changing it. */
  function resign(pdu: Pdu, changes: Partial<Pdu>): { pdu: Pdu; eventId: string } {
    const rv = getRoomVersion('10');
    const { signatures: _s, hashes: _h, ...rest } = { ...pdu, ...changes };
    const signed = hashAndSignEvent(rest as Pdu, remote.serverName, remote.key, rv);
    return { pdu: signed, eventId: computeEventId(signed, rv) };
  }

  async function sendTxn(txnId: string, pdus: Pdu[]): Promise<any> {
    return remote.client.put<any>(hs1.serverName, `/_matrix/federation/v1/send/${txnId}`, { origin: remote.serverName, origin_server_ts: Date.now(), pdus });
  }

  it('serves its keys so that the raw body less `signatures` verifies (TestInboundFederationKeys)', async () => {
    const { request } = await import('node:https');
    const raw = await new Promise<string>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: hs1.port, path: '/_matrix/key/v2/server', ca: pki.ca.certPem }, (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      });
      req.on('error', reject);
      req.end();
    });
    const body = JSON.parse(raw);
    // What Complement does: delete "signatures" from the bytes as sent, verify over the rest.
    const withoutSignatures = raw.replace(/"signatures":\{"[^"]+":\{[^}]*\}\},?/, '').replace(/,\}$/, '}');
    expect(withoutSignatures).not.toContain('signatures');
    for (const [keyId, { key }] of Object.entries(body.verify_keys as Record<string, { key: string }>)) {
      const signature = decodeBase64(body.signatures[hs1.serverName][keyId]);
      expect(verifyBytes(Buffer.from(withoutSignatures, 'utf8'), signature, decodeBase64(key))).toBe(true);
    }
  });

  it('answers send_join with the servers in the room before the join (TestSendJoinPartialStateResponse)', async () => {
    const roomId = await createRoom();
    const answer = await joinAsRemote(roomId, `@charlie2:${remote.serverName}`);
    expect(answer.members_omitted).toBe(true);
    expect(answer.servers_in_room).toEqual([hs1.serverName]);
  });

  it('fetches missing auth events, rejects what cites a rejected one, and accepts the events after (TestInboundFederationRejectsEventsWithRejectedAuthEvents)', async () => {
    const roomId = await createRoom();
    await joinAsRemote(roomId, charlie);
    // R: charlie may not change the power levels: rejected.
    const rejected = await buildRemotePdu(hs1.db, roomId, { type: 'm.room.power_levels', sender: charlie, stateKey: '', content: { users: {} } }, remote.serverName, remote.key);
    const r1 = await sendTxn('complement1', [rejected.pdu]);
    expect(r1.pdus[rejected.eventId].error).toBeDefined();
    expect((await getEvent(hs1.db, rejected.eventId))?.rejectedReason).not.toBeNull();

    // O: never sent; it cites R among its auth events.
    const base = await buildRemotePdu(hs1.db, roomId, { type: 'm.room.member', sender: charlie, stateKey: charlie, content: { membership: 'join', test: 1 } }, remote.serverName, remote.key);
    const outlier = resign(base.pdu, { auth_events: [...(base.pdu.auth_events as string[]), rejected.eventId] });
    // X and Y cite O; the stand-in answers /event_auth for X only, and /event for O.
    const x0 = await buildRemotePdu(hs1.db, roomId, { type: 'm.room.message', sender: charlie, content: { body: 'sentEvent1' } }, remote.serverName, remote.key);
    const x = resign(x0.pdu, { auth_events: [...(x0.pdu.auth_events as string[]), outlier.eventId] });
    const y = resign(x0.pdu, { content: { body: 'sentEvent2' }, prev_events: [x.eventId], depth: x.pdu.depth + 1, auth_events: x.pdu.auth_events });
    const sentinel = resign(x0.pdu, { content: { body: 'sentinelEvent' }, prev_events: [y.eventId], depth: y.pdu.depth + 1 });
    remote.routes.set(`/_matrix/federation/v1/event_auth/${enc(roomId)}/${enc(x.eventId)}`, { auth_chain: [outlier.pdu] });
    remote.routes.set(`/_matrix/federation/v1/event/${outlier.eventId}`, { origin: remote.serverName, origin_server_ts: Date.now(), pdus: [outlier.pdu] });

    const r2 = await sendTxn('complement2', [x.pdu, y.pdu, sentinel.pdu]);
    expect(r2.pdus[x.eventId].error).toBeDefined();
    expect(r2.pdus[y.eventId].error).toBeDefined();
    expect(r2.pdus[sentinel.eventId]).toEqual({});
    expect(remote.requests).toContain(`GET /_matrix/federation/v1/event_auth/${roomId}/${x.eventId}`.replace(roomId, enc(roomId)).replace(x.eventId, enc(x.eventId)));
    for (const id of [outlier.eventId, x.eventId, y.eventId]) {
      expect((await getEvent(hs1.db, id))?.rejectedReason, id).toBeTruthy();
    }
    const sentinelStored = await getEvent(hs1.db, sentinel.eventId);
    expect(sentinelStored?.rejectedReason).toBeNull();
    expect(sentinelStored?.streamPos).not.toBeNull();
    expect((await getForwardExtremities(hs1.db, roomId)).map((e) => e.eventId)).toContain(sentinel.eventId);
  });

  it('sends a redaction of an event it does not hold (TestFederationRedactSendsWithoutEvent)', async () => {
    const roomId = await createRoom();
    const reply = await hs1.bus.request<RoomServerRequest, EventIdReply>(ROOMSERVER_INPUT, {
      op: 'redact', roomId, sender: alice, redacts: `$unknownEvent:${remote.serverName}`, reason: 'reasons...',
    });
    const stored = await getEvent(hs1.db, reply.eventId);
    expect(stored?.type).toBe('m.room.redaction');
    expect(stored?.rejectedReason).toBeNull();
  });

  it('refuses an event whose prev events get_missing_events does not give, without asking /state (TestOutboundFederationIgnoresMissingEventWithBadJSONForRoomVersion6)', async () => {
    const roomId = await createRoom();
    await joinAsRemote(roomId, `@dora:${remote.serverName}`);
    const extremities = (await getForwardExtremities(hs1.db, roomId)).map((e) => e.eventId);
    const base = await buildRemotePdu(hs1.db, roomId, { type: 'm.room.message', sender: `@dora:${remote.serverName}`, content: { body: 'Message 2' } }, remote.serverName, remote.key);
    const unknownPrev = '$neverSeenAnywhere0000000000000000000000000';
    const sent = resign(base.pdu, { prev_events: [unknownPrev] });
    remote.routes.set(`/_matrix/federation/v1/get_missing_events/${enc(roomId)}`, { events: [] });
    remote.requests.length = 0;
    const res = await sendTxn('gap-nothing', [sent.pdu]);
    expect(Object.keys(res.pdus)).toEqual([sent.eventId]);
    expect(res.pdus[sent.eventId].error).toBeDefined();
    expect(remote.requests).toContain(`POST /_matrix/federation/v1/get_missing_events/${enc(roomId)}`);
    expect(remote.requests.filter((r) => r.includes('/state'))).toEqual([]);
    expect((await getForwardExtremities(hs1.db, roomId)).map((e) => e.eventId)).toEqual(extremities);
  });
});
