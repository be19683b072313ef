import { describe, expect, it } from 'vitest';
import { createPgliteDb } from './pglite-db.js';
import { PgliteAutovacuum } from './pglite-autovacuum.js';

describe('PgliteAutovacuum', () => {
  it('vacuums a table whose deleted rows pass the threshold, analyzes changed tables, and leaves quiet ones alone', async () => {
    const db = await createPgliteDb();
    try {
      await db.exec(`
        CREATE TABLE queue (id bigserial PRIMARY KEY, body text NOT NULL);
        CREATE TABLE quiet (id int PRIMARY KEY);
        CREATE TABLE "odd ""name" (id int PRIMARY KEY);
      `);
      await db.query(`INSERT INTO queue (body) SELECT 'message ' || g FROM generate_series(1, 2000) g`);
      await db.query(`INSERT INTO "odd ""name" SELECT g FROM generate_series(1, 100) g`);
      const maintenance = new PgliteAutovacuum(db);
      // Counters of the inserts: past the analyze threshold (and queue's past the insert threshold).
      const first = await maintenance.round();
      expect(first.analyzed).toEqual(expect.arrayContaining(['queue', 'odd "name']));
      expect(first.vacuumed).toContain('queue');
      expect(first.analyzed).not.toContain('quiet');

      await db.query('DELETE FROM queue WHERE id <= 1500');
      const dead = async () => {
        await db.query('SELECT pg_stat_force_next_flush()');
        return Number((await db.query<{ n: string }>(`SELECT n_dead_tup AS n FROM pg_stat_user_tables WHERE relname = 'queue'`)).rows[0]!.n);
      };
      expect(await dead()).toBe(1500);
      const second = await maintenance.round();
      expect(second.vacuumed).toEqual(['queue']);
      expect(await dead()).toBe(0);
      const { rows } = await db.query<{ v: string | null; a: string | null }>(`SELECT last_vacuum AS v, last_analyze AS a FROM pg_stat_user_tables WHERE relname = 'queue'`);
      expect(rows[0]!.v).not.toBeNull();
      expect(rows[0]!.a).not.toBeNull();

      // Nothing changed since: nothing to do.
      expect(await maintenance.round()).toEqual({ vacuumed: [], analyzed: [] });
      await maintenance.stop();
    } finally {
      await db.close();
    }
  });
});
