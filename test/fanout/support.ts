/**
 * For fanout tests: a homeserver pipeline (room-server + persistence, real, on the given bus
 * and database) that fanout-sender reads from, and a crowd of remote "servers" on loopback
 * HTTPS (test CA) that authenticate each /send with X-Matrix against the origin's key and
 * record what they received.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { type BusTransport } from '@tessera/bus';
import { verifyRequest, type FederationAuthError } from '@tessera/federation-client';
import { createTestCa, StaticResolver, type TestCa } from '../../libs/federation-client/src/testing/test-pki.js';
import { generateSigningKey, getRoomVersion, hashAndSignEvent, computeEventId, type Pdu, type SigningKey } from '@tessera/protocol';
import { getCurrentStateEvent, getForwardExtremities, getRoom, type Db } from '@tessera/storage';
import { EventWriter } from '@tessera/persistence-service';
import { RoomServer } from '@tessera/room-server-service';

export const LOOPBACK = ['127.0.0.0/8', '::1/128'];

export interface ReceivedTxn {
  txnId: string;
  origin: string;
  pdus: Array<Record<string, unknown>>;
  edus: Array<{ edu_type: string; content: Record<string, unknown> }>;
}

export interface RemoteServer {
  name: string;
  txns: ReceivedTxn[];
  /** While true the server answers 503 (as a server being restarted behind a proxy would). */
  down: boolean;
  /** Requests refused while down. */
  refused: number;
  inFlight: number;
  maxInFlight: number;
  /** Event ids received, in order of arrival (duplicates kept). */
  eventIds(): string[];
}

export interface RemoteCrowd {
  ca: TestCa;
  resolver: StaticResolver;
  servers: Map<string, RemoteServer>;
  /** Requests that failed X-Matrix authentication (must stay 0). */
  unauthenticated: string[];
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/**
 * `count` remote servers named r<i>.test:<port>, all served by one HTTPS listener on 127.0.0.1
 * (the Host header says which server a request is for). `originKey(name, keyId)` gives the
 * sender's public key for X-Matrix verification.
 */
export async function startRemoteCrowd(
  count: number,
  originKey: (origin: string, keyId: string) => Uint8Array | undefined,
  options: { prefix?: string; ipNames?: boolean } = {},
): Promise<RemoteCrowd> {
  const prefix = options.prefix ?? 'r';
  const ca = createTestCa();
  const hosts = options.ipNames ? ['127.0.0.1'] : Array.from({ length: count }, (_, i) => `${prefix}${i}.test`);
  const tls = ca.issue(hosts);
  const resolver = new StaticResolver();
  for (const h of hosts) resolver.setAddress(h, '127.0.0.1');
  const servers = new Map<string, RemoteServer>();
  const unauthenticated: string[] = [];

  const handle = async (req: IncomingMessage, res: ServerResponse, body: string) => {
    const name = String(req.headers.host ?? '');
    const server = servers.get(name);
    if (!server) return send(res, 404, { errcode: 'M_NOT_FOUND', error: `no server ${name}` });
    const url = req.url ?? '';
    const m = /^\/_matrix\/federation\/v1\/send\/([^/?]+)$/.exec(url);
    if (req.method !== 'PUT' || !m) return send(res, 404, { errcode: 'M_UNRECOGNIZED', error: 'not handled here' });
    if (server.down) {
      server.refused++;
      return send(res, 503, { errcode: 'M_UNKNOWN', error: 'down' });
    }
    server.inFlight++;
    server.maxInFlight = Math.max(server.maxInFlight, server.inFlight);
    try {
      const content = JSON.parse(body) as ReceivedTxn;
      let who: { origin: string };
      try {
        who = await verifyRequest({ method: 'PUT', uri: url, header: req.headers.authorization, content, destination: name }, async (o, k) => originKey(o, k));
      } catch (err) {
        unauthenticated.push(`${name}: ${(err as Error).message}`);
        return send(res, (err as FederationAuthError).status ?? 401, { errcode: 'M_UNAUTHORIZED', error: (err as Error).message });
      }
      // Let the sender see a transaction take a little while, so concurrency would show.
      await new Promise((r) => setTimeout(r, 2));
      server.txns.push({ txnId: decodeURIComponent(m[1]!), origin: who.origin, pdus: content.pdus ?? [], edus: content.edus ?? [] });
      const results: Record<string, object> = {};
      for (const p of content.pdus ?? []) results[String(p.event_id ?? pduId(p))] = {};
      send(res, 200, { pdus: results });
    } finally {
      server.inFlight--;
    }
  };

  const listeners: Array<ReturnType<typeof createServer>> = [];
  const listen = async (): Promise<number> => {
    const https = createServer({ ...tls, maxHeaderSize: 64 * 1024 }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => void handle(req, res, Buffer.concat(chunks).toString('utf8')).catch((err) => send(res, 500, { errcode: 'M_UNKNOWN', error: String(err) })));
    });
    https.keepAliveTimeout = 30_000;
    await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
    listeners.push(https);
    return (https.address() as AddressInfo).port;
  };
  // Host names share one listener (the Host header tells them apart); IP-literal names
  // (127.0.0.1:<port>, needing no DNS, e.g. for child processes) get a listener each.
  const names = options.ipNames
    ? await Promise.all(Array.from({ length: count }, async () => `127.0.0.1:${await listen()}`))
    : await listen().then((port) => hosts.map((h) => `${h}:${port}`));
  for (const name of names) {
    const txns: ReceivedTxn[] = [];
    servers.set(name, {
      name, txns, down: false, refused: 0, inFlight: 0, maxInFlight: 0,
      eventIds: () => txns.flatMap((t) => t.pdus.map((p) => pduIds.get(p) ?? '')),
    });
  }
  return {
    ca, resolver, servers, unauthenticated,
    close: async () => {
      for (const https of listeners) {
        https.closeAllConnections();
        await new Promise<void>((resolve) => https.close(() => resolve()));
      }
      ca.dispose();
    },
  };
}

/** Event ids of received PDUs (v3+ rooms do not carry them): computed once per PDU object. */
const pduIds = new WeakMap<object, string>();
export function pduId(p: Record<string, unknown>): string {
  let id = pduIds.get(p);
  if (!id) {
    id = typeof p.event_id === 'string' ? p.event_id : computeEventId(p, getRoomVersion(roomVersionOf.get(String(p.room_id)) ?? '10'));
    pduIds.set(p, id);
  }
  return id;
}
const roomVersionOf = new Map<string, string>();

/** room-server + persistence of one homeserver, on the caller's bus and database. */
export async function startPipeline(db: Db, bus: BusTransport, serverName: string, key: SigningKey = generateSigningKey('hs1')) {
  const writer = new EventWriter(db, bus);
  await writer.start();
  const roomServer = new RoomServer({ db, bus, serverName, signingKey: key });
  await roomServer.start();
  return {
    key,
    serverName,
    async createRoom(sender: string): Promise<string> {
      const reply = await bus.request<object, { roomId: string; roomVersion: string }>('roomserver.input', { op: 'createRoom', sender, preset: 'public_chat' });
      roomVersionOf.set(reply.roomId, reply.roomVersion);
      return reply.roomId;
    },
    async send(roomId: string, sender: string, body: string): Promise<string> {
      const r = await bus.request<object, { eventId: string }>('roomserver.input', { op: 'sendEvent', roomId, sender, type: 'm.room.message', content: { msgtype: 'm.text', body } });
      return r.eventId;
    },
    async membership(roomId: string, sender: string, action: 'kick' | 'ban' | 'leave', target?: string): Promise<string> {
      const r = await bus.request<object, { eventId: string }>('roomserver.input', { op: 'membership', roomId, sender, action, target });
      return r.eventId;
    },
    /**
     * A user of a remote server joins the public room: its join event, built and signed as that
     * server would, goes in through roomserver.input like a verified federation PDU.
     */
    async remoteJoin(roomId: string, userId: string, remoteKey: SigningKey): Promise<string> {
      const room = (await getRoom(db, roomId))!;
      const version = getRoomVersion(room.roomVersion);
      const extremities = await getForwardExtremities(db, roomId);
      const auth = await Promise.all(
        [['m.room.create', ''], ['m.room.join_rules', ''], ['m.room.power_levels', '']].map(([t, k]) => getCurrentStateEvent(db, roomId, t!, k!)),
      );
      const server = userId.slice(userId.indexOf(':') + 1);
      const unsigned: Pdu = {
        room_id: roomId,
        sender: userId,
        type: 'm.room.member',
        state_key: userId,
        content: { membership: 'join' },
        prev_events: extremities.map((e) => e.eventId),
        auth_events: auth.map((e) => e!.eventId),
        depth: Math.max(...extremities.map((e) => e.depth)) + 1,
        origin_server_ts: Date.now(),
      } as unknown as Pdu;
      const pdu = hashAndSignEvent(unsigned, server, remoteKey, version);
      const reply = await bus.request<object, { results: Record<string, { accepted: boolean; error?: string }> }>('roomserver.input', {
        op: 'inputPdus', roomId, roomVersion: room.roomVersion, origin: server, pdus: [pdu],
      });
      const [id, result] = Object.entries(reply.results)[0]!;
      if (!result.accepted) throw new Error(`remote join of ${userId} refused: ${result.error}`);
      return id;
    },
    async stop() {
      await roomServer.stop();
      await writer.stop();
    },
  };
}

/** Polls `check` until it returns true; fails with `what` after `deadlineMs`. Not a timing assertion: a bound on waiting. */
export async function eventually(what: string | (() => string), check: () => boolean | Promise<boolean>, deadlineMs = 30_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`not reached within ${deadlineMs} ms: ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
