/**
 * Backfill (Server-Server API "Backfilling and retrieving missing events"): when a client pages
 * /messages past the start of what this server holds of a room, the history before it is asked
 * of the other servers in the room (GET /backfill from the room's backward extremities), each
 * event checked as any received PDU (format, signatures, hashes: a mismatch keeps the redacted
 * form), kept only if it is of this room, and authorised against its own auth events (those not
 * held here fetched with /event_auth and checked the same way). persistence stores the accepted
 * ones below every stream position (persistence.backfill), with no other effect.
 *
 * Answers `roomserver.backfill` (contract in libs/bus/src/contracts/backfill.ts). Bounded: one
 * backfill per room at a time in this replica, at most 100 events per request, a short overall
 * deadline; a failure ends the attempt quietly (the reply says nothing was stored).
 */
import {
  AuthError, authorize, checkAuthEvents, getRoomVersion, isKnownRoomVersion, pduToRoomEvent, roomIdForCreateEvent, stateKey,
  type Pdu, type RoomEvent, type RoomVersion,
} from '@tessera/protocol';
import {
  PERSISTENCE_BACKFILL, ROOMSERVER_BACKFILL, ROOMSERVER_QUEUE, handleOn, requestOn,
  type AppendEvent, type BackfillReply, type BackfillRequest, type BusTransport, type Subscription,
} from '@tessera/bus';
import type { FederationClient, PduVerifier } from '@tessera/federation-client';
import { getBackwardExtremities, getEvents, getJoinedServers, getRoom, type Db } from '@tessera/storage';
import { appendFields } from '../append-fields.js';

/** Events asked of a server per /backfill request. */
export const MAX_BACKFILL_EVENTS = 100;
/** The whole attempt (every server asked, auth events fetched) ends by then. */
const BACKFILL_DEADLINE_MS = 10_000;
/** /event_auth requests per attempt (one usually covers every event of the answer). */
const MAX_AUTH_FETCHES = 5;
/** An attempt that stored nothing is not repeated for the same extremities before this... */
const EMPTY_RETRY_MS = 60_000;
/** ...or before this when no server answered at all (it may be back soon). */
const FAILED_RETRY_MS = 15_000;

export interface RoomBackfillOptions {
  db: Db;
  bus: BusTransport;
  serverName: string;
  client: FederationClient;
  verifier: PduVerifier;
  deadlineMs?: number;
  log?: (msg: string, details?: Record<string, unknown>) => void;
}

interface Checked {
  pdu: Pdu;
  event: RoomEvent;
}

const enc = encodeURIComponent;

/** The auth events an event depends on: from room v12 the create event, which the room id names, too. */
function authIdsOf(event: RoomEvent, rv: RoomVersion, roomId: string): string[] {
  if (rv.roomIdIsCreateEventHash && event.type !== 'm.room.create') return [...event.auth_events, `$${roomId.slice(1)}`];
  return event.auth_events;
}

/**
 * Authorises events against their own auth events (spec: "Checks performed on receipt of a
 * PDU", step 4), each auth event itself authorised the same way unless it is `trusted` (held
 * here and accepted). Returns, per event of `pool`, null when authorised, the reason when
 * refused, or undefined when an auth event is missing (the event could not be judged).
 */
export function authorizeByAuthEvents(
  pool: ReadonlyMap<string, RoomEvent>,
  trusted: ReadonlyMap<string, RoomEvent>,
  rv: RoomVersion,
  roomId: string,
): Map<string, string | null | undefined> {
  const out = new Map<string, string | null | undefined>();
  const visiting = new Set<string>();
  const judge = (id: string): string | null | undefined => {
    if (trusted.has(id)) return null;
    if (out.has(id)) return out.get(id);
    const event = pool.get(id);
    if (!event) return undefined;
    if (visiting.has(id)) return 'its auth events form a cycle';
    visiting.add(id);
    let verdict: string | null | undefined = null;
    const authIds = authIdsOf(event, rv, roomId);
    for (const a of authIds) {
      const v = judge(a);
      if (v === undefined) verdict = undefined;
      else if (v !== null && verdict === null) verdict = `auth event ${a} is rejected`;
      if (verdict !== null) break;
    }
    if (verdict === null) {
      const eventOf = (a: string) => trusted.get(a) ?? pool.get(a)!;
      try {
        checkAuthEvents(event, event.auth_events.map(eventOf), rv);
        const byKey = new Map(authIds.map((a) => eventOf(a)).map((a) => [stateKey(a.type, a.state_key ?? ''), a]));
        authorize(event, (t, k) => byKey.get(stateKey(t, k)), rv);
      } catch (err) {
        if (!(err instanceof AuthError)) throw err;
        verdict = err.message;
      }
    }
    visiting.delete(id);
    out.set(id, verdict);
    return verdict;
  };
  for (const id of pool.keys()) judge(id);
  return out;
}

export class RoomBackfill {
  private subscription: Subscription | undefined;
  /** One backfill per room at a time: a second request waits for the first one's answer. */
  private readonly inFlight = new Map<string, Promise<BackfillReply>>();
  /** Rooms whose last attempt stored nothing, with its extremities and until when that stands. */
  private readonly empty = new Map<string, { extremities: string; until: number }>();

  constructor(private readonly o: RoomBackfillOptions) {}

  async start(): Promise<void> {
    this.subscription = await handleOn(this.o.bus, ROOMSERVER_BACKFILL, (req) => this.backfill(req), { queue: ROOMSERVER_QUEUE });
  }

  async stop(): Promise<void> {
    await this.subscription?.unsubscribe();
    this.subscription = undefined;
    await Promise.allSettled([...this.inFlight.values()]);
  }

  backfill(req: BackfillRequest): Promise<BackfillReply> {
    if (!req || typeof req.roomId !== 'string') return Promise.resolve({ stored: 0 });
    const limit = Math.max(1, Math.min(MAX_BACKFILL_EVENTS, Number.isInteger(req.limit) ? req.limit : MAX_BACKFILL_EVENTS));
    const running = this.inFlight.get(req.roomId);
    if (running) return running;
    const run = this.attempt(req.roomId, limit)
      .catch((err: unknown) => {
        this.o.log?.('backfill failed', { roomId: req.roomId, error: err instanceof Error ? err.message : String(err) });
        return { stored: 0 };
      })
      .finally(() => this.inFlight.delete(req.roomId));
    this.inFlight.set(req.roomId, run);
    return run;
  }

  private async attempt(roomId: string, limit: number): Promise<BackfillReply> {
    const room = await getRoom(this.o.db, roomId);
    if (!room || !isKnownRoomVersion(room.roomVersion)) return { stored: 0 };
    const rv = getRoomVersion(room.roomVersion);
    const extremities = await getBackwardExtremities(this.o.db, roomId);
    if (extremities.length === 0) return { stored: 0 };
    const key = extremities.join(' ');
    const last = this.empty.get(roomId);
    if (last && last.extremities === key && last.until > Date.now()) return { stored: 0 };
    const servers = (await getJoinedServers(this.o.db, roomId)).filter((s) => s !== this.o.serverName);
    const deadline = Date.now() + (this.o.deadlineMs ?? BACKFILL_DEADLINE_MS);
    let answered = false;
    for (const server of servers) {
      if (Date.now() >= deadline) break;
      try {
        const stored = await this.from(server, roomId, rv, extremities, limit, deadline);
        answered = true;
        if (stored > 0) {
          this.empty.delete(roomId);
          return { stored };
        }
      } catch (err) {
        this.o.log?.('backfill from a server failed', { server, roomId, error: err instanceof Error ? err.message : String(err) });
      }
    }
    this.empty.set(roomId, { extremities: key, until: Date.now() + (answered ? EMPTY_RETRY_MS : FAILED_RETRY_MS) });
    return { stored: 0 };
  }

  private remaining(deadline: number): number {
    return Math.max(1, deadline - Date.now());
  }

  /** One server's /backfill answer, checked and stored; the number of events stored. */
  private async from(server: string, roomId: string, rv: RoomVersion, extremities: string[], limit: number, deadline: number): Promise<number> {
    const res = await this.o.client.get<{ pdus?: unknown }>(server, `/_matrix/federation/v1/backfill/${enc(roomId)}`, {
      query: { v: extremities, limit }, timeoutMs: this.remaining(deadline),
    });
    const pdus = Array.isArray(res.pdus) ? res.pdus.slice(0, MAX_BACKFILL_EVENTS) : [];
    const candidates = await this.checkPdus(pdus, roomId, rv, server);
    if (candidates.size === 0) return 0;

    // Auth events: held here (trusted when accepted), in the answer, or fetched with /event_auth.
    const pool = new Map<string, Checked>(candidates);
    const trusted = new Map<string, RoomEvent>();
    const refused = new Set<string>();
    const lookUp = async (ids: string[]) => {
      const wanted = ids.filter((a) => !pool.has(a) && !trusted.has(a) && !refused.has(a));
      if (wanted.length === 0) return;
      for (const s of (await getEvents(this.o.db, wanted)).values()) {
        if (s.roomId !== roomId || s.rejectedReason !== null) refused.add(s.eventId);
        else trusted.set(s.eventId, { ...pduToRoomEvent(s.json as Pdu, rv), event_id: s.eventId });
      }
    };
    const missingAuth = () => [...pool.values()].flatMap((c) => authIdsOf(c.event, rv, roomId)).filter((a) => !pool.has(a) && !trusted.has(a) && !refused.has(a));
    await lookUp(missingAuth());
    const fetched = new Set<string>();
    for (let i = 0; i < MAX_AUTH_FETCHES && Date.now() < deadline; i++) {
      const missing = new Set(missingAuth());
      if (missing.size === 0) break;
      const needing = [...pool.values()].find((c) => authIdsOf(c.event, rv, roomId).some((a) => missing.has(a)))!;
      const chain = await this.o.client.get<{ auth_chain?: unknown }>(server, `/_matrix/federation/v1/event_auth/${enc(roomId)}/${enc(needing.event.event_id)}`, {
        timeoutMs: this.remaining(deadline),
      });
      const before = pool.size;
      for (const [id, c] of await this.checkPdus(Array.isArray(chain.auth_chain) ? chain.auth_chain : [], roomId, rv, server)) {
        if (!pool.has(id) && !trusted.has(id)) {
          pool.set(id, c);
          fetched.add(id);
        }
      }
      await lookUp(missingAuth());
      // Nothing new came: what is still missing cannot be found on this server.
      if (pool.size === before) break;
    }
    for (const id of refused) trusted.delete(id);

    const verdicts = authorizeByAuthEvents(new Map([...pool].map(([id, c]) => [id, c.event])), trusted, rv, roomId);
    const events: AppendEvent[] = [];
    const outliers: AppendEvent[] = [];
    for (const [id, c] of pool) {
      const verdict = verdicts.get(id);
      // An event whose auth events could not all be found is left out: it may be judged another time.
      if (verdict === undefined) continue;
      if (fetched.has(id) && !candidates.has(id)) {
        if (verdict === null) outliers.push({ ...appendFields(c.pdu, c.event), outlier: true });
        continue;
      }
      if (verdict !== null) this.o.log?.('a backfilled event is rejected', { server, roomId, eventId: id, reason: verdict });
      events.push({ ...appendFields(c.pdu, c.event), ...(verdict === null ? {} : { rejectedReason: verdict }) });
    }
    if (events.length === 0) return 0;
    const reply = await requestOn(this.o.bus, PERSISTENCE_BACKFILL, { roomId, events, outliers }, { timeoutMs: 30_000 });
    this.o.log?.('backfilled', { server, roomId, stored: reply.stored.length, skipped: reply.skipped });
    return reply.stored.length;
  }

  /** PDUs of this room that pass the receipt checks (signatures, hashes, format), by event id. */
  private async checkPdus(pdus: unknown[], roomId: string, rv: RoomVersion, server: string): Promise<Map<string, Checked>> {
    const out = new Map<string, Checked>();
    const checks = await this.o.verifier.verifyAll(pdus, rv);
    for (const c of checks) {
      if (!c.ok) {
        this.o.log?.('a backfilled PDU fails its checks', { server, roomId, eventId: c.eventId, error: c.error });
        continue;
      }
      const event = { ...pduToRoomEvent(c.pdu, rv), event_id: c.eventId };
      const roomOf = event.type === 'm.room.create' && rv.roomIdIsCreateEventHash ? safeRoomIdOfCreate(c.pdu, rv) : event.room_id;
      if (roomOf !== roomId) continue;
      out.set(c.eventId, { pdu: c.pdu, event });
    }
    return out;
  }
}

function safeRoomIdOfCreate(pdu: Pdu, rv: RoomVersion): string | undefined {
  try {
    return roomIdForCreateEvent(pdu, rv);
  } catch {
    return undefined;
  }
}
