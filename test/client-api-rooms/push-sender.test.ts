/**
 * Push notifications to push gateways (spec v1.16 Push Gateway API POST /_matrix/push/v1/notify,
 * Client-Server "Push notifications"): client-api, persistence and room-server in this
 * process, and a real HTTP server on loopback acting as the push gateway (reachable because
 * the homeserver's push.allowed_cidrs lists 127.0.0.0/8). Every request the gateway receives
 * is checked against the spec's request schema.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConfig } from '@tessera/config';
import { acquirePushLease, GatewayClient, GatewayError, PushSender, pushLeaseHolder } from '@tessera/client-api-service';
import { MATRIX_SPEC_DIR, services, uniqueName } from '@tessera/testing';
import { ClientApiHarness } from '../client-api/harness.js';

const setups = [
  { name: 'PostgreSQL + Redis', database: 'postgres' as const, redis: true, available: services.postgres && services.redis },
  { name: 'PGlite + in-memory store', database: 'pglite' as const, redis: false, available: true },
];

const NOTIFY_PATH = '/_matrix/push/v1/notify';

// The spec's schema of the notify request body (every $ref resolved in the spec data).
const pushGatewaySpec = JSON.parse(readFileSync(join(MATRIX_SPEC_DIR, 'openapi/push-gateway.json'), 'utf8')) as {
  paths: Record<string, { post: { requestBody: { content: Record<string, { schema: object }> } } }>;
};
const ajv = new Ajv2020({ strict: false, allErrors: true });
ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) });
const validateNotify = ajv.compile(pushGatewaySpec.paths[NOTIFY_PATH]!.post.requestBody.content['application/json']!.schema);

type Json = Record<string, any>;

interface Received {
  body: Json;
  /** What the gateway answered. */
  status: number;
}

/** A push gateway on loopback: records each request, answers as told per pushkey. */
class TestGateway {
  readonly received: Received[] = [];
  /** pushkey -> how many more requests to fail with 500. */
  readonly failNext = new Map<string, number>();
  /** pushkey -> how many more requests to leave unanswered for this long (ms) before answering. */
  readonly delayNext = new Map<string, { count: number; ms: number }>();
  readonly rejectKeys = new Set<string>();
  readonly invalid: string[] = [];

  private constructor(private readonly server: Server) {}

  static async start(): Promise<TestGateway> {
    const holder: { gateway?: TestGateway } = {};
    const server = createServer((req, res) => void holder.gateway!.handle(req, res));
    const gateway = (holder.gateway = new TestGateway(server));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return gateway;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  url(host = '127.0.0.1'): string {
    return `http://${host}:${this.port}${NOTIFY_PATH}`;
  }

  /** Requests for a pushkey, in arrival order. */
  forKey(pushkey: string): Received[] {
    return this.received.filter((r) => r.body.notification?.devices?.[0]?.pushkey === pushkey);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Json;
    if (req.method !== 'POST' || req.url !== NOTIFY_PATH || req.headers['content-type'] !== 'application/json') this.invalid.push(`${req.method} ${req.url}`);
    if (!validateNotify(body)) this.invalid.push(JSON.stringify(validateNotify.errors));
    const pushkey = body.notification?.devices?.[0]?.pushkey as string;
    const delay = this.delayNext.get(pushkey);
    if (delay && delay.count > 0) {
      delay.count--;
      await new Promise((resolve) => setTimeout(resolve, delay.ms));
    }
    const failures = this.failNext.get(pushkey) ?? 0;
    if (failures > 0) {
      this.failNext.set(pushkey, failures - 1);
      this.received.push({ body, status: 500 });
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ errcode: 'M_UNKNOWN', error: 'upstream down' }));
      return;
    }
    this.received.push({ body, status: 200 });
    const rejected = (body.notification.devices as Json[]).map((d) => d.pushkey as string).filter((k) => this.rejectKeys.has(k));
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ rejected }));
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

type Login = { user_id: string; access_token: string };

function pusher(pushkey: string, data: Json): Json {
  return { kind: 'http', app_id: 'org.example.push', pushkey, app_display_name: 'Example', device_display_name: 'Phone', lang: 'en', data };
}

for (const setup of setups) {
  describe.skipIf(!setup.available)(`push notifications to push gateways (${setup.name})`, () => {
    let hs: ClientApiHarness;
    let gateway: TestGateway;
    let sender: PushSender;

    beforeAll(async () => {
      gateway = await TestGateway.start();
      hs = await ClientApiHarness.start({
        database: setup.database,
        redis: setup.redis,
        config: { push: { allowed_cidrs: ['127.0.0.0/8'] } },
        overrides: { pushSender: { retryBaseMs: 20, retryMaxMs: 200, maxAttempts: 4, requestTimeoutMs: 4_000 } },
      });
      sender = hs.nest.get(PushSender);
    }, 120_000);
    afterAll(async () => {
      await hs?.close();
      await gateway?.close();
    });

    const enc = encodeURIComponent;
    const setPusher = async (who: Login, body: Json) => {
      const reply = await hs.call('POST', '/_matrix/client/v3/pushers/set', { token: who.access_token, body });
      expect(reply.status, JSON.stringify(reply.body)).toBe(200);
    };
    const pushkeysOf = async (who: Login) =>
      ((await hs.call('GET', '/_matrix/client/v3/pushers', { token: who.access_token })).body.pushers as Json[]).map((p) => p.pushkey as string);
    const send = async (who: Login, roomId: string, content: Json): Promise<string> => {
      const reply = await hs.call('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${uniqueName('txn')}`, { token: who.access_token, body: content });
      expect(reply.status, JSON.stringify(reply.body)).toBe(200);
      return reply.body.event_id as string;
    };
    const join = async (who: Login, roomId: string) => {
      const reply = await hs.call('POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: who.access_token, body: {} });
      expect(reply.status, JSON.stringify(reply.body)).toBe(200);
    };
    const expectValidRequests = () => expect(gateway.invalid).toEqual([]);

    it('holds the push sender lease: another replica cannot take it while it is renewed', async () => {
      expect(sender.isSender()).toBe(true);
      expect(await pushLeaseHolder(hs.db)).toBe(sender.replicaId);
      expect(await acquirePushLease(hs.db, 'another-replica', 60_000)).toBe(false);
      expect(await pushLeaseHolder(hs.db)).toBe(sender.replicaId);
      // Once expired (a holder that died), it is another replica's; then handed back for the tests below.
      await hs.db.query('UPDATE push_sender_lease SET expires_at_ms = 0');
      expect(await pushLeaseHolder(hs.db)).toBeUndefined();
      expect(await acquirePushLease(hs.db, 'another-replica', 60_000)).toBe(true);
      expect(await pushLeaseHolder(hs.db)).toBe('another-replica');
      await hs.db.query('UPDATE push_sender_lease SET owner = $1', [sender.replicaId]);
      expect(await pushLeaseHolder(hs.db)).toBe(sender.replicaId);
    });

    it('a message from bob notifies alice\'s event_id_only pusher with the spec\'s body', async () => {
      const alice = await hs.register(uniqueName('alice'));
      const bob = await hs.register(uniqueName('bob'));
      const roomId = await hs.sharedRoom(bob, alice);
      await setPusher(alice, pusher('key-eio', { url: gateway.url(), format: 'event_id_only', custom: { x: 1 } }));
      const before = Math.floor(Date.now() / 1000);

      const eventId = await send(bob, roomId, { msgtype: 'm.text', body: 'hello alice' });
      await sender.settled();

      const got = gateway.forKey('key-eio');
      expect(got).toHaveLength(1);
      // Two members: .m.rule.room_one_to_one (notify, sound) -> prio high. Only the event_id_only fields, and data minus url.
      expect(got[0]!.body).toEqual({
        notification: {
          event_id: eventId,
          room_id: roomId,
          prio: 'high',
          counts: { unread: 1 },
          devices: [{ app_id: 'org.example.push', pushkey: 'key-eio', pushkey_ts: expect.any(Number), data: { format: 'event_id_only', custom: { x: 1 } }, tweaks: { sound: 'default' } }],
        },
      });
      const pushkeyTs = got[0]!.body.notification.devices[0].pushkey_ts as number;
      expect(pushkeyTs).toBeGreaterThanOrEqual(before - 1);
      expect(pushkeyTs).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000));

      // A second message: the badge counts both unread messages.
      const second = await send(bob, roomId, { msgtype: 'm.text', body: 'still there?' });
      await sender.settled();
      expect(gateway.forKey('key-eio').map((r) => [r.body.notification.event_id, r.body.notification.counts])).toEqual([
        [eventId, { unread: 1 }],
        [second, { unread: 2 }],
      ]);
      expectValidRequests();
    });

    it('sends the full format with room and sender details, and the tweaks and prio of a highlight', async () => {
      const alice = await hs.register(uniqueName('alice'));
      const bob = await hs.register(uniqueName('bob'));
      const carol = await hs.register(uniqueName('carol'));
      // carol's display name is in her join event (the sender_display_name of her messages).
      const named = await hs.call('PUT', `/_matrix/client/v3/profile/${enc(carol.user_id)}/displayname`, { token: carol.access_token, body: { displayname: 'Major Tom' } });
      expect(named.status).toBe(200);
      const created = await hs.call('POST', '/_matrix/client/v3/createRoom', {
        token: bob.access_token,
        body: { preset: 'public_chat', name: 'Mission Control' },
      });
      expect(created.status).toBe(200);
      const roomId = created.body.room_id as string;
      await join(alice, roomId);
      await join(carol, roomId);
      await setPusher(alice, pusher('key-full', { url: gateway.url() }));

      // Three members: .m.rule.message (notify only): prio low, no tweaks.
      const plain = await send(carol, roomId, { msgtype: 'm.text', body: 'ground control' });
      await sender.settled();
      expect(gateway.forKey('key-full').map((r) => r.body)).toEqual([
        {
          notification: {
            event_id: plain,
            room_id: roomId,
            type: 'm.room.message',
            sender: carol.user_id,
            sender_display_name: 'Major Tom',
            room_name: 'Mission Control',
            content: { msgtype: 'm.text', body: 'ground control' },
            prio: 'low',
            counts: { unread: 1 },
            devices: [{ app_id: 'org.example.push', pushkey: 'key-full', pushkey_ts: expect.any(Number), data: {} }],
          },
        },
      ]);

      // A mention of alice: .m.rule.is_user_mention sets sound and highlight -> prio high.
      const mention = await send(carol, roomId, { msgtype: 'm.text', body: 'alice, can you hear me?', 'm.mentions': { user_ids: [alice.user_id] } });
      await sender.settled();
      const last = gateway.forKey('key-full').at(-1)!.body.notification;
      expect(last.event_id).toBe(mention);
      expect(last.prio).toBe('high');
      expect(last.devices[0].tweaks).toEqual({ sound: 'default', highlight: true });
      expect(last.counts).toEqual({ unread: 2 });
      expect(last.sender_display_name).toBe('Major Tom');
      // carol and bob have no pusher: nothing else went out for this room.
      expect(gateway.received.filter((r) => r.body.notification.room_id === roomId)).toHaveLength(2);
      expectValidRequests();
    });

    it('pushes nothing for the user\'s own messages, nor for a room muted or set to dont_notify by their rules', async () => {
      const alice = await hs.register(uniqueName('alice'));
      const bob = await hs.register(uniqueName('bob'));
      const roomId = await hs.sharedRoom(bob, alice);
      await setPusher(alice, pusher('key-quiet', { url: gateway.url(), format: 'event_id_only' }));
      const rule = `/_matrix/client/v3/pushrules/global/room/${enc(roomId)}`;

      await send(alice, roomId, { msgtype: 'm.text', body: 'my own message' });
      // Muted: a room rule without actions.
      expect((await hs.call('PUT', rule, { token: alice.access_token, body: { actions: [] } })).status).toBe(200);
      await send(bob, roomId, { msgtype: 'm.text', body: 'muted' });
      // The legacy dont_notify action: no notification either.
      expect((await hs.call('PUT', rule, { token: alice.access_token, body: { actions: ['dont_notify'] } })).status).toBe(200);
      await send(bob, roomId, { msgtype: 'm.text', body: 'dont_notify' });
      await sender.settled();
      expect(gateway.forKey('key-quiet')).toEqual([]);

      // Without the rule, bob's next message notifies: the sender was working all along.
      expect((await hs.call('DELETE', rule, { token: alice.access_token })).status).toBe(200);
      const heard = await send(bob, roomId, { msgtype: 'm.text', body: 'now you hear me' });
      await sender.settled();
      expect(gateway.forKey('key-quiet').map((r) => r.body.notification.event_id)).toEqual([heard]);
    });

    it('removes the pusher of a pushkey the gateway rejects, and keeps the others', async () => {
      const alice = await hs.register(uniqueName('alice'));
      const bob = await hs.register(uniqueName('bob'));
      const roomId = await hs.sharedRoom(bob, alice);
      await setPusher(alice, pusher('key-rejected', { url: gateway.url(), format: 'event_id_only' }));
      await setPusher(alice, pusher('key-kept', { url: gateway.url(), format: 'event_id_only' }));
      gateway.rejectKeys.add('key-rejected');

      await send(bob, roomId, { msgtype: 'm.text', body: 'one' });
      await sender.settled();
      expect(gateway.forKey('key-rejected')).toHaveLength(1);
      expect(gateway.forKey('key-kept')).toHaveLength(1);
      expect(await pushkeysOf(alice)).toEqual(['key-kept']);

      const second = await send(bob, roomId, { msgtype: 'm.text', body: 'two' });
      await sender.settled();
      expect(gateway.forKey('key-rejected')).toHaveLength(1);
      expect(gateway.forKey('key-kept').map((r) => r.body.notification.event_id).at(-1)).toBe(second);
    });

    it('retries a failing gateway with backoff until it accepts, and a slow gateway does not hold up another', async () => {
      const alice = await hs.register(uniqueName('alice'));
      const bob = await hs.register(uniqueName('bob'));
      const roomId = await hs.sharedRoom(bob, alice);
      const slow = await TestGateway.start();
      try {
        await setPusher(alice, pusher('key-retry', { url: gateway.url(), format: 'event_id_only' }));
        await setPusher(alice, pusher('key-slow', { url: slow.url(), format: 'event_id_only' }));
        gateway.failNext.set('key-retry', 2);
        slow.delayNext.set('key-slow', { count: 1, ms: 2_500 });

        const started = Date.now();
        const eventId = await send(bob, roomId, { msgtype: 'm.text', body: 'are you there?' });
        // The other gateway's queue is not held up by the slow one: the retried push lands well before the slow answer.
        await expect.poll(() => gateway.forKey('key-retry').filter((r) => r.status === 200).length, { timeout: 5_000, interval: 20 }).toBe(1);
        expect(Date.now() - started).toBeLessThan(2_500);
        expect(slow.forKey('key-slow').length).toBe(0);

        await sender.settled();
        const attempts = gateway.forKey('key-retry');
        expect(attempts.map((r) => r.status)).toEqual([500, 500, 200]);
        expect(new Set(attempts.map((r) => r.body.notification.event_id))).toEqual(new Set([eventId]));
        expect(slow.forKey('key-slow').map((r) => r.body.notification.event_id)).toEqual([eventId]);
        // A failure is not a rejection: the pushers stay.
        expect((await pushkeysOf(alice)).sort()).toEqual(['key-retry', 'key-slow']);
        expect(slow.invalid).toEqual([]);
        expectValidRequests();
      } finally {
        await slow.close();
      }
    });

    it('refuses gateways at private addresses unless push.allowed_cidrs lists them', async () => {
      // The client alone: loopback refused by address and by name, allowed once listed.
      const strict = new GatewayClient({ allowedCidrs: [], timeoutMs: 2_000 });
      const allowing = new GatewayClient({ allowedCidrs: ['127.0.0.0/8', '::1/128'], timeoutMs: 2_000 });
      const body = { notification: { devices: [{ app_id: 'org.example.push', pushkey: 'key-direct' }] } };
      try {
        for (const url of [gateway.url(), gateway.url('localhost'), `http://10.1.2.3:${gateway.port}${NOTIFY_PATH}`]) {
          const refused = await strict.notify(url, body).then(() => undefined, (err: unknown) => err);
          expect(refused, url).toBeInstanceOf(GatewayError);
          expect((refused as GatewayError).kind, url).toBe('refused');
          expect((refused as GatewayError).retryable).toBe(false);
        }
        expect(gateway.forKey('key-direct')).toEqual([]);
        expect(await allowing.notify(gateway.url(), body)).toEqual({ rejected: [] });
        expect(gateway.forKey('key-direct')).toHaveLength(1);
      } finally {
        strict.close();
        allowing.close();
      }
      expect(() => buildConfig({ push: { allowed_cidrs: '127.0.0.0/8' } }, { env: {}, cwd: '/' })).toThrow(/push\.allowed_cidrs/);
      expect(buildConfig({}, { env: { PUSH_ALLOWED_CIDRS: '10.0.0.0/8, 127.0.0.1' }, cwd: '/' }).push.allowedCidrs).toEqual(['10.0.0.0/8', '127.0.0.1']);

      // A homeserver without the setting: bob's message reaches no gateway on loopback.
      const plain = await ClientApiHarness.start({ database: setup.database, redis: setup.redis, overrides: { pushSender: { retryBaseMs: 20, maxAttempts: 2 } } });
      try {
        const plainSender = plain.nest.get(PushSender);
        const alice = await plain.register(uniqueName('alice'));
        const bob = await plain.register(uniqueName('bob'));
        const roomId = await plain.sharedRoom(bob, alice);
        const set = await plain.call('POST', '/_matrix/client/v3/pushers/set', { token: alice.access_token, body: pusher('key-private', { url: gateway.url(), format: 'event_id_only' }) });
        expect(set.status).toBe(200);
        await plain.send(bob, roomId, 'hello from a strict server');
        await plainSender.settled();
        expect(plainSender.isSender()).toBe(true);
        expect(gateway.forKey('key-private')).toEqual([]);
        // Refused is not rejected: the pusher stays.
        expect(((await plain.call('GET', '/_matrix/client/v3/pushers', { token: alice.access_token })).body.pushers as Json[]).map((p) => p.pushkey)).toEqual(['key-private']);
      } finally {
        await plain.close();
      }
    }, 60_000);
  });
}
