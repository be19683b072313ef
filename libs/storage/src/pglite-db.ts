import { execFile } from 'node:child_process';
import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PGlite, type Results, type Transaction } from '@electric-sql/pglite';
import { BYTEA_OID, parseBytea, serializeBytea } from './bytea.js';
import type { Db, Queryable, QueryResult } from './db.js';
import { assertNotInTransaction, runMarkedAsTransaction } from './in-transaction.js';
import { INT8_ARRAY_OID, INT8_OID, parseInt8, parseInt8Array } from './int8.js';
import { PgliteAutovacuum } from './pglite-autovacuum.js';
import { cacheDataFileSizes } from './pglite-file-sizes.js';
import { PgliteStatements } from './pglite-statements.js';

export interface PgliteDbOptions {
  /** A folder for the database files, or 'memory://' (or undefined) for an in-memory database. */
  dataDir?: string;
}

/**
 * plan_cache_mode=force_custom_plan: statements are prepared (pglite-statements.ts) but planned at
 * each run. PGlite runs no autovacuum, so no ANALYZE ever invalidates a cached generic plan: one
 * made while a table was nearly empty (a new server's first minutes) stays, and the events
 * table was scanned at every append (bench/client: 144,485 pages read from disk in 5 s of sends,
 * 35 per send; 213 with custom plans, and 832 -> 1,110 sends/s).
 *
 * Small buffers for a homeserver of a few users: PostgreSQL's defaults (128MB shared_buffers)
 * cost ~120 MB of resident memory in the WASM heap. Measured (PGlite 0.5, an existing folder,
 * after 200 writes): 345 MB RSS with the defaults, 222 MB with 16MB shared_buffers.
 * PostgreSQL touches all of shared_buffers at start: the WASM memory's resident pages idle are
 * 29 MB with 16MB, 21 MB with 8MB. Pages beyond it are read back from the OS page cache.
 */
const PGLITE_SETTINGS = ['shared_buffers=8MB', 'wal_buffers=1MB', 'work_mem=2MB', 'plan_cache_mode=force_custom_plan'];

/**
 * initdb of a new data folder, in a short-lived child process: PGlite keeps the memory
 * initdb grew to (~500 MB RSS more than opening an existing folder), and a process that
 * exits gives it all back.
 */
async function initDataDirInChild(dataDir: string): Promise<void> {
  const script = `const { PGlite } = await import(process.argv[1]);
const db = await PGlite.create(process.argv[2], { postgresqlconf: JSON.parse(process.argv[3]) });
await db.close();`;
  await new Promise<void>((resolve, reject) => {
    execFile(
      process.execPath,
      ['--input-type=module', '-e', script, pathToFileURL(createRequire(import.meta.url).resolve('@electric-sql/pglite')).href, dataDir, JSON.stringify(PGLITE_SETTINGS)],
      { timeout: 300_000 },
      (error, _stdout, stderr) => (error ? reject(new Error(`creating the PGlite database in ${dataDir} failed: ${stderr || error.message}`)) : resolve()),
    );
  });
}

/**
 * PGlite's 9 MB WebAssembly binary, compiled from bytes read into a WebAssembly.Memory rather
 * than a Buffer (PGlite's own loader reads it with readFile). glibc raises its mmap threshold
 * to the size of the largest mmapped block freed (up to 32 MB) and keeps free heap up to twice
 * that before it gives any back: once the 9 MB Buffer was freed, the process's malloc heap
 * kept ~18 MB it no longer used. A WebAssembly.Memory is mapped by V8 itself, not by malloc.
 */
/** Node's WebAssembly global: the project's TypeScript libs (ES2023 and Node's) declare its types but not the value. */
const wasm = (globalThis as unknown as {
  WebAssembly: { Memory: new (size: { initial: number; maximum: number }) => { buffer: ArrayBuffer }; compile(bytes: Uint8Array): Promise<WebAssembly.Module> };
}).WebAssembly;

async function compilePgliteWasm(): Promise<WebAssembly.Module> {
  const path = new URL('./pglite.wasm', pathToFileURL(createRequire(import.meta.url).resolve('@electric-sql/pglite')));
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const pages = Math.ceil(size / 65536);
    const bytes = new Uint8Array(new wasm.Memory({ initial: pages, maximum: pages }).buffer, 0, size);
    for (let read = 0; read < size; ) {
      const n = readSync(fd, bytes, read, size - read, read);
      if (n === 0) throw new Error(`${path.pathname}: unexpected end of file`);
      read += n;
    }
    return await wasm.compile(bytes);
  } finally {
    closeSync(fd);
  }
}

function toResult<Row>(result: Results<Row>): QueryResult<Row> {
  return { rows: result.rows, rowCount: result.rowCount ?? result.affectedRows ?? 0 };
}

function transactionQueryable(pglite: PGlite, statements: PgliteStatements, tx: Transaction): Queryable {
  return {
    async query<Row>(sql: string, params?: unknown[]) {
      // transaction() holds the transaction mutex; a statement takes the query mutex, as tx.query does.
      return toResult<Row>(await pglite._runExclusiveQuery(() => statements.query<Row>(sql, params ?? [], true)));
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
  if (!inMemory) {
    await mkdir(options.dataDir!, { recursive: true });
    if (!existsSync(join(options.dataDir!, 'PG_VERSION'))) await initDataDirInChild(options.dataDir!);
  }
  const pglite = await PGlite.create(inMemory ? undefined : options.dataDir, {
    parsers: { [INT8_OID]: parseInt8, [INT8_ARRAY_OID]: parseInt8Array, [BYTEA_OID]: parseBytea },
    serializers: { [BYTEA_OID]: serializeBytea },
    postgresqlconf: PGLITE_SETTINGS,
    pgliteWasmModule: await compilePgliteWasm(),
  });

  // Each planned statement asks the size of its relations' files: answered from memory (see there).
  if (!inMemory) cacheDataFileSizes(pglite);
  const statements = new PgliteStatements(pglite);
  const db: Db = {
    kind: 'pglite',
    async query<Row>(sql: string, params?: unknown[]) {
      assertNotInTransaction(db, 'db.query');
      if (!pglite.ready) await pglite._checkReady(); // throws once closed, as PGlite's query() does
      // The mutexes PGlite's own query() takes: after any running transaction, one statement at a time.
      return toResult<Row>(await pglite._runExclusiveTransaction(() => pglite._runExclusiveQuery(() => statements.query<Row>(sql, params ?? [], false))));
    },
    async exec(sql: string) {
      assertNotInTransaction(db, 'db.exec');
      await pglite.exec(sql);
    },
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      assertNotInTransaction(db, 'db.transaction');
      return pglite.transaction((tx) => runMarkedAsTransaction(db, () => fn(transactionQueryable(pglite, statements, tx))));
    },
    async close() {
      await autovacuum.stop();
      if (!pglite.closed) await pglite.close();
    },
  };
  // PGlite has no autovacuum launcher: without this, deleted rows would never be reclaimed.
  const autovacuum = new PgliteAutovacuum(db);
  autovacuum.start();
  return db;
}
