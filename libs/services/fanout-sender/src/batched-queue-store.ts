/**
 * The reads and writes every destination queue makes per transaction (its next PDUs, the
 * record of a delivery), gathered across queues: a fanout to hundreds of servers wakes them all
 * at once, and one query for all of them replaces one round trip each on a small pool.
 */
import { markDeliveredMany, nextPdusForMany, type NextPdusRequest, type Queryable, type QueuedPdu } from '@tessera/storage';

/** What a DestinationQueue needs for its hot path (batched here, direct in simple setups). */
export interface QueueStore {
  nextPdus(serverName: string, after: number, limit: number): Promise<QueuedPdu[]>;
  markDelivered(serverName: string, position: number, nowMs: number): Promise<void>;
}

interface Waiting<Req, Res> {
  req: Req;
  resolve: (res: Res) => void;
  reject: (err: unknown) => void;
}

/**
 * Gathers requests made in the same turn of the event loop, and those made while
 * `maxInFlight` batches are running, into one call of `run` (at most `maxBatch` each).
 */
export class Coalescer<Req, Res> {
  private waiting: Array<Waiting<Req, Res>> = [];
  private scheduled = false;
  private inFlight = 0;

  constructor(
    private readonly run: (reqs: Req[]) => Promise<Res[]>,
    private readonly maxBatch: number,
    private readonly maxInFlight: number,
  ) {}

  submit(req: Req): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      this.waiting.push({ req, resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.flush();
      });
    });
  }

  private flush(): void {
    while (this.waiting.length > 0 && this.inFlight < this.maxInFlight) {
      const batch = this.waiting.splice(0, this.maxBatch);
      this.inFlight++;
      this.run(batch.map((w) => w.req)).then(
        (results) => batch.forEach((w, i) => w.resolve(results[i]!)),
        (err: unknown) => batch.forEach((w) => w.reject(err)),
      ).finally(() => {
        this.inFlight--;
        this.flush();
      });
    }
  }
}

export class BatchedQueueStore implements QueueStore {
  private readonly reads: Coalescer<NextPdusRequest, QueuedPdu[]>;
  private readonly deliveries: Coalescer<{ serverName: string; position: number; nowMs: number }, void>;

  constructor(db: Queryable, options: { maxBatch?: number; maxInFlight?: number } = {}) {
    const maxBatch = options.maxBatch ?? 500;
    // Two batches of each kind at most: the rest of the pool stays free for other work, and
    // requests arriving meanwhile make the next batch bigger instead of queueing on the pool.
    const maxInFlight = options.maxInFlight ?? 2;
    this.reads = new Coalescer(async (reqs) => {
      // One queue runs at a time per server, but a queue being stopped (shard lost) and its
      // successor may overlap: a server asked for twice goes into a second round.
      const rounds: Array<Map<string, NextPdusRequest>> = [];
      for (const r of reqs) {
        const round = rounds.find((m) => !m.has(r.serverName));
        if (round) round.set(r.serverName, r);
        else rounds.push(new Map([[r.serverName, r]]));
      }
      const answers = await Promise.all(rounds.map((m) => nextPdusForMany(db, [...m.values()])));
      return reqs.map((r) => {
        const i = rounds.findIndex((m) => m.get(r.serverName) === r);
        return answers[i]!.get(r.serverName)!;
      });
    }, maxBatch, maxInFlight);
    this.deliveries = new Coalescer<{ serverName: string; position: number; nowMs: number }, void>(async (reqs) => {
      await markDeliveredMany(db, reqs, Math.max(...reqs.map((r) => r.nowMs)));
      return reqs.map(() => undefined);
    }, maxBatch, maxInFlight);
  }

  nextPdus(serverName: string, after: number, limit: number): Promise<QueuedPdu[]> {
    return this.reads.submit({ serverName, after, limit });
  }

  markDelivered(serverName: string, position: number, nowMs: number): Promise<void> {
    return this.deliveries.submit({ serverName, position, nowMs });
  }
}
