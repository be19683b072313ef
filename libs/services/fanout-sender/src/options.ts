/**
 * Settings of fanout-sender. Defaults suit production; tests and benches shorten the times.
 * From the environment (read by the service module):
 *   FANOUT_REPLICA_ID            this replica's name in the lease table (default: host + pid + random)
 *   FANOUT_LEASE_TTL_MS          shard lease lifetime; renewed every third of it (default 15 s)
 *   FANOUT_BACKOFF_INITIAL_MS    first retry delay after a failed transaction (default 2 s)
 *   FANOUT_BACKOFF_MAX_MS        longest retry delay (default 10 min)
 *   FANOUT_CATCH_UP_AFTER        more undelivered PDUs than this for one server: send only the
 *                                latest per room, the server fetches the gap (default 1000)
 *   FANOUT_POLL_MS               re-scan of the log for work whose notification was lost (default 5 s)
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';

export interface FanoutSenderSettings {
  replicaId: string;
  /** Destinations are hashed into this many shards; replicas lease shards. Same value on every replica. */
  shardCount: number;
  leaseTtlMs: number;
  maxPdusPerTransaction: number;
  maxEdusPerTransaction: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  catchUpAfter: number;
  pollIntervalMs: number;
  /** EDUs kept per destination while it is unreachable; the oldest go first (they are ephemeral). */
  maxQueuedEdus: number;
  /** Deadline of one /send request. */
  requestTimeoutMs: number;
}

export const DEFAULT_SETTINGS: Omit<FanoutSenderSettings, 'replicaId'> = {
  shardCount: 64,
  leaseTtlMs: 15_000,
  // The spec's limits for one transaction.
  maxPdusPerTransaction: 50,
  maxEdusPerTransaction: 100,
  backoffInitialMs: 2_000,
  backoffMaxMs: 10 * 60_000,
  catchUpAfter: 1_000,
  pollIntervalMs: 5_000,
  maxQueuedEdus: 1_000,
  requestTimeoutMs: 30_000,
};

export function defaultReplicaId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

export function resolveSettings(partial: Partial<FanoutSenderSettings> = {}): FanoutSenderSettings {
  const s = { ...DEFAULT_SETTINGS, replicaId: defaultReplicaId(), ...partial };
  const positive = (name: keyof FanoutSenderSettings) => {
    const v = s[name];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new Error(`fanout-sender: ${name} must be a positive integer, got ${String(v)}`);
  };
  (['shardCount', 'leaseTtlMs', 'maxPdusPerTransaction', 'maxEdusPerTransaction', 'backoffInitialMs', 'backoffMaxMs', 'catchUpAfter',
    'pollIntervalMs', 'maxQueuedEdus', 'requestTimeoutMs'] as const).forEach(positive);
  if (s.maxPdusPerTransaction > 50 || s.maxEdusPerTransaction > 100) throw new Error('fanout-sender: a transaction holds at most 50 PDUs and 100 EDUs');
  if (s.backoffMaxMs < s.backoffInitialMs) throw new Error('fanout-sender: backoffMaxMs must not be below backoffInitialMs');
  return s;
}

export function settingsFromEnvironment(env: NodeJS.ProcessEnv = process.env): Partial<FanoutSenderSettings> {
  const out: Partial<FanoutSenderSettings> = {};
  const num = (name: string, key: keyof FanoutSenderSettings) => {
    const raw = env[name]?.trim();
    if (!raw) return;
    const v = Number(raw);
    if (!Number.isInteger(v) || v <= 0) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
    (out as Record<string, number>)[key] = v;
  };
  num('FANOUT_LEASE_TTL_MS', 'leaseTtlMs');
  num('FANOUT_BACKOFF_INITIAL_MS', 'backoffInitialMs');
  num('FANOUT_BACKOFF_MAX_MS', 'backoffMaxMs');
  num('FANOUT_CATCH_UP_AFTER', 'catchUpAfter');
  num('FANOUT_POLL_MS', 'pollIntervalMs');
  if (env.FANOUT_REPLICA_ID?.trim()) out.replicaId = env.FANOUT_REPLICA_ID.trim();
  return out;
}

/** Exponential backoff with jitter: between half and all of initial * 2^(failures-1), capped. */
export function backoffDelayMs(failures: number, settings: Pick<FanoutSenderSettings, 'backoffInitialMs' | 'backoffMaxMs'>, random = Math.random): number {
  const exp = Math.min(settings.backoffMaxMs, settings.backoffInitialMs * 2 ** Math.min(30, Math.max(0, failures - 1)));
  return Math.round(exp / 2 + (exp / 2) * random());
}
