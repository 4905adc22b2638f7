import { sql, type Transaction } from 'kysely';
import type { CatalogDialect } from './dialect.js';
import type { CatalogSchema } from './schema.js';

/**
 * Bulk loading: a table's secondary indexes and constraints are dropped before
 * millions of rows go in and built again from their own definitions afterwards
 * (one sort per index instead of one tree insert per row and index; the same
 * advice as PostgreSQL's "Populating a Database"). Run it in the transaction
 * that loads: if the load fails, the drops roll back with it.
 *
 * - PostgreSQL: every index but the primary key and partial ones, unique and
 *   foreign-key constraints included (restored from `pg_get_indexdef` /
 *   `pg_get_constraintdef`).
 * - SQLite: the indexes created by name but partial ones (`sqlite_master.sql`); the
 *   automatic indexes of UNIQUE columns cannot be dropped and stay. Foreign keys are
 *   checked per statement only when `PRAGMA foreign_keys` is on, which the caller decides.
 *
 * Partial indexes stay: they hold the few rows that match their WHERE (pending work,
 * failures), so keeping them up costs little, while building one again reads the
 * whole table like any other.
 */

export interface SetAsideIndexes {
  /** What was dropped, `table.name`. */
  names: string[];
  /** Builds everything that was dropped again, unique constraints before foreign keys; tells how long each took. */
  restore(onEach?: (name: string, ms: number) => void): Promise<void>;
}

type Trx = Transaction<CatalogSchema>;

export async function setAsideIndexes(
  trx: Trx,
  dialect: CatalogDialect,
  tables: readonly string[],
): Promise<SetAsideIndexes> {
  return dialect === 'postgres' ? setAsidePostgres(trx, tables) : setAsideSqlite(trx, tables);
}

async function setAsidePostgres(trx: Trx, tables: readonly string[]): Promise<SetAsideIndexes> {
  const constraints = await sql<{ tbl: string; name: string; kind: string; def: string }>`
    select c.conrelid::regclass::text as tbl, c.conname as name, c.contype as kind,
           pg_get_constraintdef(c.oid) as def
    from pg_constraint c
    where c.conrelid = any(cast(${[...tables]} as regclass[])) and c.contype in ('u', 'f')
    order by c.contype, c.conname`.execute(trx);
  const indexes = await sql<{ tbl: string; name: string; def: string }>`
    select x.indrelid::regclass::text as tbl, i.relname as name, pg_get_indexdef(i.oid) as def
    from pg_index x join pg_class i on i.oid = x.indexrelid
    where x.indrelid = any(cast(${[...tables]} as regclass[]))
      and not x.indisprimary
      and x.indpred is null
      and not exists (
        select 1 from pg_constraint c where c.conindid = x.indexrelid and c.contype in ('p', 'u', 'x'))
    order by i.relname`.execute(trx);
  // Foreign keys first ('f' sorts before 'u').
  for (const c of constraints.rows)
    await sql`alter table ${sql.id(c.tbl)} drop constraint ${sql.id(c.name)}`.execute(trx);
  for (const i of indexes.rows) await sql`drop index ${sql.id(i.name)}`.execute(trx);
  return {
    names: [...constraints.rows, ...indexes.rows].map((r) => `${r.tbl}.${r.name}`),
    async restore(onEach) {
      for (const i of indexes.rows)
        await timed(`${i.tbl}.${i.name}`, () => sql.raw(i.def).execute(trx), onEach);
      // Unique constraints before the foreign keys that may lean on them.
      for (const c of [...constraints.rows].reverse())
        await timed(
          `${c.tbl}.${c.name}`,
          () =>
            sql`alter table ${sql.id(c.tbl)} add constraint ${sql.id(c.name)} ${sql.raw(c.def)}`.execute(trx),
          onEach,
        );
    },
  };
}

async function setAsideSqlite(trx: Trx, tables: readonly string[]): Promise<SetAsideIndexes> {
  const indexes = await sql<{ tbl: string; name: string; def: string }>`
    select tbl_name as tbl, name, sql as def from sqlite_master
    where type = 'index' and sql is not null and tbl_name in (${sql.join([...tables])})
      and lower(sql) not like '% where %'
    order by name`.execute(trx);
  for (const i of indexes.rows) await sql`drop index ${sql.id(i.name)}`.execute(trx);
  return {
    names: indexes.rows.map((r) => `${r.tbl}.${r.name}`),
    async restore(onEach) {
      for (const i of indexes.rows)
        await timed(`${i.tbl}.${i.name}`, () => sql.raw(i.def).execute(trx), onEach);
    },
  };
}

async function timed(
  name: string,
  run: () => Promise<unknown>,
  onEach: ((name: string, ms: number) => void) | undefined,
): Promise<void> {
  const started = performance.now();
  await run();
  onEach?.(name, performance.now() - started);
}
