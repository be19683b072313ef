import type { Db } from './db.js';
import { createPgliteDb } from './pglite-db.js';
import { createPostgresDb } from './postgres-db.js';

export interface CreateDbOptions {
  /** postgres:// or postgresql:// url: PostgreSQL through a `pg` pool. Otherwise PGlite. */
  url?: string;
  /** PGlite only: the data folder; 'memory://' or omitted for an in-memory database. */
  dataDir?: string;
  /** PostgreSQL only: maximum pooled connections (default 10). */
  poolSize?: number;
}

/** Opens the database the configuration names; both engines give the same Db interface. */
export async function createDb(options: CreateDbOptions = {}): Promise<Db> {
  if (options.url !== undefined && options.url !== '') {
    if (!/^postgres(ql)?:\/\//.test(options.url)) {
      throw new Error(`database url must start with postgres:// or postgresql:// (got "${options.url.replace(/\/\/[^@/]*@/, '//***@')}"); leave it unset to use the embedded PGlite database`);
    }
    return createPostgresDb({ url: options.url, poolSize: options.poolSize });
  }
  return createPgliteDb({ dataDir: options.dataDir });
}
