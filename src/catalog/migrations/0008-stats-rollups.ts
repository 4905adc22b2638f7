import { type Kysely, type Migration, sql } from 'kysely';
import { type CatalogDialect, columnTypes } from '../dialect.js';

/**
 * Statistics rollups (docs/operations.md "Statistics"), kept up to date in the
 * transactions that change what they count:
 * - `daily_stats` / `hourly_stats`: per bucket (UTC day or hour start of the
 *   backup's created_at) × business × backup type × node ('' while not stored):
 *   backups, failures, stored bytes, transfer time, transfers, deletions.
 * - `queue_stats`: per minute × cluster, jobs enqueued, done and dead.
 * Both are also keyed by a small `shard` (0 on SQLite): concurrent PostgreSQL
 * transactions add to different rows instead of queueing on one hot row;
 * readers sum over it.
 * Transfer jobs get `leased_at` (start of the current lease) and `transfer_ms`
 * (the completed lease's duration), with an index for the slowest transfers;
 * failed backups get an index for the top failing instances.
 */
export function statsRollupsMigration(dialect: CatalogDialect): Migration {
  const t = columnTypes(dialect);
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      for (const table of ['daily_stats', 'hourly_stats']) {
        await db.schema
          .createTable(table)
          .addColumn('bucket', t.bigint, (c) => c.notNull())
          .addColumn('game_id', 'text', (c) => c.notNull())
          .addColumn('type', 'text', (c) => c.notNull())
          .addColumn('node', 'text', (c) => c.notNull())
          .addColumn('shard', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('backups', t.bigint, (c) => c.notNull().defaultTo(0))
          .addColumn('failures', t.bigint, (c) => c.notNull().defaultTo(0))
          .addColumn('bytes', t.bigint, (c) => c.notNull().defaultTo(0))
          .addColumn('transfer_ms', t.bigint, (c) => c.notNull().defaultTo(0))
          .addColumn('transfers', t.bigint, (c) => c.notNull().defaultTo(0))
          .addColumn('deleted', t.bigint, (c) => c.notNull().defaultTo(0))
          .addColumn('deleted_bytes', t.bigint, (c) => c.notNull().defaultTo(0))
          .addPrimaryKeyConstraint(`${table}_pk`, ['bucket', 'game_id', 'type', 'node', 'shard'])
          .execute();
      }
      await db.schema
        .createTable('queue_stats')
        .addColumn('minute', t.bigint, (c) => c.notNull())
        .addColumn('cluster_id', t.bigint, (c) => c.notNull())
        .addColumn('shard', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('enqueued', t.bigint, (c) => c.notNull().defaultTo(0))
        .addColumn('done', t.bigint, (c) => c.notNull().defaultTo(0))
        .addColumn('dead', t.bigint, (c) => c.notNull().defaultTo(0))
        .addPrimaryKeyConstraint('queue_stats_pk', ['minute', 'cluster_id', 'shard'])
        .execute();
      await db.schema.alterTable('transfer_jobs').addColumn('leased_at', t.bigint).execute();
      await db.schema.alterTable('transfer_jobs').addColumn('transfer_ms', t.bigint).execute();
      await db.schema
        .createIndex('transfer_jobs_transfer_ms')
        .on('transfer_jobs')
        .column('transfer_ms')
        .where(sql.ref('transfer_ms'), 'is not', null)
        .execute();
      await db.schema
        .createIndex('backups_failed_created')
        .on('backups')
        // Covering: top-failing groups by instance from the index alone, not one heap page per failure.
        .columns(['created_at', 'game_id', 'server_id', 'type', 'instance'])
        .where(sql.ref('status'), '<>', 'ok')
        .execute();
    },
  };
}
