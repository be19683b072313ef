/**
 * The room-server's side of federation: joining, leaving and knocking on rooms held by other
 * servers, storing invites received for local users, inviting remote users, and filling the
 * gaps in a room's DAG before federated PDUs are decided (get_missing_events, then the state
 * at the missing events). Answers `roomserver.federation` (contract in @tessera/bus).
 */
import type { PartitionOwnership } from '../partition-ownership.js';
import { randomBytes } from 'node:crypto';
import {
  AuthError, authorize, checkAuthEvents, checkEventFormat, computeEventId, EventFormatError, getRoomVersion, hashAndSignEvent,
  isKnownRoomVersion, isValidRoomId, isValidUserId, pduToRoomEvent, ROOM_VERSIONS, splitStateKey, stateKey, strippedStateOf, verifyEventSignature,
  type Pdu, type RoomEvent, type RoomVersion, type SigningKey, type StateMap,
} from '@tessera/protocol';
import {
  BusError, ROOMSERVER_QUEUE, STALE_SEQUENCE,
  ROOMSERVER_FEDERATION,
  type BusTransport, type InputFederatedPdusRequest, type InputPdusReply, type JoinRemoteRequest, type KnockRemoteRequest,
  type LeaveRemoteRequest, type ReceiveInviteRequest, type RemoteMembershipReply, type RoomServerFederationReply,
  type RoomServerFederationRequest, type StateTriple, type Subscription,
} from '@tessera/bus';
import { FederationError, keyRingKey, PduVerifier, type FederationClient, type KeyRing } from '@tessera/federation-client';
import {
  getCurrentStateEvents, getEvents, getRoom, getUserMemberships, isRoomHeld, type Db,
} from '@tessera/storage';
import type { Decider } from '../decider.js';
import { appendFields } from '../append-fields.js';
import { planLocalJoin } from '../restricted-join.js';
import { InvalidStateResponseError, validateStateAndAuthChain, type ValidatedEvent } from './validate-state.js';

/** Outliers per append request: keeps a bus message well under NATS's payload limit. */
const OUTLIER_BATCH = 250;
/** Events asked for per get_missing_events request (our servers answer at most 100). */
const MISSING_EVENTS_PAGE = 100;
/** The longest gap filled event by event; beyond it the state at the gap's edge is fetched. */
const MISSING_EVENTS_TOTAL = 3000;
/** Fetched events per decider call: the room lock is released between batches. */
const GAP_INPUT_BATCH = 100;
const SUPPORTED_VERSIONS = [...ROOM_VERSIONS.keys()];
/** Stripped state sent with invites and knocks (spec: "Stripped state"). */
export const STRIPPED_STATE_TYPES = ['m.room.create', 'm.room.join_rules', 'm.room.name', 'm.room.avatar', 'm.room.canonical_alias', 'm.room.encryption', 'm.room.topic'];

export interface RoomFederationOptions {
  db: Db;
  bus: BusTransport;
  decider: Decider;
  /** The decider's replica's room partitions: requests about a room reach this replica when it owns the room. */
  partitions?: PartitionOwnership;
  serverName: string;
  signingKey: SigningKey;
  client: FederationClient;
  keyRing: KeyRing;
  log?: (msg: string, details?: Record<string, unknown>) => void;
}

const enc = encodeURIComponent;

function domainOf(id: string): string {
  return id.slice(id.indexOf(':') + 1);
}

function isObject(v: unknown): v is Record<string, any> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function bad(message: string): BusError {
  return new BusError('M_BAD_JSON', message);
}

export class RoomFederation {
  readonly verifier: PduVerifier;
  private subscription: Subscription | undefined;

  constructor(private readonly o: RoomFederationOptions) {
    this.verifier = new PduVerifier(o.keyRing);
  }

  async start(): Promise<void> {
    this.subscription = await this.o.bus.handle<RoomServerFederationRequest, RoomServerFederationReply>(ROOMSERVER_FEDERATION, (req) => this.handle(req), {
      queue: ROOMSERVER_QUEUE,
    });
    await this.o.partitions?.serve(ROOMSERVER_FEDERATION, (req: RoomServerFederationRequest) => this.handle(req));
  }

  async stop(): Promise<void> {
    await this.o.partitions?.unserve(ROOMSERVER_FEDERATION);
    await this.subscription?.unsubscribe();
    this.subscription = undefined;
  }

  handle(req: RoomServerFederationRequest): Promise<RoomServerFederationReply> {
    if (!isObject(req)) throw bad('the request is not an object');
    switch (req.op) {
      case 'joinRemote':
        return this.joinRemote(req);
      case 'leaveRemote':
        return this.leaveRemote(req);
      case 'knockRemote':
        return this.knockRemote(req);
      case 'receiveInvite':
        return this.receiveInvite(req);
      case 'inputFederatedPdus':
        return this.inputFederatedPdus(req);
      default:
        throw new BusError('M_UNRECOGNIZED', `unknown roomserver.federation op ${JSON.stringify((req as { op?: unknown }).op)}`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Joining

  async joinRemote(req: JoinRemoteRequest): Promise<RemoteMembershipReply> {
    const { roomId, userId } = this.checkRoomAndUser(req.roomId, req.userId);
    if (req.content !== undefined && !isObject(req.content)) throw bad('content must be an object');
    const content = req.content ?? {};
    const room = (await isRoomHeld(this.o.db, roomId)) ? await getRoom(this.o.db, roomId) : null;
    if (room) {
      // We are a resident: our own decision first (restricted rooms: one of our users authorises).
      const plan = await planLocalJoin(this.o.db, this.o.serverName, getRoomVersion(room.roomVersion), roomId, userId, { ...content, membership: 'join' });
      if (plan.route === 'remote') return this.joinThroughServers(roomId, userId, content, plan.servers);
      const { eventId } = await this.o.decider.sendLocal(roomId, { type: 'm.room.member', sender: userId, stateKey: userId, content: plan.content });
      return { roomId, eventId };
    }
    return this.joinThroughServers(roomId, userId, content, req.serverNames);
  }

  /** make_join/send_join through the first of `servers` that lets the user in. */
  joinThroughServers(roomId: string, userId: string, content: Record<string, unknown>, servers: unknown): Promise<RemoteMembershipReply> {
    return this.throughServers(servers, roomId, (server) => this.joinThrough(server, roomId, userId, content));
  }

  private async throughServers<T>(names: unknown, roomId: string, attempt: (server: string) => Promise<T>): Promise<T> {
    const servers = [...new Set(Array.isArray(names) ? names.filter((s): s is string => typeof s === 'string') : [])].filter((s) => s !== this.o.serverName);
    if (servers.length === 0) throw new BusError('M_NOT_FOUND', `room ${roomId} is not known to this server and no other server to ask was given`);
    const failures: string[] = [];
    let notFound = 0;
    /** Restricted rooms: servers that cannot vouch for the user say so, and the next is asked. */
    let restricted: string | undefined;
    for (const server of servers) {
      try {
        return await attempt(server);
      } catch (err) {
        if (err instanceof FederationError && err.status === 403) throw new BusError('M_FORBIDDEN', err.message);
        if (err instanceof FederationError && err.errcode === 'M_INCOMPATIBLE_ROOM_VERSION') throw new BusError('M_INCOMPATIBLE_ROOM_VERSION', err.message);
        if (err instanceof BusError && err.code === 'M_FORBIDDEN') throw err;
        if (!(err instanceof FederationError || err instanceof InvalidStateResponseError || err instanceof BusError)) throw err;
        if (err instanceof FederationError && err.status === 404) notFound++;
        if (err instanceof FederationError && (err.errcode === 'M_UNABLE_TO_AUTHORISE_JOIN' || err.errcode === 'M_UNABLE_TO_GRANT_JOIN')) restricted ??= err.errcode;
        failures.push(`${server}: ${err.message}`);
        this.o.log?.('remote membership attempt failed', { server, roomId, error: err.message });
      }
    }
    // Every server answered that it does not know the room: the room is not found (not a network failure).
    if (notFound === servers.length) throw new BusError('M_NOT_FOUND', `no server knows room ${roomId}: ${failures.join('; ')}`);
    if (restricted) throw new BusError(restricted, `no server could authorise the join of restricted room ${roomId}: ${failures.join('; ')}`);
    throw new BusError('M_UNKNOWN', `no server could be used for room ${roomId}: ${failures.join('; ')}`);
  }

  /** make_<membership> on `server`, then the template completed and signed by this server. */
  private async makeMembership(server: string, kind: 'join' | 'leave' | 'knock', roomId: string, userId: string, extra: Record<string, unknown>) {
    const query = kind === 'leave' ? undefined : { ver: SUPPORTED_VERSIONS };
    const made = await this.o.client.get<{ event?: unknown; room_version?: unknown }>(server, `/_matrix/federation/v1/make_${kind}/${enc(roomId)}/${enc(userId)}`, { query });
    const versionId = made.room_version ?? (kind === 'leave' ? (await getRoom(this.o.db, roomId))?.roomVersion ?? '1' : '1');
    if (!isKnownRoomVersion(versionId)) throw new BusError('M_UNSUPPORTED_ROOM_VERSION', `${server} answered make_${kind} with room version ${JSON.stringify(versionId)}, which this server does not support`);
    const rv = getRoomVersion(versionId);
    const t = made.event;
    if (!isObject(t)) throw new BusError('M_BAD_JSON', `${server} answered make_${kind} without an event template`);
    if (t.type !== 'm.room.member' || t.state_key !== userId || t.sender !== userId || t.content?.membership !== kind) {
      throw new BusError('M_BAD_JSON', `${server} answered make_${kind} with a template that is not a ${kind} of ${userId}`);
    }
    if (!rv.roomIdIsCreateEventHash || t.room_id !== undefined) {
      if (t.room_id !== roomId) throw new BusError('M_BAD_JSON', `${server}'s make_${kind} template is for room ${String(t.room_id)}`);
    }
    const { signatures: _s, hashes: _h, unsigned: _u, event_id: _e, ...template } = t;
    const pdu: Pdu = { ...(template as Pdu), content: { ...extra, ...t.content }, origin_server_ts: Date.now() };
    if (!rv.redaction.v11Rules) pdu.origin = this.o.serverName;
    if (rv.eventIdFormat === 'v1') pdu.event_id = `$${randomBytes(12).toString('base64url')}:${this.o.serverName}`;
    try {
      checkEventFormat(pdu as Record<string, any>, rv);
    } catch (err) {
      if (err instanceof EventFormatError || err instanceof AuthError) throw new BusError('M_BAD_JSON', `${server}'s make_${kind} template is not a valid event: ${err.message}`);
      throw err;
    }
    const signed = hashAndSignEvent(pdu, this.o.serverName, this.o.signingKey, rv);
    return { rv, pdu: signed, eventId: computeEventId(signed, rv) };
  }

  private async joinThrough(server: string, roomId: string, userId: string, extra: Record<string, unknown>): Promise<RemoteMembershipReply> {
    const { rv, pdu, eventId } = await this.makeMembership(server, 'join', roomId, userId, extra);
    const res = await this.o.client.put<Record<string, unknown>>(server, `/_matrix/federation/v2/send_join/${enc(roomId)}/${enc(eventId)}`, pdu, { timeoutMs: 300_000 });
    let joinPdu = pdu;
    // Restricted rooms: the resident server countersigns the join and returns it.
    if (isObject(res.event)) {
      // The same event (the id ignores signatures), with every signature it needs valid.
      const check = await this.verifier.verify(res.event, rv);
      if (!check.ok || check.redacted || check.eventId !== eventId) throw new InvalidStateResponseError(`${server} returned a different or badly signed join event`);
      joinPdu = check.pdu;
    }
    const statePdus = Array.isArray(res.state) ? res.state : [];
    const authPdus = Array.isArray(res.auth_chain) ? res.auth_chain : [];
    if (!Array.isArray(res.state) || !Array.isArray(res.auth_chain)) throw new InvalidStateResponseError(`${server}'s send_join answer lacks state or auth_chain`);
    // The state before the join; a server that included the join itself in it is tolerated.
    const stateOnly = statePdus.filter((p) => !(isObject(p) && safeEventId(p as Pdu, rv) === eventId));
    const validated = await validateStateAndAuthChain(this.verifier, roomId, rv, stateOnly, authPdus);
    if (validated.dropped.length > 0) this.o.log?.('send_join answer: events left out', { server, roomId, count: validated.dropped.length, first: validated.dropped.slice(0, 5) });
    const joinEvent = { ...pduToRoomEvent(joinPdu, rv), event_id: eventId };
    this.authorizeAgainst(joinEvent, validated.state, validated.byId, rv, 'the join');
    await this.persistJoinedRoom(roomId, rv, validated.ordered, validated.state, joinPdu, joinEvent);
    return { roomId, eventId };
  }

  /** Checks an event against its cited auth events and a state (by ids in `byId`); M_FORBIDDEN when refused. */
  private authorizeAgainst(event: RoomEvent, state: Map<string, string>, byId: Map<string, ValidatedEvent>, rv: RoomVersion, what: string): void {
    try {
      const cited = event.auth_events.map((a) => byId.get(a)?.event).filter((e): e is RoomEvent => e !== undefined);
      checkAuthEvents(event, cited, rv);
      authorize(event, (t, k) => {
        const id = state.get(stateKey(t, k));
        return id === undefined ? undefined : byId.get(id)?.event;
      }, rv);
    } catch (err) {
      if (err instanceof AuthError) throw new InvalidStateResponseError(`${what} is not authorized by the room's state: ${err.message}`);
      throw err;
    }
  }

  /** Appends the validated outliers in batches, then the join with the received state before it. */
  private persistJoinedRoom(roomId: string, rv: RoomVersion, outliers: ValidatedEvent[], state: Map<string, string>, joinPdu: Pdu, join: RoomEvent): Promise<void> {
    const decider = this.o.decider;
    return decider.locks.run(roomId, async () => {
      await this.appendOutliers(roomId, rv, outliers.map((o) => ({ pdu: o.pdu, event: o.event })));
      const stateTriples: StateTriple[] = [...state].map(([k, id]) => [...splitStateKey(k), id] as StateTriple);
      const current = stateTriples.filter(([t, k]) => !(t === 'm.room.member' && k === join.state_key));
      current.push(['m.room.member', join.state_key!, join.event_id]);
      await this.withSequence(roomId, (expectedSequence) => decider.append({
        roomId,
        roomVersion: rv.id,
        expectedSequence,
        events: [{ ...appendFields(joinPdu, join), local: true, stateBefore: { base: null, changes: stateTriples } }],
        currentStateChanges: current,
      }));
      decider.store.forget(roomId);
    });
  }

  /** Runs an append with the room's current sequence, again when another writer moved it. */
  private async withSequence<T>(roomId: string, fn: (sequence: number) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const sequence = (await getRoom(this.o.db, roomId))?.sequence ?? 0;
      try {
        return await fn(sequence);
      } catch (err) {
        if (err instanceof BusError && err.code === STALE_SEQUENCE && attempt < 20) continue;
        throw err;
      }
    }
  }

  private async appendOutliers(roomId: string, rv: RoomVersion, events: Array<{ pdu: Pdu; event: RoomEvent }>): Promise<void> {
    const known = await getEvents(this.o.db, events.map((e) => e.event.event_id));
    const fresh = events.filter((e) => !known.has(e.event.event_id));
    for (let i = 0; i < fresh.length; i += OUTLIER_BATCH) {
      const batch = fresh.slice(i, i + OUTLIER_BATCH);
      await this.withSequence(roomId, (expectedSequence) => this.o.decider.append({
        roomId,
        roomVersion: rv.id,
        expectedSequence,
        events: batch.map((e) => ({ ...appendFields(e.pdu, e.event), outlier: true })),
        currentStateChanges: [],
      }));
    }
    this.o.decider.store.forget(roomId);
  }

  // -------------------------------------------------------------------------------------------
  // Leaving and knocking on rooms not held here

  async leaveRemote(req: LeaveRemoteRequest): Promise<RemoteMembershipReply> {
    const { roomId, userId } = this.checkRoomAndUser(req.roomId, req.userId);
    const extra = typeof req.reason === 'string' ? { reason: req.reason } : {};
    if (await isRoomHeld(this.o.db, roomId)) {
      const { eventId } = await this.o.decider.sendLocal(roomId, { type: 'm.room.member', sender: userId, stateKey: userId, content: { ...extra, membership: 'leave' } });
      return { roomId, eventId };
    }
    // The server that invited us (or that we knocked through) is the one to ask first.
    const membership = (await getUserMemberships(this.o.db, userId)).find((m) => m.roomId === roomId);
    const servers = [...(req.serverNames ?? [])];
    if (membership) {
      const ev = (await getEvents(this.o.db, [membership.eventId])).get(membership.eventId);
      if (ev) servers.push(domainOf(ev.sender));
    }
    servers.push(domainOf(roomId));
    return this.throughServers(servers, roomId, async (server) => {
      const { rv, pdu, eventId } = await this.makeMembership(server, 'leave', roomId, userId, extra);
      await this.o.client.put(server, `/_matrix/federation/v2/send_leave/${enc(roomId)}/${enc(eventId)}`, pdu);
      await this.storeOutOfBand(roomId, rv, pdu, 'leave');
      return { roomId, eventId };
    });
  }

  async knockRemote(req: KnockRemoteRequest): Promise<RemoteMembershipReply> {
    const { roomId, userId } = this.checkRoomAndUser(req.roomId, req.userId);
    const extra = typeof req.reason === 'string' ? { reason: req.reason } : {};
    if (await isRoomHeld(this.o.db, roomId)) {
      const { eventId } = await this.o.decider.sendLocal(roomId, { type: 'm.room.member', sender: userId, stateKey: userId, content: { ...extra, membership: 'knock' } });
      return { roomId, eventId };
    }
    return this.throughServers(req.serverNames, roomId, async (server) => {
      const { rv, pdu, eventId } = await this.makeMembership(server, 'knock', roomId, userId, extra);
      const res = await this.o.client.put<{ knock_room_state?: unknown }>(server, `/_matrix/federation/v1/send_knock/${enc(roomId)}/${enc(eventId)}`, pdu);
      const stored = { ...pdu, unsigned: { ...(pdu.unsigned ?? {}), knock_room_state: Array.isArray(res.knock_room_state) ? res.knock_room_state : [] } };
      await this.storeOutOfBand(roomId, rv, stored, 'knock');
      return { roomId, eventId };
    });
  }

  // -------------------------------------------------------------------------------------------
  // Invites

  async receiveInvite(req: ReceiveInviteRequest): Promise<Record<string, never>> {
    if (!isKnownRoomVersion(req.roomVersion)) throw new BusError('M_UNSUPPORTED_ROOM_VERSION', `room version ${JSON.stringify(req.roomVersion)} is not supported`);
    if (!isObject(req.pdu)) throw bad('pdu must be an object');
    const rv = getRoomVersion(req.roomVersion);
    const event = { ...pduToRoomEvent(req.pdu, rv), event_id: computeEventId(req.pdu, rv) };
    const roomId = event.room_id;
    if (typeof roomId !== 'string' || event.type !== 'm.room.member' || event.content.membership !== 'invite' || typeof event.state_key !== 'string') {
      throw bad('the event is not an invite');
    }
    const json: Pdu = Array.isArray(req.inviteRoomState)
      ? { ...req.pdu, unsigned: { ...(req.pdu.unsigned ?? {}), invite_room_state: req.inviteRoomState } }
      : req.pdu;
    if (await isRoomHeld(this.o.db, roomId)) {
      // The room is held here: the invite is an ordinary event of it (fetched gaps included).
      const reply = await this.inputFederatedPdus({ op: 'inputFederatedPdus', roomId, roomVersion: rv.id, origin: domainOf(event.sender), pdus: [json] });
      const r = reply.results[event.event_id];
      if (r && !r.accepted) throw new BusError('M_FORBIDDEN', `the invite is refused: ${r.error}`);
      return {};
    }
    await this.storeOutOfBand(roomId, rv, json, 'invite');
    return {};
  }

  /**
   * Stores a membership event of a room not held here as an outlier, with its membership for
   * the user's /sync: persistence records it at a stream position and announces it.
   */
  private async storeOutOfBand(roomId: string, rv: RoomVersion, pdu: Pdu, membership: string): Promise<void> {
    const event = { ...pduToRoomEvent(pdu, rv), event_id: computeEventId(pdu, rv) };
    await this.o.decider.locks.run(roomId, async () => {
      await this.withSequence(roomId, (expectedSequence) => this.o.decider.append({
        roomId,
        roomVersion: rv.id,
        expectedSequence,
        // Stored already (a repeated invite): persistence finds the duplicate and records the membership again.
        events: [{ ...appendFields(pdu, event), outlier: true, local: domainOf(event.sender) === this.o.serverName }],
        currentStateChanges: [],
        outOfBandMembership: { userId: event.state_key!, membership, eventId: event.event_id },
      }));
      this.o.decider.store.forget(roomId);
    });
  }

  /**
   * Sends a local user's invite of a user on another server to that server (PUT /v2/invite)
   * before it is stored; returns the event with the invitee's server's signature added.
   */
  async inviteRemote(pdu: Pdu, rv: RoomVersion): Promise<Pdu> {
    const event = { ...pduToRoomEvent(pdu, rv), event_id: computeEventId(pdu, rv) };
    const target = domainOf(event.state_key ?? '');
    const stripped = (await getCurrentStateEvents(this.o.db, event.room_id!, STRIPPED_STATE_TYPES)).map((s) => strippedStateOf(s.json));
    let res: { event?: unknown };
    try {
      res = await this.o.client.put(target, `/_matrix/federation/v2/invite/${enc(event.room_id!)}/${enc(event.event_id)}`, {
        event: pdu, room_version: rv.id, invite_room_state: stripped,
      });
    } catch (err) {
      if (err instanceof FederationError) {
        throw new BusError(err.status === 403 ? 'M_FORBIDDEN' : 'M_UNKNOWN', `${target} did not accept the invite: ${err.message}`);
      }
      throw err;
    }
    const signed = res.event;
    if (!isObject(signed) || safeEventId(signed as Pdu, rv) !== event.event_id) throw new BusError('M_UNKNOWN', `${target} answered the invite with another event`);
    const keyIds = Object.keys((signed as Pdu).signatures?.[target] ?? {});
    const keys = await this.o.keyRing.getVerifyKeys(keyIds.map((keyId) => ({ serverName: target, keyId, minimumValidUntilTs: rv.enforceKeyValidity ? event.origin_server_ts : 0 })));
    const ok = keyIds.some((keyId) => {
      const k = keys.get(keyRingKey(target, keyId));
      return k !== undefined && verifyEventSignature(signed, target, keyId, k.publicKey, rv);
    });
    if (!ok) throw new BusError('M_UNKNOWN', `${target} answered the invite without a valid signature of its own`);
    return signed as Pdu;
  }

  // -------------------------------------------------------------------------------------------
  // Federated PDUs with gaps

  async inputFederatedPdus(req: InputFederatedPdusRequest): Promise<InputPdusReply> {
    if (typeof req.roomId !== 'string' || !Array.isArray(req.pdus) || typeof req.origin !== 'string') throw bad('roomId, origin and pdus are required');
    if (!isKnownRoomVersion(req.roomVersion)) throw new BusError('M_UNSUPPORTED_ROOM_VERSION', `room version ${JSON.stringify(req.roomVersion)} is not supported`);
    const rv = getRoomVersion(req.roomVersion);
    if (!(await isRoomHeld(this.o.db, req.roomId))) return this.inputRescissions(req.roomId, rv, req.pdus);
    const results: InputPdusReply['results'] = {};
    // PDUs whose prev events are known (stored, or earlier in the run) go to the decider
    // together, in order: one call, one room lock and the cached room view for the run.
    let run: Pdu[] = [];
    const inRun = new Set<string>();
    const flush = async () => {
      if (run.length === 0) return;
      const reply = await this.o.decider.inputPdus({ op: 'inputPdus', roomId: req.roomId, roomVersion: rv.id, origin: req.origin, pdus: run, sendOnBehalf: req.sendOnBehalf });
      Object.assign(results, reply.results);
      run = [];
      inRun.clear();
    };
    for (const pdu of req.pdus) {
      let stateBeforeFirst: string[] | undefined;
      let gap = false;
      let eventId: string | undefined;
      try {
        const event = { ...pduToRoomEvent(pdu, rv), event_id: computeEventId(pdu, rv) };
        eventId = event.event_id;
        const citedAuth = event.auth_events.filter((a) => !inRun.has(a));
        const heldAuth = await this.o.decider.store.getEvents(citedAuth, rv);
        const missingAuth = citedAuth.filter((a) => !heldAuth.has(a));
        if (missingAuth.length > 0) {
          await flush();
          await this.fetchAuthEvents(req.origin, req.roomId, rv, event.event_id, missingAuth);
        }
        gap = (await this.unusable(event.prev_events.filter((p) => !inRun.has(p)), rv)).length > 0;
        if (gap) {
          await flush();
          stateBeforeFirst = await this.fillGap(req.origin, req.roomId, rv, event);
        }
      } catch (err) {
        if (!(err instanceof EventFormatError || err instanceof FederationError || err instanceof InvalidStateResponseError)) throw err;
        this.o.log?.('could not fill a gap before a federated event', { roomId: req.roomId, origin: req.origin, error: err.message });
      }
      if (gap || eventId === undefined) {
        await flush();
        const reply = await this.o.decider.inputPdus({ op: 'inputPdus', roomId: req.roomId, roomVersion: rv.id, origin: req.origin, pdus: [pdu], stateBeforeFirst, sendOnBehalf: req.sendOnBehalf });
        Object.assign(results, reply.results);
        continue;
      }
      run.push(pdu);
      inRun.add(eventId);
    }
    await flush();
    return { results };
  }

  /**
   * PDUs of a room not held here, where a local user holds only an invite: a leave (or ban) of
   * that user sent by the user who invited them rescinds the invite, and is stored out of band
   * as the user's membership (Synapse does the same; Complement's "Inviter user can rescind
   * invite over federation"). Anyone else's is refused: this server cannot check it against
   * the room's state, and only the inviter is known to have been able to invite.
   */
  private async inputRescissions(roomId: string, rv: RoomVersion, pdus: Pdu[]): Promise<InputPdusReply> {
    const results: InputPdusReply['results'] = {};
    for (const pdu of pdus) {
      let eventId: string;
      let event: RoomEvent;
      try {
        event = { ...pduToRoomEvent(pdu, rv), event_id: computeEventId(pdu, rv) };
        eventId = event.event_id;
      } catch (err) {
        if (err instanceof EventFormatError) continue;
        throw err;
      }
      const membership = event.content.membership;
      const target = event.state_key;
      const refuse = (error: string) => (results[eventId] = { accepted: false, error });
      if (event.type !== 'm.room.member' || typeof target !== 'string' || domainOf(target) !== this.o.serverName || (membership !== 'leave' && membership !== 'ban')) {
        refuse(`this server is not in room ${roomId}`);
        continue;
      }
      const held = (await getUserMemberships(this.o.db, target)).find((m) => m.roomId === roomId);
      const invite = held?.membership === 'invite' ? (await getEvents(this.o.db, [held.eventId])).get(held.eventId) : undefined;
      if (!invite || invite.sender !== event.sender) {
        refuse(`${event.sender} may not rescind an invite of ${target} to ${roomId} that it did not send`);
        continue;
      }
      await this.storeOutOfBand(roomId, rv, pdu, membership);
      results[eventId] = { accepted: true };
    }
    return { results };
  }

  /**
   * Auth events a PDU cites that are not stored here, fetched from its origin before the PDU is
   * decided, as Synapse does: the event's auth chain with /event_auth, then each one still
   * missing with /event. They are stored as outliers, each checked against its own auth
   * events, so that an event citing one that is rejected is rejected too (Complement's
   * rejected-auth-events test), where without them it was refused unstored and every later
   * event citing it as a prev event was refused as well.
   */
  private async fetchAuthEvents(origin: string, roomId: string, rv: RoomVersion, eventId: string, missing: string[]): Promise<void> {
    const found = new Map<string, Pdu>();
    const take = async (pdus: unknown[]) => {
      for (const c of await this.verifier.verifyAll(pdus, rv)) {
        const inRoom = c.ok && (c.pdu.room_id === roomId || (c.pdu.type === 'm.room.create' && rv.roomIdIsCreateEventHash));
        if (c.ok && inRoom) found.set(c.eventId, c.pdu);
      }
    };
    try {
      const res = await this.o.client.get<{ auth_chain?: unknown }>(origin, `/_matrix/federation/v1/event_auth/${enc(roomId)}/${enc(eventId)}`);
      await take(Array.isArray(res.auth_chain) ? res.auth_chain : []);
    } catch (err) {
      if (!(err instanceof FederationError)) throw err;
      this.o.log?.('/event_auth failed', { origin, roomId, eventId, error: err.message });
    }
    for (const id of missing.filter((m) => !found.has(m))) {
      try {
        const res = await this.o.client.get<{ pdus?: unknown }>(origin, `/_matrix/federation/v1/event/${enc(id)}`);
        await take(Array.isArray(res.pdus) ? res.pdus.slice(0, 1) : []);
      } catch (err) {
        if (!(err instanceof FederationError)) throw err;
        this.o.log?.('fetching a missing auth event failed', { origin, roomId, eventId: id, error: err.message });
      }
    }
    const held = await this.o.decider.store.getEvents(found.keys(), rv);
    const fresh = new Map([...found].filter(([id]) => !held.has(id)));
    if (fresh.size === 0) return;
    await this.o.decider.inputPdus({ op: 'inputPdus', roomId, roomVersion: rv.id, origin, outliers: authOrdered(fresh), pdus: [] });
  }

  /** Prev events that are not stored as accepted timeline events. */
  private async unusable(ids: string[], rv: RoomVersion): Promise<string[]> {
    // Through the decider's event cache: an event it holds as accepted stays so.
    const held = await this.o.decider.store.getEvents(ids, rv);
    const stored = new Map([...held].map(([id, h]) => [id, h.stored]));
    return ids.filter((id) => {
      const s = stored.get(id);
      return !s || s.outlier || s.rejectedReason !== null;
    });
  }

  /**
   * Fetches what the room misses before `event`: first the events themselves
   * (get_missing_events, paged backwards, decided oldest first), then, if a gap remains, the
   * state at each missing prev event. Returns the state before `event` when it had to be
   * computed from fetched state.
   */
  private async fillGap(origin: string, roomId: string, rv: RoomVersion, event: RoomEvent): Promise<string[] | undefined> {
    let fetchedAny = false;
    try {
      const { ordered: events, fetched } = await this.fetchMissingEvents(origin, roomId, rv, event);
      fetchedAny = fetched > 0;
      for (let i = 0; i < events.length; i += GAP_INPUT_BATCH) {
        await this.o.decider.inputPdus({ op: 'inputPdus', roomId, roomVersion: rv.id, origin, pdus: events.slice(i, i + GAP_INPUT_BATCH) });
      }
    } catch (err) {
      if (!(err instanceof FederationError)) throw err;
      this.o.log?.('get_missing_events failed', { origin, roomId, error: err.message });
    }
    const still = await this.unusable(event.prev_events, rv);
    if (still.length === 0) return undefined;
    // The origin gave none of the events its event cites: the event is refused (as Synapse
    // does: "your server isn't divulging details about prev_events"), not bridged with state
    // asked of a server that would not say what came before (Complement's bad-JSON gap test).
    if (!fetchedAny) return undefined;

    // A gap remains: take the state at each missing prev event from the origin.
    const states: StateMap[] = [];
    for (const prevId of event.prev_events) {
      if (!still.includes(prevId)) {
        const stored = (await getEvents(this.o.db, [prevId])).get(prevId)!;
        states.push(await this.o.decider.store.snapshot(stored.stateAfterNid));
        continue;
      }
      const stateRes = await this.o.client.get<{ pdus?: unknown; auth_chain?: unknown }>(origin, `/_matrix/federation/v1/state/${enc(roomId)}`, { query: { event_id: prevId } });
      const eventRes = await this.o.client.get<{ pdus?: unknown }>(origin, `/_matrix/federation/v1/event/${enc(prevId)}`);
      const prevPdu = Array.isArray(eventRes.pdus) ? eventRes.pdus[0] : undefined;
      const prevCheck = await this.verifier.verify(prevPdu, rv);
      if (!prevCheck.ok || prevCheck.eventId !== prevId) throw new InvalidStateResponseError(`${origin} did not return a valid ${prevId}`);
      const validated = await validateStateAndAuthChain(this.verifier, roomId, rv, stateRes.pdus as unknown[], stateRes.auth_chain as unknown[]);
      if (validated.dropped.length > 0) this.o.log?.('/state answer: events left out', { origin, roomId, count: validated.dropped.length, first: validated.dropped.slice(0, 5) });
      const prevEvent = { ...pduToRoomEvent(prevCheck.pdu, rv), event_id: prevId };
      await this.o.decider.inputPdus({
        op: 'inputPdus', roomId, roomVersion: rv.id, origin,
        outliers: [...validated.ordered.map((v) => v.pdu), prevCheck.pdu], pdus: [],
      });
      const after = new Map(validated.state);
      if (typeof prevEvent.state_key === 'string') after.set(stateKey(prevEvent.type, prevEvent.state_key), prevId);
      states.push(after);
    }
    const before = states.length === 1 ? states[0]! : await this.o.decider.resolve(rv, states);
    return [...before.values()];
  }

  /**
   * The events between this room's extremities and `event`, oldest first, as far as they
   * connect to events held here. get_missing_events answers at most a page (100 events on our
   * servers, often fewer elsewhere): it is asked again with the earliest fetched events whose
   * prev events are still missing as the new latest_events, until the gap is closed or
   * MISSING_EVENTS_TOTAL events are fetched. Events that do not connect are left out: a gap
   * that long is bridged with the state at its edge instead (fillGap).
   */
  private async fetchMissingEvents(origin: string, roomId: string, rv: RoomVersion, event: RoomEvent): Promise<{ ordered: Pdu[]; fetched: number }> {
    const view = await this.o.decider.store.view(roomId);
    const earliest = new Set((view?.extremities ?? []).map((e) => e.eventId));
    const fetched = new Map<string, Pdu>();
    /** Prev events held here as accepted timeline events, and those that are not. */
    const held = new Set<string>();
    const missing = new Set<string>();
    const classify = async (ids: Iterable<string>) => {
      const open = [...new Set(ids)].filter((id) => !fetched.has(id) && !held.has(id) && !missing.has(id));
      if (open.length === 0) return;
      const unusable = new Set(await this.unusable(open, rv));
      for (const id of open) {
        if (unusable.has(id)) missing.add(id);
        else held.add(id);
      }
    };
    await classify(event.prev_events);
    const asked = new Set<string>();
    let latest = [event.event_id];
    let received = 0;
    while (latest.length > 0 && received < MISSING_EVENTS_TOTAL) {
      latest.forEach((id) => asked.add(id));
      const res = await this.o.client.post<{ events?: unknown }>(origin, `/_matrix/federation/v1/get_missing_events/${enc(roomId)}`, {
        // min_depth 0: a fork may start below our extremities' depth.
        earliest_events: [...earliest], latest_events: latest, limit: Math.min(MISSING_EVENTS_PAGE, MISSING_EVENTS_TOTAL - received), min_depth: 0,
      });
      const checks = await this.verifier.verifyAll(Array.isArray(res.events) ? res.events : [], rv);
      const page: string[] = [];
      for (const c of checks) {
        if (!c.ok || c.pdu.room_id !== roomId || fetched.has(c.eventId) || c.eventId === event.event_id) continue;
        fetched.set(c.eventId, c.pdu);
        page.push(c.eventId);
      }
      if (page.length === 0) break;
      received += page.length;
      // Events of the page held here already are not fetched events but known ones.
      const pageUnusable = new Set(await this.unusable(page, rv));
      for (const id of page.filter((p) => !pageUnusable.has(p))) {
        fetched.delete(id);
        held.add(id);
        missing.delete(id);
        earliest.add(id);
      }
      for (const id of page) missing.delete(id);
      await classify([...fetched.values()].flatMap((p) => prevIds(p)));
      // Ask next from the fetched events that cite something neither fetched nor held here.
      latest = [...fetched].filter(([id, p]) => !asked.has(id) && prevIds(p).some((prev) => missing.has(prev))).map(([id]) => id);
    }
    const ordered = orderConnected(fetched, held);
    if (ordered.length < fetched.size) {
      this.o.log?.('a gap was not closed by get_missing_events', { origin, roomId, fetched: fetched.size, connected: ordered.length });
    }
    return { ordered, fetched: received };
  }

  private checkRoomAndUser(roomId: unknown, userId: unknown): { roomId: string; userId: string } {
    if (typeof roomId !== 'string' || !isValidRoomId(roomId)) throw bad('roomId must be a room id');
    if (typeof userId !== 'string' || !isValidUserId(userId)) throw bad('userId must be a user id');
    if (domainOf(userId) !== this.o.serverName) throw new BusError('M_FORBIDDEN', `${userId} is not a user of this server`);
    return { roomId, userId };
  }
}

function safeEventId(pdu: Pdu, rv: RoomVersion): string | undefined {
  try {
    return computeEventId(pdu, rv);
  } catch {
    return undefined;
  }
}


/** Each event after those of its auth events that are among `events` (a cycle keeps its order). */
function authOrdered(events: ReadonlyMap<string, Pdu>): Pdu[] {
  const out: Pdu[] = [];
  const placed = new Set<string>();
  let pending = [...events];
  while (pending.length > 0) {
    const rest = pending.filter(([id, pdu]) => {
      const ready = edgeIds(pdu.auth_events).every((a) => !events.has(a) || placed.has(a));
      if (ready) {
        out.push(pdu);
        placed.add(id);
      }
      return !ready;
    });
    if (rest.length === pending.length) {
      out.push(...rest.map(([, pdu]) => pdu));
      break;
    }
    pending = rest;
  }
  return out;
}

function prevIds(pdu: Pdu): string[] {
  return edgeIds(pdu.prev_events);
}

function edgeIds(list: unknown): string[] {
  const prevs: unknown[] = Array.isArray(list) ? list : [];
  // Room versions 1 and 2 cite [event_id, hashes] pairs.
  return prevs.map((p) => (Array.isArray(p) ? p[0] : p)).filter((p): p is string => typeof p === 'string');
}

/**
 * The fetched events whose prev events are all held here or fetched and connected themselves,
 * in an order where each comes after its prev events (by depth, then as the chain needs).
 */
function orderConnected(fetched: ReadonlyMap<string, Pdu>, held: ReadonlySet<string>): Pdu[] {
  let pending = [...fetched].sort((a, b) => (a[1].depth ?? 0) - (b[1].depth ?? 0));
  const connected = new Set<string>();
  const out: Pdu[] = [];
  for (let progress = true; progress && pending.length > 0;) {
    progress = false;
    const rest: typeof pending = [];
    for (const [id, pdu] of pending) {
      if (prevIds(pdu).every((p) => held.has(p) || connected.has(p))) {
        connected.add(id);
        out.push(pdu);
        progress = true;
      } else {
        rest.push([id, pdu]);
      }
    }
    pending = rest;
  }
  return out;
}
