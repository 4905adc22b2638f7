import { type QueryExecutorProvider, type RawBuilder, SqliteAdapter, sql } from 'kysely';

/**
 * Runs independent data-modifying statements (none reads or writes what
 * another one writes) at once. On PostgreSQL they go as one statement,
 * `with s0 as (…), s1 as (…) select 1`, so a transaction pays one round trip
 * for all of them: every round trip costs the server a socket write and a
 * wake-up of the database backend, which at ingest rates is most of its CPU.
 * PostgreSQL runs each data-modifying WITH part exactly once, on the same
 * snapshot. SQLite (in process, no round trips) runs them one after the other.
 */
export async function runTogether(
  db: QueryExecutorProvider,
  statements: ReadonlyArray<RawBuilder<unknown>>,
): Promise<void> {
  if (db.getExecutor().adapter instanceof SqliteAdapter || statements.length === 1) {
    for (const statement of statements) await statement.execute(db);
    return;
  }
  if (statements.length === 0) return;
  const parts = statements.map((statement, i) => sql`${sql.raw(`s${i}`)} as (${statement})`);
  await sql`with ${sql.join(parts)} select 1`.execute(db);
}
