import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Subjects, publishOn, subscribeOn, type OutboundEdu, type Subscription } from '@tessera/bus';
import { EduBridge, ToDeviceService, TypingService } from '@tessera/client-api-service';
import { ClientApiHarness } from './harness.js';

type Login = { user_id: string; access_token: string; device_id: string };

describe('EDUs to and from other servers over the bus (PGlite + in-memory store)', () => {
  let hs: ClientApiHarness;
  let alice: Login;
  let bob: Login;
  let room: string;
  const outbound: OutboundEdu[] = [];
  let subscription: Subscription;

  beforeAll(async () => {
    hs = await ClientApiHarness.start({ database: 'pglite', redis: false });
    alice = await hs.register('alice');
    bob = await hs.register('bob');
    room = await hs.sharedRoom(alice, bob);
    // Listen as fanout-sender does.
    subscription = await subscribeOn(hs.bus, Subjects.eduOutbound, (edu) => void outbound.push(edu));
  });
  afterAll(async () => {
    await subscription?.unsubscribe();
    await hs?.close();
  });

  async function waitFor<T>(find: () => T | undefined): Promise<T> {
    for (let i = 0; i < 200; i++) {
      const found = find();
      if (found !== undefined) return found;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error('not seen');
  }

  it('publishes local typing, public receipts and remote to-device messages on edu.outbound', async () => {
    await hs.call('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(room)}/typing/${encodeURIComponent(alice.user_id)}`, { token: alice.access_token, body: { typing: true, timeout: 5000 } });
    const typing = await waitFor(() => outbound.find((e) => e.eduType === 'm.typing'));
    expect(typing).toEqual({ eduType: 'm.typing', content: { room_id: room, user_id: alice.user_id, typing: true }, to: { roomId: room } });

    const eventId = await hs.send(bob, room, 'read me');
    await hs.call('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(room)}/receipt/m.read.private/${encodeURIComponent(eventId)}`, { token: alice.access_token, body: {} });
    await hs.call('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(room)}/receipt/m.read/${encodeURIComponent(eventId)}`, { token: alice.access_token, body: {} });
    const receipt = await waitFor(() => outbound.find((e) => e.eduType === 'm.receipt'));
    expect(receipt.to).toEqual({ roomId: room });
    expect(receipt.content).toEqual({ [room]: { 'm.read': { [alice.user_id]: { event_ids: [eventId], data: { ts: expect.any(Number) } } } } });
    // The private receipt never left the server.
    expect(outbound.filter((e) => e.eduType === 'm.receipt')).toHaveLength(1);

    const messages = { '@carol:other.example': { CAROLDEV: { secret: 1 } }, [bob.user_id]: { [bob.device_id]: { local: true } } };
    for (let i = 0; i < 2; i++) {
      expect((await hs.call('PUT', '/_matrix/client/v3/sendToDevice/m.room_key/txn-fed', { token: alice.access_token, body: { messages } })).status).toBe(200);
    }
    const toDevice = await waitFor(() => outbound.find((e) => e.eduType === 'm.direct_to_device'));
    expect(toDevice.to).toEqual({ destinations: ['other.example'] });
    expect(toDevice.content).toMatchObject({ sender: alice.user_id, type: 'm.room_key', messages: { '@carol:other.example': { CAROLDEV: { secret: 1 } } } });
    // The retried transaction went out once.
    expect(outbound.filter((e) => e.eduType === 'm.direct_to_device')).toHaveLength(1);
  });

  it('delivers inbound to-device messages once, and drops EDUs a server may not send', async () => {
    const toDevice = hs.nest.get(ToDeviceService);
    const start = await toDevice.currentPosition();
    const edu = {
      origin: 'other.example',
      eduType: 'm.direct_to_device',
      content: { sender: '@carol:other.example', type: 'm.room_key', message_id: 'm1', messages: { [bob.user_id]: { '*': { hello: 'bob' } }, '@x:third.example': { D: { no: 1 } } } },
      receivedTs: Date.now(),
    };
    // Through the bus, as federation-ingress publishes it; then once more (a repeated transaction).
    await publishOn(hs.bus, Subjects.eduInbound, edu);
    let inbox = await toDevice.getToDeviceSince(bob.user_id, bob.device_id, start);
    for (let i = 0; i < 200 && inbox.events.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
      inbox = await toDevice.getToDeviceSince(bob.user_id, bob.device_id, start);
    }
    expect(inbox.events).toEqual([{ type: 'm.room_key', sender: '@carol:other.example', content: { hello: 'bob' } }]);
    const bridge = hs.nest.get(EduBridge);
    await bridge.receive(edu);
    expect((await toDevice.getToDeviceSince(bob.user_id, bob.device_id, start)).events).toHaveLength(1);

    // other.example may not speak for alice (ours) nor for a user of a third server.
    await bridge.receive({ ...edu, content: { ...edu.content, sender: alice.user_id, message_id: 'm2' } });
    await bridge.receive({ ...edu, content: { ...edu.content, sender: '@eve:third.example', message_id: 'm3' } });
    expect((await toDevice.getToDeviceSince(bob.user_id, bob.device_id, start)).events).toHaveLength(1);

    const typing = hs.nest.get(TypingService);
    const before = await typing.currentPosition();
    // Spoofed (alice is ours) and not joined (carol is in no room here): both dropped.
    await bridge.receive({ origin: 'other.example', eduType: 'm.typing', content: { room_id: room, user_id: alice.user_id, typing: true }, receivedTs: Date.now() });
    await bridge.receive({ origin: 'other.example', eduType: 'm.typing', content: { room_id: room, user_id: '@carol:other.example', typing: true }, receivedTs: Date.now() });
    // Malformed EDUs are dropped without throwing.
    await bridge.receive({ origin: 'other.example', eduType: 'm.receipt', content: { [room]: 'junk' } as never, receivedTs: Date.now() });
    await bridge.receive(null as never);
    expect(await typing.currentPosition()).toBe(before);
  });

  it('records presence from m.presence EDUs of the origin’s own users', async () => {
    const bridge = hs.nest.get(EduBridge);
    const path = (user: string) => `/_matrix/client/v3/presence/${encodeURIComponent(user)}/status`;
    await bridge.receive({
      origin: 'other.example',
      eduType: 'm.presence',
      content: { push: [{ user_id: '@carol:other.example', presence: 'unavailable', status_msg: 'lunch', last_active_ago: 5000 }, { user_id: alice.user_id, presence: 'offline' }] },
      receivedTs: Date.now(),
    });
    const carol = await hs.call('GET', path('@carol:other.example'), { token: bob.access_token });
    expect(carol.body).toMatchObject({ presence: 'unavailable', status_msg: 'lunch', currently_active: false });
    expect(carol.body.last_active_ago).toBeGreaterThanOrEqual(5000);
    // other.example cannot set alice's presence.
    expect((await hs.call('GET', path(alice.user_id), { token: bob.access_token })).body).toEqual({ presence: 'offline' });
  });
});
