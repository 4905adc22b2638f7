import type { Database as BetterSqlite, Statement } from 'better-sqlite3';
import type { SqliteDatabase, SqliteStatement } from 'kysely';

/**
 * better-sqlite3 behind Kysely with prepared statements reused by SQL text.
 * Kysely prepares every query anew, and preparing cost more CPU than running
 * on the ingest path. Kysely runs one query at a time on the connection, so a
 * statement is never used by two queries at once. The cache is bounded.
 */
export function withStatementCache(database: BetterSqlite, capacity = 512): SqliteDatabase {
  const cache = new Map<string, Statement>();
  return {
    close: () => {
      cache.clear();
      database.close();
    },
    prepare(sql: string): SqliteStatement {
      const cached = cache.get(sql);
      if (cached) {
        // Keep recently used statements at the end (Map order) so the oldest is evicted first.
        cache.delete(sql);
        cache.set(sql, cached);
        return cached;
      }
      const statement = database.prepare(sql);
      cache.set(sql, statement);
      if (cache.size > capacity) {
        const oldest = cache.keys().next().value;
        if (oldest !== undefined) cache.delete(oldest);
      }
      return statement;
    },
  };
}
