import { type Kysely, type Migration, sql } from 'kysely';
import type { CatalogDialect } from '../dialect.js';

/**
 * Indexes for the dashboard's pages at fleet scale (docs/performance.md, `npm run bench:pages`).
 *
 * - The overview sums today's backups (count, failures, stored bytes) since the
 *   viewer's midnight: up to 400 k rows late in the day. `backups_created_totals`
 *   holds every column that sum reads, so it is answered from the index alone
 *   instead of one heap visit per row. It leads with `created_at`, so it also
 *   serves everything `backups_created` served, which it replaces (one index to
 *   keep up on ingest, not two).
 * - PostgreSQL answers from an index alone only for heap pages its visibility map
 *   marks all-visible, which only VACUUM does. By default autovacuum visits
 *   `backups` after 20 % of it changed (days, at 12 M rows); here after about
 *   0.2 % (an hour or two), so only the newest pages need heap visits.
 */
export function dashboardIndexesMigration(dialect: CatalogDialect): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createIndex('backups_created_totals')
        .on('backups')
        .columns(['created_at', 'status', 'stored_at', 'size'])
        .execute();
      await db.schema.dropIndex('backups_created').execute();
      if (dialect === 'postgres') {
        await sql`alter table backups set (
          autovacuum_vacuum_insert_scale_factor = 0.002,
          autovacuum_vacuum_scale_factor = 0.01,
          autovacuum_analyze_scale_factor = 0.01)`.execute(db);
      }
    },
  };
}
