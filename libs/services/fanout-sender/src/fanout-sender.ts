/**
 * fanout-sender: delivers this server's events and EDUs to the other servers of its rooms.
 *
 * The queue of PDUs is the event_destinations table, filled by persistence in the append
 * transaction with the servers joined at each local event; each destination's progress is its
 * own cursor (fanout_destinations.sent_position). So nothing is kept only in memory except
 * EDUs, which are ephemeral by nature, and a restart (or another replica taking over a shard)
 * rebuilds every queue from the database.
 *
 * Wake-ups: stream.events (every replica subscribes, no queue group, and acts only on the
 * destinations of its shards), plus a periodic scan of the log past the last position seen,
 * so a lost notification costs latency, never data. EDUs come on edu.outbound, which every
 * replica also receives; each keeps those for its own destinations.
 */
import {
  EDU_OUTBOUND, STREAM_EVENTS, type BusTransport, type OutboundEdu, type StreamEventNotification, type Subscription,
} from '@tessera/bus';
import { isValidServerName } from '@tessera/protocol';
import {
  destinationsWithPendingEdus, destinationsWithPendingPdus, getMaxStreamPosition, joinedServersOfRoom, loadDestinationStates, savePendingEdu, serverOfUser, type Db,
} from '@tessera/storage';
import { BatchedQueueStore } from './batched-queue-store.js';
import { DestinationQueue, type QueueLogger } from './destination-queue.js';
import { resolveSettings, type FanoutSenderSettings } from './options.js';
import { ShardOwnership, type ShardChange } from './shard-ownership.js';
import { shardOf } from './shards.js';
import type { TransactionSender } from './transaction-sender.js';

/** EDUs kept in the database until delivered (fanout_pending_edus): a lost one is a lost message. */
const DURABLE_EDU_TYPES = new Set(['m.direct_to_device']);

export interface FanoutSenderLogger extends QueueLogger {
  error(obj: object, msg: string): void;
}

export interface FanoutSenderOptions {
  db: Db;
  bus: BusTransport;
  /** Our server name: never a destination. */
  serverName: string;
  sender: TransactionSender;
  logger: FanoutSenderLogger;
  settings?: Partial<FanoutSenderSettings>;
}

export class FanoutSender {
  readonly settings: FanoutSenderSettings;
  private readonly queues = new Map<string, DestinationQueue>();
  private readonly shards: ShardOwnership;
  private readonly store: BatchedQueueStore;
  private subscriptions: Subscription[] = [];
  private pollTimer: NodeJS.Timeout | undefined;
  /** Every event at or below this position has had its destinations woken. */
  private scannedUpTo = 0;
  private scanning: Promise<void> | undefined;
  private scanAgain = false;
  private started = false;
  /** Queues of shards given up, finishing their transaction in flight. */
  private readonly stopping = new Set<Promise<void>>();

  constructor(private readonly options: FanoutSenderOptions) {
    this.settings = resolveSettings(options.settings);
    this.store = new BatchedQueueStore(options.db);
    this.shards = new ShardOwnership({
      db: options.db,
      replicaId: this.settings.replicaId,
      shardCount: this.settings.shardCount,
      leaseTtlMs: this.settings.leaseTtlMs,
      onChange: (change) => this.onShardChange(change),
      onError: (err) => options.logger.warn({ err }, 'fanout shard leases: round failed'),
    });
  }

  get replicaId(): string {
    return this.settings.replicaId;
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const { bus } = this.options;
    // Positions up to here are covered by the full scan each acquired shard gets.
    this.scannedUpTo = await getMaxStreamPosition(this.options.db);
    this.subscriptions.push(
      await bus.subscribe<StreamEventNotification>(STREAM_EVENTS, (n) => {
        // Events queued for no other server (a room of our users alone) have nothing to send.
        if (n?.local) {
          if (n.queuedForServers !== false) this.scan();
        }
        // An event from another server's user reached us: that server is most likely up again,
        // so a queue waiting out a long backoff towards it tries now (as Synapse does on inbound traffic).
        else if (typeof n?.sender === 'string') this.destinationIsBack(serverOfUser(n.sender));
      }),
      // One at a time, in the order published: keeping a to-device EDU awaits the database.
      await bus.subscribe<OutboundEdu>(EDU_OUTBOUND, (edu) => (this.eduChain = this.eduChain.then(() => this.onEdu(edu)).catch(() => undefined))),
    );
    await this.shards.start();
    this.pollTimer = setInterval(() => this.scan(), this.settings.pollIntervalMs);
    this.pollTimer.unref?.();
  }

  /**
   * Stops taking work, lets the transactions in flight end, then gives the shard leases up
   * (the other replicas take over at their next round, without waiting for expiry).
   */
  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    clearInterval(this.pollTimer);
    for (const s of this.subscriptions) await s.unsubscribe().catch(() => undefined);
    this.subscriptions = [];
    await this.scanning;
    const queues = [...this.queues.values()];
    this.queues.clear();
    await Promise.all(queues.map((q) => q.stop()));
    await this.shards.stop();
    await Promise.all([...this.queues.values()].map((q) => q.stop()));
    this.queues.clear();
    await Promise.all([...this.stopping]);
  }

  /** Shards this replica holds now. */
  ownedShards(): number[] {
    return this.shards.ownedShards();
  }

  owns(serverName: string): boolean {
    return this.shards.owns(shardOf(serverName, this.settings.shardCount));
  }

  /** The server is reachable again (it talked to us): drop its backoff and send what waits. */
  destinationIsBack(serverName: string): void {
    this.queues.get(serverName)?.retryNow();
  }

  /** Reads the log past the last scanned position and wakes the queues that got work. Scans never overlap. */
  scan(): void {
    if (!this.started) return;
    if (this.scanning) {
      this.scanAgain = true;
      return;
    }
    this.scanning = (async () => {
      do {
        this.scanAgain = false;
        try {
          const upTo = await getMaxStreamPosition(this.options.db);
          if (upTo <= this.scannedUpTo) continue;
          const servers = await destinationsWithPendingPdus(this.options.db, { after: this.scannedUpTo, upTo });
          this.scannedUpTo = upTo;
          await this.wakeAll(servers);
        } catch (err) {
          this.options.logger.warn({ err }, 'fanout scan failed; the next poll retries');
        }
      } while (this.scanAgain && this.started);
    })().finally(() => {
      this.scanning = undefined;
    });
  }

  /** Wakes the queues of these servers (those of our shards), reading new queues' state in one query. */
  private async wakeAll(servers: string[]): Promise<void> {
    const queues = servers.map((s) => this.queueFor(s)).filter((q): q is DestinationQueue => q !== undefined);
    const fresh = queues.filter((q) => q.needsState).map((q) => q.serverName);
    if (fresh.length > 0) {
      const states = await loadDestinationStates(this.options.db, fresh);
      for (const q of queues) {
        const st = states.get(q.serverName);
        if (st) q.setState(st);
      }
    }
    for (const q of queues) q.wake();
  }

  private queueFor(serverName: string): DestinationQueue | undefined {
    if (serverName === this.options.serverName || !this.owns(serverName)) return undefined;
    let q = this.queues.get(serverName);
    if (!q) {
      q = new DestinationQueue(serverName, this.options.db, this.store, this.options.sender, this.settings, this.options.logger);
      this.queues.set(serverName, q);
    }
    return q;
  }

  private async onShardChange(change: ShardChange): Promise<void> {
    if (change.lost.length > 0) {
      const lost = new Set(change.lost);
      for (const [name, q] of this.queues) {
        if (!lost.has(shardOf(name, this.settings.shardCount))) continue;
        this.queues.delete(name);
        // Not awaited here: a transaction in flight (up to its deadline) must not hold up the
        // lease round, or this replica's other leases could lapse meanwhile. stop() waits for it.
        const stopping = q.stop().finally(() => this.stopping.delete(stopping));
        this.stopping.add(stopping);
      }
    }
    if (change.acquired.length > 0) {
      // A shard taken over may hold a backlog of its previous owner: every pending destination of it.
      const acquired = new Set(change.acquired);
      const pending = new Set([...await destinationsWithPendingPdus(this.options.db), ...await destinationsWithPendingEdus(this.options.db)]);
      await this.wakeAll([...pending].filter((s) => acquired.has(shardOf(s, this.settings.shardCount))));
    }
    this.options.logger.info({ replica: this.replicaId, acquired: change.acquired.length, lost: change.lost.length, owned: this.ownedShards().length }, 'fanout shards changed');
  }

  private eduChain: Promise<void> = Promise.resolve();

  private async onEdu(edu: OutboundEdu): Promise<void> {
    if (!edu || typeof edu.eduType !== 'string' || !edu.content || typeof edu.content !== 'object' || !edu.to) {
      this.options.logger.warn({ edu }, 'edu.outbound: malformed message dropped');
      return;
    }
    let destinations: string[];
    try {
      destinations = 'roomId' in edu.to ? await joinedServersOfRoom(this.options.db, edu.to.roomId) : edu.to.destinations;
    } catch (err) {
      this.options.logger.warn({ err }, 'edu.outbound: could not read the joined servers');
      return;
    }
    if (!Array.isArray(destinations)) return;
    for (const d of new Set(destinations)) {
      if (typeof d !== 'string' || !isValidServerName(d)) continue;
      const queue = this.queueFor(d);
      if (!queue) continue;
      const out = { edu_type: edu.eduType, content: edu.content };
      // To-device messages are kept until delivered, across restarts; the others are ephemeral.
      let persistedId: number | undefined;
      if (DURABLE_EDU_TYPES.has(edu.eduType)) {
        persistedId = await savePendingEdu(this.options.db, d, out).catch((err: unknown) => {
          this.options.logger.warn({ err, destination: d }, 'edu.outbound: could not keep a to-device EDU; sending it from memory');
          return undefined;
        });
      }
      queue.addEdu(out, persistedId);
    }
  }
}
