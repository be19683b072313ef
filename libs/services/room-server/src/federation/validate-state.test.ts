import { describe, expect, it } from 'vitest';
import { KeyRing, PduVerifier } from '@tessera/federation-client';
import { computeEventId, encodeUnpaddedBase64, generateSigningKey, getRoomVersion, hashAndSignEvent, stateKey, type Pdu } from '@tessera/protocol';
import { validateStateAndAuthChain } from './validate-state.js';

const rv = getRoomVersion('10');
const RES = 'res.test';
const key = generateSigningKey();
const alice = `@alice:${RES}`;
const roomId = `!room:${RES}`;

/** A verifier that knows res.test's key and reaches no other server (their keys are unobtainable). */
function verifier(): PduVerifier {
  const ring = new KeyRing({ client: { request: async () => Promise.reject(new Error('offline')) }, refetchCooldownMs: 0 });
  ring.addKeys([{ serverName: RES, keyId: key.keyId, publicKey: key.publicKey, publicKeyBase64: encodeUnpaddedBase64(key.publicKey), validUntilTs: Date.now() + 86_400_000, fetchedAt: Date.now() }]);
  return new PduVerifier(ring);
}

let depth = 0;
function event(type: string, sender: string, content: Record<string, unknown>, authEvents: string[], state?: string, server = RES, prevEvents: string[] = []): { pdu: Pdu; id: string } {
  const pdu = {
    room_id: roomId, sender, type, content, depth: ++depth, prev_events: prevEvents, auth_events: authEvents, origin_server_ts: Date.now(), origin: server,
    ...(state === undefined ? {} : { state_key: state }),
  } as unknown as Pdu;
  const signed = hashAndSignEvent(pdu, server, server === RES ? key : generateSigningKey(), rv);
  return { pdu: signed, id: computeEventId(signed, rv) };
}

describe('validateStateAndAuthChain', () => {
  const create = event('m.room.create', alice, { creator: alice, room_version: '10' }, [], '');
  // The creator's first join follows the create event alone (the auth rules' bootstrap case).
  const aliceJoin = event('m.room.member', alice, { membership: 'join' }, [create.id], alice, RES, [create.id]);
  const power = event('m.room.power_levels', alice, { users: { [alice]: 100 } }, [create.id, aliceJoin.id], '');
  const rules = event('m.room.join_rules', alice, { join_rule: 'public' }, [create.id, power.id, aliceJoin.id], '');
  const base = [create, aliceJoin, power, rules];
  const member = (user: string, server = RES) => event('m.room.member', user, { membership: 'join' }, [create.id, power.id, rules.id], user, server);

  it('keeps a response whose events all hold', async () => {
    const carol = member(`@carol:${RES}`);
    const v = await validateStateAndAuthChain(verifier(), roomId, rv, [...base, carol].map((e) => e.pdu), []);
    expect(v.dropped, JSON.stringify(v.dropped)).toEqual([]);
    expect(v.state.get(stateKey('m.room.member', `@carol:${RES}`))).toBe(carol.id);
    expect(v.ordered.map((e) => e.eventId)).toHaveLength(5);
  });

  it('leaves out events with missing, bad or unobtainable signatures and those authorized only by them, and keeps the rest', async () => {
    const carol = member(`@carol:${RES}`);
    const unobtainable = member('@mallory:evil.test', 'evil.test');
    const badSignature = member(`@dave:${RES}`);
    badSignature.pdu.signatures = { [RES]: { [key.keyId]: 'AAAA' + String((badSignature.pdu.signatures as any)[RES][key.keyId]).slice(4) } };
    const { signatures: _s, ...unsigned } = member(`@erin:${RES}`).pdu as Pdu & { signatures?: unknown };
    // A power change citing the unverifiable member event (its sender's membership) cannot be authorized here.
    const dependent = event('m.room.topic', '@mallory:evil.test', { topic: 'x' }, [create.id, power.id, unobtainable.id], '', 'evil.test');
    const v = await validateStateAndAuthChain(verifier(), roomId, rv, [...base, carol, unobtainable, badSignature, unsigned, dependent].map((e) => ('pdu' in e ? e.pdu : e)), []);
    expect([...v.state.values()].sort()).toEqual([...base.map((e) => e.id), carol.id].sort());
    expect(v.dropped).toHaveLength(4);
    expect(v.dropped.map((d) => d.eventId)).toEqual(expect.arrayContaining([unobtainable.id, badSignature.id, dependent.id]));
  });

  it('leaves out an event its auth events do not authorize, and an event citing an auth event not in the response', async () => {
    const outsider = event('m.room.name', `@carol:${RES}`, { name: 'not a member' }, [create.id, power.id], '');
    const orphan = event('m.room.member', `@frank:${RES}`, { membership: 'join' }, [create.id, power.id, '$not-in-the-response'], `@frank:${RES}`);
    const v = await validateStateAndAuthChain(verifier(), roomId, rv, [...base, outsider, orphan].map((e) => e.pdu), []);
    expect([...v.state.values()].sort()).toEqual(base.map((e) => e.id).sort());
    expect(v.dropped.map((d) => d.eventId).sort()).toEqual([outsider.id, orphan.id].sort());
  });

  it('refuses a state left without its create event', async () => {
    const { signatures: _s, ...unsignedCreate } = create.pdu as Pdu & { signatures?: unknown };
    await expect(validateStateAndAuthChain(verifier(), roomId, rv, [unsignedCreate, ...base.slice(1).map((e) => e.pdu)], [])).rejects.toThrow(/no m.room.create/);
  });
});
