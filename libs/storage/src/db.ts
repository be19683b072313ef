/**
 * One query interface over PostgreSQL (`pg`) and PGlite. Repositories and migrations are
 * written against this and run unchanged on both: same SQL, same placeholders ($1, $2, ...).
 */
export interface QueryResult<Row> {
  rows: Row[];
  /** Rows affected by INSERT/UPDATE/DELETE (0 when the driver does not say). */
  rowCount: number;
}

export interface Queryable {
  query<Row = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<QueryResult<Row>>;
}

export interface Db extends Queryable {
  /** Runs fn inside BEGIN/COMMIT on one connection; ROLLBACK and rethrow on error. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
  /** 'postgres' or 'pglite': for the rare place where the engines differ (never in SQL of repositories). */
  readonly kind: 'postgres' | 'pglite';
}
