import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';

/** Node's gc() under --expose-gc: a full collection, or a scavenge of the young generation only. */
export type GcFunction = (options?: { type?: 'major' | 'minor' }) => void;

/**
 * Gives an idle process's heap back to the system, the young generation above all.
 *
 * Why: V8 grows the young generation under load (up to twice --max-semi-space-size, 32 MB with
 * node's defaults) and shrinks it only in a collection that sees a low allocation rate over its
 * last ten or so collections. An idle process runs no collection at all, so what startup or a
 * busy spell grew stays resident for as long as the process is idle. A small young generation
 * keeps idle memory down but makes a busy server collect (and promote) far more often; with this
 * the process has a full-size young generation while busy and a small one while idle.
 *
 * Once the event loop has been idle (utilization at most `idleUtilization`) for `settleIntervals`
 * intervals: one full collection (the old generation's garbage), then a scavenge per interval (a
 * millisecond or less each) until the young generation shrinks, and a last full collection; then
 * nothing until it has grown again, and at most `maxCollections` per idle spell. A busy interval ends the spell.
 */
export interface IdleMemoryTrimOptions {
  gc: GcFunction;
  /** How often the loop's utilization is looked at (ms). */
  intervalMs?: number;
  /** Idle intervals before the spell's first collection: a short pause in traffic is not idleness. */
  settleIntervals?: number;
  /** At or under this event-loop utilization an interval counts as idle. */
  idleUtilization?: number;
  /** Collections per idle spell before giving up until the next busy spell. */
  maxCollections?: number;
}

export interface IdleMemoryTrim {
  /** Collections run so far. */
  readonly collections: number;
  stop(): void;
}

export function youngGenerationBytes(): number {
  return getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
}

export function startIdleMemoryTrim(options: IdleMemoryTrimOptions): IdleMemoryTrim {
  const { gc, intervalMs = 250, settleIntervals = 2, idleUtilization = 0.02, maxCollections = 40 } = options;
  let last: EventLoopUtilization = performance.eventLoopUtilization();
  let idleIntervals = 0;
  let inThisSpell = 0;
  let total = 0;
  // Time spent in our own last collection: not load (it would end the idle spell it belongs to).
  let ownMs = 0;
  // The young generation's size right after a collection shrank it: its floor. Unknown until one has.
  let floor: number | undefined;
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const { active, idle } = performance.eventLoopUtilization(now, last);
    last = now;
    const utilization = Math.max(0, active - ownMs) / Math.max(1, active + idle);
    ownMs = 0;
    if (utilization > idleUtilization) {
      idleIntervals = 0;
      inThisSpell = 0;
      return;
    }
    if (++idleIntervals <= settleIntervals) return;
    const before = youngGenerationBytes();
    if ((floor !== undefined && before <= floor) || inThisSpell >= maxCollections) return;
    const started = performance.now();
    gc(inThisSpell === 0 ? { type: 'major' } : { type: 'minor' });
    inThisSpell++;
    total++;
    const after = youngGenerationBytes();
    if (after < before) {
      floor = after;
      // What the scavenges promoted on the way is garbage by now: one more full collection.
      gc({ type: 'major' });
      total++;
    }
    ownMs = performance.now() - started;
  }, intervalMs);
  timer.unref();
  return {
    get collections() {
      return total;
    },
    stop: () => clearInterval(timer),
  };
}
