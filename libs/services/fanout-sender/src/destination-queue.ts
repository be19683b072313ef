/**
 * One remote server's queue: at most one transaction in flight, PDUs read from the database
 * (event_destinations, oldest first, at most 50 per transaction), EDUs held in memory (at
 * most 100 per transaction), exponential backoff with jitter after a failure, and catch-up
 * (only the latest PDU per room) when too much piled up during an outage.
 */
import {
  countPendingPdus, deletePendingEdus, lastPendingPosition, latestPduPerRoom, loadDestinationState, loadPendingEdus, markFailed,
  type Db, type DestinationState, type QueuedPdu,
} from '@tessera/storage';
import type { QueueStore } from './batched-queue-store.js';
import { backoffDelayMs, type FanoutSenderSettings } from './options.js';
import type { TransactionSender } from './transaction-sender.js';

export interface Edu {
  edu_type: string;
  content: Record<string, unknown>;
}

export interface QueueLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

interface Batch {
  pdus: QueuedPdu[];
  edus: Edu[];
  /** On success the destination has everything up to here (catch-up skips the rest). */
  deliveredUpTo: number | null;
}

export class DestinationQueue {
  private edus: Edu[] = [];
  /** The fanout_pending_edus row of each EDU kept in the database (to-device), deleted once delivered. */
  private readonly persistedIds = new WeakMap<Edu, number>();
  private readonly queuedIds = new Set<number>();
  /** Whether the EDUs left in the database (by a previous run or another replica) were read. */
  private persistedLoaded = false;
  private state: DestinationState | undefined;
  private running: Promise<void> | undefined;
  private wakeAgain = false;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Set after a load or a failure: check whether the backlog calls for catch-up. */
  private checkBacklog = true;
  /** Catch-up in progress: the latest PDU per room still to send, and where it ends. */
  private catchUp: { pdus: QueuedPdu[]; upTo: number } | undefined;

  constructor(
    readonly serverName: string,
    private readonly db: Db,
    /** The per-transaction reads and writes, gathered across queues (see BatchedQueueStore). */
    private readonly store: QueueStore,
    private readonly sender: TransactionSender,
    private readonly settings: FanoutSenderSettings,
    private readonly logger: QueueLogger,
  ) {}

  /** New work may be there: send now unless a transaction is in flight or a retry is pending. */
  wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.wakeAgain = true;
      return;
    }
    this.running = this.run().finally(() => {
      this.running = undefined;
    });
  }

  /** Whether the delivery state still has to be read from the database. */
  get needsState(): boolean {
    return this.state === undefined;
  }

  /** Hands over the delivery state read in bulk (see FanoutSender.wakeAll). */
  setState(state: DestinationState): void {
    this.state ??= state;
  }

  /** `persistedId`: its row in fanout_pending_edus, when it is kept there until delivered. */
  addEdu(edu: Edu, persistedId?: number): void {
    if (this.stopped) return;
    if (persistedId !== undefined) {
      if (this.queuedIds.has(persistedId)) return;
      this.queuedIds.add(persistedId);
      this.persistedIds.set(edu, persistedId);
    }
    this.edus.push(edu);
    if (this.edus.length > this.settings.maxQueuedEdus) this.edus.splice(0, this.edus.length - this.settings.maxQueuedEdus);
    this.wake();
  }

  /** Forget the backoff (the server showed it is back) and send. */
  retryNow(): void {
    if (!this.state || this.state.failures === 0 || this.stopped) return;
    this.state.retryAtMs = 0;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.wake();
  }

  /** Stops sending; resolves once the transaction in flight (if any) has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    await this.running;
  }

  get queuedEdus(): number {
    return this.edus.length;
  }

  private async run(): Promise<void> {
    do {
      this.wakeAgain = false;
      try {
        this.state ??= await loadDestinationState(this.db, this.serverName);
        if (!this.persistedLoaded) await this.loadPersistedEdus();
        while (!this.stopped) {
          const wait = this.state.retryAtMs - Date.now();
          if (wait > 0) {
            this.scheduleRetry(wait);
            return;
          }
          const batch = await this.nextBatch(this.state);
          if (!batch) break;
          if (!(await this.send(this.state, batch))) return;
          // A short batch was the whole backlog: what arrived since woke this queue (wakeAgain),
          // so reading the queue again now would only find it empty.
          if (batch.pdus.length < this.settings.maxPdusPerTransaction && !this.catchUp && this.edus.length === 0) break;
        }
      } catch (err) {
        // A database error: try again later like a failed transaction.
        this.logger.warn({ err, destination: this.serverName }, 'fanout queue failed; retrying');
        this.scheduleRetry(backoffDelayMs(1, this.settings));
        return;
      }
    } while (this.wakeAgain && !this.stopped);
  }

  /** The EDUs kept in the database for this server, ahead of those queued since (older first). */
  private async loadPersistedEdus(): Promise<void> {
    const rows = await loadPendingEdus(this.db, this.serverName);
    this.persistedLoaded = true;
    const older: Edu[] = [];
    for (const { id, edu } of rows) {
      if (this.queuedIds.has(id)) continue;
      this.queuedIds.add(id);
      this.persistedIds.set(edu, id);
      older.push(edu);
    }
    if (older.length > 0) this.edus.unshift(...older);
  }

  private scheduleRetry(delayMs: number): void {
    if (this.stopped || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.wake();
    }, delayMs);
    this.retryTimer.unref?.();
  }

  private async nextBatch(state: DestinationState): Promise<Batch | undefined> {
    const edus = this.edus.slice(0, this.settings.maxEdusPerTransaction);
    if (!this.catchUp) {
      const pdus = await this.store.nextPdus(this.serverName, state.sentPosition, this.settings.maxPdusPerTransaction);
      // Fewer than a full transaction and not above the threshold: that is the whole backlog.
      // Otherwise count it (after a load or a failure) to decide on catch-up.
      const check = this.checkBacklog && (pdus.length === this.settings.maxPdusPerTransaction || pdus.length > this.settings.catchUpAfter);
      this.checkBacklog = false;
      if (!check || !(await this.planCatchUp(state))) {
        if (pdus.length === 0 && edus.length === 0) return undefined;
        return { pdus, edus, deliveredUpTo: pdus.length > 0 ? pdus[pdus.length - 1]!.streamPos : null };
      }
    }
    const plan = this.catchUp!;
    const pdus = plan.pdus.slice(0, this.settings.maxPdusPerTransaction);
    const last = pdus.length === plan.pdus.length;
    return { pdus, edus, deliveredUpTo: last ? plan.upTo : null };
  }

  /** After a long outage: plan to send only the latest PDU of each room. True when planned. */
  private async planCatchUp(state: DestinationState): Promise<boolean> {
    const pending = await countPendingPdus(this.db, this.serverName, state.sentPosition, this.settings.catchUpAfter + 1);
    if (pending <= this.settings.catchUpAfter) return false;
    const upTo = await lastPendingPosition(this.db, this.serverName);
    const pdus = await latestPduPerRoom(this.db, this.serverName, state.sentPosition, upTo);
    this.catchUp = { pdus, upTo };
    this.logger.info({ destination: this.serverName, pending: `>${this.settings.catchUpAfter}`, rooms: pdus.length }, 'catching up: sending the latest event per room');
    return true;
  }

  /** Sends one transaction; false when it failed (a retry is scheduled). */
  private async send(state: DestinationState, batch: Batch): Promise<boolean> {
    try {
      const results = await this.sender.send(this.serverName, batch.pdus.map((p) => p.pdu), batch.edus);
      for (const [eventId, r] of Object.entries(results)) {
        // The remote refused the PDU: retrying would not change its mind.
        if (r.error) this.logger.warn({ destination: this.serverName, eventId, error: r.error }, 'remote refused a PDU');
      }
    } catch (err) {
      state.failures++;
      const delay = backoffDelayMs(state.failures, this.settings);
      state.retryAtMs = Date.now() + delay;
      // Plan catch-up afresh on the next attempt: more may have piled up by then.
      this.checkBacklog = true;
      this.catchUp = undefined;
      const message = err instanceof Error ? err.message : String(err);
      // A long outage retries often: warn on the first failure and every tenth, the rest is info.
      const log = state.failures === 1 || state.failures % 10 === 0 ? this.logger.warn : this.logger.info;
      log.call(this.logger, { destination: this.serverName, failures: state.failures, retryInMs: delay, error: message }, 'transaction failed');
      await markFailed(this.db, this.serverName, state.failures, state.retryAtMs, message).catch(() => undefined);
      this.scheduleRetry(delay);
      return false;
    }
    this.edus.splice(0, batch.edus.length);
    const delivered = batch.edus.map((e) => this.persistedIds.get(e)).filter((id): id is number => id !== undefined);
    if (delivered.length > 0) {
      delivered.forEach((id) => this.queuedIds.delete(id));
      // Not deleted: delivered once more after a restart, which the receiver drops (message_id).
      await deletePendingEdus(this.db, delivered).catch((err: unknown) => this.logger.warn({ err, destination: this.serverName }, 'could not forget delivered EDUs'));
    }
    if (this.catchUp) {
      this.catchUp.pdus.splice(0, batch.pdus.length);
      if (batch.deliveredUpTo !== null) this.catchUp = undefined;
    }
    const recovered = state.failures > 0;
    state.failures = 0;
    state.retryAtMs = 0;
    if (batch.deliveredUpTo !== null) {
      state.sentPosition = Math.max(state.sentPosition, batch.deliveredUpTo);
      await this.store.markDelivered(this.serverName, state.sentPosition, Date.now());
    } else if (recovered) {
      await this.store.markDelivered(this.serverName, state.sentPosition, Date.now());
    }
    return true;
  }
}
