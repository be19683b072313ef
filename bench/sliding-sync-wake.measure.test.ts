/**
 * A measurement (not part of the test suite: vitest.config.ts includes bench/*.measure.test.ts
 * only when SLIDING_WAKE_MEASURE=1): the server's CPU while N users
 * long-poll sliding sync (each in a room of their own) and one sender posts M messages into an
 * unrelated room. None of the pollers has anything to receive, so what the server spends
 * beyond the sends is the cost of wake-ups and passes that find nothing. The homeserver runs in
 * this process (embedded); the pollers' client side is idle while they wait, so the CPU figure is
 * the server's but for the sender's requests (the same in any comparison).
 *   SLIDING_WAKE_MEASURE=1 npx vitest run bench/sliding-sync-wake.measure.test.ts
 * (SLIDING_WAKE_USERS, SLIDING_WAKE_MESSAGES, SLIDING_WAKE_BACKEND=postgres change the scenario.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlidingSyncService } from '../libs/services/client-api/src/sliding-sync/sliding-sync.service.js';
import { enc, Homeserver, v3, type Login } from '../test/client-api-rooms/harness.js';

const USERS = Number(process.env.SLIDING_WAKE_USERS ?? 200);
const MESSAGES = Number(process.env.SLIDING_WAKE_MESSAGES ?? 300);
const SLIDING = '/_matrix/client/unstable/org.matrix.simplified_msc3575/sync';
type Json = Record<string, any>;

describe('sliding sync long polls and an unrelated sender (measurement)', () => {
  let hs: Homeserver;
  beforeAll(async () => {
    hs = await Homeserver.start(process.env.SLIDING_WAKE_BACKEND === 'postgres' ? 'postgres' : 'embedded');
  }, 120_000);
  afterAll(async () => hs?.close());

  it(`${USERS} pollers, ${MESSAGES} messages elsewhere`, async () => {
    const body = {
      lists: { all: { ranges: [[0, 19]], timeline_limit: 10, required_state: [['m.room.name', ''], ['m.room.member', '$LAZY']] } },
      extensions: { to_device: { enabled: true }, e2ee: { enabled: true }, account_data: { enabled: true }, receipts: { enabled: true }, typing: { enabled: true } },
    };
    const users: Login[] = [];
    for (let i = 0; i < USERS; i++) users.push(await hs.register(`wake${i}`));
    for (const u of users) await hs.ok('POST', v3('createRoom'), { token: u.access_token, body: { name: `own ${u.user_id}` } });
    const sender = await hs.register('wakesender');
    const elsewhere = (await hs.ok<{ room_id: string }>('POST', v3('createRoom'), { token: sender.access_token, body: {} })).room_id;
    // SLIDING_WAKE_PRESENCE=1: every poller shares a quiet room with the sender, who changes presence instead of sending
    // (each change wakes every poller; sliding sync sends no presence).
    const presence = process.env.SLIDING_WAKE_PRESENCE === '1';
    if (presence) {
      const lobby = (await hs.ok<{ room_id: string }>('POST', v3('createRoom'), { token: sender.access_token, body: { preset: 'public_chat' } })).room_id;
      for (const u of users) await hs.ok('POST', v3(`rooms/${enc(lobby)}/join`), { token: u.access_token, body: {} });
    }

    let stop = false;
    let answers = 0;
    let polling = 0;
    const poll = async (u: Login) => {
      let pos = (await hs.ok<Json>('POST', SLIDING, { token: u.access_token, body })).pos as string;
      polling++;
      while (!stop) {
        const reply = await hs.call<Json>('POST', `${SLIDING}?pos=${enc(pos)}&timeout=30000`, { token: u.access_token, body });
        if (reply.status !== 200) throw new Error(`poll: ${reply.status}`);
        answers++;
        pos = reply.body.pos;
      }
    };
    const loops = users.map((u) => poll(u));
    // Every poller waiting (its first pass done), then a second to settle.
    while (polling < USERS) await new Promise((resolve) => setTimeout(resolve, 100));
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const service = hs.clientApp.get(SlidingSyncService) as SlidingSyncService & { stats?: { passes: number; quietWakes: number } };
    const before = { cpu: process.cpuUsage(), at: performance.now(), answers, passes: service.stats?.passes ?? 0, quiet: service.stats?.quietWakes ?? 0 };
    for (let i = 0; i < MESSAGES; i++) {
      if (presence) {
        await hs.ok('PUT', v3(`presence/${enc(sender.user_id)}/status`), { token: sender.access_token, body: { presence: i % 2 === 0 ? 'unavailable' : 'online' } });
        continue;
      }
      await hs.ok('PUT', v3(`rooms/${enc(elsewhere)}/send/m.room.message/w${i}`), { token: sender.access_token, body: { msgtype: 'm.text', body: `m${i}` } });
    }
    const cpu = process.cpuUsage(before.cpu);
    const ms = performance.now() - before.at;
    const cpuMs = (cpu.user + cpu.system) / 1000;
    console.log(`MEASURE sliding_wake presence=${presence} users=${USERS} messages=${MESSAGES} wall=${ms.toFixed(0)}ms cpu=${cpuMs.toFixed(0)}ms cpu_per_message=${((cpuMs * 1000) / MESSAGES).toFixed(0)}us busy=${((100 * cpuMs) / ms).toFixed(0)}% answers=${answers - before.answers} passes=${(service.stats?.passes ?? 0) - before.passes} quiet_wakes=${(service.stats?.quietWakes ?? 0) - before.quiet}`);
    expect(answers - before.answers).toBe(0);
    stop = true;
    // The pollers end with the server (close wakes them).
    void Promise.allSettled(loops);
  }, 600_000);
});
