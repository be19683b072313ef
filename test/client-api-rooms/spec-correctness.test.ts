/**
 * Spec-correctness details that real clients run into, on the whole homeserver in one process
 * (federation-ingress included):
 * - m.room.canonical_alias: new aliases must exist and point to the room (M_BAD_ALIAS), aliases
 *   already in the event are not checked again (PUT /state and createRoom's initial_state); a
 *   deleted alias leaves the event;
 * - request bodies: parsed as JSON whatever the Content-Type (as Synapse), M_NOT_JSON for what is
 *   not JSON, M_BAD_JSON for the wrong shape, on the client and the federation API; media uploads
 *   keep their raw bytes;
 * - /timestamp_to_event finds its event through an index, without sorting the room's events;
 * - the 3PID endpoints of a server with no email/SMS sender and 3PID changes off.
 */
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '@tessera/testing';
import { closestEventSql } from '@tessera/storage';
import { checkAgainstSpec } from '../client-api/harness.js';
import { enc, Homeserver, v3, type Backend, type Login } from './harness.js';

const backends: Array<{ backend: Backend; available: boolean }> = [
  { backend: 'embedded', available: true },
  { backend: 'postgres', available: services.postgres && services.nats && services.redis },
];

interface RawReply {
  status: number;
  body: any;
}

const MATRIX_ERROR = { errcode: expect.stringMatching(/^M_[A-Z_]+$/), error: expect.any(String) };

for (const { backend, available } of backends) {
  describe.skipIf(!available)(`spec correctness (${backend})`, () => {
    let hs: Homeserver;
    let alice: Login;
    let bob: Login;
    let roomId: string;
    const as = (l: Login) => ({ token: l.access_token });

    /**
     * A request with exactly the given Content-Type (none when undefined: the body goes as bytes,
     * for which fetch adds no content type). JSON answers are validated against the spec when
     * `spec` is set (client-server paths), and must be JSON whenever the status is an error.
     */
    const raw = async (base: string, method: string, path: string, body: string | undefined, contentType: string | undefined, token?: string, spec = true): Promise<RawReply> => {
      const headers: Record<string, string> = {};
      if (token) headers.authorization = `Bearer ${token}`;
      if (contentType !== undefined) headers['content-type'] = contentType;
      const response = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : new TextEncoder().encode(body) });
      const text = await response.text();
      const isJson = response.headers.get('content-type')?.includes('application/json') ?? false;
      if (response.status >= 400) expect(isJson, `${method} ${path} ${response.status}: ${text}`).toBe(true);
      const json = isJson ? JSON.parse(text) : undefined;
      if (isJson && spec) checkAgainstSpec(method, path, response.status, json);
      if (response.status >= 400) expect(json).toMatchObject(MATRIX_ERROR);
      return { status: response.status, body: json };
    };
    const federationBase = () => `http://127.0.0.1:${(hs.running.apps.get('federation')!.getHttpServer().address() as AddressInfo).port}`;

    beforeAll(async () => {
      hs = await Homeserver.start(backend);
      alice = await hs.register('alice');
      bob = await hs.register('bob');
      roomId = (await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { preset: 'public_chat' } })).room_id;
      await hs.ok('POST', v3(`join/${enc(roomId)}`), { ...as(bob), body: {} });
    }, 120_000);
    afterAll(async () => hs?.close());

    describe('m.room.canonical_alias', () => {
      const putAlias = (room: string, content: unknown, who = alice) => hs.call('PUT', v3(`rooms/${enc(room)}/state/m.room.canonical_alias`), { ...as(who), body: content });
      const currentAlias = async (room: string) => hs.ok('GET', v3(`rooms/${enc(room)}/state/m.room.canonical_alias/`), as(alice));
      const newAlias = async (room: string, name: string, who = alice) => {
        const alias = `#${name}-${Math.random().toString(36).slice(2, 8)}:${hs.serverName}`;
        await hs.ok('PUT', v3(`directory/room/${enc(alias)}`), { ...as(who), body: { room_id: room } });
        return alias;
      };

      it('refuses new aliases that do not exist or point elsewhere (M_BAD_ALIAS), and bad syntax (M_INVALID_PARAM)', async () => {
        const { room_id: room } = await hs.ok('POST', v3('createRoom'), as(alice));
        const { room_id: other } = await hs.ok('POST', v3('createRoom'), as(alice));
        const mine = await newAlias(room, 'mine');
        const elsewhere = await newAlias(other, 'elsewhere');
        const cases: Array<[unknown, string]> = [
          [{ alias: `#nowhere:${hs.serverName}` }, 'M_BAD_ALIAS'],
          [{ alias: elsewhere }, 'M_BAD_ALIAS'],
          [{ alias: mine, alt_aliases: [elsewhere] }, 'M_BAD_ALIAS'],
          [{ alt_aliases: [mine, `#nowhere:${hs.serverName}`] }, 'M_BAD_ALIAS'],
          [{ alias: 'not an alias' }, 'M_INVALID_PARAM'],
          [{ alt_aliases: ['#no-server'] }, 'M_INVALID_PARAM'],
          [{ alt_aliases: mine }, 'M_INVALID_PARAM'],
        ];
        for (const [content, errcode] of cases) {
          const reply = await putAlias(room, content);
          expect([reply.status, reply.body.errcode], JSON.stringify(content)).toEqual([400, errcode]);
        }
        expect((await hs.call('GET', v3(`rooms/${enc(room)}/state/m.room.canonical_alias/`), as(alice))).status).toBe(404);
        await hs.ok('PUT', v3(`rooms/${enc(room)}/state/m.room.canonical_alias`), { ...as(alice), body: { alias: mine, alt_aliases: [mine] } });
        expect(await currentAlias(room)).toEqual({ alias: mine, alt_aliases: [mine] });
      });

      it('does not check again the aliases already in the event, nor those removed', async () => {
        const { room_id: room } = await hs.ok('POST', v3('createRoom'), as(alice));
        // Aliases made by bob, who has no power over the room's canonical alias: when he deletes
        // them, the event keeps naming them (as it may on any server: other servers' aliases too).
        const main = await newAlias(room, 'main', bob);
        const alt = await newAlias(room, 'alt', bob);
        await hs.ok('PUT', v3(`rooms/${enc(room)}/state/m.room.canonical_alias`), { ...as(alice), body: { alias: main, alt_aliases: [alt] } });
        await hs.ok('DELETE', v3(`directory/room/${enc(main)}`), as(bob));
        await hs.ok('DELETE', v3(`directory/room/${enc(alt)}`), as(bob));
        expect(await currentAlias(room)).toEqual({ alias: main, alt_aliases: [alt] });
        const added = await newAlias(room, 'added');
        // Keeping them while adding a valid alias is allowed (spec: "Servers do not validate
        // aliases which are being removed or are already present in the state event").
        await hs.ok('PUT', v3(`rooms/${enc(room)}/state/m.room.canonical_alias`), { ...as(alice), body: { alias: main, alt_aliases: [alt, added] } });
        expect(await currentAlias(room)).toEqual({ alias: main, alt_aliases: [alt, added] });
        // An alias already listed in the event may move between alias and alt_aliases.
        await hs.ok('PUT', v3(`rooms/${enc(room)}/state/m.room.canonical_alias`), { ...as(alice), body: { alias: alt, alt_aliases: [added] } });
        // Removing is never checked.
        await hs.ok('PUT', v3(`rooms/${enc(room)}/state/m.room.canonical_alias`), { ...as(alice), body: { alt_aliases: [added] } });
        // A removed alias that no longer exists cannot come back.
        const back = await putAlias(room, { alias: main, alt_aliases: [added] });
        expect([back.status, back.body.errcode]).toEqual([400, 'M_BAD_ALIAS']);
        await hs.ok('PUT', v3(`rooms/${enc(room)}/state/m.room.canonical_alias`), { ...as(alice), body: {} });
      });

      it("checks createRoom's initial_state: only the room_alias_name alias can point to the new room", async () => {
        const name = `created-${Math.random().toString(36).slice(2, 8)}`;
        const alias = `#${name}:${hs.serverName}`;
        const elsewhere = await newAlias(roomId, 'taken');
        const refused: unknown[] = [
          { alias: `#nowhere:${hs.serverName}` },
          { alias: elsewhere },
          { alias, alt_aliases: [elsewhere] },
        ];
        for (const content of refused) {
          const reply = await hs.call('POST', v3('createRoom'), {
            ...as(alice),
            body: { room_alias_name: name, initial_state: [{ type: 'm.room.canonical_alias', state_key: '', content }] },
          });
          expect([reply.status, reply.body.errcode], JSON.stringify(content)).toEqual([400, 'M_BAD_ALIAS']);
        }
        const syntax = await hs.call('POST', v3('createRoom'), { ...as(alice), body: { initial_state: [{ type: 'm.room.canonical_alias', content: { alias: 'nope' } }] } });
        expect([syntax.status, syntax.body.errcode]).toEqual([400, 'M_INVALID_PARAM']);
        // Nothing was created by the refused requests: the alias is still free.
        expect((await hs.call('GET', v3(`directory/room/${enc(alias)}`))).status).toBe(404);
        const { room_id: room } = await hs.ok('POST', v3('createRoom'), {
          ...as(alice),
          body: { room_alias_name: name, initial_state: [{ type: 'm.room.canonical_alias', state_key: '', content: { alias, alt_aliases: [alias] } }] },
        });
        expect(await currentAlias(room)).toEqual({ alias, alt_aliases: [alias] });
        // An empty canonical alias in initial_state names nothing: nothing to check.
        await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { initial_state: [{ type: 'm.room.canonical_alias', content: {} }] } });
      });

      it('a deleted alias leaves the canonical alias event, when the deleting user may change it (as Synapse)', async () => {
        const { room_id: room } = await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { preset: 'public_chat' } });
        await hs.ok('POST', v3(`join/${enc(room)}`), { ...as(bob), body: {} });
        const main = await newAlias(room, 'main');
        const alt = await newAlias(room, 'alt');
        const other = await newAlias(room, 'other');
        await hs.ok('PUT', v3(`rooms/${enc(room)}/state/m.room.canonical_alias`), { ...as(alice), body: { alias: main, alt_aliases: [alt, other] } });
        await hs.ok('DELETE', v3(`directory/room/${enc(alt)}`), as(alice));
        expect(await currentAlias(room)).toEqual({ alias: main, alt_aliases: [other] });
        await hs.ok('DELETE', v3(`directory/room/${enc(main)}`), as(alice));
        expect(await currentAlias(room)).toEqual({ alt_aliases: [other] });
        // Bob made an alias but has no power over the canonical alias: his alias goes, the event stays.
        const bobs = `#bobs-${Math.random().toString(36).slice(2, 8)}:${hs.serverName}`;
        await hs.ok('PUT', v3(`directory/room/${enc(bobs)}`), { ...as(bob), body: { room_id: room } });
        await hs.ok('PUT', v3(`rooms/${enc(room)}/state/m.room.canonical_alias`), { ...as(alice), body: { alt_aliases: [other, bobs] } });
        await hs.ok('DELETE', v3(`directory/room/${enc(bobs)}`), as(bob));
        expect((await hs.call('GET', v3(`directory/room/${enc(bobs)}`))).status).toBe(404);
        expect(await currentAlias(room)).toEqual({ alt_aliases: [other, bobs] });
      });
    });

    describe('request bodies: JSON whatever the Content-Type, Matrix errors otherwise', () => {
      const contentTypes = [
        undefined,
        'application/json',
        'application/json; charset=utf-8',
        'text/plain',
        'text/plain;charset=UTF-8',
        'application/x-www-form-urlencoded',
        'application/octet-stream',
        'text/html',
      ];
      const sendPath = () => v3(`rooms/${enc(roomId)}/send/m.room.message/${enc(`t${Math.random()}`)}`);

      it('parses a JSON body whatever its Content-Type (as Synapse)', async () => {
        for (const contentType of contentTypes) {
          const reply = await raw(hs.base, 'PUT', sendPath(), JSON.stringify({ msgtype: 'm.text', body: `sent as ${contentType}` }), contentType, alice.access_token);
          expect([contentType, reply.status, typeof reply.body?.event_id]).toEqual([contentType, 200, 'string']);
          // The event holds the parsed JSON, never the bytes.
          const event = await hs.ok('GET', v3(`rooms/${enc(roomId)}/event/${enc(reply.body.event_id)}`), as(alice));
          expect(event.content).toEqual({ msgtype: 'm.text', body: `sent as ${contentType}` });
        }
        const created = await raw(hs.base, 'POST', v3('createRoom'), JSON.stringify({ name: 'plain' }), 'text/plain', alice.access_token);
        expect(created.status).toBe(200);
      });

      it('answers 400 M_NOT_JSON for a body that is not JSON, whatever its Content-Type', async () => {
        for (const contentType of contentTypes) {
          for (const body of ['{"msgtype": "m.text",', 'msgtype=m.text&body=hi', '{"a": NaN}']) {
            const reply = await raw(hs.base, 'PUT', sendPath(), body, contentType, alice.access_token);
            expect([contentType, body, reply.status, reply.body.errcode]).toEqual([contentType, body, 400, 'M_NOT_JSON']);
          }
        }
        // Bytes that are not UTF-8 are not JSON.
        const latin1 = await fetch(`${hs.base}${sendPath()}`, {
          method: 'PUT',
          headers: { authorization: `Bearer ${alice.access_token}`, 'content-type': 'application/json' },
          body: new Uint8Array([0x7b, 0x22, 0x62, 0x6f, 0x64, 0x79, 0x22, 0x3a, 0x22, 0xe9, 0x22, 0x7d]), // {"body":"\xe9"}
        });
        expect([latin1.status, ((await latin1.json()) as { errcode: string }).errcode]).toEqual([400, 'M_NOT_JSON']);
        // Not JSON either: an empty body where the endpoint needs an object (Synapse: M_NOT_JSON).
        for (const contentType of [undefined, 'application/json']) {
          const empty = await raw(hs.base, 'PUT', sendPath(), undefined, contentType, alice.access_token);
          expect([contentType, empty.status, empty.body.errcode]).toEqual([contentType, 400, 'M_NOT_JSON']);
          const emptyPost = await raw(hs.base, 'POST', v3('user_directory/search'), undefined, contentType, alice.access_token);
          expect([contentType, emptyPost.status, emptyPost.body.errcode]).toEqual([contentType, 400, 'M_NOT_JSON']);
        }
      });

      it('answers 400 M_BAD_JSON for JSON of the wrong shape', async () => {
        for (const body of ['[]', '["msgtype"]', '"text"', '42', 'null', 'true']) {
          const reply = await raw(hs.base, 'PUT', sendPath(), body, 'application/json', alice.access_token);
          expect([body, reply.status, reply.body.errcode]).toEqual([body, 400, 'M_BAD_JSON']);
          const search = await raw(hs.base, 'POST', v3('user_directory/search'), body, 'text/plain', alice.access_token);
          expect([body, search.status, search.body.errcode]).toEqual([body, 400, 'M_BAD_JSON']);
        }
      });

      it('keeps endpoints whose body is optional working without one', async () => {
        const { room_id: room } = await hs.ok('POST', v3('createRoom'), { ...as(alice), body: { preset: 'public_chat' } });
        for (const contentType of [undefined, 'application/json']) {
          expect((await raw(hs.base, 'POST', v3(`rooms/${enc(room)}/join`), undefined, contentType, bob.access_token)).status).toBe(200);
        }
      });

      it('stores media uploads as sent, JSON-looking or not, whatever the Content-Type', async () => {
        for (const [contentType, content] of [
          ['application/json', '{"not": "parsed"'],
          ['text/plain', '[1, 2'],
          ['application/octet-stream', '{"a": 1}'],
        ] as const) {
          const up = await raw(hs.base, 'POST', '/_matrix/media/v3/upload', content, contentType, alice.access_token);
          expect([contentType, up.status]).toEqual([contentType, 200]);
          const mxc = (up.body.content_uri as string).slice('mxc://'.length);
          const down = await fetch(`${hs.base}/_matrix/client/v1/media/download/${mxc}`, { headers: { authorization: `Bearer ${alice.access_token}` } });
          expect([down.status, await down.text()]).toEqual([200, content]);
        }
      });

      it('federation API: the same parsing, before the request signature is checked', async () => {
        const base = federationBase();
        const path = `/_matrix/federation/v1/send/${enc(`txn${Math.random()}`)}`;
        for (const contentType of contentTypes) {
          const notJson = await raw(base, 'PUT', path, '{"pdus": [', contentType, undefined, false);
          expect([contentType, notJson.status, notJson.body.errcode]).toEqual([contentType, 400, 'M_NOT_JSON']);
          // Valid JSON of any content type reaches the signature check (none here: 401).
          const unsigned = await raw(base, 'PUT', path, JSON.stringify({ origin: 'x', origin_server_ts: 1, pdus: [] }), contentType, undefined, false);
          expect([contentType, unsigned.status, unsigned.body.errcode]).toEqual([contentType, 401, 'M_UNAUTHORIZED']);
        }
      });
    });

    describe('/timestamp_to_event', () => {
      it('finds the closest event through an index, with no sort of the room', async () => {
        const { room_id: room } = await hs.ok('POST', v3('createRoom'), as(alice));
        const before = Date.now();
        const first = (await hs.ok('PUT', v3(`rooms/${enc(room)}/send/m.room.message/a${Math.random()}`), { ...as(alice), body: { msgtype: 'm.text', body: 'a' } })).event_id;
        const path = (ts: number, dir: string) => `/_matrix/client/v1/rooms/${enc(room)}/timestamp_to_event?ts=${ts}&dir=${dir}`;
        expect((await hs.ok('GET', path(Date.now() + 60_000, 'b'), as(alice))).event_id).toBe(first);
        expect((await hs.ok('GET', path(before, 'f'), as(alice))).event_id).toBe(first);
        expect((await hs.call('GET', path(Date.now() + 60_000, 'f'), as(alice))).status).toBe(404);

        for (const dir of ['f', 'b'] as const) {
          const plan = await hs.db.transaction(async (tx) => {
            // Small test tables would be scanned whole; forbid that to see which index serves the query.
            await tx.exec('SET LOCAL enable_seqscan = off');
            const { rows } = await tx.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) ${closestEventSql(dir)}`, [room, before]);
            return JSON.stringify(rows[0]!['QUERY PLAN']);
          });
          expect(plan).toContain('"Index Name":"events_room_origin_ts"');
          expect(plan).not.toContain('"Node Type":"Sort"');
        }
      });
    });

    describe('3PID endpoints, with no email/SMS sender and 3PID changes off', () => {
      const secret = { client_secret: 'secret123', send_attempt: 1 };
      const expectError = (reply: RawReply | { status: number; body: any }, status: number, errcode: string) =>
        expect([reply.status, reply.body?.errcode]).toEqual([status, errcode]);

      it('lists no third-party identifiers', async () => {
        expect(await hs.ok('GET', v3('account/3pid'), as(alice))).toEqual({ threepids: [] });
        expect((await hs.call('GET', v3('account/3pid'))).status).toBe(401);
      });

      it('refuses changes to the account\'s identifiers: 400 M_FORBIDDEN (Synapse with enable_3pid_changes off)', async () => {
        expectError(await hs.call('POST', v3('account/3pid/add'), { ...as(alice), body: { client_secret: 'secret123', sid: 'abc' } }), 400, 'M_FORBIDDEN');
        expectError(await hs.call('POST', v3('account/3pid'), { ...as(alice), body: { three_pid_creds: { client_secret: 'secret123', sid: 'abc' } } }), 400, 'M_FORBIDDEN');
        expectError(await hs.call('POST', v3('account/3pid/delete'), { ...as(alice), body: { medium: 'email', address: 'alice@example.org' } }), 400, 'M_FORBIDDEN');
        expectError(await hs.call('POST', v3('account/3pid/email/requestToken'), { body: { ...secret, email: 'alice@example.org' } }), 400, 'M_FORBIDDEN');
        for (const path of ['account/3pid', 'account/3pid/delete']) {
          expect((await hs.call('POST', v3(path), { body: {} })).status, path).toBe(401);
        }
        // The spec documents 401 of /add as a user-interactive auth challenge only: check the error shape.
        expectError(await raw(hs.base, 'POST', v3('account/3pid/add'), '{}', 'application/json', undefined, false), 401, 'M_MISSING_TOKEN');
      });

      it('has no identity server to bind with or unbind from', async () => {
        expect(await hs.ok('POST', v3('account/3pid/unbind'), { ...as(alice), body: { medium: 'email', address: 'alice@example.org' } })).toEqual({
          id_server_unbind_result: 'no-support',
        });
        expect(
          await hs.ok('POST', v3('account/3pid/unbind'), { ...as(alice), body: { medium: 'msisdn', address: '447700900000', id_server: 'id.example.org' } }),
        ).toEqual({ id_server_unbind_result: 'no-support' });
        expectError(await hs.call('POST', v3('account/3pid/unbind'), { ...as(alice), body: { medium: 'fax', address: 'x' } }), 400, 'M_INVALID_PARAM');
        expectError(await hs.call('POST', v3('account/3pid/unbind'), { ...as(alice), body: { medium: 'email' } }), 400, 'M_MISSING_PARAM');
        const bind = { client_secret: 'secret123', sid: 'abc', id_server: 'id.example.org', id_access_token: 'tok' };
        expectError(await hs.call('POST', v3('account/3pid/bind'), { ...as(alice), body: bind }), 400, 'M_SERVER_NOT_TRUSTED');
        expectError(await hs.call('POST', v3('account/3pid/bind'), { ...as(alice), body: { ...bind, sid: undefined } }), 400, 'M_MISSING_PARAM');
        for (const path of ['account/3pid/unbind', 'account/3pid/bind']) expect((await hs.call('POST', v3(path), { body: {} })).status, path).toBe(401);
      });

      it('sends no tokens: requestToken answers as Synapse without email or SMS', async () => {
        const phone = { ...secret, country: 'GB', phone_number: '07700900000' };
        expectError(await hs.call('POST', v3('account/3pid/msisdn/requestToken'), { body: phone }), 400, 'M_THREEPID_MEDIUM_NOT_SUPPORTED');
        expectError(await hs.call('POST', v3('register/email/requestToken'), { body: { ...secret, email: 'new@example.org' } }), 400, 'M_UNKNOWN');
        expectError(await hs.call('POST', v3('register/msisdn/requestToken'), { body: phone }), 400, 'M_UNKNOWN');
        expectError(await hs.call('POST', v3('account/password/email/requestToken'), { body: { ...secret, email: 'alice@example.org' } }), 400, 'M_UNKNOWN');
        expectError(await hs.call('POST', v3('account/password/msisdn/requestToken'), { body: phone }), 400, 'M_UNKNOWN');
        // The SMS ones read their body first (as Synapse).
        for (const path of ['account/3pid/msisdn/requestToken', 'register/msisdn/requestToken']) {
          expectError(await hs.call('POST', v3(path), { body: { ...phone, country: undefined } }), 400, 'M_MISSING_PARAM');
          expectError(await hs.call('POST', v3(path), { body: { ...phone, client_secret: 'not valid!' } }), 400, 'M_INVALID_PARAM');
          expectError(await hs.call('POST', v3(path), { body: { ...phone, send_attempt: 'one' } }), 400, 'M_BAD_JSON');
        }
      });
    });
  });
}
