import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, services, type TestDatabase } from '@tessera/testing';
import { createDb, DbUsageError, type Db } from './index.js';

/**
 * One suite, three setups: PostgreSQL, PGlite in memory, PGlite in a data folder. Every
 * behaviour the repositories rely on must hold on all of them.
 */
interface Engine {
  open(): Promise<Db>;
  cleanup(): Promise<void>;
}

function dbSuite(name: string, skip: boolean, makeEngine: () => Promise<Engine>) {
  describe.skipIf(skip)(`Db on ${name}`, () => {
    let engine: Engine;
    let db: Db;

    beforeAll(async () => {
      engine = await makeEngine();
      db = await engine.open();
      await db.exec(`
        CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, n int8, doc jsonb, tags int8[]);
        CREATE TABLE counter (k text PRIMARY KEY, v int NOT NULL);
        INSERT INTO counter VALUES ('c', 0);
      `);
    });
    afterAll(async () => {
      await db?.close();
      await engine?.cleanup();
    });

    it('runs queries with $n parameters and reports rowCount', async () => {
      const inserted = await db.query<{ id: number }>('INSERT INTO items (name, n) VALUES ($1, $2), ($3, $4) RETURNING id', ['a', 1, 'b', 2]);
      expect(inserted.rowCount).toBe(2);
      expect(inserted.rows.map((r) => typeof r.id)).toEqual(['number', 'number']);
      const selected = await db.query<{ name: string; n: number }>('SELECT name, n FROM items WHERE n >= $1 ORDER BY name', [1]);
      expect(selected.rows).toEqual([{ name: 'a', n: 1 }, { name: 'b', n: 2 }]);
      const updated = await db.query('UPDATE items SET n = n + 10 WHERE name = $1', ['a']);
      expect(updated.rowCount).toBe(1);
      const none = await db.query('UPDATE items SET n = 0 WHERE name = $1', ['nobody']);
      expect(none.rowCount).toBe(0);
    });

    it('passes parameters as values, never as SQL', async () => {
      const evil = "x'); DROP TABLE items; --";
      await db.query('INSERT INTO items (name) VALUES ($1)', [evil]);
      const { rows } = await db.query<{ name: string }>('SELECT name FROM items WHERE name = $1', [evil]);
      expect(rows).toEqual([{ name: evil }]);
    });

    it('maps int8 to JS numbers, including counts, arrays and the largest safe integer', async () => {
      const max = Number.MAX_SAFE_INTEGER;
      await db.query('INSERT INTO items (name, n, tags) VALUES ($1, $2, $3)', ['big', max, '{1,9007199254740991,NULL}']);
      const { rows } = await db.query<{ n: number; tags: (number | null)[]; c: number }>(
        'SELECT n, tags, (SELECT count(*) FROM items) AS c FROM items WHERE name = $1',
        ['big'],
      );
      expect(rows[0]!.n).toBe(max);
      expect(rows[0]!.tags).toEqual([1, max, null]);
      expect(typeof rows[0]!.c).toBe('number');
      expect(rows[0]!.c).toBeGreaterThan(0);
    });

    it('refuses an int8 beyond 2^53 instead of rounding it', async () => {
      await expect(db.query('SELECT 9007199254740993::int8 AS n')).rejects.toThrow(/MAX_SAFE_INTEGER/);
      // The connection stays usable afterwards.
      const { rows } = await db.query<{ n: string }>('SELECT 9007199254740993::int8::text AS n');
      expect(rows[0]!.n).toBe('9007199254740993');
    });

    it('stores and returns jsonb, and the other common types', async () => {
      const doc = { a: [1, 'two', { three: null }], b: true };
      await db.query('INSERT INTO items (name, doc) VALUES ($1, $2)', ['json', JSON.stringify(doc)]);
      const { rows } = await db.query<{ doc: unknown }>('SELECT doc FROM items WHERE name = $1', ['json']);
      expect(rows[0]!.doc).toEqual(doc);
      const types = await db.query<{ i: number; b: boolean; num: string; t: Date; bytes: Uint8Array; nul: null }>(
        `SELECT 7::int4 AS i, true AS b, 1.50::numeric AS num, '2024-01-02T03:04:05Z'::timestamptz AS t, '\\x0102'::bytea AS bytes, NULL AS nul`,
      );
      const row = types.rows[0]!;
      expect(row.i).toBe(7);
      expect(row.b).toBe(true);
      expect(row.num).toBe('1.50');
      expect(row.t).toBeInstanceOf(Date);
      expect(row.t.toISOString()).toBe('2024-01-02T03:04:05.000Z');
      expect(row.bytes).toBeInstanceOf(Uint8Array);
      expect([...row.bytes]).toEqual([1, 2]);
      expect(row.nul).toBeNull();
    });

    it('reports SQL errors with the PostgreSQL error code', async () => {
      await expect(db.query('INSERT INTO items (name) VALUES ($1)', ['a'])).rejects.toMatchObject({ code: '23505' });
      await expect(db.query('SELECT * FROM no_such_table')).rejects.toMatchObject({ code: '42P01' });
    });

    it('commits a transaction', async () => {
      const id = await db.transaction(async (tx) => {
        const { rows } = await tx.query<{ id: number }>('INSERT INTO items (name) VALUES ($1) RETURNING id', ['tx-commit']);
        await tx.query('UPDATE items SET n = $1 WHERE id = $2', [42, rows[0]!.id]);
        return rows[0]!.id;
      });
      const { rows } = await db.query<{ n: number }>('SELECT n FROM items WHERE id = $1', [id]);
      expect(rows).toEqual([{ n: 42 }]);
    });

    it('rolls back a transaction that throws, and rethrows the error', async () => {
      const failure = new Error('boom');
      await expect(
        db.transaction(async (tx) => {
          await tx.query('INSERT INTO items (name) VALUES ($1)', ['tx-rollback']);
          throw failure;
        }),
      ).rejects.toBe(failure);
      const { rows } = await db.query('SELECT 1 FROM items WHERE name = $1', ['tx-rollback']);
      expect(rows).toEqual([]);
    });

    it('rolls back a transaction whose statement fails', async () => {
      await expect(
        db.transaction(async (tx) => {
          await tx.query('INSERT INTO items (name) VALUES ($1)', ['tx-sqlfail']);
          await tx.query('INSERT INTO items (name) VALUES ($1)', ['a']); // unique violation
        }),
      ).rejects.toMatchObject({ code: '23505' });
      const { rows } = await db.query('SELECT 1 FROM items WHERE name = $1', ['tx-sqlfail']);
      expect(rows).toEqual([]);
      // The engine is usable after the failed transaction.
      expect((await db.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    });

    it('runs concurrent transactions without losing an update', async () => {
      // Each transaction locks the row and increments it; 25 at once must add up to 25.
      const before = (await db.query<{ v: number }>(`SELECT v FROM counter WHERE k = 'c'`)).rows[0]!.v;
      await Promise.all(
        Array.from({ length: 25 }, (_, i) =>
          db.transaction(async (tx) => {
            const { rows } = await tx.query<{ v: number }>(`SELECT v FROM counter WHERE k = 'c' FOR UPDATE`);
            await tx.query('INSERT INTO items (name, n) VALUES ($1, $2)', [`conc-${i}`, rows[0]!.v]);
            await tx.query(`UPDATE counter SET v = $1 WHERE k = 'c'`, [rows[0]!.v + 1]);
          }),
        ),
      );
      const after = (await db.query<{ v: number }>(`SELECT v FROM counter WHERE k = 'c'`)).rows[0]!.v;
      expect(after - before).toBe(25);
      // Every transaction saw a distinct counter value: none read a stale one.
      const seen = await db.query<{ n: number }>(`SELECT DISTINCT n FROM items WHERE name LIKE 'conc-%'`);
      expect(seen.rowCount).toBe(25);
    });

    it('keeps plain queries working while transactions run', async () => {
      const results = await Promise.all([
        db.transaction(async (tx) => (await tx.query<{ x: number }>('SELECT 1 AS x')).rows[0]!.x),
        db.query<{ x: number }>('SELECT 2 AS x').then((r) => r.rows[0]!.x),
        db.transaction(async (tx) => (await tx.query<{ x: number }>('SELECT 3 AS x')).rows[0]!.x),
      ]);
      expect(results).toEqual([1, 2, 3]);
    });

    it('refuses db.query and nested db.transaction inside a transaction, with a clear error', async () => {
      await expect(db.transaction(async () => db.query('SELECT 1'))).rejects.toBeInstanceOf(DbUsageError);
      await expect(db.transaction(async () => db.transaction(async () => 1))).rejects.toThrow(/use the tx argument/);
      // After the transaction, work started inside it may use the db again.
      let later: Promise<unknown> | undefined;
      await db.transaction(async () => {
        later = new Promise((resolve) => setTimeout(resolve, 0)).then(() => db.query('SELECT 1 AS one'));
      });
      await expect(later).resolves.toMatchObject({ rows: [{ one: 1 }] });
    });

    it('runs multi-statement exec inside a transaction, all or nothing', async () => {
      await expect(
        db.transaction(async (tx) => {
          await tx.exec(`CREATE TABLE exec_a (x int); INSERT INTO exec_a VALUES (1);`);
          await tx.exec(`INSERT INTO exec_a VALUES ('not a number')`);
        }),
      ).rejects.toMatchObject({ code: '22P02' });
      await expect(db.query('SELECT * FROM exec_a')).rejects.toMatchObject({ code: '42P01' });
    });
  });
}

dbSuite('PostgreSQL', !services.postgres, async () => {
  const testDb: TestDatabase = await createTestDatabase();
  return { open: () => createDb({ url: testDb.url, poolSize: 5 }), cleanup: () => testDb.drop() };
});

dbSuite('PGlite in memory', false, async () => ({
  open: () => createDb({ dataDir: 'memory://' }),
  cleanup: async () => undefined,
}));

dbSuite('PGlite in a data folder', false, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-pglite-'));
  return { open: () => createDb({ dataDir: join(dir, 'db') }), cleanup: () => rm(dir, { recursive: true, force: true }) };
});

describe('PGlite data folder', () => {
  it('keeps committed data across close and reopen', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tessera-pglite-'));
    try {
      const first = await createDb({ dataDir: dir });
      expect(first.kind).toBe('pglite');
      await first.exec('CREATE TABLE kept (k text PRIMARY KEY, v int8)');
      await first.transaction((tx) => tx.query('INSERT INTO kept VALUES ($1, $2)', ['x', 123]));
      await first.close();

      const second = await createDb({ dataDir: dir });
      const { rows } = await second.query('SELECT k, v FROM kept');
      expect(rows).toEqual([{ k: 'x', v: 123 }]);
      await second.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('createDb options', () => {
  it('refuses a url that is not postgres://, naming what to do', async () => {
    await expect(createDb({ url: 'mysql://user:secret@host/db' })).rejects.toThrow(/postgres:\/\/.*PGlite/);
    await expect(createDb({ url: 'mysql://user:secret@host/db' })).rejects.not.toThrow(/secret/);
  });

  it.skipIf(!services.postgres)('fails at creation when PostgreSQL refuses the connection', async () => {
    await expect(createDb({ url: 'postgres://postgres@127.0.0.1:5432/tessera_no_such_database' })).rejects.toMatchObject({ code: '3D000' });
  });
});
