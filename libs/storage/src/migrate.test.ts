import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, services, type TestDatabase } from '@tessera/testing';
import { appliedMigrations, createDb, migrate, MigrationError, type Db, type Migration } from './index.js';

const first: Migration[] = [
  { id: 'demo_0001_things', sql: 'CREATE TABLE things (id bigserial PRIMARY KEY, name text NOT NULL);' },
  { id: 'demo_0002_things_kind', sql: `ALTER TABLE things ADD COLUMN kind text NOT NULL DEFAULT 'plain'; CREATE INDEX things_kind ON things (kind);` },
];
const other: Migration[] = [{ id: 'other_0001_notes', sql: 'CREATE TABLE notes (body text);' }];

interface Engine {
  open(): Promise<Db>;
  cleanup(): Promise<void>;
}

function migrateSuite(name: string, skip: boolean, makeEngine: () => Promise<Engine>) {
  describe.skipIf(skip)(`migrate on ${name}`, () => {
    let engine: Engine;
    beforeAll(async () => {
      engine = await makeEngine();
    });
    afterAll(async () => {
      await engine?.cleanup();
    });

    it('applies in id order whatever the input order, then does nothing the second time', async () => {
      const db = await engine.open();
      try {
        expect(await appliedMigrations(db)).toEqual([]);
        const run1 = await migrate(db, [...other, first[1]!, first[0]!]);
        expect(run1.applied).toEqual(['demo_0001_things', 'demo_0002_things_kind', 'other_0001_notes']);
        await db.query('INSERT INTO things (name) VALUES ($1)', ['x']);
        const { rows } = await db.query('SELECT name, kind FROM things');
        expect(rows).toEqual([{ name: 'x', kind: 'plain' }]);

        const run2 = await migrate(db, [...first, ...other]);
        expect(run2.applied).toEqual([]);
        expect(await appliedMigrations(db)).toEqual(['demo_0001_things', 'demo_0002_things_kind', 'other_0001_notes']);
      } finally {
        await db.close();
      }
    });

    it('applies only the new migrations of a longer list', async () => {
      const db = await engine.open();
      try {
        const third = { id: 'demo_0003_things_note', sql: 'ALTER TABLE things ADD COLUMN note text;' };
        const run = await migrate(db, [...first, ...other, third]);
        expect(run.applied).toEqual(['demo_0003_things_note']);
        await db.query('UPDATE things SET note = $1', ['ok']);
      } finally {
        await db.close();
      }
    });

    it('rolls back a failing migration whole and records nothing for it', async () => {
      const db = await engine.open();
      try {
        const bad = { id: 'demo_0004_bad', sql: 'CREATE TABLE half_done (x int); SELECT no_such_column FROM things;' };
        await expect(migrate(db, [...first, bad])).rejects.toThrow(/migration demo_0004_bad failed: .*no_such_column/);
        await expect(db.query('SELECT * FROM half_done')).rejects.toMatchObject({ code: '42P01' });
        expect(await appliedMigrations(db)).not.toContain('demo_0004_bad');
      } finally {
        await db.close();
      }
    });

    it('refuses to run when an applied migration was edited', async () => {
      const db = await engine.open();
      try {
        const edited = [{ ...first[0]!, sql: first[0]!.sql + ' -- edited' }, first[1]!];
        await expect(migrate(db, edited)).rejects.toThrow(/demo_0001_things was changed after it was applied/);
      } finally {
        await db.close();
      }
    });

    it('refuses duplicate and malformed ids before touching the database', async () => {
      const db = await engine.open();
      try {
        await expect(migrate(db, [first[0]!, { id: 'demo_0001_things', sql: 'SELECT 1' }])).rejects.toThrow(/appears twice/);
        await expect(migrate(db, [{ id: 'Bad-Id', sql: 'SELECT 1' }])).rejects.toBeInstanceOf(MigrationError);
        await expect(migrate(db, [{ id: 'demo_0009_empty', sql: '  ' }])).rejects.toThrow(/no SQL/);
      } finally {
        await db.close();
      }
    });
  });
}

migrateSuite('PostgreSQL', !services.postgres, async () => {
  const testDb: TestDatabase = await createTestDatabase();
  return { open: () => createDb({ url: testDb.url, poolSize: 3 }), cleanup: () => testDb.drop() };
});

migrateSuite('PGlite in a data folder', false, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-pglite-'));
  return { open: () => createDb({ dataDir: dir }), cleanup: () => rm(dir, { recursive: true, force: true }) };
});

describe('concurrent migrate', () => {
  const many: Migration[] = Array.from({ length: 6 }, (_, i) => ({
    id: `race_${String(i + 1).padStart(4, '0')}`,
    // Not idempotent on purpose: applying one twice fails with "already exists".
    sql: `CREATE TABLE race_${i + 1} (x int); INSERT INTO race_${i + 1} VALUES (${i + 1});`,
  }));

  it.skipIf(!services.postgres)('applies each migration exactly once when several processes start at once on PostgreSQL', async () => {
    const testDb = await createTestDatabase();
    // Separate pools stand for separate processes: they share nothing but the database.
    const dbs = await Promise.all(Array.from({ length: 4 }, () => createDb({ url: testDb.url, poolSize: 2 })));
    try {
      const results = await Promise.all(dbs.map((db) => migrate(db, many)));
      const appliedByAnyone = results.flatMap((r) => r.applied).sort();
      expect(appliedByAnyone).toEqual(many.map((m) => m.id));
      expect(await appliedMigrations(dbs[0]!)).toEqual(many.map((m) => m.id));
      for (let i = 1; i <= many.length; i++) {
        expect((await dbs[0]!.query(`SELECT x FROM race_${i}`)).rows).toEqual([{ x: i }]);
      }
    } finally {
      await Promise.all(dbs.map((db) => db.close()));
      await testDb.drop();
    }
  });

  it('applies each migration exactly once when called concurrently on one PGlite', async () => {
    const db = await createDb({ dataDir: 'memory://' });
    try {
      const results = await Promise.all([migrate(db, many), migrate(db, many), migrate(db, many)]);
      expect(results.flatMap((r) => r.applied).sort()).toEqual(many.map((m) => m.id));
      expect(await appliedMigrations(db)).toEqual(many.map((m) => m.id));
    } finally {
      await db.close();
    }
  });
});
