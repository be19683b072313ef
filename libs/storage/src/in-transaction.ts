import { AsyncLocalStorage } from 'node:async_hooks';
import { DbUsageError } from './db.js';

/**
 * Marks the async context of a running transaction callback, so that a stray db.query or a
 * nested db.transaction inside it fails with a clear message instead of deadlocking (PGlite)
 * or escaping the transaction (PostgreSQL). Keyed by Db instance: two databases never interfere.
 * A mark ends with its transaction, so work merely started inside the callback (a timer, a
 * background task) may use the db once the transaction is over.
 */
interface Mark {
  db: object;
  open: boolean;
}

const activeTransactions = new AsyncLocalStorage<Mark[]>();

export async function runMarkedAsTransaction<T>(db: object, fn: () => Promise<T>): Promise<T> {
  const mark: Mark = { db, open: true };
  try {
    return await activeTransactions.run([...(activeTransactions.getStore() ?? []), mark], fn);
  } finally {
    mark.open = false;
  }
}

export function assertNotInTransaction(db: object, what: string): void {
  if (activeTransactions.getStore()?.some((mark) => mark.open && mark.db === db)) {
    throw new DbUsageError(`${what} called inside db.transaction(): use the tx argument of the transaction callback instead`);
  }
}
