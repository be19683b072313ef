/**
 * Bad input to every client endpoint gets the spec's error and changes nothing.
 *
 * Walks every operation of the Client-Server API's OpenAPI document on the whole homeserver in
 * one process and sends, one request at a time:
 * - for each operation with a JSON request body: malformed JSON, a JSON array instead of an
 *   object, and for each property the spec declares (one level of nesting too) values of the
 *   wrong JSON type, over an otherwise valid body;
 * - for each query parameter declared as an integer or a boolean: garbage values;
 * - for each path parameter: a syntactically invalid id and an unknown one;
 * - for send and state: an event over 65,536 bytes (413 M_TOO_LARGE).
 * Every answer must be below 500; an error must be a Matrix error (`errcode` M_..., `error`), or a
 * user-interactive auth challenge; JSON answers are validated against the spec. Malformed JSON is
 * M_NOT_JSON, an array or a member of the wrong type is refused (but members the server ignores, as
 * the spec or Synapse does: IGNORED_MEMBERS), garbage integers and booleans in the query are 400
 * M_INVALID_PARAM. For a sample of state-changing operations, a refused request must leave what it
 * would have changed as it was.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MATRIX_SPEC_DIR } from '@tessera/testing';
import { checkAgainstSpec } from '../client-api/harness.js';
import { enc, Homeserver, v3, type Login } from './harness.js';

interface Schema {
  type?: string | string[];
  properties?: Record<string, Schema>;
  items?: Schema;
  allOf?: Schema[];
  oneOf?: Schema[];
  anyOf?: Schema[];
  required?: string[];
}

interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header';
  required?: boolean;
  schema?: Schema;
}

interface Operation {
  method: string;
  template: string;
  operationId: string;
  parameters: Parameter[];
  body?: Schema;
  /** The body is bytes (media uploads), not JSON. */
  rawBody: boolean;
  authenticated: boolean;
}

const document = JSON.parse(readFileSync(join(MATRIX_SPEC_DIR, 'openapi/client-server.json'), 'utf8')) as {
  paths: Record<string, Record<string, { operationId?: string; parameters?: Parameter[]; requestBody?: { content?: Record<string, { schema?: Schema }> }; security?: unknown[] }>>;
};

const operations: Operation[] = Object.entries(document.paths).flatMap(([template, methods]) =>
  Object.entries(methods)
    .filter(([, op]) => typeof op === 'object' && op.operationId)
    .map(([method, op]) => {
      const content = op.requestBody?.content ?? {};
      const json = content['application/json'];
      return {
        method: method.toUpperCase(),
        // The document lists some paths twice, once with a trailing space (two operations on one path).
        template: template.trim(),
        operationId: op.operationId!,
        parameters: op.parameters ?? [],
        body: json ? flatten(json.schema ?? {}) : undefined,
        rawBody: op.requestBody !== undefined && json === undefined,
        // An access token wherever the operation takes one (some take it optionally, as deactivate).
        authenticated: (op.security ?? []).some((s) => Object.keys(s as object).length > 0),
      };
    }),
);

/** allOf merged into one schema (the spec composes request bodies that way). */
function flatten(schema: Schema): Schema {
  if (!schema.allOf) return schema;
  const parts = schema.allOf.map(flatten);
  return {
    type: parts.find((p) => p.type)?.type ?? schema.type,
    properties: Object.assign({}, ...parts.map((p) => p.properties ?? {}), schema.properties ?? {}),
    required: parts.flatMap((p) => p.required ?? []).concat(schema.required ?? []),
  };
}

function typesOf(schema: Schema): string[] {
  const s = flatten(schema);
  if (s.type) return Array.isArray(s.type) ? s.type : [s.type];
  const alternatives = s.oneOf ?? s.anyOf;
  if (alternatives) return alternatives.flatMap(typesOf);
  return [];
}

/** JSON values of a type other than every declared one (null is tried separately). */
function wrongValues(schema: Schema): unknown[] {
  const types = typesOf(schema);
  if (types.length === 0) return [];
  const candidates: Array<[string[], unknown]> = [
    [['string'], 42],
    [['integer', 'number'], 'seven'],
    [['integer'], 1.5],
    [['boolean'], 'true'],
    [['object'], ['a']],
    [['object'], 'object'],
    [['array'], { a: 1 }],
    [['array'], 'list'],
  ];
  const wrong = candidates.filter(([forTypes]) => forTypes.some((t) => types.includes(t))).map(([, value]) => value);
  // A number is also a valid "number" for 1.5; booleans/strings never fit other declared types here.
  return wrong.filter((value) => !fits(value, types));
}

function fits(value: unknown, types: string[]): boolean {
  if (Array.isArray(value)) return types.includes('array');
  if (typeof value === 'number') return types.includes('number') || (types.includes('integer') && Number.isInteger(value));
  return types.includes(typeof value);
}

/**
 * Members whose wrong type the server may accept, because it ignores the member there, as the
 * spec or Synapse does: `operationId.member`.
 */
const IGNORED_MEMBERS = new Set([
  // Spec: "When upgrading to a room version which doesn't support additional creators, this field is ignored."
  'upgradeRoom.additional_creators',
  // `pattern` means something for content rules only; the sweep's rule is an override rule (Synapse ignores it too).
  'setPushRule.pattern',
  // No user-interactive auth is needed for a first upload (nothing is uploaded here): `auth` is not read, as in Synapse.
  'uploadCrossSigningKeys.auth',
]);

interface BadBody {
  label: string;
  body: string;
  /** A member of a declared type given a value of another (not null): the request must be refused. */
  wrongType?: string;
}

/** Bodies to send. */
function badBodies(schema: Schema, base: Record<string, unknown>): BadBody[] {
  const out: BadBody[] = [
    { label: 'malformed JSON', body: '{"a":' },
    { label: 'an array', body: JSON.stringify([base]) },
  ];
  for (const [key, property] of Object.entries(schema.properties ?? {})) {
    for (const value of wrongValues(property)) out.push({ label: `${key}: ${JSON.stringify(value)}`, body: JSON.stringify({ ...base, [key]: value }), wrongType: key });
    // null stands for "absent" in many servers (Synapse included): it only must not break anything.
    out.push({ label: `${key}: null`, body: JSON.stringify({ ...base, [key]: null }) });
    const inner = flatten(property);
    // One level down: a wrong item type in a list, a wrong type of a declared member.
    if (inner.items && typesOf(inner).includes('array')) {
      for (const value of wrongValues(inner.items).slice(0, 1)) out.push({ label: `${key}: [${JSON.stringify(value)}]`, body: JSON.stringify({ ...base, [key]: [value] }), wrongType: key });
    }
    if (inner.properties && typesOf(inner).includes('object')) {
      const nestedBase = isObject(base[key]) ? base[key] : {};
      for (const [member, memberSchema] of Object.entries(inner.properties)) {
        for (const value of wrongValues(memberSchema).slice(0, 1)) {
          out.push({ label: `${key}.${member}: ${JSON.stringify(value)}`, body: JSON.stringify({ ...base, [key]: { ...nestedBase, [member]: value } }), wrongType: key });
        }
      }
    }
  }
  return out;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const GARBAGE_INTEGERS = ['abc', '1.5', '-', '1e3', '12abc'];
/** Integers, but out of any sensible range: must not be a server error, need not be refused (Synapse takes them). */
const HUGE_INTEGERS = ['99999999999999999999999', '-99999999999999999999999'];
const GARBAGE_BOOLEANS = ['maybe', '2', 'TRUE!', ''];

interface Fixtures {
  alice: Login;
  bob: Login;
  /** alice's second device: the one device operations name (never the session the test uses). */
  spareDevice: string;
  room: string;
  event: string;
  alias: string;
  filterId: string;
  backupVersion: string;
  mediaId: string;
}

describe('bad input sweep over every Client-Server operation (embedded)', () => {
  let hs: Homeserver;
  let f: Fixtures;
  let counter = 0;
  const unique = (prefix: string) => `${prefix}${++counter}${Math.random().toString(36).slice(2, 6)}`;

  /** A room of alice's that bob has joined, for operations that might damage the shared one if they wrongly succeed. */
  const spareRoom = async () => {
    const { room_id } = await hs.ok('POST', v3('createRoom'), { token: f.alice.access_token, body: { preset: 'public_chat' } });
    await hs.ok('POST', v3(`join/${enc(room_id)}`), { token: f.bob.access_token, body: {} });
    return room_id as string;
  };

  beforeAll(async () => {
    hs = await Homeserver.start('embedded');
    const alice = await hs.register('alice');
    const bob = await hs.register('bob');
    const as = { token: alice.access_token };
    const spare = await hs.ok('POST', v3('login'), {
      body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'alice' }, password: 'correct horse battery staple' },
    });
    const { room_id: room } = await hs.ok('POST', v3('createRoom'), { ...as, body: { preset: 'public_chat', name: 'sweep' } });
    await hs.ok('POST', v3(`join/${enc(room)}`), { token: bob.access_token, body: {} });
    const { event_id: event } = await hs.ok('PUT', v3(`rooms/${enc(room)}/send/m.room.message/t0`), { ...as, body: { msgtype: 'm.text', body: 'hello' } });
    const alias = `#sweep:${hs.serverName}`;
    await hs.ok('PUT', v3(`directory/room/${enc(alias)}`), { ...as, body: { room_id: room } });
    const { filter_id: filterId } = await hs.ok('POST', v3(`user/${enc(alice.user_id)}/filter`), { ...as, body: { room: { timeline: { limit: 5 } } } });
    const { version: backupVersion } = await hs.ok('POST', v3('room_keys/version'), {
      ...as,
      body: { algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2', auth_data: { public_key: 'abcdefg', signatures: {} } },
    });
    await hs.ok('PUT', v3('pushrules/global/override/sweep'), { ...as, body: { actions: ['notify'], conditions: [] } });
    const upload = await fetch(`${hs.base}/_matrix/media/v3/upload`, { method: 'POST', headers: { authorization: `Bearer ${alice.access_token}`, 'content-type': 'text/plain' }, body: 'hi' });
    const { content_uri } = (await upload.json()) as { content_uri: string };
    f = { alice, bob, spareDevice: spare.device_id, room, event, alias, filterId, backupVersion, mediaId: content_uri.split('/').pop()! };
  }, 120_000);
  afterAll(async () => hs?.close());

  /** Real values for path parameters, by name (operations may override some). */
  const pathValue = (name: string, op: Operation): string => {
    const values: Record<string, string> = {
      roomId: f.room,
      roomIdOrAlias: f.room,
      userId: f.alice.user_id,
      eventId: f.event,
      roomAlias: op.method === 'PUT' ? `#sweep-new:${hs.serverName}` : f.alias,
      deviceId: f.spareDevice,
      eventType: op.operationId === 'sendToDevice' ? 'org.example.sweep' : op.operationId === 'setRoomStateWithKey' || op.operationId === 'getRoomStateWithKey' ? 'm.room.topic' : 'm.room.message',
      stateKey: '',
      txnId: unique('txn'),
      keyName: 'displayname',
      type: 'org.example.sweep',
      tag: 'u.sweep',
      receiptType: 'm.read',
      relType: 'm.thread',
      kind: 'override',
      ruleId: 'sweep',
      version: f.backupVersion,
      sessionId: 'session',
      filterId: f.filterId,
      serverName: hs.serverName,
      mediaId: f.mediaId,
      fileName: 'file.txt',
      protocol: 'irc',
      networkId: 'net',
      appserviceId: 'as',
      idpId: 'idp',
    };
    const value = values[name];
    if (value === undefined) throw new Error(`no value for path parameter ${name} of ${op.operationId}`);
    return value;
  };

  /** Ids that are not ids, and ids of nothing. */
  const badPathValues = (name: string): string[] => {
    const unknownServer = hs.serverName;
    switch (name) {
      case 'roomId':
        return ['not-a-room', `!unknown:${unknownServer}`];
      case 'roomIdOrAlias':
        return ['neither', `!unknown:${unknownServer}`, `#unknown:${unknownServer}`];
      case 'userId':
        return ['not-a-user', `@nobody:${unknownServer}`];
      case 'eventId':
        return ['not-an-event', '$unknown'];
      case 'roomAlias':
        return ['no-alias', `#no-server`];
      case 'deviceId':
        return ['UNKNOWNDEVICE'];
      case 'version':
        return ['not-a-version', '99999'];
      case 'filterId':
        return ['not-a-filter', '99999'];
      case 'serverName':
        return ['bad server!'];
      case 'mediaId':
        return ['unknown-media'];
      case 'kind':
        return ['sideways'];
      case 'ruleId':
        return ['unknown-rule'];
      case 'receiptType':
        return ['m.unknown'];
      default:
        return [];
    }
  };

  /** Required query parameters need sane values for the request to reach what is tested. */
  const queryValue = (name: string): string => {
    const values: Record<string, string> = {
      ts: String(Date.now()),
      dir: 'b',
      version: f.backupVersion,
      url: 'https://example.org',
      token: 'sometoken',
      username: 'sweepname',
      userid: '@x:example.org',
      alias: '#x:example.org',
      from: '',
      via: hs.serverName,
    };
    return values[name] ?? 'x';
  };

  /** Valid bodies the wrong-type variants are built over (default `{}`). */
  const baseBody = (op: Operation, room: string): Record<string, unknown> => {
    const bodies: Record<string, Record<string, unknown>> = {
      updateDevice: { display_name: 'spare' },
      setRoomVisibilityOnDirectory: { visibility: 'public' },
      setRoomAlias: { room_id: room },
      claimKeys: { one_time_keys: {} },
      queryKeys: { device_keys: {} },
      login: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'alice' }, password: 'wrong password' },
      setPresence: { presence: 'online' },
      setProfileField: { displayname: 'Alice' },
      postPusher: { kind: 'http', app_id: 'app', pushkey: 'key', app_display_name: 'App', device_display_name: 'Dev', lang: 'en', data: { url: 'https://push.example.org/_matrix/push/v1/notify' } },
      setPushRule: { actions: ['notify'], conditions: [] },
      setPushRuleActions: { actions: ['notify'] },
      setPushRuleEnabled: { enabled: true },
      refresh: { refresh_token: 'not-a-token' },
      register: { username: unique('sweeper'), password: 'a password' },
      putRoomKeys: { rooms: {} },
      putRoomKeysByRoomId: { sessions: {} },
      putRoomKeyBySessionId: { first_message_index: 0, forwarded_count: 0, is_verified: false, session_data: {} },
      postRoomKeysVersion: { algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2', auth_data: { public_key: 'abc' } },
      putRoomKeysVersion: { algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2', auth_data: { public_key: 'abc' }, version: f.backupVersion },
      ban: { user_id: f.bob.user_id },
      unban: { user_id: f.bob.user_id },
      kick: { user_id: f.bob.user_id },
      inviteUser: { user_id: f.bob.user_id },
      setReadMarker: { 'm.fully_read': f.event },
      reportRoom: { reason: 'spam' },
      reportEvent: { reason: 'spam' },
      reportUser: { reason: 'spam' },
      setTyping: { typing: true, timeout: 1000 },
      upgradeRoom: { new_version: '10' },
      search: { search_categories: { room_events: { search_term: 'hello' } } },
      sendToDevice: { messages: {} },
      setRoomTag: { order: 0.5 },
      searchUserDirectory: { search_term: 'bob' },
      unbind3pidFromAccount: { medium: 'email', address: 'a@example.org' },
      delete3pidFromAccount: { medium: 'email', address: 'a@example.org' },
      bind3PID: { client_secret: 'secret', id_server: 'id.example.org', id_access_token: 'tok', sid: 'sid' },
      add3PID: { client_secret: 'secret', sid: 'sid' },
      changePassword: { new_password: 'a new password' },
      deleteDevices: { devices: [f.spareDevice] },
      generateLoginToken: {},
    };
    return bodies[op.operationId] ?? {};
  };

  /** What the sampled state-changing operations could change, read back. */
  const snapshot = async (room: string) => {
    const as = { token: f.alice.access_token };
    const read = async (method: string, path: string, body?: unknown) => {
      const reply = await hs.call(method, path, { ...as, body });
      return { status: reply.status, body: reply.body };
    };
    return {
      joinedRooms: ((await read('GET', v3('joined_rooms'))).body.joined_rooms as string[]).sort(),
      state: ((await read('GET', v3(`rooms/${enc(room)}/state`))).body as Array<{ event_id: string }>).map((e) => e.event_id).sort(),
      latest: (await read('GET', v3(`rooms/${enc(room)}/messages?dir=b&limit=1`))).body.chunk?.map((e: { event_id: string }) => e.event_id),
      profile: await read('GET', v3(`profile/${enc(f.alice.user_id)}`)),
      accountData: await read('GET', v3(`user/${enc(f.alice.user_id)}/account_data/org.example.sweep`)),
      roomAccountData: await read('GET', v3(`user/${enc(f.alice.user_id)}/rooms/${enc(room)}/account_data/org.example.sweep`)),
      tags: await read('GET', v3(`user/${enc(f.alice.user_id)}/rooms/${enc(room)}/tags`)),
      devices: ((await read('GET', v3('devices'))).body.devices as Array<{ device_id: string; display_name?: string }>)
        .map((d) => `${d.device_id}=${d.display_name}`)
        .sort(),
      pushRules: await read('GET', v3('pushrules/')),
      keys: await read('POST', v3('keys/query'), { device_keys: { [f.alice.user_id]: [] } }),
      keyCounts: await read('POST', v3('keys/upload'), {}),
      newAlias: (await read('GET', v3(`directory/room/${enc(`#sweep-new:${hs.serverName}`)}`))).status,
      visibility: await read('GET', v3(`directory/list/room/${enc(room)}`)),
      presence: (await read('GET', v3(`presence/${enc(f.alice.user_id)}/status`))).body.presence,
    };
  };

  const SAMPLED = new Set([
    'createRoom',
    'sendMessage',
    'setRoomStateWithKey',
    'setProfileField',
    'setAccountData',
    'setAccountDataPerRoom',
    'setRoomTag',
    'updateDevice',
    'deleteDevice',
    'deleteDevices',
    'setPushRule',
    'setPushRuleActions',
    'setPushRuleEnabled',
    'uploadKeys',
    'uploadCrossSigningKeys',
    'setRoomAlias',
    'setRoomVisibilityOnDirectory',
    'setPresence',
    'ban',
    'kick',
    'unban',
    'inviteUser',
    'leaveRoom',
    'redactEvent',
    'upgradeRoom',
    'setTyping',
  ]);
  /** Operations that would damage the shared room if they wrongly succeeded: they get a room of their own. */
  const OWN_ROOM = new Set(['leaveRoom', 'forgetRoom', 'upgradeRoom', 'kick', 'ban', 'unban', 'redactEvent', 'setRoomStateWithKey', 'joinRoom', 'joinRoomById', 'knockRoom']);

  /** Checks one answer; returns what is wrong with it, if anything. */
  const send = async (op: Operation, path: string, body: string | undefined, label: string, problems: string[]) => {
    const headers: Record<string, string> = {};
    if (op.authenticated) headers.authorization = `Bearer ${f.alice.access_token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(`${hs.base}${path}`, { method: op.method, headers, body, signal: AbortSignal.timeout(10_000) });
    } catch (error) {
      problems.push(`${op.method} ${path} [${label}]: no answer (${(error as Error).message})`);
      return undefined;
    }
    const text = await response.text();
    const where = `${op.method} ${path} [${label}] -> ${response.status} ${text.slice(0, 200)}`;
    if (response.status >= 500) problems.push(`${where}: a server error`);
    const isJson = response.headers.get('content-type')?.includes('application/json') ?? false;
    let json: any;
    if (isJson) {
      try {
        json = JSON.parse(text);
      } catch {
        problems.push(`${where}: JSON content type, body not JSON`);
      }
    }
    if (response.status >= 400) {
      const challenge = response.status === 401 && isObject(json) && 'flows' in json && 'session' in json;
      if (!challenge && !(isObject(json) && typeof json.errcode === 'string' && /^M_[A-Z_]+$/.test(json.errcode) && typeof json.error === 'string')) {
        problems.push(`${where}: not a Matrix error`);
      }
    }
    // GET /voip/turnServer answers {} with no TURN server configured, as Synapse does (see VoipController).
    if (json !== undefined && response.status < 500 && !(op.operationId === 'getTurnServer' && response.status === 200)) {
      try {
        checkAgainstSpec(op.method, path, response.status, json);
      } catch (error) {
        problems.push(`${where}: against the spec: ${(error as Error).message.split('\n')[0]}`);
      }
    }
    return { status: response.status, body: json };
  };

  for (const op of operations) {
    it(`${op.method} ${op.template} (${op.operationId})`, async () => {
      const problems: string[] = [];
      const room = OWN_ROOM.has(op.operationId) ? await spareRoom() : f.room;
      const pathParams = op.parameters.filter((p) => p.in === 'path');
      const values = (override: Record<string, string> = {}) =>
        Object.fromEntries(pathParams.map((p) => [p.name, override[p.name] ?? (p.name === 'roomId' || p.name === 'roomIdOrAlias' ? room : pathValue(p.name, op))]));
      let eventOverride: Record<string, string> = {};
      if (op.operationId === 'redactEvent') {
        const { event_id } = await hs.ok('PUT', v3(`rooms/${enc(room)}/send/m.room.message/${unique('r')}`), { token: f.alice.access_token, body: { msgtype: 'm.text', body: 'redact me' } });
        eventOverride = { eventId: event_id };
      }
      const requiredQuery = op.parameters.filter((p) => p.in === 'query' && p.required).map((p) => [p.name, queryValue(p.name)] as const);
      const build = (params: Record<string, string>, query: Array<readonly [string, string]> = requiredQuery) => {
        let path = op.template;
        for (const [name, value] of Object.entries(params)) path = path.replace(`{${name}}`, enc(value));
        const search = query.map(([k, v]) => `${enc(k)}=${enc(v)}`).join('&');
        return search ? `${path}?${search}` : path;
      };
      const sampled = SAMPLED.has(op.operationId);
      let before = sampled ? await snapshot(room) : undefined;
      const guard = async (label: string, reply: { status: number } | undefined) => {
        if (!sampled || !reply) return;
        const after = await snapshot(room);
        if (reply.status >= 400) {
          try {
            expect(after).toEqual(before);
          } catch {
            problems.push(`${op.method} ${op.template} [${label}] -> ${reply.status}, but it changed: ${JSON.stringify(diff(before, after))}`);
          }
        }
        before = after;
      };

      // 1. Bodies with real ids.
      if (op.body) {
        const base = baseBody(op, room);
        for (const { label, body, wrongType } of badBodies(op.body, base)) {
          const reply = await send(op, build(values(eventOverride)), body, label, problems);
          if (reply && wrongType && reply.status < 400 && !IGNORED_MEMBERS.has(`${op.operationId}.${wrongType}`)) {
            problems.push(`${op.method} ${op.template} [${label}] -> ${reply.status}: a value of the wrong type accepted`);
          }
          if (reply && (label === 'malformed JSON' || label === 'an array') && reply.status < 400) problems.push(`${op.method} ${op.template} [${label}] -> ${reply.status}: accepted`);
          if (reply && label === 'malformed JSON' && reply.status === 400 && reply.body?.errcode !== 'M_NOT_JSON') problems.push(`${op.method} ${op.template} [${label}] -> ${reply.body?.errcode}, not M_NOT_JSON`);
          await guard(label, reply);
        }
        // An event over the 65,536 bytes a PDU may have: 413 M_TOO_LARGE, and nothing sent.
        if (op.operationId === 'sendMessage' || op.operationId === 'setRoomStateWithKey') {
          const label = 'an event over 65536 bytes';
          const reply = await send(op, build(values()), JSON.stringify({ ...base, padding: 'x'.repeat(70_000) }), label, problems);
          if (reply && (reply.status !== 413 || reply.body?.errcode !== 'M_TOO_LARGE')) problems.push(`${op.method} ${op.template} [${label}] -> ${reply.status} ${reply.body?.errcode}: not 413 M_TOO_LARGE`);
          await guard(label, reply);
        }
      }

      // 2. Garbage integer and boolean query parameters.
      const body = op.body ? JSON.stringify(baseBody(op, room)) : undefined;
      const queryParams = op.parameters.filter((q) => q.in === 'query');
      // An endpoint switched off here (URL previews) answers 404 M_UNRECOGNIZED to any request, as Synapse's does.
      let off = false;
      if (op.method === 'GET' && queryParams.length > 0) {
        const noWait = queryParams.some((q) => q.name === 'timeout') ? [['timeout', '0'] as const] : [];
        const baseline = await send(op, build(values(eventOverride), [...requiredQuery, ...noWait]), undefined, 'valid', problems);
        off = baseline?.status === 404 && baseline.body?.errcode === 'M_UNRECOGNIZED';
      }
      for (const p of queryParams) {
        const types = typesOf(p.schema ?? {});
        const garbage = off ? [] : types.includes('integer') ? GARBAGE_INTEGERS : types.includes('boolean') ? GARBAGE_BOOLEANS : [];
        // A huge long-poll timeout is a valid (capped) wait: not sent, it would only make the test wait.
        const odd = types.includes('integer') && p.name !== 'timeout' ? HUGE_INTEGERS : [];
        for (const value of [...garbage, ...odd]) {
          const query = [...requiredQuery.filter(([k]) => k !== p.name), [p.name, value] as const];
          const reply = await send(op, build(values(eventOverride), query), body, `${p.name}=${value}`, problems);
          if (reply && garbage.includes(value) && value !== '' && !(reply.status === 400 && reply.body?.errcode === 'M_INVALID_PARAM')) {
            problems.push(`${op.method} ${op.template} [${p.name}=${value}] -> ${reply.status} ${reply.body?.errcode ?? ''}: not 400 M_INVALID_PARAM`);
          }
          await guard(`${p.name}=${value}`, reply);
        }
      }

      // 3. Invalid and unknown ids in the path, over a valid body.
      for (const p of pathParams) {
        for (const bad of badPathValues(p.name)) {
          const reply = await send(op, build(values({ ...eventOverride, [p.name]: bad })), body, `${p.name}=${bad}`, problems);
          await guard(`${p.name}=${bad}`, reply);
        }
      }

      // 4. Read-only operations with nothing to vary are still called once.
      if (op.method === 'GET' && !op.body && op.parameters.length === 0) await send(op, build({}), undefined, 'plain', problems);

      expect(problems).toEqual([]);
    });
  }
});

function diff(before: any, after: any): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(after ?? {})) {
    if (JSON.stringify(before?.[key]) !== JSON.stringify(after[key])) out[key] = { before: before?.[key], after: after[key] };
  }
  return out;
}
