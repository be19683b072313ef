/**
 * Which room partitions this replica serves (see libs/bus/src/room-partitions.ts).
 *
 * Replicas announce themselves on roomserver.replicas every heartbeat; a replica not heard from
 * for EXPIRY_HEARTBEATS heartbeats is gone. Each replica computes the owner of every partition
 * from the live set (rendezvous hashing: adding or removing a replica moves only that replica's
 * share) and listens on the partition subjects it owns. While replicas disagree (one just
 * started or stopped) a partition may briefly have two listeners (they share it as one queue
 * group) or none (requests fall back to the plain subject): both are correct, the append
 * sequence guards every decision.
 */
import { randomUUID } from 'node:crypto';
import {
  partitionOwner, partitionSubject, ROOM_PARTITIONS, ROOMSERVER_QUEUE, ROOMSERVER_REPLICAS,
  type BusTransport, type ReplicaAnnouncement, type Subscription,
} from '@tessera/bus';

const EXPIRY_HEARTBEATS = 3.5;

interface PartitionedHandler {
  subject: string;
  handler: (payload: any) => Promise<unknown>;
  /** Partition -> its subscription. */
  subscriptions: Map<number, Subscription>;
}

export interface PartitionOwnershipOptions {
  heartbeatMs?: number;
  replicaId?: string;
  onError?: (err: unknown) => void;
}

export class PartitionOwnership {
  readonly replicaId: string;
  private readonly heartbeatMs: number;
  private readonly lastSeen = new Map<string, number>();
  private readonly handlers: PartitionedHandler[] = [];
  private owned = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private announcements: Subscription | undefined;
  /** Subscription changes run one after another, so a quick flip-flop never leaves a stray listener. */
  private applying: Promise<void> = Promise.resolve();
  private stopped = true;

  constructor(private readonly bus: BusTransport, private readonly options: PartitionOwnershipOptions = {}) {
    this.replicaId = options.replicaId ?? randomUUID();
    this.heartbeatMs = options.heartbeatMs ?? 1_000;
  }

  /** Partitions this replica listens on now (sorted). */
  ownedPartitions(): number[] {
    return [...this.owned].sort((a, b) => a - b);
  }

  liveReplicas(): string[] {
    const horizon = Date.now() - this.heartbeatMs * EXPIRY_HEARTBEATS;
    const live = [...this.lastSeen].filter(([id, at]) => id === this.replicaId || at >= horizon).map(([id]) => id);
    return live.sort();
  }

  /** Serves `<subject>.p<n>` with `handler` for every partition n this replica owns, now and as ownership moves. */
  async serve(subject: string, handler: (payload: any) => Promise<unknown>): Promise<void> {
    const entry: PartitionedHandler = { subject, handler, subscriptions: new Map() };
    this.handlers.push(entry);
    await this.apply();
  }

  /** Stops serving `subject`'s partitions. */
  async unserve(subject: string): Promise<void> {
    const i = this.handlers.findIndex((h) => h.subject === subject);
    if (i < 0) return;
    const [entry] = this.handlers.splice(i, 1);
    await this.applying;
    for (const sub of entry!.subscriptions.values()) await sub.unsubscribe();
  }

  async start(): Promise<void> {
    this.stopped = false;
    this.lastSeen.set(this.replicaId, Date.now());
    this.announcements = await this.bus.subscribe<ReplicaAnnouncement>(ROOMSERVER_REPLICAS, (a) => this.heard(a));
    await this.announce({ hello: true });
    this.timer = setInterval(() => {
      void this.announce().then(() => this.apply());
    }, this.heartbeatMs);
    this.timer.unref();
    await this.apply();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    await this.announcements?.unsubscribe();
    await this.announce({ leaving: true });
    this.owned = new Set();
    await this.apply();
  }

  private async announce(extra: Partial<ReplicaAnnouncement> = {}): Promise<void> {
    this.lastSeen.set(this.replicaId, Date.now());
    await this.bus.publish<ReplicaAnnouncement>(ROOMSERVER_REPLICAS, { replicaId: this.replicaId, ...extra }).catch((err) => this.options.onError?.(err));
  }

  private heard(a: ReplicaAnnouncement): void {
    if (!a || typeof a.replicaId !== 'string' || a.replicaId === this.replicaId) return;
    const known = this.lastSeen.has(a.replicaId);
    if (a.leaving) this.lastSeen.delete(a.replicaId);
    else this.lastSeen.set(a.replicaId, Date.now());
    // A newcomer learns of us now rather than at our next heartbeat.
    if (a.hello) void this.announce();
    if (a.leaving || !known) void this.apply();
  }

  private apply(): Promise<void> {
    this.applying = this.applying.then(() => this.reconcile()).catch((err) => this.options.onError?.(err));
    return this.applying;
  }

  private async reconcile(): Promise<void> {
    if (!this.stopped) {
      const live = this.liveReplicas();
      for (const id of [...this.lastSeen.keys()]) if (!live.includes(id)) this.lastSeen.delete(id);
      this.owned = new Set(Array.from({ length: ROOM_PARTITIONS }, (_, p) => p).filter((p) => partitionOwner(p, live) === this.replicaId));
    }
    for (const h of this.handlers) {
      for (const [p, sub] of [...h.subscriptions]) {
        if (this.owned.has(p)) continue;
        h.subscriptions.delete(p);
        await sub.unsubscribe();
      }
      for (const p of this.owned) {
        if (h.subscriptions.has(p)) continue;
        h.subscriptions.set(p, await this.bus.handle(partitionSubject(h.subject, p), h.handler, { queue: ROOMSERVER_QUEUE }));
      }
    }
  }
}
