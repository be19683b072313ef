/**
 * matrix-js-sdk 37.5.0 against the homeserver, end to end: two users register and log in,
 * one creates a room and invites the other, who joins; they exchange messages, see each
 * other's typing and read receipts, page back through 200 messages, rename the room, and one
 * leaves. Run on the embedded default (apps/homeserver: one process, in-process bus, PGlite)
 * and on the distributed services (one process each, PostgreSQL + NATS + Redis).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ClientEvent, createClient, EventType, MatrixClient, MsgType, RoomEvent, RoomMemberEvent, SyncState,
  type MatrixEvent, type Room,
} from 'matrix-js-sdk';
import { logger as sdkLogger } from 'matrix-js-sdk/lib/logger.js';
import { formatSigningKeyFile, generateSigningKey } from '@tessera/protocol';
import { createTestDatabase, NATS_URL, REDIS_URL, services, uniqueName, type TestDatabase } from '@tessera/testing';
import { freePort, startApp, stopApp, waitUntilReady, type AppProcess } from '../support/processes.js';

(sdkLogger as unknown as { setLevel(level: string): void }).setLevel('warn');
const step = (name: string) => process.env.E2E_DEBUG && process.stderr.write(`e2e step: ${name}\n`);
const PASSWORD = 'a long enough password';
const DISTRIBUTED = ['persistence', 'room-server', 'fanout-sender', 'client-api', 'federation-ingress'] as const;

interface Deployment {
  base: string;
  stop(): Promise<void>;
}

async function embedded(): Promise<Deployment> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-e2e-'));
  const clientPort = await freePort();
  const healthPort = await freePort();
  const proc = startApp('homeserver', {
    SERVER_NAME: `${uniqueName('e2e')}.test`,
    DATA_DIR: dir,
    SIGNING_KEY_PATH: join(dir, 'signing.key'),
    CLIENT_PORT: String(clientPort),
    FEDERATION_PORT: String(await freePort()),
    HEALTH_PORT: String(healthPort),
    CONFIG_FILE: writeConfig(dir),
  });
  const base = `http://127.0.0.1:${clientPort}`;
  await waitUntilReady(proc, `${base}/health/ready`);
  return {
    base,
    async stop() {
      await stopApp(proc);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function writeConfig(dir: string): string {
  const path = join(dir, 'homeserver.yaml');
  writeFileSync(path, 'enable_registration: true\nlog_level: warn\n');
  return path;
}

async function distributed(): Promise<Deployment> {
  const db: TestDatabase = await createTestDatabase();
  const dir = mkdtempSync(join(tmpdir(), 'tessera-e2e-dist-'));
  const keyPath = join(dir, 'signing.key');
  writeFileSync(keyPath, formatSigningKeyFile([generateSigningKey()]), { mode: 0o600 });
  const clientPort = await freePort();
  const federationPort = await freePort();
  const common = {
    SERVER_NAME: `${uniqueName('e2ed')}.test`,
    DATABASE_URL: db.url,
    NATS_URL,
    REDIS_URL,
    BUS_PREFIX: uniqueName('bus'),
    SIGNING_KEY_PATH: keyPath,
    DATA_DIR: dir,
    CLIENT_PORT: String(clientPort),
    FEDERATION_PORT: String(federationPort),
    CONFIG_FILE: writeConfig(dir),
  };
  const procs: AppProcess[] = [];
  const base = `http://127.0.0.1:${clientPort}`;
  // persistence first: it applies the event log's schema the others read.
  for (const name of DISTRIBUTED) {
    const healthPort = await freePort();
    const proc = startApp(name, { ...common, HEALTH_PORT: String(healthPort) });
    procs.push(proc);
    const url = name === 'client-api' ? `${base}/health/ready` : name === 'federation-ingress' ? `http://127.0.0.1:${federationPort}/health/ready` : `http://127.0.0.1:${healthPort}/health/ready`;
    await waitUntilReady(proc, url);
  }
  return {
    base,
    async stop() {
      await Promise.all(procs.map(stopApp));
      await db.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Registers through the dummy user-interactive flow, then logs in with the SDK. */
async function registerAndLogin(base: string, username: string): Promise<MatrixClient> {
  const anon = createClient({ baseUrl: base, fetchFn: globalThis.fetch });
  let session: string | undefined;
  try {
    await anon.registerRequest({ username, password: PASSWORD });
  } catch (err) {
    session = (err as { data?: { session?: string } }).data?.session;
  }
  expect(session).toEqual(expect.any(String));
  await anon.registerRequest({ username, password: PASSWORD, auth: { type: 'm.login.dummy', session } });
  const login = await anon.loginRequest({ type: 'm.login.password', identifier: { type: 'm.id.user', user: username }, password: PASSWORD });
  return createClient({ baseUrl: base, fetchFn: globalThis.fetch, userId: login.user_id, accessToken: login.access_token, deviceId: login.device_id });
}

function until<T>(client: MatrixClient, event: string, check: (...args: any[]) => T | undefined): Promise<T> {
  return new Promise((resolve) => {
    const listener = (...args: any[]) => {
      const value = check(...args);
      if (value !== undefined) {
        client.off(event as any, listener);
        resolve(value);
      }
    };
    client.on(event as any, listener);
  });
}

/** As real clients do: on 429 M_LIMIT_EXCEEDED wait retry_after_ms and try again (the server rate-limits per user). */
async function retrying<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const e = err as { errcode?: string; data?: { retry_after_ms?: number } };
      if (e.errcode !== 'M_LIMIT_EXCEEDED' || attempt >= 20) throw err;
      await new Promise((r) => setTimeout(r, e.data?.retry_after_ms ?? 1000));
    }
  }
}

async function started(client: MatrixClient): Promise<void> {
  const ready = until(client, ClientEvent.Sync, (state: SyncState) => (state === SyncState.Prepared ? true : undefined));
  await client.startClient({ initialSyncLimit: 10 });
  await ready;
}

const modes = [
  { name: 'embedded default (apps/homeserver, PGlite, in-process bus)', start: embedded, available: true },
  { name: 'distributed services (PostgreSQL, NATS, Redis)', start: distributed, available: services.postgres && services.nats && services.redis },
];

for (const mode of modes) {
  describe.skipIf(!mode.available)(`matrix-js-sdk end to end: ${mode.name}`, () => {
    let deployment: Deployment;
    let alice: MatrixClient;
    let bob: MatrixClient;

    beforeAll(async () => {
      deployment = await mode.start();
      alice = await registerAndLogin(deployment.base, 'alice');
      bob = await registerAndLogin(deployment.base, 'bob');
      await Promise.all([started(alice), started(bob)]);
    }, 180_000);

    afterAll(async () => {
      alice?.stopClient();
      bob?.stopClient();
      await deployment?.stop();
    });

    it('two users chat: invite, join, messages, typing, receipts, 200-message scrollback, rename, leave', async () => {
      const bobId = bob.getUserId()!;
      const aliceId = alice.getUserId()!;

      // Invite and join.
      const invited = until(bob, RoomMemberEvent.Membership, (_e: MatrixEvent, member: { userId: string; membership: string; roomId: string }) =>
        member.userId === bobId && member.membership === 'invite' ? member.roomId : undefined,
      );
      const { room_id: roomId } = await alice.createRoom({ name: 'Tea', invite: [bobId] });
      expect(await invited).toBe(roomId);
      const aliceSeesJoin = until(alice, RoomMemberEvent.Membership, (_e: MatrixEvent, member: { userId: string; membership: string }) =>
        member.userId === bobId && member.membership === 'join' ? true : undefined,
      );
      await bob.joinRoom(roomId);
      await aliceSeesJoin;

      step('// Messages both ways.');
      // Messages both ways.
      const bobGets = until(bob, RoomEvent.Timeline, (e: MatrixEvent) => (e.getType() === EventType.RoomMessage && e.getContent().body === 'hello bob' ? e : undefined));
      await alice.sendMessage(roomId, { msgtype: MsgType.Text, body: 'hello bob' });
      const hello = await bobGets;
      expect(hello.getSender()).toBe(aliceId);
      const aliceGets = until(alice, RoomEvent.Timeline, (e: MatrixEvent) => (e.getType() === EventType.RoomMessage && e.getContent().body === 'hi alice' ? e : undefined));
      await bob.sendMessage(roomId, { msgtype: MsgType.Text, body: 'hi alice' });
      const reply = await aliceGets;

      step('// Typing.');
      // Typing.
      const bobSeesTyping = until(bob, RoomMemberEvent.Typing, (_e: MatrixEvent, member: { userId: string; typing: boolean }) =>
        member.userId === aliceId && member.typing ? true : undefined,
      );
      await alice.sendTyping(roomId, true, 10_000);
      expect(await bobSeesTyping).toBe(true);
      const aliceSeesTyping = until(alice, RoomMemberEvent.Typing, (_e: MatrixEvent, member: { userId: string; typing: boolean }) =>
        member.userId === bobId && member.typing ? true : undefined,
      );
      await bob.sendTyping(roomId, true, 10_000);
      expect(await aliceSeesTyping).toBe(true);

      step('// Read receipts.');
      // Read receipts.
      const aliceSeesReceipt = until(alice, RoomEvent.Receipt, () => {
        // The receipt itself, not one synthesized from bob's own messages.
        return alice.getRoom(roomId)?.getReadReceiptForUserId(bobId, true)?.eventId === hello.getId() ? true : undefined;
      });
      await bob.sendReadReceipt(hello);
      await aliceSeesReceipt;
      const bobSeesReceipt = until(bob, RoomEvent.Receipt, () => (bob.getRoom(roomId)?.getReadReceiptForUserId(aliceId, true)?.eventId === reply.getId() ? true : undefined));
      await alice.sendReadReceipt(reply);
      await bobSeesReceipt;

      step('// 200 messages');
      // 200 messages, then bob pages back through all of them.
      const lastArrives = until(bob, RoomEvent.Timeline, (e: MatrixEvent) => (e.getContent().body === 'message 199' ? true : undefined));
      for (let i = 0; i < 200; i++) await alice.sendMessage(roomId, { msgtype: MsgType.Text, body: `message ${i}` });
      await lastArrives;
      const room: Room = bob.getRoom(roomId)!;
      const bodies = () => room.getLiveTimeline().getEvents().filter((e) => e.getType() === EventType.RoomMessage).map((e) => e.getContent().body as string);
      for (let i = 0; i < 20 && !bodies().includes('message 0'); i++) await retrying(() => bob.scrollback(room, 50));
      const seen = bodies().filter((b) => b.startsWith('message '));
      expect(seen).toEqual(Array.from({ length: 200 }, (_, i) => `message ${i}`));
      expect(bodies().slice(0, 2)).toEqual(['hello bob', 'hi alice']);

      step('// Rename.');
      // Rename.
      const bobSeesName = until(bob, RoomEvent.Name, (r: Room) => (r.roomId === roomId && r.name === 'Tea and cake' ? true : undefined));
      await retrying(() => alice.setRoomName(roomId, 'Tea and cake'));
      await bobSeesName;

      step('// Bob leaves');
      // Bob leaves; alice sees it.
      const aliceSeesLeave = until(alice, RoomMemberEvent.Membership, (_e: MatrixEvent, member: { userId: string; membership: string }) =>
        member.userId === bobId && member.membership === 'leave' ? true : undefined,
      );
      await retrying(() => bob.leave(roomId));
      await aliceSeesLeave;
      expect(alice.getRoom(roomId)!.getJoinedMembers().map((m) => m.userId)).toEqual([aliceId]);
    }, 300_000);
  });
}
