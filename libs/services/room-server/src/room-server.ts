/**
 * room-server on the bus: answers roomserver.input (queue group room-server). Validates each
 * request, dispatches it to the decider, and turns refusals into BusErrors with the Matrix
 * errcode client-api returns as is.
 */
import { isValidUserId, type Pdu, type RoomEvent, type RoomVersion, type SigningKey } from '@tessera/protocol';
import {
  BusError, ROOMSERVER_INPUT, ROOMSERVER_QUEUE,
  type BusTransport, type CreateRoomReply, type CreateRoomRequest, type EventIdReply, type MembershipRequest, type RedactRequest, type RoomServerReply, type RoomServerRequest,
  type SendEventRequest, type Subscription,
} from '@tessera/bus';
import { getUserMembershipInRoom, type Db } from '@tessera/storage';
import { createRoom } from './create-room.js';
import { Decider } from './decider.js';
import { PartitionOwnership } from './partition-ownership.js';
import { RoomStore } from './room-view.js';
import { planLocalJoin } from './restricted-join.js';

export interface RoomServerOptions {
  db: Db;
  bus: BusTransport;
  serverName: string;
  signingKey: SigningKey;
  /** Failures of background work (partition announcements); the default ignores them. */
  onError?: (err: unknown) => void;
  /** Appends of one event-loop turn in one message to persistence (a network bus: see Decider). */
  bundleAppends?: boolean;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function bad(message: string): BusError {
  return new BusError('M_BAD_JSON', message);
}

function requireString(value: unknown, field: string): string {
  if (typeof value !== 'string' || value === '') throw bad(`${field} must be a non-empty string`);
  return value;
}

function requireUser(value: unknown, field: string): string {
  if (typeof value !== 'string' || !isValidUserId(value)) throw bad(`${field} must be a user id`);
  return value;
}

export class RoomServer {
  readonly decider: Decider;
  /** Set by the federation side: sends an invite of a user on another server there first (federation/room-federation.ts). */
  remoteInvite?: (pdu: Pdu, roomVersion: RoomVersion) => Promise<Pdu>;
  /** Set by the federation side: joins through other servers of a held room (make_join/send_join) when none of our users may authorise a restricted join. */
  remoteJoin?: (roomId: string, userId: string, content: Record<string, unknown>, servers: string[]) => Promise<{ eventId: string }>;
  /** The room partitions this replica serves (requests about a room reach its partition's owner). */
  readonly partitions: PartitionOwnership;
  private subscription: Subscription | undefined;

  constructor(private readonly options: RoomServerOptions) {
    this.decider = new Decider(new RoomStore(options.db), options.bus, { serverName: options.serverName, key: options.signingKey }, options.bundleAppends ?? false);
    this.partitions = new PartitionOwnership(options.bus, { onError: options.onError });
  }

  async start(): Promise<void> {
    // The plain subject: createRoom, and any room whose partition has no listener right now.
    this.subscription = await this.options.bus.handle<RoomServerRequest, RoomServerReply>(ROOMSERVER_INPUT, (req) => this.handle(req), {
      queue: ROOMSERVER_QUEUE,
    });
    await this.partitions.start();
    await this.partitions.serve(ROOMSERVER_INPUT, (req: RoomServerRequest) => this.handle(req));
  }

  async stop(): Promise<void> {
    await this.partitions.stop();
    await this.subscription?.unsubscribe();
    this.subscription = undefined;
  }

  handle(req: RoomServerRequest): Promise<RoomServerReply> {
    if (!isObject(req)) throw bad('the request is not an object');
    switch (req.op) {
      case 'createRoom':
        return this.createRoom(req);
      case 'membership':
        return this.membership(req);
      case 'sendEvent':
        return this.sendEvent(req);
      case 'redact':
        return this.redact(req);
      case 'inputPdus':
        requireString(req.roomId, 'roomId');
        requireString(req.roomVersion, 'roomVersion');
        if (!Array.isArray(req.pdus) || (req.outliers !== undefined && !Array.isArray(req.outliers))) throw bad('pdus and outliers must be lists');
        if (req.pdus.some((p) => !isObject(p)) || (req.outliers ?? []).some((p) => !isObject(p))) throw bad('each PDU must be an object');
        return this.decider.inputPdus(req);
      default:
        throw new BusError('M_UNRECOGNIZED', `unknown roomserver.input op ${JSON.stringify((req as { op?: unknown }).op)}`);
    }
  }

  /**
   * The room with its initial state and local invites in one append; then each invite of a
   * user of another server as its own event, sent to that server first (PUT /v2/invite, as any
   * invite), as Synapse does: without it the invitee's server never hears of the room. An
   * invite another server refuses leaves the room made, without that invite.
   */
  private async createRoom(req: CreateRoomRequest): Promise<CreateRoomReply> {
    const serverName = this.options.serverName;
    const isRemote = (u: unknown): u is string => typeof u === 'string' && isValidUserId(u) && u.slice(u.indexOf(':') + 1) !== serverName;
    const remote = Array.isArray(req.invite) && this.remoteInvite ? [...new Set(req.invite.filter(isRemote))] : [];
    if (remote.length === 0) return createRoom(this.decider, req, serverName);
    const reply = await createRoom(this.decider, { ...req, invite: req.invite!.filter((u) => !isRemote(u)) }, serverName);
    for (const target of remote) {
      try {
        const { eventId } = await this.membership({
          op: 'membership', action: 'invite', roomId: reply.roomId, sender: req.sender, target, ...(req.is_direct ? { content: { is_direct: true } } : {}),
        });
        reply.eventIds.push(eventId);
      } catch (err) {
        this.options.onError?.(err);
      }
    }
    return reply;
  }

  private async sendEvent(req: SendEventRequest): Promise<EventIdReply> {
    const roomId = requireString(req.roomId, 'roomId');
    const sender = requireUser(req.sender, 'sender');
    const type = requireString(req.type, 'type');
    if (!isObject(req.content)) throw bad('content must be an object');
    if (req.stateKey !== undefined && typeof req.stateKey !== 'string') throw bad('stateKey must be a string');
    // A room has one create event, made with the room: another is a malformed request (400, as
    // Synapse answers; Complement's v12 tests), not an event for the auth rules to refuse.
    if (type === 'm.room.create' && req.stateKey !== undefined) throw bad('a room has one m.room.create event, sent when it was created');
    const txn = this.txnOf(sender, req.txn);
    if (type === 'm.room.redaction') {
      const redacts = req.content.redacts;
      if (typeof redacts !== 'string') throw bad('an m.room.redaction needs content.redacts (use op redact)');
      return this.redact({ op: 'redact', roomId, sender, redacts, reason: req.content.reason as string | undefined, txn: req.txn });
    }
    const content = await this.withoutAuthoriserOnRejoin(roomId, sender, type, req.stateKey, req.content);
    const { eventId } = await this.decider.sendLocal(roomId, { type, sender, stateKey: req.stateKey, content }, { txn });
    return { eventId };
  }

  /**
   * A member already joined who sends their membership again (join -> join: a display name
   * change) needs no authorising server, and a join_authorised_via_users_server they put in
   * is ignored, as Synapse does: left in, the auth rules would demand that server's signature.
   */
  private async withoutAuthoriserOnRejoin(roomId: string, sender: string, type: string, stateKey: string | undefined, content: Record<string, unknown>) {
    if (type !== 'm.room.member' || stateKey !== sender || content.membership !== 'join' || !('join_authorised_via_users_server' in content)) return content;
    if ((await getUserMembershipInRoom(this.options.db, roomId, sender))?.membership !== 'join') return content;
    const { join_authorised_via_users_server: _ignored, ...rest } = content;
    return rest;
  }

  private async redact(req: RedactRequest): Promise<EventIdReply> {
    const roomId = requireString(req.roomId, 'roomId');
    const sender = requireUser(req.sender, 'sender');
    const redacts = requireString(req.redacts, 'redacts');
    const view = await this.decider.store.view(roomId);
    if (!view) throw new BusError('M_NOT_FOUND', `room ${roomId} is not known to this server`);
    const content: Record<string, unknown> = {};
    if (typeof req.reason === 'string') content.reason = req.reason;
    if (view.roomVersion.redaction.v11Rules) content.redacts = redacts;
    const { eventId } = await this.decider.sendLocal(roomId, { type: 'm.room.redaction', sender, content, redacts }, { txn: this.txnOf(sender, req.txn) });
    return { eventId };
  }

  private async membership(req: MembershipRequest): Promise<EventIdReply> {
    const roomId = requireString(req.roomId, 'roomId');
    const sender = requireUser(req.sender, 'sender');
    if (req.content !== undefined && !isObject(req.content)) throw bad('content must be an object');
    if (req.reason !== undefined && typeof req.reason !== 'string') throw bad('reason must be a string');
    const self = ['join', 'leave', 'knock'].includes(req.action);
    const target = self ? sender : requireUser(req.target, 'target');
    const membership = { join: 'join', leave: 'leave', knock: 'knock', invite: 'invite', kick: 'leave', ban: 'ban', unban: 'leave' }[req.action];
    if (!membership) throw new BusError('M_INVALID_PARAM', `unknown membership action ${JSON.stringify(req.action)}`);
    const content: Record<string, unknown> = { ...(req.content ?? {}), membership };
    if (req.reason !== undefined) content.reason = req.reason;
    const precheck = (lookup: (type: string, key: string) => RoomEvent | undefined) => {
      const current = lookup('m.room.member', target)?.content.membership;
      if (req.action === 'unban' && current !== 'ban') throw new BusError('M_FORBIDDEN', `${target} is not banned from ${roomId}`);
      if (req.action === 'kick' && current !== 'join' && current !== 'invite' && current !== 'knock') {
        throw new BusError('M_FORBIDDEN', `${target} is not in ${roomId}`);
      }
    };
    if (req.action === 'join') return this.join(roomId, sender, content);
    const remote = req.action === 'invite' && target.slice(target.indexOf(':') + 1) !== this.options.serverName;
    const beforeAppend = remote ? this.remoteInvite : undefined;
    const { eventId } = await this.decider.sendLocal(roomId, { type: 'm.room.member', sender, stateKey: target, content }, { precheck, beforeAppend });
    return { eventId };
  }

  /**
   * A local user's join of a room held here: in a restricted room one of our users able to
   * invite authorises it (restricted-join.ts), or, when none may, a server that can.
   */
  async join(roomId: string, userId: string, content: Record<string, unknown>): Promise<EventIdReply> {
    const view = await this.decider.store.view(roomId);
    if (!view) throw new BusError('M_NOT_FOUND', `room ${roomId} is not known to this server`);
    const plan = await planLocalJoin(this.options.db, this.options.serverName, view.roomVersion, roomId, userId, content);
    if (plan.route === 'remote') {
      if (!this.remoteJoin) throw new BusError('M_FORBIDDEN', `no user of this server in ${roomId} may authorise the join of ${userId}`);
      return { eventId: (await this.remoteJoin(roomId, userId, content, plan.servers)).eventId };
    }
    const { eventId } = await this.decider.sendLocal(roomId, { type: 'm.room.member', sender: userId, stateKey: userId, content: plan.content });
    return { eventId };
  }

  private txnOf(userId: string, txn: { deviceId: string; txnId: string } | undefined) {
    if (txn === undefined) return undefined;
    if (!isObject(txn) || typeof txn.deviceId !== 'string' || typeof txn.txnId !== 'string') throw bad('txn must be {deviceId, txnId}');
    return { userId, deviceId: txn.deviceId, txnId: txn.txnId };
  }
}
