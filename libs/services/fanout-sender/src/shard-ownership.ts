/**
 * Keeps this replica's shard leases: every third of the lease lifetime it announces itself,
 * reads the live replicas, gives up the shards another replica should now hold and takes or
 * renews its own. Changes are reported so the sender starts or stops destination queues.
 */
import { acquireShardLeases, heartbeatReplica, releaseShardLeases, removeReplica, type Db } from '@tessera/storage';
import { shardsFor } from './shards.js';

export interface ShardChange {
  acquired: number[];
  lost: number[];
}

export interface ShardOwnershipOptions {
  db: Db;
  replicaId: string;
  shardCount: number;
  leaseTtlMs: number;
  onChange: (change: ShardChange) => Promise<void> | void;
  onError: (err: unknown) => void;
}

export class ShardOwnership {
  private owned = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private lastRenewedAt = 0;
  private ticking: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly options: ShardOwnershipOptions) {}

  owns(shard: number): boolean {
    return this.owned.has(shard);
  }

  ownedShards(): number[] {
    return [...this.owned].sort((a, b) => a - b);
  }

  async start(): Promise<void> {
    this.stopped = false;
    await this.tick();
    this.timer = setInterval(() => void this.tick(), Math.max(50, Math.floor(this.options.leaseTtlMs / 3)));
  }

  /** One round; rounds never overlap. */
  tick(): Promise<void> {
    this.ticking = this.ticking.then(() => this.round());
    return this.ticking;
  }

  private async round(): Promise<void> {
    if (this.stopped) return;
    const { db, replicaId, shardCount, leaseTtlMs } = this.options;
    try {
      const live = await heartbeatReplica(db, replicaId, leaseTtlMs);
      const desired = new Set(shardsFor(replicaId, live.includes(replicaId) ? live : [...live, replicaId], shardCount));
      const giveUp = [...this.owned].filter((s) => !desired.has(s));
      // Stop starting transactions before the lease goes, so two replicas never knowingly serve one destination.
      if (giveUp.length > 0) await this.report({ acquired: [], lost: giveUp });
      for (const s of giveUp) this.owned.delete(s);
      await releaseShardLeases(db, replicaId, giveUp);
      const held = new Set(await acquireShardLeases(db, replicaId, [...desired], leaseTtlMs));
      this.lastRenewedAt = Date.now();
      if (this.stopped) return;
      const lost = [...this.owned].filter((s) => !held.has(s));
      const acquired = [...held].filter((s) => !this.owned.has(s));
      this.owned = held;
      if (lost.length > 0 || acquired.length > 0) await this.report({ acquired, lost });
    } catch (err) {
      this.options.onError(err);
      // Leases we could not renew may be someone else's by now: stop serving them in time.
      if (this.owned.size > 0 && Date.now() - this.lastRenewedAt > this.options.leaseTtlMs * 0.8) {
        const lost = [...this.owned];
        this.owned.clear();
        await this.report({ acquired: [], lost });
      }
    }
  }

  private async report(change: ShardChange): Promise<void> {
    try {
      await this.options.onChange(change);
    } catch (err) {
      this.options.onError(err);
    }
  }

  /** Gives every lease up at once so the other replicas take over without waiting for expiry. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.ticking;
    const lost = [...this.owned];
    this.owned.clear();
    if (lost.length > 0) await this.report({ acquired: [], lost });
    await releaseShardLeases(this.options.db, this.options.replicaId).catch((err) => this.options.onError(err));
    await removeReplica(this.options.db, this.options.replicaId).catch((err) => this.options.onError(err));
  }
}
