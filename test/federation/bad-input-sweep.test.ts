/**
 * Bad input to every federation endpoint hs1 serves: each operation of the spec's
 * server-server.json under /_matrix/federation and /_matrix/key, sent signed as hs2 with
 * malformed JSON, arrays for objects, wrong types for each declared property, missing required
 * properties, path parameters that are not ids, unknown rooms and events, oversized bodies;
 * and /send with bad PDUs and EDUs of every kind. Every answer must be below 500, an error a
 * JSON {errcode: "M_...", error} body; afterwards hs1 still answers, the room's state and
 * forward extremities are as they were, and a good PDU is accepted.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computeEventId, generateSigningKey, getRoomVersion, hashAndSignEvent, type Pdu } from '@tessera/protocol';
import {
  ROOMSERVER_FEDERATION, ROOMSERVER_INPUT,
  type CreateRoomReply, type JoinRemoteRequest, type RemoteMembershipReply, type RoomServerRequest,
} from '@tessera/bus';
import { signRequest } from '@tessera/federation-client';
import { clientApiService } from '@tessera/client-api-service';
import { getCurrentState, getEvent, getForwardExtremities } from '@tessera/storage';
import { services, validateResponse } from '@tessera/testing';
import { specPath } from '@tessera/spec-data';
import { createFederationPki, FederatingServer, type FederationPki } from './harness.js';
import { buildRemotePdu } from './pdus.js';

const enc = encodeURIComponent;
const SPEC = JSON.parse(readFileSync(specPath('openapi', 'server-server.json'), 'utf8')) as {
  paths: Record<string, Record<string, { parameters?: { in: string; name: string; required?: boolean; schema?: { type?: string } }[]; requestBody?: any }>>;
};
/** Operations of the spec hs1 does not serve (third-party invites; the generic query/{queryType} is served as its two named forms). */
const NOT_SERVED = new Set([
  'PUT /_matrix/federation/v1/3pid/onbind',
  'PUT /_matrix/federation/v1/exchange_third_party_invite/{roomId}',
  'GET /_matrix/federation/v1/query/{queryType}',
]);

type Answer = { status: number; body: any; text: string };
type Sent = { what: string; answer: Answer };

/** A JSON value of another type than the one the schema declares. */
function wrongTypedValues(type: string | undefined): unknown[] {
  switch (type) {
    case 'string': return [12345, ['x'], { x: 1 }, null, true];
    case 'integer': case 'number': return ['12', 1.5, [1], { n: 1 }, null, true];
    case 'boolean': return ['true', 1, null];
    case 'array': return ['x', 7, { a: 1 }, null];
    case 'object': return ['x', 7, ['x'], null, true];
    default: return [12345, 'x', ['x'], null];
  }
}

/** The request body schema of an operation, allOf merged: its properties' types and its required ones. */
function bodySchema(op: { requestBody?: any }): { properties: Record<string, string | undefined>; required: string[] } | undefined {
  const schema = op.requestBody?.content?.['application/json']?.schema;
  if (!schema) return undefined;
  const properties: Record<string, string | undefined> = {};
  const required: string[] = [];
  const visit = (s: any) => {
    if (!s || typeof s !== 'object') return;
    for (const part of s.allOf ?? []) visit(part);
    for (const [name, p] of Object.entries<any>(s.properties ?? {})) properties[name] = p?.type;
    required.push(...(s.required ?? []));
  };
  visit(schema);
  return { properties, required };
}

describe.skipIf(!services.postgres)('bad input to every federation endpoint', () => {
  let pki: FederationPki;
  let hs1: FederatingServer;
  let hs2: FederatingServer;
  let roomId: string;
  let alice: string;
  let bob: string;
  let bobJoin: string;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => void unhandled.push(reason);

  beforeAll(async () => {
    process.on('unhandledRejection', onUnhandled);
    pki = createFederationPki();
    // client-api on hs1 too: its EDU bridge consumes what /send receives, and the queries read its tables.
    hs1 = await FederatingServer.start(pki, { extra: [clientApiService] });
    hs2 = await FederatingServer.start(pki);
    alice = `@alice:${hs1.serverName}`;
    bob = `@bob:${hs2.serverName}`;
    roomId = (await hs1.bus.request<RoomServerRequest, CreateRoomReply>(ROOMSERVER_INPUT, { op: 'createRoom', sender: alice, preset: 'public_chat', name: 'Sweep' })).roomId;
    const joined = await hs2.bus.request<JoinRemoteRequest, RemoteMembershipReply>(ROOMSERVER_FEDERATION, { op: 'joinRemote', roomId, userId: bob, serverNames: [hs1.serverName], content: {} });
    bobJoin = joined.eventId;
  });

  afterAll(async () => {
    process.off('unhandledRejection', onUnhandled);
    await hs2?.stop();
    await hs1?.stop();
    pki?.dispose();
  });

  /** A request to hs1 signed as hs2 (the signature covers the content when it is JSON); `raw` is sent as it is. */
  function send(method: string, path: string, body?: { json: unknown } | { raw: string | Buffer }, signed = true): Promise<Answer> {
    const payload = body === undefined ? undefined : 'json' in body ? JSON.stringify(body.json) : body.raw;
    const headers: Record<string, string> = {};
    if (signed) {
      const request = { method, uri: path, origin: hs2.serverName, destination: hs1.serverName };
      try {
        headers.authorization = signRequest({ ...request, ...(body && 'json' in body ? { content: body.json } : {}) }, hs2.signingKey);
      } catch {
        // No canonical JSON form (a float): nothing can sign it; hs1 must refuse it all the same.
        headers.authorization = signRequest(request, hs2.signingKey);
      }
    }
    if (payload !== undefined) headers['content-type'] = 'application/json';
    return new Promise((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port: hs1.port, method, path, ca: pki.ca.certPem, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: any;
          try {
            parsed = text === '' ? undefined : JSON.parse(text);
          } catch {
            parsed = undefined;
          }
          resolve({ status: res.statusCode!, body: parsed, text });
        });
      });
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** What is wrong with an answer to bad input, or undefined. */
  function problem(a: Answer): string | undefined {
    if (a.status >= 500) return `status ${a.status}: ${a.text.slice(0, 300)}`;
    if (a.status >= 400) {
      if (!a.body || typeof a.body !== 'object' || typeof a.body.errcode !== 'string' || !a.body.errcode.startsWith('M_') || typeof a.body.error !== 'string') {
        return `status ${a.status} without a Matrix error: ${a.text.slice(0, 300)}`;
      }
    }
    return undefined;
  }

  async function snapshot() {
    const state = (await getCurrentState(hs1.db, roomId)).map(([t, k, id]) => `${t}|${k}|${id}`).sort();
    const extremities = (await getForwardExtremities(hs1.db, roomId)).map((e) => e.eventId).sort();
    return { state, extremities };
  }

  it('answers every bad request below 500 with a Matrix error, and changes nothing', async () => {
    const before = await snapshot();
    const stranger = generateSigningKey('stranger');
    const rv = getRoomVersion('10');
    const good = (body: string) => buildRemotePdu(hs1.db, roomId, { type: 'm.room.message', sender: bob, content: { msgtype: 'm.text', body } }, hs2.serverName, hs2.signingKey);
    const goodPdu = (await good('template')).pdu;
    const resign = (pdu: Record<string, unknown>) => hashAndSignEvent(pdu as Pdu, hs2.serverName, hs2.signingKey, rv);
    const other = '127.0.0.1:1'; // a server that is not hs2 (and answers nothing)

    // Valid-looking values for each kind of path parameter, and bad ones.
    const goodParams: Record<string, string> = {
      roomId, eventId: bobJoin, userId: bob, txnId: 'sweep-txn', serverName: hs2.serverName, mediaId: 'nosuchmedia', queryType: 'profile',
    };
    const badParams: Record<string, string[]> = {
      roomId: ['not-a-room', `!unknown:${hs1.serverName}`, `!x`, '!' + 'a'.repeat(600) + `:${hs1.serverName}`],
      eventId: ['not-an-event', '$unknown', `$unknown:${hs1.serverName}`],
      userId: ['nobody', `@someone:${other}`, `@alice:${hs1.serverName}`, '@:'],
      txnId: ['%00', 'a'.repeat(300)],
      serverName: ['bad name', '', '..', 'a'.repeat(300)],
      mediaId: ['bad.id!', '..%2F..%2Fetc'],
      queryType: ['nonsense'],
    };
    const fill = (template: string, params: Record<string, string>) =>
      template.replace(/\{(\w+)\}/g, (_, name: string) => (params[name] === '' ? '' : enc(params[name] ?? 'x')));

    // A plausible body for each operation with one; variations replace or drop one property at a time.
    const plausible = (path: string): Record<string, unknown> => {
      if (path.includes('/send/')) return { origin: hs2.serverName, origin_server_ts: Date.now(), pdus: [], edus: [] };
      if (path.includes('get_missing_events')) return { earliest_events: [bobJoin], latest_events: [bobJoin], limit: 5, min_depth: 0 };
      if (path.includes('v2/invite')) return { room_version: '10', event: goodPdu, invite_room_state: [] };
      if (path.includes('publicRooms')) return { limit: 5, since: '0', filter: { generic_search_term: 'x' }, include_all_networks: false, third_party_instance_id: 'x' };
      if (path.includes('keys/claim')) return { one_time_keys: { [alice]: { DEV: 'signed_curve25519' } } };
      if (path.includes('keys/query')) return { device_keys: { [alice]: [] } };
      if (path.includes('key/v2/query')) return { server_keys: { [hs2.serverName]: {} } };
      return { ...goodPdu }; // send_join/leave/knock, v1 invite: the body is an event
    };

    const sent: Sent[] = [];
    // Each check is recorded, so that one run lists every defect.
    const failures: string[] = [];
    const expectSoft = (what: string, check: () => void) => {
      try {
        check();
      } catch (err) {
        failures.push(`${what}: ${(err as Error).message.split('\n')[0]}`);
      }
    };
    const run = async (what: string, method: string, path: string, body?: { json: unknown } | { raw: string | Buffer }) => {
      sent.push({ what, answer: await send(method, path, body) });
    };

    for (const [template, ops] of Object.entries(SPEC.paths)) {
      if (!template.startsWith('/_matrix/federation/') && !template.startsWith('/_matrix/key/')) continue;
      for (const [m, op] of Object.entries(ops)) {
        const method = m.toUpperCase();
        if (!['GET', 'PUT', 'POST'].includes(method) || NOT_SERVED.has(`${method} ${template}`)) continue;
        const name = `${method} ${template}`;
        const path = fill(template, goodParams);
        // Path parameters that are not ids, or ids of unknown things.
        for (const [param, values] of Object.entries(badParams)) {
          if (!template.includes(`{${param}}`)) continue;
          for (const v of values) {
            const p = fill(template, { ...goodParams, [param]: v });
            await run(`${name} with ${param}=${v.slice(0, 40)}`, method, p, method === 'GET' ? undefined : { json: plausible(template) });
          }
        }
        // Query parameters of the wrong kind.
        for (const q of (op.parameters ?? []).filter((x) => x.in === 'query')) {
          for (const v of ['', 'x', '-1', '1.5', '99999999999999999999999', '%ZZ']) {
            await run(`${name} with ?${q.name}=${v}`, method, `${path}?${q.name}=${v}`, method === 'GET' ? undefined : { json: plausible(template) });
          }
          await run(`${name} with ?${q.name} twice`, method, `${path}?${q.name}=a&${q.name}=b`, method === 'GET' ? undefined : { json: plausible(template) });
        }
        if (method === 'GET') continue;
        // Bodies: malformed, not objects, oversized, empty.
        for (const raw of ['{"pdus": [', 'not json', '{"a":1}}', '\u0000', 'nul']) await run(`${name} with body ${JSON.stringify(raw)}`, method, path, { raw });
        for (const json of [[], [plausible(template)], 'a string', 42, null, true]) await run(`${name} with JSON ${JSON.stringify(json).slice(0, 40)}`, method, path, { json });
        await run(`${name} with a 2 MiB body`, method, path, { json: { ...plausible(template), padding: 'x'.repeat(2 * 1024 * 1024) } });
        await run(`${name} without a body`, method, path);
        // Each declared property of the wrong type, each required one missing.
        const schema = bodySchema(op);
        if (schema) {
          for (const [prop, type] of Object.entries(schema.properties)) {
            for (const wrong of wrongTypedValues(type)) {
              await run(`${name} with ${prop}=${JSON.stringify(wrong)}`, method, path, { json: { ...plausible(template), [prop]: wrong } });
            }
          }
          for (const prop of new Set(schema.required)) {
            const body = { ...plausible(template) };
            delete body[prop];
            await run(`${name} without ${prop}`, method, path, { json: body });
          }
        }
      }
    }

    // Event bodies of send_join / send_leave / send_knock / invite with wrong-typed fields.
    const badEvents: [string, Record<string, unknown>][] = [
      ['depth as a string', { ...goodPdu, depth: '5' }],
      ['prev_events not a list', { ...goodPdu, prev_events: 'x' }],
      ['content not an object', { ...goodPdu, content: ['x'] }],
      ['hashes a string', { ...goodPdu, hashes: 'x' }],
      ['signatures a list', { ...goodPdu, signatures: [] }],
      ['sender a number', { ...goodPdu, sender: 5 }],
      ['room_id a list', { ...goodPdu, room_id: [roomId] }],
      ['unsigned a string', { ...goodPdu, unsigned: 'x' }],
    ];
    for (const membership of ['join', 'leave', 'knock', 'invite'] as const) {
      const event = resign({ ...goodPdu, type: 'm.room.member', state_key: bob, content: { membership } });
      const variants: [string, Record<string, unknown>][] = [
        ...badEvents.map(([w, e]) => [w, { ...e, type: 'm.room.member', state_key: bob, content: typeof e.content === 'object' && !Array.isArray(e.content) ? { membership } : e.content }] as [string, Record<string, unknown>]),
        ['membership a number', resign({ ...event, content: { membership: 5 } })],
        ['state_key a number', resign({ ...event, state_key: 5 })],
        ['for a user of another server', resign({ ...event, sender: alice, state_key: alice })],
        ['forged', hashAndSignEvent({ ...event } as Pdu, hs2.serverName, stranger, rv)],
      ];
      const paths = membership === 'invite'
        ? [`/_matrix/federation/v2/invite/${enc(roomId)}/${enc('$x')}`, `/_matrix/federation/v1/invite/${enc(roomId)}/${enc('$x')}`]
        : [`/_matrix/federation/${membership === 'knock' ? 'v1' : 'v2'}/send_${membership}/${enc(roomId)}/${enc('$x')}`, ...(membership === 'knock' ? [] : [`/_matrix/federation/v1/send_${membership}/${enc(roomId)}/${enc('$x')}`])];
      for (const p of paths) {
        for (const [w, e] of variants) {
          await run(`PUT ${p} with an event ${w}`, 'PUT', p, { json: p.includes('v2/invite') ? { room_version: '10', event: e, invite_room_state: [] } : e });
        }
      }
    }

    // /send: bad PDUs, one transaction each so that each answer is seen alone.
    const signedBob = async (type: string, stateKey: string | undefined, content: Record<string, unknown>) =>
      (await buildRemotePdu(hs1.db, roomId, { type, sender: bob, ...(stateKey === undefined ? {} : { stateKey }), content }, hs2.serverName, hs2.signingKey));
    const oversized = await good('x'.repeat(70_000));
    const forged = await buildRemotePdu(hs1.db, roomId, { type: 'm.room.message', sender: bob, content: { msgtype: 'm.text', body: 'forged' } }, hs2.serverName, stranger);
    const asAlice = await buildRemotePdu(hs1.db, roomId, { type: 'm.room.message', sender: alice, content: { msgtype: 'm.text', body: 'impersonation' } }, hs2.serverName, hs2.signingKey);
    const unknownRoom = resign({ ...goodPdu, room_id: `!unknown:${hs1.serverName}` });
    const unknownPrev = resign({ ...goodPdu, prev_events: [`$unknownprevevent${'A'.repeat(30)}`] });
    const unknownAuth = resign({ ...goodPdu, auth_events: [`$unknownauthevent${'A'.repeat(30)}`] });
    const wrongTypedState: [string, Awaited<ReturnType<typeof signedBob>>][] = [
      ['power_levels with users a list', await signedBob('m.room.power_levels', '', { users: [bob] })],
      ['power_levels with ban a string', await signedBob('m.room.power_levels', '', { ban: 'fifty', users: {} })],
      ['member with membership a number', await signedBob('m.room.member', bob, { membership: 5 })],
      ['member with membership an object', await signedBob('m.room.member', bob, { membership: { join: true } })],
      ['member of another server\'s user', await signedBob('m.room.member', alice, { membership: 'leave' })],
      ['join_rules with join_rule a list', await signedBob('m.room.join_rules', '', { join_rule: ['public'] })],
      ['join_rules with allow a string', await signedBob('m.room.join_rules', '', { join_rule: 'restricted', allow: 'x' })],
      ['server_acl with deny a string', await signedBob('m.room.server_acl', '', { allow: '*', deny: 5 })],
      ['a second create', await signedBob('m.room.create', '', { creator: bob, room_version: 5 })],
      ['third_party_invite with no token', await signedBob('m.room.third_party_invite', 5 as unknown as string, {})],
    ];
    const pduCases: [string, unknown[], (a: Answer) => void][] = [
      ['a PDU that is a string', ['x'], () => undefined],
      ['a PDU that is a list', [[goodPdu]], () => undefined],
      ['a PDU that is null', [null], () => undefined],
      ['a PDU of an unknown room', [unknownRoom], () => undefined],
      ['a PDU with room_id a number', [{ ...goodPdu, room_id: 5 }], () => undefined],
      ['a PDU over 65536 bytes', [oversized.pdu], (a) => expect(a.body.pdus[oversized.eventId]?.error, 'the oversized PDU is refused under its event id').toMatch(/65536|size|bytes/)],
      ['a forged PDU', [forged.pdu], (a) => expect(a.body.pdus[forged.eventId]?.error).toMatch(/signature/)],
      ['a PDU of alice signed by hs2', [asAlice.pdu], (a) => expect(a.body.pdus[asAlice.eventId]?.error).toBeTruthy()],
      ['a PDU with unknown prev_events', [unknownPrev], () => undefined],
      ['a PDU with unknown auth_events', [unknownAuth], () => undefined],
      ...badEvents.filter(([w]) => !w.startsWith('unsigned')).map(([w, e]) => [`a PDU with ${w}`, [e], () => undefined] as [string, unknown[], (a: Answer) => void]),
      // Re-signed, so that the format checks and not the signature refuse them (hashes, signatures
      // and unsigned are replaced or not covered by signing: those are good events then, not sent here).
      ...badEvents.filter(([w]) => !/hashes|signatures|unsigned/.test(w))
        .map(([w, e]) => [`a re-signed PDU with ${w}`, [(() => { try { return resign(e); } catch { return e; } })()], () => undefined] as [string, unknown[], (a: Answer) => void]),
      ...wrongTypedState.map(([w, built]) => [`a signed ${w}`, [built.pdu], (a: Answer) => expect(a.body.pdus[built.eventId]?.error, w).toBeTruthy()] as [string, unknown[], (a: Answer) => void]),
    ];
    let txn = 0;
    const transaction = (extra: Record<string, unknown>) => ({ origin: hs2.serverName, origin_server_ts: Date.now(), pdus: [], ...extra });
    for (const [what, pdus, check] of pduCases) {
      const a = await send('PUT', `/_matrix/federation/v1/send/sweep-pdu-${txn++}`, { json: transaction({ pdus }) });
      sent.push({ what: `/send with ${what}`, answer: a });
      expectSoft(`/send with ${what}`, () => {
        expect(a.status, a.text.slice(0, 300)).toBe(200);
        validateResponse('server-server', 'PUT', '/_matrix/federation/v1/send/{txnId}', 200, a.body);
        check(a);
      });
    }

    // /send: the spec's limits, and malformed transactions: 400.
    const refusedBodies: [string, unknown][] = [
      ['51 PDUs', transaction({ pdus: Array.from({ length: 51 }, () => goodPdu) })],
      ['101 EDUs', transaction({ edus: Array.from({ length: 101 }, () => ({ edu_type: 'm.typing', content: { room_id: roomId, user_id: bob, typing: true } })) })],
      ['pdus an object', transaction({ pdus: { a: goodPdu } })],
      ['edus a string', transaction({ edus: 'x' })],
      ['origin a number', transaction({ origin: 5 })],
      ['origin another server', transaction({ origin: other })],
      ['origin_server_ts a string', transaction({ origin_server_ts: 'now' })],
      ['no origin', { origin_server_ts: Date.now(), pdus: [] }],
      ['no origin_server_ts', { origin: hs2.serverName, pdus: [] }],
      ['a list', [transaction({})]],
    ];
    for (const [what, body] of refusedBodies) {
      const a = await send('PUT', `/_matrix/federation/v1/send/sweep-refused-${txn++}`, { json: body });
      sent.push({ what: `/send with ${what}`, answer: a });
      expectSoft(`/send with ${what}`, () => expect([a.status, a.body?.errcode]).toEqual([400, 'M_BAD_JSON']));
    }

    // /send: EDUs of unknown types and malformed known ones are dropped; the transaction is 200.
    const badEdus: unknown[] = [
      'x', null, [1], { edu_type: 5, content: {} }, { edu_type: 'm.typing' }, { edu_type: 'm.typing', content: 'x' },
      { edu_type: 'org.example.unknown', content: { anything: [1, 2] } },
      { edu_type: 'm.typing', content: { room_id: 5, user_id: bob, typing: true } },
      { edu_type: 'm.typing', content: { room_id: roomId, user_id: alice, typing: true } },
      { edu_type: 'm.typing', content: { room_id: roomId, user_id: bob, typing: 'yes' } },
      { edu_type: 'm.receipt', content: [roomId] },
      { edu_type: 'm.receipt', content: { [roomId]: [] } },
      { edu_type: 'm.receipt', content: { [roomId]: { 'm.read': { [bob]: { event_ids: 'x', data: 5 } } } } },
      { edu_type: 'm.receipt', content: { 'not-a-room': { 'm.read': { [bob]: { event_ids: [bobJoin], data: { ts: 'x' } } } } } },
      { edu_type: 'm.direct_to_device', content: { sender: bob, type: 'm.x', message_id: 'm1', messages: null } },
      { edu_type: 'm.direct_to_device', content: { sender: bob, type: 'm.x', message_id: 'm2', messages: { [alice]: 'x' } } },
      { edu_type: 'm.direct_to_device', content: { sender: bob, type: 5, message_id: ['m3'], messages: { [alice]: { '*': 5 } } } },
      { edu_type: 'm.presence', content: { push: { user_id: bob } } },
      { edu_type: 'm.presence', content: { push: [null, 'x', { user_id: bob, presence: 5 }, { user_id: bob, presence: 'online', last_active_ago: 'x' }] } },
      { edu_type: 'm.device_list_update', content: { user_id: bob, device_id: 5, stream_id: 'x', prev_id: 'y' } },
      { edu_type: 'm.device_list_update', content: { user_id: 5 } },
      { edu_type: 'm.signing_key_update', content: { user_id: bob, master_key: 'x' } },
    ];
    for (const [i, edu] of badEdus.entries()) {
      const a = await send('PUT', `/_matrix/federation/v1/send/sweep-edu-${txn++}`, { json: transaction({ edus: [edu] }) });
      sent.push({ what: `/send with EDU ${JSON.stringify(edu).slice(0, 80)}`, answer: a });
      expectSoft(`/send with EDU #${i}`, () => expect([a.status, a.body]).toEqual([200, { pdus: {} }]));
    }

    if (process.env.SWEEP_DUMP) writeFileSync(process.env.SWEEP_DUMP, sent.map((x) => `${x.answer.status} ${x.what} -> ${x.answer.text.slice(0, 200)}`).join('\n'));
    // Every answer: below 500, and a Matrix error when an error.
    const problems = sent.map((s) => [s.what, problem(s.answer)] as const).filter(([, p]) => p !== undefined);
    expect({ problems, failures }).toEqual({ problems: [], failures: [] });
    // Arrays and other non-objects are valid JSON: M_BAD_JSON, never M_NOT_JSON.
    const notJson = sent.filter((s) => s.what.includes(' with JSON ') && s.answer.status === 400 && s.answer.body?.errcode === 'M_NOT_JSON').map((s) => s.what);
    expect(notJson).toEqual([]);
    // Oversized bodies: 413 M_TOO_LARGE.
    const big = sent.filter((s) => s.what.endsWith('with a 2 MiB body')).filter((s) => s.answer.status !== 413 || s.answer.body?.errcode !== 'M_TOO_LARGE').map((s) => `${s.what}: ${s.answer.status}`);
    expect(big).toEqual([]);

    // Let the bus consumers (room-server, the EDU bridge) finish what they were handed.
    await new Promise((r) => setTimeout(r, 500));
    expect(unhandled).toEqual([]);

    // hs1 still answers, the room is as it was, and a good PDU is accepted.
    const version = await send('GET', '/_matrix/federation/v1/version');
    expect(version.status).toBe(200);
    expect(await snapshot()).toEqual(before);
    // (Its unsigned, which no signature covers, is not an object: it is dropped, the event kept.)
    const after = await good('after the sweep');
    const res = await send('PUT', `/_matrix/federation/v1/send/sweep-good-${txn++}`, { json: transaction({ pdus: [{ ...after.pdu, unsigned: 'x' }] }) });
    expect([res.status, res.body]).toEqual([200, { pdus: { [after.eventId]: {} } }]);
    expect((await snapshot()).extremities).toEqual([after.eventId]);
    expect((await getEvent(hs1.db, after.eventId))!.json.unsigned).toBeUndefined();
  }, 600_000);

  it('decides signed PDUs with odd content the auth rules may allow, without failing, and goes on', async () => {
    // Each is well formed and signed by hs2 for its own user, so it reaches the room-server: it
    // may be accepted or refused, but every one is answered, and the room carries on.
    const odd: [string, string | undefined, Record<string, unknown>, Record<string, unknown>?][] = [
      ['m.room.redaction', undefined, {}, { redacts: 5 }],
      ['m.room.redaction', undefined, {}, { redacts: { id: '$x' } }],
      ['m.room.redaction', undefined, { redacts: ['$x'] }],
      ['m.room.redaction', undefined, {}],
      ['m.room.redaction', undefined, {}, { redacts: bobJoin }],
      ['m.room.member', bob, { membership: 'join', displayname: 5, avatar_url: ['x'] }],
      ['m.room.member', bob, { membership: 'join', join_authorised_via_users_server: 5 }],
      ['m.room.message', undefined, { body: 5, msgtype: ['m.text'], 'm.relates_to': 'x' }],
      ['m.room.message', undefined, { 'm.relates_to': { rel_type: 5, event_id: ['$x'] } }],
      ['m.reaction', undefined, { 'm.relates_to': { rel_type: 'm.annotation', event_id: 7, key: {} } }],
      ['m.room.message', undefined, { 'm.relates_to': { rel_type: 'm.thread', event_id: '$nonexistent', 'm.in_reply_to': 5 } }],
      ['m.room.encrypted', undefined, { algorithm: 5, ciphertext: null }],
    ];
    const rv = getRoomVersion('10');
    let n = 0;
    for (const [type, stateKey, content, top] of odd) {
      const built = await buildRemotePdu(hs1.db, roomId, { type, sender: bob, ...(stateKey === undefined ? {} : { stateKey }), content }, hs2.serverName, hs2.signingKey);
      const pdu = top ? hashAndSignEvent({ ...built.pdu, ...top } as Pdu, hs2.serverName, hs2.signingKey, rv) : built.pdu;
      const eventId = computeEventId(pdu, rv);
      const a = await send('PUT', `/_matrix/federation/v1/send/sweep-odd-${n++}`, { json: { origin: hs2.serverName, origin_server_ts: Date.now(), pdus: [pdu] } });
      expect([type, JSON.stringify(content), a.status], a.text.slice(0, 300)).toEqual([type, JSON.stringify(content), 200]);
      expect(a.body.pdus[eventId], `${type} ${JSON.stringify({ ...content, ...top })}: ${a.text.slice(0, 300)}`).toBeDefined();
    }
    await new Promise((r) => setTimeout(r, 500));
    expect(unhandled).toEqual([]);
    const after = await buildRemotePdu(hs1.db, roomId, { type: 'm.room.message', sender: bob, content: { msgtype: 'm.text', body: 'after the odd ones' } }, hs2.serverName, hs2.signingKey);
    const res = await send('PUT', `/_matrix/federation/v1/send/sweep-odd-good`, { json: { origin: hs2.serverName, origin_server_ts: Date.now(), pdus: [after.pdu] } });
    expect([res.status, res.body]).toEqual([200, { pdus: { [after.eventId]: {} } }]);
    expect((await snapshot()).extremities).toEqual([after.eventId]);
  }, 300_000);
});
