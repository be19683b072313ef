import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '@tessera/testing';
import { enc, Homeserver, v3, type Backend, type Login } from './harness.js';

const backends: Array<{ backend: Backend; available: boolean }> = [
  { backend: 'embedded', available: true },
  { backend: 'postgres', available: services.postgres && services.nats && services.redis },
];

const GATEWAY = 'https://push.example.org/_matrix/push/v1/notify';

/** A complete http pusher body; `overrides` replace or (as undefined) remove keys. */
function pusherBody(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const body: Record<string, unknown> = {
    kind: 'http',
    app_id: 'org.example.app.ios',
    pushkey: 'key-1',
    app_display_name: 'Example',
    device_display_name: 'Phone',
    profile_tag: 'tag',
    lang: 'en',
    data: { url: GATEWAY, format: 'event_id_only' },
    ...overrides,
  };
  for (const [k, v] of Object.entries(body)) if (v === undefined) delete body[k];
  return body;
}

/** What GET /pushers shows of a body set with POST /pushers/set. */
function asListed(body: Record<string, unknown>): Record<string, unknown> {
  const { append: _append, ...pusher } = body;
  return pusher;
}

for (const { backend, available } of backends) {
  describe.skipIf(!available)(`pushers and notifications (${backend})`, () => {
    let hs: Homeserver;
    const as = (l: Login) => ({ token: l.access_token });

    beforeAll(async () => {
      hs = await Homeserver.start(backend);
    }, 120_000);
    afterAll(async () => hs?.close());

    const pushers = async (who: Login) => (await hs.ok('GET', v3('pushers'), as(who))).pushers as Array<Record<string, unknown>>;
    const setPusher = (who: Login, body: Record<string, unknown>) => hs.call('POST', v3('pushers/set'), { ...as(who), body });
    const text = async (who: Login, roomId: string, body: string, extra: Record<string, unknown> = {}) =>
      (await hs.ok('PUT', v3(`rooms/${enc(roomId)}/send/m.room.message/${Math.random()}`), { ...as(who), body: { msgtype: 'm.text', body, ...extra } })) as { event_id: string };
    const notifications = (who: Login, query = '') => hs.ok('GET', v3(`notifications${query ? `?${query}` : ''}`), as(who));

    it('sets, updates, lists and deletes pushers (v3 and r0)', async () => {
      const alice = await hs.register('pusheralice');
      expect(await pushers(alice)).toEqual([]);
      const first = pusherBody();
      expect((await setPusher(alice, first)).body).toEqual({});
      expect(await pushers(alice)).toEqual([asListed(first)]);

      // Same app_id and pushkey: the pusher is replaced, not added. profile_tag is optional.
      const updated = pusherBody({ device_display_name: 'Tablet', lang: 'fr', profile_tag: undefined, data: { url: GATEWAY, custom: 1 } });
      expect((await setPusher(alice, updated)).status).toBe(200);
      expect(await pushers(alice)).toEqual([asListed(updated)]);

      // Another pushkey is another pusher; r0 serves the same.
      const second = pusherBody({ pushkey: 'key-2', data: { url: 'http://127.0.0.1:5000/_matrix/push/v1/notify' } });
      await hs.ok('POST', '/_matrix/client/r0/pushers/set', { ...as(alice), body: second });
      const listed = (await hs.ok('GET', '/_matrix/client/r0/pushers', as(alice))).pushers;
      expect(listed).toEqual([asListed(updated), asListed(second)]);

      // kind null deletes (only the required keys are needed); deleting an unknown pusher succeeds.
      expect((await setPusher(alice, { kind: null, app_id: 'org.example.app.ios', pushkey: 'key-1' })).status).toBe(200);
      expect(await pushers(alice)).toEqual([asListed(second)]);
      expect((await setPusher(alice, { kind: null, app_id: 'org.example.app.ios', pushkey: 'nope' })).status).toBe(200);
      expect(await pushers(alice)).toEqual([asListed(second)]);

      expect((await hs.call('GET', v3('pushers'))).status).toBe(401);
      expect((await hs.call('POST', v3('pushers/set'), { body: first })).status).toBe(401);
    });

    it('refuses bad pushers with the spec errors and changes nothing', async () => {
      const bob = await hs.register('pusherbob');
      const good = pusherBody({ pushkey: 'bob-key' });
      await setPusher(bob, good);
      const refused: Array<[Record<string, unknown>, number, string]> = [
        [pusherBody({ lang: undefined, data: undefined }), 400, 'M_MISSING_PARAM'],
        [pusherBody({ kind: undefined }), 400, 'M_MISSING_PARAM'],
        [{ kind: null, app_id: 'org.example.app.ios' }, 400, 'M_MISSING_PARAM'],
        [pusherBody({ data: {} }), 400, 'M_MISSING_PARAM'],
        [pusherBody({ data: { url: 'https://push.example.org/notify' } }), 400, 'M_INVALID_PARAM'],
        [pusherBody({ data: { url: 'ftp://push.example.org/_matrix/push/v1/notify' } }), 400, 'M_INVALID_PARAM'],
        [pusherBody({ data: { url: 'not a url' } }), 400, 'M_INVALID_PARAM'],
        [pusherBody({ kind: 'carrier-pigeon' }), 400, 'M_INVALID_PARAM'],
        [pusherBody({ app_id: 'x'.repeat(65) }), 400, 'M_INVALID_PARAM'],
        [pusherBody({ pushkey: 'é'.repeat(257) }), 400, 'M_INVALID_PARAM'],
        [pusherBody({ lang: 5 }), 400, 'M_BAD_JSON'],
        [pusherBody({ data: 'https://push.example.org/_matrix/push/v1/notify' }), 400, 'M_BAD_JSON'],
        [pusherBody({ append: 'yes' }), 400, 'M_BAD_JSON'],
        // No email address can be bound to an account here (as Synapse without the address).
        [pusherBody({ kind: 'email', app_id: 'm.email', pushkey: 'bob@example.org', data: {} }), 400, 'M_THREEPID_NOT_FOUND'],
      ];
      for (const [body, status, errcode] of refused) {
        const reply = await setPusher(bob, { ...body, pushkey: body.pushkey === 'key-1' ? 'bob-key' : body.pushkey, app_display_name: 'Changed' });
        expect([reply.status, reply.body.errcode], JSON.stringify(body)).toEqual([status, errcode]);
      }
      const missing = await setPusher(bob, pusherBody({ lang: undefined, data: undefined }));
      expect(missing.body.error).toContain('lang');
      expect(missing.body.error).toContain('data');
      expect(await pushers(bob)).toEqual([asListed(good)]);
      const notJson = await hs.call('POST', v3('pushers/set'), { ...as(bob), rawBody: '{nope' });
      expect([notJson.status, notJson.body.errcode]).toEqual([400, 'M_NOT_JSON']);
    });

    it('append: false takes the app_id and pushkey from other users; append: true shares them', async () => {
      const [u1, u2, u3] = [await hs.register('shareone'), await hs.register('sharetwo'), await hs.register('sharethree')];
      const shared = pusherBody({ app_id: 'org.example.shared', pushkey: 'shared-key' });
      await setPusher(u1, shared);
      await setPusher(u2, { ...shared, append: true });
      expect(await pushers(u1)).toEqual([asListed(shared)]);
      expect(await pushers(u2)).toEqual([asListed(shared)]);
      // Another user's pusher with another pushkey is not touched.
      const own = pusherBody({ app_id: 'org.example.shared', pushkey: 'u1-only' });
      await setPusher(u1, own);
      await setPusher(u3, { ...shared, append: false });
      expect(await pushers(u1)).toEqual([asListed(own)]);
      expect(await pushers(u2)).toEqual([]);
      expect(await pushers(u3)).toEqual([asListed(shared)]);
      // Absent append is false.
      await setPusher(u1, shared);
      expect(await pushers(u3)).toEqual([]);
      expect(await pushers(u1)).toEqual([asListed(own), asListed(shared)]);
    });

    it('deletes a pusher with the device that set it (logout)', async () => {
      const dana = await hs.register('pusherdana');
      const phone = await hs.ok<Login>('POST', v3('login'), {
        body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'pusherdana' }, password: 'correct horse battery staple' },
      });
      const fromPhone = pusherBody({ pushkey: 'phone-key' });
      const fromLaptop = pusherBody({ pushkey: 'laptop-key' });
      await setPusher(phone, fromPhone);
      await setPusher(dana, fromLaptop);
      // Updating the phone's pusher from the other device keeps it tied to the phone.
      const renamed = { ...fromPhone, device_display_name: 'Old phone' };
      await setPusher(dana, renamed);
      expect(await pushers(dana)).toEqual([asListed(renamed), asListed(fromLaptop)]);
      await hs.ok('POST', v3('logout'), { ...as(phone), body: {} });
      expect(await pushers(dana)).toEqual([asListed(fromLaptop)]);
    });

    it('lists the events that notified the user, newest first, with actions, read flags and pagination', async () => {
      const [owner, bob, carol] = [await hs.register('notifowner'), await hs.register('notifbob'), await hs.register('notifcarol')];
      // A room of three, so that the one-to-one rules stay out of the way.
      const { room_id: roomId } = await hs.ok('POST', v3('createRoom'), { ...as(owner), body: { preset: 'public_chat' } });
      await text(owner, roomId, 'before bob came'); // bob was not in the room: never a notification for him
      for (const who of [bob, carol]) await hs.ok('POST', v3(`rooms/${enc(roomId)}/join`), { ...as(who), body: {} });
      expect((await notifications(bob)).notifications).toEqual([]);

      const hello = await text(carol, roomId, 'hello');
      const mention = await text(carol, roomId, 'bob, look', { 'm.mentions': { user_ids: [bob.user_id] } });
      await text(carol, roomId, 'a bot says', { msgtype: 'm.notice' }); // .m.rule.suppress_notices
      const own = await text(bob, roomId, 'my own message'); // the user's own events never notify
      const news = await text(owner, roomId, 'news');

      const all = await notifications(bob);
      expect(all.notifications.map((n: any) => n.event.event_id)).toEqual([news.event_id, mention.event_id, hello.event_id]);
      expect(all.next_token).toBeUndefined();
      const [first, second, third] = all.notifications;
      expect(first).toEqual({ room_id: roomId, read: false, ts: expect.any(Number), actions: ['notify'], event: expect.any(Object) });
      expect(first.event).toMatchObject({ type: 'm.room.message', sender: owner.user_id, content: { body: 'news' } });
      expect(first.event.room_id).toBeUndefined();
      expect(second.actions).toContainEqual({ set_tweak: 'highlight' });
      expect(third.actions).not.toContainEqual({ set_tweak: 'highlight' });
      expect(third.ts).toBe(third.event.origin_server_ts);
      // carol, who sent most of them, is notified of the others' messages only.
      expect((await notifications(carol)).notifications.map((n: any) => n.event.event_id)).toEqual([news.event_id, own.event_id]);

      const highlights = await notifications(bob, 'only=highlight');
      expect(highlights.notifications.map((n: any) => n.event.event_id)).toEqual([mention.event_id]);

      // Pages of two, then one, then nothing more.
      const page1 = await notifications(bob, 'limit=2');
      expect(page1.notifications.map((n: any) => n.event.event_id)).toEqual([news.event_id, mention.event_id]);
      expect(page1.next_token).toEqual(expect.any(String));
      const page2 = await hs.ok('GET', `/_matrix/client/r0/notifications?limit=2&from=${enc(page1.next_token)}`, as(bob));
      expect(page2.notifications.map((n: any) => n.event.event_id)).toEqual([hello.event_id]);
      expect(page2.next_token).toBeUndefined();

      // A read receipt at the mention covers it and what came before, not what came after.
      await hs.ok('POST', v3(`rooms/${enc(roomId)}/receipt/m.read/${enc(mention.event_id)}`), { ...as(bob), body: {} });
      const afterReceipt = await notifications(bob);
      expect(afterReceipt.notifications.map((n: any) => [n.event.event_id, n.read])).toEqual([
        [news.event_id, false],
        [mention.event_id, true],
        [hello.event_id, true],
      ]);
      // A private receipt counts too.
      await hs.ok('POST', v3(`rooms/${enc(roomId)}/receipt/m.read.private/${enc(news.event_id)}`), { ...as(bob), body: {} });
      expect((await notifications(bob)).notifications.every((n: any) => n.read)).toBe(true);

      for (const query of ['from=abc', 'from=-1', 'limit=-1', 'limit=x']) {
        const bad = await hs.call('GET', v3(`notifications?${query}`), as(bob));
        expect([bad.status, bad.body.errcode], query).toEqual([400, 'M_INVALID_PARAM']);
      }
      expect((await hs.call('GET', v3('notifications'))).status).toBe(401);
    });

    it('follows the push rules of the user, lists invites of joined rooms, and leaves out rooms left', async () => {
      const [erin, frank] = [await hs.register('ruleserin'), await hs.register('rulesfrank')];
      const { room_id: roomId } = await hs.ok('POST', v3('createRoom'), { ...as(frank), body: { preset: 'private_chat', invite: [erin.user_id] } });
      await hs.ok('POST', v3(`rooms/${enc(roomId)}/join`), { ...as(erin), body: {} });
      const hi = await text(frank, roomId, 'hi erin');
      const listed = (await notifications(erin)).notifications;
      // One-to-one room: the message notifies (with sound); the invite of erin does too (.m.rule.invite_for_me).
      expect(listed.map((n: any) => n.event.type)).toEqual(['m.room.message', 'm.room.member']);
      expect(listed[0].event.event_id).toBe(hi.event_id);
      expect(listed[1].event).toMatchObject({ state_key: erin.user_id, content: { membership: 'invite' } });

      // A rule of erin's own that silences frank.
      await hs.ok('PUT', v3(`pushrules/global/sender/${enc(frank.user_id)}`), { ...as(erin), body: { actions: [] } });
      await text(frank, roomId, 'you will not hear this');
      // Rules apply as they are now (as /sync's unread counts): both of frank's messages are silenced, the invite stays.
      expect((await notifications(erin)).notifications.map((n: any) => n.event.type)).toEqual(['m.room.member']);
      await hs.ok('DELETE', v3(`pushrules/global/sender/${enc(frank.user_id)}`), as(erin));

      await hs.ok('POST', v3(`rooms/${enc(roomId)}/leave`), { ...as(erin), body: {} });
      expect((await notifications(erin)).notifications).toEqual([]);
    });
  });
}
