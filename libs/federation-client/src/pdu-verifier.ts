/**
 * Checks of a received PDU before it may enter a room (Server-Server API, "Checks performed on
 * receipt of a PDU", steps 1-3): a valid event format, valid signatures of every server that
 * must sign it, and a content hash that matches (an event whose hash does not match is kept in
 * its redacted form). Keys come from the KeyRing; for room versions that enforce key validity
 * a key must be valid at the event's origin_server_ts.
 *
 * Used by federation-ingress (/send, /send_join, /invite ...) and by the room-server when it
 * fetches events itself (send_join answers, get_missing_events, /event).
 */
import {
  checkEvent, checkEventFormat, computeEventId, EventFormatError, AuthError, redactEvent,
  type Pdu, type RoomVersion, type EventSigner,
} from '@tessera/protocol';
import { keyRingKey, type KeyQuery, type KeyRing } from './key-ring.js';

export type PduCheck =
  | { ok: true; eventId: string; pdu: Pdu; /** The content hash did not match: `pdu` is the redacted form. */ redacted: boolean }
  | { ok: false; eventId: string | undefined; error: string };

function domainOf(id: unknown): string | undefined {
  if (typeof id !== 'string') return undefined;
  const i = id.indexOf(':');
  return i < 0 ? undefined : id.slice(i + 1);
}

/** The servers whose signatures a PDU needs (spec: "Validating hashes and signatures on received events"). */
export function requiredSigningServers(pdu: Record<string, any>, roomVersion: RoomVersion): string[] {
  const servers = new Set<string>();
  const sender = domainOf(pdu.sender);
  if (sender) servers.add(sender);
  // Room versions 1 and 2: the server that created the event id.
  if (roomVersion.eventIdFormat === 'v1') {
    const origin = domainOf(pdu.event_id);
    if (origin) servers.add(origin);
  }
  // Restricted joins (v8+): the server of the user who authorised the join.
  if (roomVersion.restrictedJoinRule && pdu.type === 'm.room.member' && pdu.content?.membership === 'join') {
    const via = domainOf(pdu.content?.join_authorised_via_users_server);
    if (via) servers.add(via);
  }
  return [...servers];
}

function signatureKeyIds(pdu: Record<string, any>, server: string): string[] {
  const sigs = pdu.signatures?.[server];
  if (!sigs || typeof sigs !== 'object' || Array.isArray(sigs)) return [];
  return Object.keys(sigs).filter((k) => k.startsWith('ed25519:'));
}

/**
 * The id of an event that fails the format checks, when one can be computed (room v3+: its
 * reference hash), so that the sender learns which of its events was refused.
 */
function eventIdIfAny(pdu: Record<string, any>, roomVersion: RoomVersion): string | undefined {
  try {
    return computeEventId(pdu, roomVersion);
  } catch {
    return undefined;
  }
}

export class PduVerifier {
  constructor(private readonly keyRing: KeyRing) {}

  /** Checks PDUs of one room version; the keys of all of them are fetched in one go. */
  async verifyAll(pdus: readonly unknown[], roomVersion: RoomVersion): Promise<PduCheck[]> {
    const queries: KeyQuery[] = [];
    const seen = new Set<string>();
    const minimum = (pdu: Record<string, any>) =>
      roomVersion.enforceKeyValidity && typeof pdu.origin_server_ts === 'number' ? pdu.origin_server_ts : 0;
    for (const raw of pdus) {
      if (!raw || typeof raw !== 'object' || Array.isArray(raw)) continue;
      const pdu = raw as Record<string, any>;
      for (const server of requiredSigningServers(pdu, roomVersion)) {
        for (const keyId of signatureKeyIds(pdu, server)) {
          const q = { serverName: server, keyId, minimumValidUntilTs: minimum(pdu) };
          const k = `${server}\u0000${keyId}\u0000${q.minimumValidUntilTs}`;
          if (!seen.has(k)) {
            seen.add(k);
            queries.push(q);
          }
        }
      }
    }
    // One lookup per (server, key) with the strictest validity asked: a key valid at the
    // latest origin_server_ts is valid at the earlier ones too (validity is an upper bound).
    const strictest = new Map<string, KeyQuery>();
    for (const q of queries) {
      const k = keyRingKey(q.serverName, q.keyId);
      const prev = strictest.get(k);
      if (!prev || (q.minimumValidUntilTs ?? 0) > (prev.minimumValidUntilTs ?? 0)) strictest.set(k, q);
    }
    const keys = await this.keyRing.getVerifyKeys([...strictest.values()]);
    // A key valid at the latest timestamp may not exist (old events signed by an expired key):
    // ask again per event for those that fell short.
    const shortfall = queries.filter((q) => !keys.has(keyRingKey(q.serverName, q.keyId)));
    const perEvent = new Map<string, Awaited<ReturnType<KeyRing['getVerifyKey']>>>();
    for (const q of shortfall) {
      perEvent.set(`${q.serverName}\u0000${q.keyId}\u0000${q.minimumValidUntilTs}`, await this.keyRing.getVerifyKey(q.serverName, q.keyId, q.minimumValidUntilTs));
    }
    const keyFor = (server: string, keyId: string, min: number) => {
      const k = keys.get(keyRingKey(server, keyId));
      if (k && k.validUntilTs >= min) return k;
      return perEvent.get(`${server}\u0000${keyId}\u0000${min}`);
    };
    return pdus.map((raw) => this.checkOne(raw, roomVersion, keyFor, minimum));
  }

  async verify(pdu: unknown, roomVersion: RoomVersion): Promise<PduCheck> {
    return (await this.verifyAll([pdu], roomVersion))[0]!;
  }

  private checkOne(
    raw: unknown,
    roomVersion: RoomVersion,
    keyFor: (server: string, keyId: string, min: number) => { publicKey: Uint8Array } | undefined,
    minimum: (pdu: Record<string, any>) => number,
  ): PduCheck {
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return { ok: false, eventId: undefined, error: 'a PDU must be a JSON object' };
    const pdu = raw as Record<string, any>;
    const claimedId = typeof pdu.event_id === 'string' ? pdu.event_id : undefined;
    try {
      checkEventFormat(pdu, roomVersion);
    } catch (err) {
      if (err instanceof EventFormatError || err instanceof AuthError) return { ok: false, eventId: eventIdIfAny(pdu, roomVersion) ?? claimedId, error: `invalid event: ${err.message}` };
      throw err;
    }
    const servers = requiredSigningServers(pdu, roomVersion);
    if (servers.length === 0) return { ok: false, eventId: claimedId, error: 'the event names no server that could have signed it' };
    const signers: EventSigner[] = [];
    const signerServer: string[] = [];
    for (const server of servers) {
      for (const keyId of signatureKeyIds(pdu, server)) {
        const key = keyFor(server, keyId, minimum(pdu));
        if (key) {
          signers.push({ serverName: server, keyId, publicKey: key.publicKey });
          signerServer.push(server);
        }
      }
    }
    const check = checkEvent(pdu, roomVersion, signers);
    if (check.eventId === undefined) return { ok: false, eventId: claimedId, error: 'the event has no canonical JSON form' };
    for (const server of servers) {
      const valid = signers.some((_, i) => signerServer[i] === server && check.signaturesValid[i]);
      if (!valid) {
        return { ok: false, eventId: check.eventId, error: `the event has no valid signature of ${server}${signatureKeyIds(pdu, server).length === 0 ? ' (not signed)' : ' with a key valid at its origin_server_ts'}` };
      }
    }
    // unsigned is no part of the hashes or signatures: one that is not an object is dropped, not kept.
    const { unsigned, ...signed } = pdu;
    const kept = unsigned === undefined || (unsigned !== null && typeof unsigned === 'object' && !Array.isArray(unsigned)) ? pdu : signed;
    if (!check.contentHashValid) {
      // Spec: a hash mismatch means the event is redacted before it is processed further.
      return { ok: true, eventId: check.eventId, pdu: redactEvent(kept as Pdu, roomVersion), redacted: true };
    }
    return { ok: true, eventId: check.eventId, pdu: kept as Pdu, redacted: false };
  }
}
