/**
 * The subject catalog: every name on the bus, what travels there and who listens. The payload
 * types, documented field by field, are in ./contracts. A transport puts its prefix in front
 * (`<prefix>.roomserver.input`); code always uses these constants, never a string literal.
 */
import { CLIENT_CHANGES, type ClientChangeMessage } from './contracts/client-changes.js';
import { EDU_INBOUND, EDU_OUTBOUND, type InboundEdu, type OutboundEdu } from './contracts/edu.js';
import type { HealthReply, HealthRequest } from './contracts/health.js';
import { PERSISTENCE_APPEND, PERSISTENCE_APPEND_MANY, type AppendManyReply, type AppendManyRequest, type AppendReply, type AppendRequest } from './contracts/persistence.js';
import { ROOMSERVER_INPUT, ROOMSERVER_QUEUE, type RoomServerReply, type RoomServerRequest } from './contracts/roomserver.js';
import { STREAM_EVENTS, type StreamEventNotification } from './contracts/stream.js';
import { PERSISTENCE_BACKFILL, ROOMSERVER_BACKFILL, type BackfillReply, type BackfillRequest, type PersistBackfillReply, type PersistBackfillRequest } from './contracts/backfill.js';
import type { BusTransport, HandlerOptions, RequestOptions, Subscription } from './transport.js';

export const Subjects = {
  /**
   * Request/reply, handled by room-server (queue group QueueGroups.roomServer). Build and
   * append a local event (client-api) or accept verified federated PDUs (federation-ingress).
   * RoomServerRequest -> RoomServerReply; refusals are BusError(<Matrix errcode>, reason).
   */
  roomServerInput: ROOMSERVER_INPUT,
  /**
   * Request/reply, handled by persistence (queue group QueueGroups.persistence). Append one
   * room's decided events in one transaction, guarded by the room's sequence.
   * AppendRequest -> AppendReply; a stale sequence is BusError(STALE_SEQUENCE, ...).
   */
  persistenceAppend: PERSISTENCE_APPEND,
  /**
   * Request/reply, handled by persistence (queue group QueueGroups.persistence): several rooms'
   * appends at once, each answered on its own. AppendManyRequest -> AppendManyReply.
   */
  persistenceAppendMany: PERSISTENCE_APPEND_MANY,
  /**
   * Publish/subscribe, from persistence after commit: StreamEventNotification. Subscribed
   * without a queue group: every client-api replica has its own /sync waiters, and every
   * fanout-sender replica acts only on the destinations of the shards it leases (with a queue
   * group, a notification handed to a replica that does not own the destination would be lost).
   */
  streamEvents: STREAM_EVENTS,
  /** Publish/subscribe, from federation-ingress: InboundEdu, consumed by client-api. */
  eduInbound: EDU_INBOUND,
  /** Publish/subscribe, from client-api: OutboundEdu, consumed by every fanout-sender replica (no queue group: each sends only for its own shards). */
  eduOutbound: EDU_OUTBOUND,
  /**
   * Publish/subscribe among client-api replicas: ClientChangeMessage (a stream of client-api
   * moved, tokens revoked, key counts changed). No queue group: every replica has its own
   * /sync waiters and caches.
   */
  clientChanges: CLIENT_CHANGES,
  /**
   * Request/reply, handled by room-server (queue group QueueGroups.roomServer): fetch a room's
   * history from before this server joined from another server in it (GET /backfill), check
   * it and have it stored. BackfillRequest -> BackfillReply (client-api's /messages).
   */
  roomServerBackfill: ROOMSERVER_BACKFILL,
  /**
   * Request/reply, handled by persistence (queue group QueueGroups.persistence): store checked
   * backfilled events below every stream position, with none of an append's other effects.
   * PersistBackfillRequest -> PersistBackfillReply.
   */
  persistenceBackfill: PERSISTENCE_BACKFILL,
} as const;

export type ServiceName = 'client-api' | 'federation-ingress' | 'room-server' | 'persistence' | 'fanout-sender';

/** Request/reply readiness probe of one service: HealthRequest -> HealthReply (queue group = service name). */
export function healthSubject(service: ServiceName): `health.${ServiceName}` {
  return `health.${service}`;
}

/** Queue groups: replicas of a service share the work of a subject. */
export const QueueGroups = {
  roomServer: ROOMSERVER_QUEUE,
  persistence: 'persistence',
  fanoutSender: 'fanout-sender',
} as const;

/** Which payloads go with which request/reply subject. */
export interface RequestContracts {
  'roomserver.input': { request: RoomServerRequest; response: RoomServerReply };
  'persistence.append': { request: AppendRequest; response: AppendReply };
  'persistence.append-many': { request: AppendManyRequest; response: AppendManyReply };
  'roomserver.backfill': { request: BackfillRequest; response: BackfillReply };
  'persistence.backfill': { request: PersistBackfillRequest; response: PersistBackfillReply };
  [health: `health.${string}`]: { request: HealthRequest; response: HealthReply };
}

/** Which payload goes with which publish/subscribe subject. */
export interface NotificationContracts {
  'stream.events': StreamEventNotification;
  'edu.inbound': InboundEdu;
  'edu.outbound': OutboundEdu;
  'client.changes': ClientChangeMessage;
}

/** Typed request: the compiler checks the payload and the reply against the catalog. */
export function requestOn<S extends keyof RequestContracts & string>(
  bus: BusTransport,
  subject: S,
  payload: RequestContracts[S]['request'],
  options?: RequestOptions,
): Promise<RequestContracts[S]['response']> {
  return bus.request(subject, payload, options);
}

export function handleOn<S extends keyof RequestContracts & string>(
  bus: BusTransport,
  subject: S,
  handler: (payload: RequestContracts[S]['request']) => Promise<RequestContracts[S]['response']>,
  options?: HandlerOptions,
): Promise<Subscription> {
  return bus.handle(subject, handler, options);
}

export function publishOn<S extends keyof NotificationContracts>(bus: BusTransport, subject: S, payload: NotificationContracts[S]): Promise<void> {
  return bus.publish(subject, payload);
}

export function subscribeOn<S extends keyof NotificationContracts>(
  bus: BusTransport,
  subject: S,
  handler: (payload: NotificationContracts[S]) => void | Promise<void>,
  options?: HandlerOptions,
): Promise<Subscription> {
  return bus.subscribe(subject, handler, options);
}
