import type { Kysely, Migration } from 'kysely';
import { type CatalogDialect, columnTypes } from '../dialect.js';

/** Storage nodes, the server's ticket key, how agents are pulled from, and the lease index. */
export function storageClusterMigration(dialect: CatalogDialect): Migration {
  const t = columnTypes(dialect);
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('nodes')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('cluster_id', t.bigint, (c) => c.notNull().references('clusters.id'))
        .addColumn('credential_hash', 'text', (c) => c.unique())
        .addColumn('address', 'text')
        .addColumn('weight', 'integer', (c) => c.notNull())
        .addColumn('max_bandwidth', t.bigint, (c) => c.notNull().defaultTo(0))
        .addColumn('paused_by_admin', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('reserve_bytes', t.bigint, (c) => c.notNull().defaultTo(0))
        .addColumn('disk_total_bytes', t.bigint)
        .addColumn('disk_free_bytes', t.bigint)
        .addColumn('in_flight', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('bytes_per_second', t.bigint, (c) => c.notNull().defaultTo(0))
        .addColumn('state', 'text', (c) => c.notNull().defaultTo('new'))
        .addColumn('version', 'text')
        .addColumn('last_heartbeat_at', t.bigint)
        .addColumn('enrolled_at', t.bigint)
        .addColumn('created_at', t.bigint, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('nodes_cluster').on('nodes').column('cluster_id').execute();

      await db.schema
        .createTable('server_keys')
        .addColumn('id', 'integer', (c) => c.primaryKey())
        .addColumn('public_key', 'text', (c) => c.notNull())
        .addColumn('private_key', 'text', (c) => c.notNull())
        .addColumn('created_at', t.bigint, (c) => c.notNull())
        .execute();

      await db.schema.alterTable('hosts').addColumn('pull_port', 'integer').execute();
      await db.schema
        .alterTable('hosts')
        .addColumn('pull_tls', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema
        .alterTable('backups')
        .addColumn('transport', 'text', (c) => c.notNull().defaultTo('http'))
        .execute();
      await db.schema.alterTable('backups').addColumn('rsync_model', 'text').execute();

      // Leasing reads the oldest queued jobs of one cluster and one priority level.
      await db.schema
        .createIndex('transfer_jobs_lease')
        .on('transfer_jobs')
        .columns(['cluster_id', 'state', 'priority', 'enqueued_at'])
        .execute();
      // The sweeper looks for expired leases.
      await db.schema
        .createIndex('transfer_jobs_lease_expiry')
        .on('transfer_jobs')
        .columns(['state', 'lease_expires_at'])
        .execute();
    },
  };
}
