// Types only: `pg` itself is loaded when a PostgreSQL database is opened, so the embedded
// homeserver (PGlite) does not carry it (~4 MB resident).
import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { Db, Queryable, QueryResult } from './db.js';
import { assertNotInTransaction, runMarkedAsTransaction } from './in-transaction.js';
import { INT8_ARRAY_OID, INT8_OID, parseInt8, parseInt8Array } from './int8.js';

export interface PostgresDbOptions {
  url: string;
  /** Maximum connections in the pool. Default 10. */
  poolSize?: number;
  /** Called when an idle pooled connection fails (server restart, network); default logs a warning. */
  onIdleError?: (error: Error) => void;
}

/** Per-pool type parsers: the global pg.types stays untouched for other users of `pg`. */
function typeParsers(types: typeof pg.types): pg.CustomTypesConfig {
  return {
    getTypeParser(oid: number, format?: 'text' | 'binary') {
      if (oid === INT8_OID) return parseInt8;
      if (oid === INT8_ARRAY_OID) return parseInt8Array;
      return types.getTypeParser(oid, format ?? 'text');
    },
  } as pg.CustomTypesConfig;
}

function toResult<Row>(result: pg.QueryResult): QueryResult<Row> {
  return { rows: result.rows as Row[], rowCount: result.rowCount ?? 0 };
}

/**
 * Long parameterized statements inside transactions (the appends' set-based statements of a few
 * hundred characters to a few kB) are prepared once per connection and then only bound and
 * executed: PostgreSQL no longer parses and plans them on every append (measured: 0.42 -> 0.32
 * ms of PostgreSQL CPU per event in bench/pipeline). Their texts are fixed, so the number of
 * prepared statements per connection stays small. Short and one-off statements stay unnamed.
 */
const PREPARE_MIN_LENGTH = 200;
const statementNames = new Map<string, string>();
function prepared(sql: string, params: unknown[] | undefined): pg.QueryConfig | undefined {
  if (!params || sql.length < PREPARE_MIN_LENGTH) return undefined;
  let name = statementNames.get(sql);
  if (!name) statementNames.set(sql, (name = `t_${createHash('sha1').update(sql).digest('hex').slice(0, 20)}`));
  return { name, text: sql, values: params };
}

function clientQueryable(client: pg.PoolClient): Queryable {
  return {
    async query<Row>(sql: string, params?: unknown[]) {
      const q = prepared(sql, params);
      return toResult<Row>(q ? await client.query(q) : await client.query(sql, params));
    },
    async exec(sql: string) {
      // No parameters: pg uses the simple query protocol, which accepts several statements.
      await client.query(sql);
    },
  };
}

export async function createPostgresDb(options: PostgresDbOptions): Promise<Db> {
  const { default: pgModule } = await import('pg');
  const pool = new pgModule.Pool({ connectionString: options.url, max: options.poolSize ?? 10, types: typeParsers(pgModule.types) });
  const onIdleError = options.onIdleError ?? ((error: Error) => console.warn(`postgres: idle connection failed: ${error.message}`));
  // Without a listener an idle client's error would crash the process.
  pool.on('error', onIdleError);
  // Fail fast on a wrong url instead of at the first query.
  const probe = await pool.connect().catch(async (error: unknown) => {
    await pool.end().catch(() => undefined);
    throw error;
  });
  probe.release();

  const db: Db = {
    kind: 'postgres',
    async query<Row>(sql: string, params?: unknown[]) {
      assertNotInTransaction(db, 'db.query');
      return toResult<Row>(await pool.query(sql, params));
    },
    async exec(sql: string) {
      assertNotInTransaction(db, 'db.exec');
      await pool.query(sql);
    },
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      assertNotInTransaction(db, 'db.transaction');
      const client = await pool.connect();
      let broken: Error | undefined;
      try {
        await client.query('BEGIN');
        const result = await runMarkedAsTransaction(db, () => fn(clientQueryable(client)));
        await client.query('COMMIT');
        return result;
      } catch (error) {
        try {
          await client.query('ROLLBACK');
        } catch (rollbackError) {
          // The connection is unusable: tell the pool to discard it rather than reuse it.
          broken = rollbackError as Error;
        }
        throw error;
      } finally {
        client.release(broken);
      }
    },
    async close() {
      await pool.end();
    },
  };
  return db;
}
