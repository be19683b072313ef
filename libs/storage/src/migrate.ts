import { createHash } from 'node:crypto';
import type { Db, Queryable } from './db.js';

/**
 * A schema migration. Each lib or service exports its own list, e.g.
 *
 *   export const clientApiMigrations: Migration[] = [
 *     { id: 'client_api_0001_accounts', sql: 'CREATE TABLE accounts (...);' },
 *   ];
 *
 * and the process that owns the database applies every list it needs in one call:
 *
 *   await migrate(db, [...eventLogMigrations, ...clientApiMigrations]);
 *
 * Ids are unique across all lists and applied in id order (plain string order), so start each
 * owner's ids with its own name and a zero-padded number: 'event_log_0001_events',
 * 'client_api_0001_accounts'. Tables belong to one owner (DESIGN), so the order between two
 * owners' lists never matters; inside a list the number orders the steps.
 *
 * A migration, once applied somewhere, is never edited: add a new one. The runner records a
 * checksum of each applied migration and refuses to start when the SQL has changed.
 */
export interface Migration {
  /** Unique, [a-z0-9_] only, e.g. 'event_log_0001_events'. */
  id: string;
  /** One or more statements; run in one transaction with the schema_migrations row. */
  sql: string;
}

export interface MigrateResult {
  /** Ids applied by this call, in order (empty when the schema was already up to date). */
  applied: string[];
}

export class MigrationError extends Error {
  override readonly name = 'MigrationError';
}

/** Arbitrary constant key for pg_advisory_xact_lock: serializes migrations across processes. */
const MIGRATION_LOCK_KEY = 7_265_636_581;

const ID_PATTERN = /^[a-z0-9_]+$/;

function checksum(sql: string): string {
  return createHash('sha256').update(sql).digest('hex');
}

function sortedAndChecked(migrations: Migration[]): Migration[] {
  const seen = new Set<string>();
  for (const m of migrations) {
    if (typeof m.id !== 'string' || !ID_PATTERN.test(m.id)) {
      throw new MigrationError(`migration id ${JSON.stringify(m.id)} is invalid: use lowercase letters, digits and _ (e.g. 'event_log_0001_events')`);
    }
    if (typeof m.sql !== 'string' || m.sql.trim() === '') {
      throw new MigrationError(`migration ${m.id} has no SQL`);
    }
    if (seen.has(m.id)) throw new MigrationError(`migration id ${m.id} appears twice: ids must be unique across all migration lists`);
    seen.add(m.id);
  }
  return [...migrations].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/**
 * Takes the cross-process migration lock (PostgreSQL) and makes sure the bookkeeping table
 * exists. Inside the lock, so that two processes starting at once do not race on CREATE TABLE.
 * PGlite is a single connection in one process: its transactions already run one at a time.
 */
async function lockAndPrepare(db: Db, tx: Queryable): Promise<void> {
  if (db.kind === 'postgres') await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
  await tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    id text PRIMARY KEY,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
  )`);
}

async function appliedChecksums(tx: Queryable): Promise<Map<string, string>> {
  const { rows } = await tx.query<{ id: string; checksum: string }>('SELECT id, checksum FROM schema_migrations');
  return new Map(rows.map((r) => [r.id, r.checksum]));
}

function assertUnchanged(m: Migration, recorded: string | undefined): void {
  if (recorded !== undefined && recorded !== checksum(m.sql)) {
    throw new MigrationError(`migration ${m.id} was changed after it was applied to this database: never edit an applied migration, add a new one (in development, drop the database or delete the data folder)`);
  }
}

/**
 * Applies the migrations not yet recorded in schema_migrations, in id order, each in its own
 * transaction together with its bookkeeping row. Idempotent; safe when several processes call
 * it at once on one PostgreSQL database (each step runs under an advisory lock and re-checks).
 */
export async function migrate(db: Db, migrations: Migration[]): Promise<MigrateResult> {
  const ordered = sortedAndChecked(migrations);
  const known = await db.transaction(async (tx) => {
    await lockAndPrepare(db, tx);
    return appliedChecksums(tx);
  });
  for (const m of ordered) assertUnchanged(m, known.get(m.id));

  const applied: string[] = [];
  for (const m of ordered) {
    if (known.has(m.id)) continue;
    const didApply = await db.transaction(async (tx) => {
      await lockAndPrepare(db, tx);
      // Another process may have applied it while we waited for the lock.
      const { rows } = await tx.query<{ checksum: string }>('SELECT checksum FROM schema_migrations WHERE id = $1', [m.id]);
      if (rows.length > 0) {
        assertUnchanged(m, rows[0]!.checksum);
        return false;
      }
      try {
        await tx.exec(m.sql);
      } catch (error) {
        throw new MigrationError(`migration ${m.id} failed: ${(error as Error).message}`, { cause: error });
      }
      await tx.query('INSERT INTO schema_migrations (id, checksum) VALUES ($1, $2)', [m.id, checksum(m.sql)]);
      return true;
    });
    if (didApply) applied.push(m.id);
  }
  return { applied };
}

/** Ids recorded in schema_migrations, in id order (empty before the first migrate). */
export async function appliedMigrations(db: Queryable): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>('SELECT id FROM schema_migrations ORDER BY id').catch((error: { code?: string }) => {
    if (error.code === '42P01') return { rows: [] as { id: string }[] };
    throw error;
  });
  return rows.map((r) => r.id);
}
