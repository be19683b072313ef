import type { Db } from './db.js';

/** How often the tables' counters are looked at. */
const ROUND_INTERVAL_MS = 60_000;

/** PostgreSQL's autovacuum defaults (autovacuum_vacuum_threshold / _scale_factor and their kin). */
const VACUUM_THRESHOLD = 50;
const VACUUM_SCALE = 0.2;
const INSERT_THRESHOLD = 1000;
const INSERT_SCALE = 0.2;
const ANALYZE_THRESHOLD = 50;
const ANALYZE_SCALE = 0.1;

interface TableCounters {
  schemaname: string;
  relname: string;
  n_live_tup: number | string;
  n_dead_tup: number | string;
  n_mod_since_analyze: number | string;
  n_ins_since_vacuum: number | string;
}

export interface MaintenanceRound {
  vacuumed: string[];
  analyzed: string[];
}

/**
 * PGlite is one PostgreSQL backend without the autovacuum launcher, so nothing ever vacuums or
 * analyzes its tables: the rows deleted from queues (to-device messages, federation
 * destinations, claimed one-time keys, sessions) would stay as dead tuples and the tables and
 * their indexes would only grow. This does the launcher's job inside the process, with its
 * thresholds: a table is vacuumed when its dead tuples pass 50 + 20% of its live ones (or its
 * inserts since the last vacuum pass 1000 + 20%, as PostgreSQL 13+ does for insert-only tables),
 * and analyzed when its changes since the last ANALYZE pass 50 + 10%. One table at a time, so
 * the server's own statements run between them (PGlite runs one statement at a time).
 */
export class PgliteAutovacuum {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;

  constructor(
    private readonly db: Db,
    private readonly onError: (error: unknown) => void = (error) => console.warn(`pglite autovacuum: ${(error as Error).message}`),
  ) {}

  start(intervalMs = ROUND_INTERVAL_MS): void {
    this.timer ??= setInterval(() => {
      this.running ??= this.round()
        .catch(this.onError)
        .finally(() => (this.running = undefined));
    }, intervalMs).unref();
  }

  /** Stops the rounds and waits for one in progress. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One look at every table of the public schema; vacuums and analyzes those past the thresholds. */
  async round(): Promise<MaintenanceRound> {
    // The backend sends its counters to the shared statistics at most once a second; ask for them now.
    await this.db.query('SELECT pg_stat_force_next_flush()');
    const { rows } = await this.db.query<TableCounters>(
      `SELECT schemaname, relname, n_live_tup, n_dead_tup, n_mod_since_analyze, n_ins_since_vacuum
       FROM pg_stat_user_tables WHERE schemaname = 'public' ORDER BY relname`,
    );
    const done: MaintenanceRound = { vacuumed: [], analyzed: [] };
    for (const t of rows) {
      const live = Number(t.n_live_tup);
      const vacuum = Number(t.n_dead_tup) > VACUUM_THRESHOLD + VACUUM_SCALE * live || Number(t.n_ins_since_vacuum) > INSERT_THRESHOLD + INSERT_SCALE * live;
      const analyze = Number(t.n_mod_since_analyze) > ANALYZE_THRESHOLD + ANALYZE_SCALE * live;
      if (!vacuum && !analyze) continue;
      const table = `${quoteIdentifier(t.schemaname)}.${quoteIdentifier(t.relname)}`;
      await this.db.exec(vacuum ? `VACUUM${analyze ? ' (ANALYZE)' : ''} ${table}` : `ANALYZE ${table}`);
      if (vacuum) done.vacuumed.push(t.relname);
      if (analyze) done.analyzed.push(t.relname);
    }
    return done;
  }
}

function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
