/**
 * Two client-api replicas on PostgreSQL + NATS + Redis: what one replica changes in
 * client-api's own streams wakes a /sync waiting on the other (client.changes on the bus), and
 * a token revoked on one is refused at once by the other, even after the other cached it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '@tessera/testing';
import { startClientApiReplicas, type ClientApiReplicas } from '../support/client-api-replicas.js';

describe.skipIf(!services.postgres || !services.nats || !services.redis)('two client-api replicas (PostgreSQL + NATS + Redis)', () => {
  let replicas: ClientApiReplicas | undefined;
  let a: string;
  let b: string;

  beforeAll(async () => {
    replicas = await startClientApiReplicas('replicas', { enable_registration: true });
    a = `${replicas.a}/_matrix/client/v3`;
    b = `${replicas.b}/_matrix/client/v3`;
  });
  afterAll(async () => {
    await replicas?.close();
  });

  const call = async (base: string, method: string, path: string, token?: string, body?: unknown) => {
    const res = await fetch(`${base}/${path}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  const register = async (base: string, username: string) => {
    const first = await call(base, 'POST', 'register', undefined, { username, password: 'replica password 1' });
    const done = await call(base, 'POST', 'register', undefined, { username, password: 'replica password 1', auth: { type: 'm.login.dummy', session: first.body.session } });
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    return done.body as { user_id: string; access_token: string; device_id: string };
  };

  it('wakes a /sync on one replica for account data, typing and to-device written on the other', async () => {
    const alice = await register(a, 'alice');
    const bob = await register(a, 'bob');
    const { body: created } = await call(a, 'POST', 'createRoom', alice.access_token, { preset: 'public_chat' });
    expect((await call(a, 'POST', `join/${encodeURIComponent(created.room_id)}`, bob.access_token, {})).status).toBe(200);
    const initial = await call(b, 'GET', 'sync', alice.access_token);
    expect(initial.status).toBe(200);

    // Long polls of 60 s: without the relay replica B hears of none of these and answers empty at the timeout.
    const poll = (since: string) => call(b, 'GET', `sync?since=${encodeURIComponent(since)}&timeout=60000`, alice.access_token);
    const waiting = poll(initial.body.next_batch);
    await new Promise((r) => setTimeout(r, 300));
    expect((await call(a, 'PUT', `user/${encodeURIComponent(alice.user_id)}/account_data/org.example.replica`, alice.access_token, { n: 1 })).status).toBe(200);
    const woke = await waiting;
    expect(woke.body.account_data?.events).toEqual([{ type: 'org.example.replica', content: { n: 1 } }]);

    let since = woke.body.next_batch as string;
    const typingWait = poll(since);
    await new Promise((r) => setTimeout(r, 300));
    const typing = await call(a, 'PUT', `rooms/${encodeURIComponent(created.room_id)}/typing/${encodeURIComponent(bob.user_id)}`, bob.access_token, { typing: true, timeout: 30000 });
    expect(typing.status).toBe(200);
    const typed = await typingWait;
    const ephemeral = typed.body.rooms?.join?.[created.room_id]?.ephemeral?.events ?? [];
    expect(ephemeral).toContainEqual({ type: 'm.typing', content: { user_ids: [bob.user_id] } });

    since = typed.body.next_batch;
    const toDeviceWait = poll(since);
    await new Promise((r) => setTimeout(r, 300));
    const sent = await call(a, 'PUT', 'sendToDevice/org.example.ping/t1', bob.access_token, { messages: { [alice.user_id]: { [alice.device_id]: { hello: 'b' } } } });
    expect(sent.status).toBe(200);
    const delivered = await toDeviceWait;
    expect(delivered.body.to_device?.events).toEqual([{ type: 'org.example.ping', sender: bob.user_id, content: { hello: 'b' } }]);
  });

  it('refuses on one replica a token logged out on the other, though it was cached there', async () => {
    const carol = await register(a, 'carol');
    expect((await call(b, 'GET', 'account/whoami', carol.access_token)).status).toBe(200);
    expect((await call(b, 'GET', 'account/whoami', carol.access_token)).status).toBe(200);
    expect((await call(a, 'POST', 'logout', carol.access_token, {})).status).toBe(200);
    // The relay is asynchronous: the first answer of B after A's reply may still come from its cache.
    let status = 200;
    for (let i = 0; i < 50 && status === 200; i++) {
      status = (await call(b, 'GET', 'account/whoami', carol.access_token)).status;
      if (status === 200) await new Promise((r) => setTimeout(r, 20));
    }
    expect(status).toBe(401);
  });
});
