import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { runTogether } from '../../src/catalog/run-together.js';
import { BACKENDS, freshCatalog } from '../support/catalog-backends.js';
import { stopSharedPostgres } from '../support/postgres.js';

afterAll(() => stopSharedPostgres());

describe.each(BACKENDS)('runTogether on %s', (backend) => {
  it('runs every statement exactly once, and none when one of them fails', async () => {
    const fresh = await freshCatalog(backend);
    try {
      const db = fresh.catalog.db;
      await sql`create table together_a (n integer not null)`.execute(db);
      await sql`create table together_b (n integer not null unique)`.execute(db);
      await db
        .transaction()
        .execute((trx) =>
          runTogether(trx, [
            sql`insert into together_a (n) values (1), (2)`,
            sql`insert into together_b (n) values (10)`,
            sql`update together_a set n = n + 100 where n = 1`,
          ]),
        );
      // One snapshot on PostgreSQL: the update sees the table as it was before the insert.
      const a = await sql<{ n: number }>`select n from together_a order by n`.execute(db);
      expect(a.rows.map((r) => Number(r.n))).toEqual(backend === 'postgres' ? [1, 2] : [2, 101]);
      const b = await sql<{ n: number }>`select n from together_b`.execute(db);
      expect(b.rows.map((r) => Number(r.n))).toEqual([10]);

      const failed = db
        .transaction()
        .execute((trx) =>
          runTogether(trx, [
            sql`insert into together_a (n) values (3)`,
            sql`insert into together_b (n) values (10)`,
          ]),
        );
      await expect(failed).rejects.toThrow(/unique|UNIQUE/);
      const after = await sql<{ n: number }>`select count(*) as n from together_a where n = 3`.execute(db);
      expect(Number(after.rows[0]?.n)).toBe(0);
      await runTogether(db, []);
    } finally {
      await fresh.cleanup();
    }
  });
});
