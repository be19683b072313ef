/**
 * matrix-js-sdk 37.5.0, the library Element builds on, against this module's endpoints:
 * registration through its user-interactive auth, login, profile, account data, filters, push
 * rules, devices, presence, typing and receipts in a real room, to-device and E2EE key
 * uploads/queries. Every call goes over real HTTP to the real app.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type MatrixClient } from 'matrix-js-sdk';
import { logger } from 'matrix-js-sdk/lib/logger.js';

// The SDK logs every request at debug level; keep the test output readable.
const quiet = logger as unknown as { setLevel?: (level: string) => void };
import { ReceiptsService, ToDeviceService, TypingService } from '@tessera/client-api-service';
import { checkAgainstSpec, ClientApiHarness } from './harness.js';

/** The SDK's fetch, checking every JSON response against the spec as the harness's own calls do. */
let validated = 0;
const validatingFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
  const response = await fetch(input, init);
  if (response.headers.get('content-type')?.includes('application/json')) {
    const url = new URL(input instanceof Request ? input.url : input.toString());
    checkAgainstSpec(init?.method ?? (input instanceof Request ? input.method : 'GET'), url.pathname, response.status, await response.clone().json());
    validated++;
  }
  return response;
};

describe('matrix-js-sdk against client-api (PGlite + in-memory store)', () => {
  let hs: ClientApiHarness;
  let alice: MatrixClient;
  let bob: MatrixClient;

  beforeAll(async () => {
    quiet.setLevel?.('silent');
    hs = await ClientApiHarness.start({ database: 'pglite', redis: false });
  });
  afterAll(async () => {
    alice?.stopClient();
    bob?.stopClient();
    await hs?.close();
  });

  async function registerWithSdk(username: string): Promise<MatrixClient> {
    const anonymous = createClient({ baseUrl: hs.base, fetchFn: validatingFetch });
    // The SDK's registerRequest surfaces the 401 challenge as an error carrying the UIA data.
    let session: string | undefined;
    try {
      await anonymous.registerRequest({ username, password: 'pw' });
    } catch (error) {
      session = (error as { data?: { session?: string } }).data?.session;
    }
    expect(session).toBeDefined();
    const registered = await anonymous.registerRequest({ username, password: 'pw', auth: { type: 'm.login.dummy', session } });
    expect(registered.user_id).toBe(`@${username}:${hs.serverName}`);
    const client = createClient({ baseUrl: hs.base, fetchFn: validatingFetch });
    const login = await client.loginRequest({ type: 'm.login.password', identifier: { type: 'm.id.user', user: username }, password: 'pw' });
    return createClient({ baseUrl: hs.base, fetchFn: validatingFetch, userId: login.user_id, accessToken: login.access_token, deviceId: login.device_id });
  }

  it('registers and logs in through the SDK, then uses the account endpoints', async () => {
    alice = await registerWithSdk('alice');
    bob = await registerWithSdk('bob');

    expect((await alice.whoami()).user_id).toBe(alice.getUserId());
    const flows = await createClient({ baseUrl: hs.base, fetchFn: validatingFetch }).loginFlows();
    expect(flows.flows.map((f) => f.type)).toContain('m.login.password');

    await alice.setDisplayName('Alice');
    expect((await bob.getProfileInfo(alice.getUserId()!)).displayname).toBe('Alice');

    await alice.setAccountDataRaw('org.example.test' as never, { a: 1 } as never);
    expect(await alice.getAccountDataFromServer('org.example.test' as never)).toEqual({ a: 1 });

    const rules = await alice.getPushRules();
    expect(rules.global.override?.[0]?.rule_id).toBe('.m.rule.master');
    await alice.setPushRuleEnabled('global', 'override' as never, '.m.rule.master', true);
    expect((await alice.getPushRules()).global.override?.[0]?.enabled).toBe(true);

    const capabilities = await alice.getCapabilities();
    expect(capabilities['m.room_versions']?.default).toBe('10');

    const { devices } = await alice.getDevices();
    expect(devices.map((d) => d.device_id)).toContain(alice.getDeviceId());
    await alice.setDeviceDetails(alice.getDeviceId()!, { display_name: 'SDK device' });
    expect((await alice.getDevice(alice.getDeviceId()!)).display_name).toBe('SDK device');

    await alice.setPresence({ presence: 'online', status_msg: 'testing' });
    expect((await bob.getPresence(alice.getUserId()!)).status_msg).toBe('testing');
  });

  it('typing and receipts in a shared room, to-device and keys', async () => {
    const { room_id: roomId } = await alice.createRoom({ invite: [bob.getUserId()!] });
    await bob.joinRoom(roomId);
    await alice.sendTyping(roomId, true, 10_000);
    const { event_id: eventId } = await alice.sendTextMessage(roomId, 'hello');
    await bob.setRoomReadMarkersHttpRequest(roomId, eventId, eventId);

    await alice.sendToDevice('org.example.ping', new Map([[bob.getUserId()!, new Map([[bob.getDeviceId()!, { ping: 1 }]])]]));

    // What /sync will report, read from the stores the SDK's requests wrote.
    expect((await hs.nest.get(TypingService).getTypingSince([roomId], 0)).rooms[roomId]).toEqual([alice.getUserId()]);
    const receipts = await hs.nest.get(ReceiptsService).getReceiptsSince([roomId], 0, bob.getUserId()!);
    expect(receipts.rooms[roomId]?.[eventId]?.['m.read']?.[bob.getUserId()!]).toBeDefined();
    const inbox = await hs.nest.get(ToDeviceService).getToDeviceSince(bob.getUserId()!, bob.getDeviceId()!, 0);
    expect(inbox.events).toEqual([{ type: 'org.example.ping', sender: alice.getUserId(), content: { ping: 1 } }]);

    const http = bob.http;
    const uploaded = await http.authedRequest<{ one_time_key_counts: Record<string, number> }>('POST' as never, '/keys/upload', undefined, {
      one_time_keys: { 'signed_curve25519:K1': { key: 'abc', signatures: {} } },
    });
    expect(uploaded.one_time_key_counts.signed_curve25519).toBe(1);
    const claimed = await alice.claimOneTimeKeys([[bob.getUserId()!, bob.getDeviceId()!]], 'signed_curve25519');
    expect(Object.keys(claimed.one_time_keys[bob.getUserId()!]![bob.getDeviceId()!]!)).toEqual(['signed_curve25519:K1']);
    expect(validated).toBeGreaterThan(25);
  });
});
