/**
 * One query interface over PostgreSQL (`pg`) and PGlite. Repositories and migrations are
 * written against this and run unchanged on both: same SQL, same placeholders ($1, $2, ...).
 *
 * Value mapping, identical on both engines (see int8.ts):
 * - int8/bigint (and COUNT(*), SUM of ints, bigserial): a JS number. A value outside
 *   Number.MAX_SAFE_INTEGER fails the query loudly rather than silently losing precision.
 * - int2/int4: number; numeric: string (exact); boolean: boolean; text: string.
 * - json/jsonb: parsed value. Pass json parameters as JSON.stringify(value): `pg` would turn a
 *   JS array into a PostgreSQL array literal, not JSON.
 * - timestamptz: Date. bytea: Uint8Array (a Buffer on `pg`, which is a Uint8Array).
 */
export interface QueryResult<Row> {
  rows: Row[];
  /** Rows affected by INSERT/UPDATE/DELETE, or returned by SELECT (0 when the driver does not say). */
  rowCount: number;
}

export interface Queryable {
  /** One statement, parameters as $1, $2, ... */
  query<Row = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<QueryResult<Row>>;
  /** One or more statements separated by `;`, no parameters (migrations, DDL). */
  exec(sql: string): Promise<void>;
}

export interface Db extends Queryable {
  /**
   * Runs fn inside BEGIN/COMMIT on one connection; ROLLBACK and rethrow on error.
   * Inside fn use only `tx`: calling db.query or db.transaction there throws (on PGlite it
   * would wait forever for the single connection; on PostgreSQL it would silently run outside
   * the transaction). On PGlite concurrent transactions run one after another.
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
  /** 'postgres' or 'pglite': for the rare place where the engines differ (never in SQL of repositories). */
  readonly kind: 'postgres' | 'pglite';
}

/** Thrown for misuse of the Db interface (not for SQL errors, which come from the engine). */
export class DbUsageError extends Error {
  override readonly name = 'DbUsageError';
}
