/**
 * Lazy-loaded members (spec "Lazy-loading room members") with two client-api replicas on
 * PostgreSQL + NATS + Redis. Each replica remembers in memory which members it sent to a device;
 * a device whose chain of syncs moved (its store reset by an initial sync on one replica, then its
 * incremental syncs answered by the other) must be sent the members again: a redundant member is
 * allowed, a missing one is not. On a chain that continues on one replica, redundant members are
 * still skipped.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '@tessera/testing';
import { startClientApiReplicas, type ClientApiReplicas } from '../support/client-api-replicas.js';

interface Login {
  user_id: string;
  access_token: string;
  device_id: string;
}

describe.skipIf(!services.postgres || !services.nats || !services.redis)('lazy-loaded members with two client-api replicas (PostgreSQL + NATS + Redis)', () => {
  let replicas: ClientApiReplicas | undefined;
  let a: string;
  let b: string;

  beforeAll(async () => {
    replicas = await startClientApiReplicas('lazy-replicas', { enable_registration: true });
    a = `${replicas.a}/_matrix/client/v3`;
    b = `${replicas.b}/_matrix/client/v3`;
  });
  afterAll(async () => {
    await replicas?.close();
  });

  const enc = encodeURIComponent;
  const call = async (base: string, method: string, path: string, token?: string, body?: unknown) => {
    const res = await fetch(`${base}/${path}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  const ok = async (base: string, method: string, path: string, token?: string, body?: unknown) => {
    const reply = await call(base, method, path, token, body);
    expect(reply.status, `${method} ${path}: ${JSON.stringify(reply.body)}`).toBe(200);
    return reply.body;
  };
  const register = async (username: string): Promise<Login> => {
    const first = await call(a, 'POST', 'register', undefined, { username, password: 'replica password 1' });
    return ok(a, 'POST', 'register', undefined, { username, password: 'replica password 1', auth: { type: 'm.login.dummy', session: first.body.session } });
  };
  const say = (who: Login, roomId: string, body: string) =>
    ok(a, 'PUT', `rooms/${enc(roomId)}/send/m.room.message/${Math.random()}`, who.access_token, { msgtype: 'm.text', body });
  const lazy = (limit: number) => ({ room: { state: { lazy_load_members: true }, timeline: { limit } } });
  const sync = (base: string, who: Login, since: string | undefined, filter: unknown, timeout = 0) =>
    ok(base, 'GET', `sync?${since ? `since=${enc(since)}&` : ''}filter=${enc(JSON.stringify(filter))}&timeout=${timeout}`, who.access_token);
  const members = (response: any, roomId: string): string[] =>
    (response.rooms?.join?.[roomId]?.state?.events ?? []).filter((e: any) => e.type === 'm.room.member').map((e: any) => e.state_key).sort();
  const senders = (response: any, roomId: string): string[] => (response.rooms?.join?.[roomId]?.timeline?.events ?? []).map((e: any) => e.sender);
  const room = async (owner: Login, ...joiners: Login[]) => {
    const { room_id: roomId } = await ok(a, 'POST', 'createRoom', owner.access_token, { preset: 'public_chat' });
    for (const j of joiners) await ok(a, 'POST', `join/${enc(roomId)}`, j.access_token, {});
    // The joins out of the timelines to come: members then come as state, lazily.
    for (let i = 0; i < 10; i++) await say(owner, roomId, `filler ${i}`);
    return roomId as string;
  };

  it('sends again on replica B the members a device lost by an initial sync on replica A', async () => {
    const alice = await register('lra_alice');
    const bob = await register('lra_bob');
    const carol = await register('lra_carol');
    const roomId = await room(alice, bob, carol);
    await say(bob, roomId, 'from bob');
    await say(carol, roomId, 'from carol');

    // Alice's device syncs on B: B sends (and remembers) bob's and carol's members.
    const s0 = await sync(b, alice, undefined, lazy(10));
    expect(members(s0, roomId)).toEqual([alice.user_id, bob.user_id, carol.user_id].sort());
    const s1 = await sync(b, alice, s0.next_batch, lazy(10));

    // The device resets its store: an initial sync, answered by A, with the last event only
    // (carol's): bob's member is not in it. Nothing happened since B's last answer, so the
    // positions of the two chains' tokens are the same.
    const fresh = await sync(a, alice, undefined, lazy(1));
    expect(senders(fresh, roomId)).toEqual([carol.user_id]);
    expect(members(fresh, roomId)).not.toContain(bob.user_id);

    // Bob speaks; the next sync goes to B, which once sent bob's member to this device.
    await say(bob, roomId, 'bob again');
    const next = await sync(b, alice, fresh.next_batch, lazy(10));
    expect(senders(next, roomId)).toEqual([bob.user_id]);
    expect(members(next, roomId)).toEqual([bob.user_id]);
    // (The two chains' tokens are at the same positions: only their tags tell them apart.)
    expect(s1.next_batch.split('~')[0]).toBe(fresh.next_batch.split('~')[0]);
    expect(s1.next_batch).not.toBe(fresh.next_batch);

    // B's answer starts B's own chain: bob is redundant on it now, carol is not (alice's store
    // got her member from A, but B does not know that).
    await say(bob, roomId, 'bob a third time');
    const after = await sync(b, alice, next.next_batch, lazy(10));
    expect(members(after, roomId)).toEqual([]);

    // Back on A with B's token: A does not vouch for what B sent, so it sends bob's member again.
    await say(bob, roomId, 'bob on A');
    const onA = await sync(a, alice, after.next_batch, lazy(10));
    expect(members(onA, roomId)).toEqual([bob.user_id]);
  });

  it('sends again on replica B the members a device lost, when events came between the two chains', async () => {
    const alice = await register('lrb_alice');
    const bob = await register('lrb_bob');
    const carol = await register('lrb_carol');
    const roomId = await room(alice, bob, carol);
    await say(bob, roomId, 'from bob');
    const s0 = await sync(b, alice, undefined, lazy(10));
    expect(members(s0, roomId)).toContain(bob.user_id);
    await say(carol, roomId, 'from carol');
    const s1 = await sync(b, alice, s0.next_batch, lazy(10));
    expect(members(s1, roomId)).toEqual([carol.user_id]);

    await say(carol, roomId, 'carol again');
    const fresh = await sync(a, alice, undefined, lazy(1));
    expect(members(fresh, roomId)).toEqual([alice.user_id, carol.user_id].sort());
    await say(bob, roomId, 'bob again');
    await say(carol, roomId, 'carol a third time');
    const next = await sync(b, alice, fresh.next_batch, lazy(10));
    expect(members(next, roomId)).toEqual([bob.user_id, carol.user_id].sort());
  });

  it('on one replica, still skips members already sent on a continuing chain (long polls and tagged tokens included)', async () => {
    const alice = await register('lrc_alice');
    const bob = await register('lrc_bob');
    const carol = await register('lrc_carol');
    const dave = await register('lrc_dave');
    const roomId = await room(alice, bob, carol, dave);
    await say(carol, roomId, 'from carol');

    const s0 = await sync(a, alice, undefined, lazy(1));
    expect(members(s0, roomId)).toEqual([alice.user_id, carol.user_id].sort());
    await say(bob, roomId, 'from bob');
    const s1 = await sync(a, alice, s0.next_batch, lazy(10));
    expect(members(s1, roomId)).toEqual([bob.user_id]);

    // A long poll that times out with nothing new keeps the chain.
    const quiet = await sync(a, alice, s1.next_batch, lazy(10), 300);
    expect(quiet.rooms?.join?.[roomId]).toBeUndefined();
    expect(quiet.next_batch).toBe(s1.next_batch); // nothing moved: the same token back
    await say(bob, roomId, 'bob again');
    await say(carol, roomId, 'carol again');
    const s2 = await sync(a, alice, quiet.next_batch, lazy(10));
    expect(senders(s2, roomId)).toEqual([bob.user_id, carol.user_id]);
    expect(members(s2, roomId)).toEqual([]);

    // A long poll woken by an event: still the chain.
    const polling = sync(a, alice, s2.next_batch, lazy(10), 30_000);
    await new Promise((r) => setTimeout(r, 300));
    await say(carol, roomId, 'carol wakes the poll');
    const woken = await polling;
    expect(senders(woken, roomId)).toEqual([carol.user_id]);
    expect(members(woken, roomId)).toEqual([]);

    // The tokens are tagged, and still work wherever a sync token is taken.
    expect((await call(a, 'GET', `keys/changes?from=${enc(s0.next_batch)}&to=${enc(woken.next_batch)}`, alice.access_token)).status).toBe(200);
    expect((await call(a, 'GET', `rooms/${enc(roomId)}/messages?dir=b&limit=1&from=${enc(woken.next_batch)}`, alice.access_token)).status).toBe(200);

    // An older token of the chain (an answer the device went back from) is not trusted: bob's
    // member, sent after it, is sent again.
    await say(bob, roomId, 'bob from the past');
    const replay = await sync(a, alice, s0.next_batch, lazy(10));
    expect(members(replay, roomId)).toContain(bob.user_id);

    // Two syncs of the device at once from one token, with different filters: the one with the
    // longer timeline gives dave's member, the other does not. A sync from the other's token must
    // send it (whichever of the two the replica remembers).
    const base = await sync(a, alice, replay.next_batch, lazy(10));
    await say(dave, roomId, 'dave, at last');
    await say(carol, roomId, 'carol after dave');
    const [long, short] = await Promise.all([sync(a, alice, base.next_batch, lazy(10)), sync(a, alice, base.next_batch, lazy(1))]);
    expect(members(long, roomId)).toContain(dave.user_id);
    expect(senders(short, roomId)).toEqual([carol.user_id]);
    expect(members(short, roomId)).not.toContain(dave.user_id);
    expect(long.next_batch).not.toBe(short.next_batch);
    await say(dave, roomId, 'dave again');
    const fromShort = await sync(a, alice, short.next_batch, lazy(10));
    expect(senders(fromShort, roomId)).toEqual([dave.user_id]);
    expect(members(fromShort, roomId)).toEqual([dave.user_id]);
  });
});
