import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import type { CatalogLocation } from './catalog-url.js';
import type { CatalogDialect } from './dialect.js';
import { catalogMigrations } from './migrations/index.js';
import type { CatalogSchema } from './schema.js';
import { withStatementCache } from './statement-cache.js';

export type CatalogDb = Kysely<CatalogSchema>;

export interface Catalog {
  db: CatalogDb;
  dialect: CatalogDialect;
  close(): Promise<void>;
}

const PG_INT8 = 20;

/** Opens the catalog (creating the SQLite file and its directory if needed). Does not migrate. */
export function openCatalog(location: CatalogLocation, options: { poolSize?: number } = {}): Catalog {
  if (location.dialect === 'sqlite') {
    mkdirSync(dirname(location.path), { recursive: true });
    const database = new SqliteDatabase(location.path);
    database.pragma('journal_mode = WAL');
    // FULL: a report is acknowledged only after its transaction is on disk.
    database.pragma('synchronous = FULL');
    database.pragma('foreign_keys = ON');
    database.pragma('busy_timeout = 10000');
    const db = new Kysely<CatalogSchema>({
      dialect: new SqliteDialect({ database: withStatementCache(database) }),
    });
    return { db, dialect: 'sqlite', close: () => db.destroy() };
  }
  const pool = new pg.Pool({
    connectionString: location.url,
    max: options.poolSize ?? 10,
    // BIGINT columns hold epoch milliseconds and ids: well inside 2^53.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === PG_INT8
          ? (v: string) => Number(v)
          : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // An idle connection that PostgreSQL closes (restart, failover, admin) is dropped
  // from the pool and replaced on the next query; it must not crash the process.
  pool.on('error', (error) => {
    process.stderr.write(`ubackup: an idle catalog connection was closed: ${error.message}\n`);
  });
  const db = new Kysely<CatalogSchema>({ dialect: new PostgresDialect({ pool }) });
  return { db, dialect: 'postgres', close: () => db.destroy() };
}

export interface MigrationOutcome {
  applied: string[];
}

/** Brings the catalog to the newest schema; safe to run from several servers at once. */
export async function migrateCatalog(catalog: Catalog): Promise<MigrationOutcome> {
  const migrator = new Migrator({
    db: catalog.db,
    provider: { getMigrations: async () => catalogMigrations(catalog.dialect) },
  });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    const cause = error instanceof Error ? error.message : String(error ?? 'unknown error');
    throw new Error(`catalog migration ${failed?.migrationName ?? ''} failed: ${cause}`);
  }
  return { applied: (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName) };
}
