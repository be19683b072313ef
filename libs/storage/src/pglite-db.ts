import { mkdir } from 'node:fs/promises';
import { PGlite, type Results, type Transaction } from '@electric-sql/pglite';
import type { Db, Queryable, QueryResult } from './db.js';
import { assertNotInTransaction, runMarkedAsTransaction } from './in-transaction.js';
import { INT8_ARRAY_OID, INT8_OID, parseInt8, parseInt8Array } from './int8.js';

export interface PgliteDbOptions {
  /** A folder for the database files, or 'memory://' (or undefined) for an in-memory database. */
  dataDir?: string;
}

function toResult<Row>(result: Results<Row>): QueryResult<Row> {
  return { rows: result.rows, rowCount: result.rowCount ?? result.affectedRows ?? 0 };
}

function transactionQueryable(tx: Transaction): Queryable {
  return {
    async query<Row>(sql: string, params?: unknown[]) {
      return toResult<Row>(await tx.query<Row>(sql, params));
    },
    async exec(sql: string) {
      await tx.exec(sql);
    },
  };
}

/**
 * PGlite is one PostgreSQL backend in this process: one connection. Its transaction() holds a
 * mutex for the whole callback, and plain queries wait for it, so concurrent transactions run
 * one after another, each seeing the previous one's committed work.
 */
export async function createPgliteDb(options: PgliteDbOptions = {}): Promise<Db> {
  const inMemory = options.dataDir === undefined || options.dataDir === 'memory://';
  if (!inMemory) await mkdir(options.dataDir!, { recursive: true });
  const pglite = await PGlite.create(inMemory ? undefined : options.dataDir, {
    parsers: { [INT8_OID]: parseInt8, [INT8_ARRAY_OID]: parseInt8Array },
  });

  const db: Db = {
    kind: 'pglite',
    async query<Row>(sql: string, params?: unknown[]) {
      assertNotInTransaction(db, 'db.query');
      return toResult<Row>(await pglite.query<Row>(sql, params));
    },
    async exec(sql: string) {
      assertNotInTransaction(db, 'db.exec');
      await pglite.exec(sql);
    },
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      assertNotInTransaction(db, 'db.transaction');
      return pglite.transaction((tx) => runMarkedAsTransaction(db, () => fn(transactionQueryable(tx))));
    },
    async close() {
      if (!pglite.closed) await pglite.close();
    },
  };
  return db;
}
