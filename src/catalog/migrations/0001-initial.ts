import { type Kysely, type Migration, sql } from 'kysely';
import { type CatalogDialect, columnTypes } from '../dialect.js';

/** The first catalog: registry, hosts, backups, transfer jobs, people and the audit log. */
export function initialMigration(dialect: CatalogDialect): Migration {
  const t = columnTypes(dialect);
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('businesses')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('game_id', 'text', (c) => c.notNull().unique())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('created_at', t.bigint, (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('backup_types')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('created_at', t.bigint, (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('clusters')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('created_at', t.bigint, (c) => c.notNull())
        .execute();
      await sql`insert into clusters (name, description, created_at) values ('default', 'Takes instances registered without a cluster and every unregistered instance', 0)`.execute(
        db,
      );

      await db.schema
        .createTable('hosts')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('server_id', 'text', (c) => c.notNull().unique())
        .addColumn('ip', 'text')
        .addColumn('agent_version', 'text')
        .addColumn('credential_hash', 'text', (c) => c.unique())
        .addColumn('enrolled_at', t.bigint)
        .addColumn('last_seen_at', t.bigint)
        .addColumn('created_at', t.bigint, (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('instances')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('server_id', 'text', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('instance', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('game_id', 'text', (c) => c.notNull())
        .addColumn('cluster_id', t.bigint, (c) => c.notNull().references('clusters.id'))
        .addColumn('priority', 'text', (c) => c.notNull().defaultTo('normal'))
        .addColumn('schedule', 'text')
        .addColumn('interval_seconds', 'integer', (c) => c.notNull().defaultTo(3600))
        .addColumn('timezone', 'text', (c) => c.notNull().defaultTo('UTC'))
        .addColumn('grace_seconds', 'integer', (c) => c.notNull().defaultTo(3000))
        .addColumn('retention_days', 'integer')
        .addColumn('paused', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('next_due_at', t.bigint)
        .addColumn('last_success_at', t.bigint)
        .addColumn('last_report_at', t.bigint)
        .addColumn('created_at', t.bigint, (c) => c.notNull())
        .addColumn('updated_at', t.bigint, (c) => c.notNull())
        .addUniqueConstraint('instances_identity', ['server_id', 'type', 'instance'])
        .execute();
      await db.schema.createIndex('instances_next_due').on('instances').column('next_due_at').execute();
      await db.schema.createIndex('instances_name').on('instances').column('name').execute();
      await db.schema
        .createIndex('instances_game_type')
        .on('instances')
        .columns(['game_id', 'type'])
        .execute();
      await db.schema.createIndex('instances_type').on('instances').column('type').execute();
      await db.schema.createIndex('instances_cluster').on('instances').column('cluster_id').execute();

      await db.schema
        .createTable('backups')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('report_id', 'text', (c) => c.notNull().unique())
        .addColumn('instance_id', t.bigint, (c) => c.references('instances.id').onDelete('set null'))
        .addColumn('server_id', 'text', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('instance', 'text', (c) => c.notNull())
        .addColumn('section', 'text', (c) => c.notNull())
        .addColumn('reported_game_id', 'text', (c) => c.notNull())
        .addColumn('game_id', 'text', (c) => c.notNull())
        .addColumn('cluster_id', t.bigint, (c) => c.notNull().references('clusters.id'))
        .addColumn('host_ip', 'text', (c) => c.notNull())
        .addColumn('created_at', t.bigint, (c) => c.notNull())
        .addColumn('finished_at', t.bigint, (c) => c.notNull())
        .addColumn('received_at', t.bigint, (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('kind', 'text')
        .addColumn('filename', 'text')
        .addColumn('size', t.bigint)
        .addColumn('blake3', 'text')
        .addColumn('base_filename', 'text')
        .addColumn('base_created_at', t.bigint)
        .addColumn('base_backup_id', t.bigint)
        .addColumn('log', 'text', (c) => c.notNull())
        .addColumn('error', 'text')
        .addColumn('exit_code', 'integer')
        .addColumn('output_tail', 'text', (c) => c.notNull())
        .addColumn('legality', 'text', (c) => c.notNull())
        .addColumn('illegal_reason', 'text')
        .addColumn('priority', 'text', (c) => c.notNull())
        .addColumn('agent_version', 'text', (c) => c.notNull())
        .addColumn('stored_node', 'text')
        .addColumn('stored_path', 'text')
        .addColumn('stored_at', t.bigint)
        .addColumn('verified_at', t.bigint)
        .addColumn('deleted_at', t.bigint)
        .execute();
      await db.schema
        .createIndex('backups_identity_created')
        .on('backups')
        .columns(['server_id', 'type', 'instance', 'created_at desc'])
        .execute();
      await db.schema
        .createIndex('backups_instance_created')
        .on('backups')
        .columns(['instance_id', 'created_at desc'])
        .execute();
      await db.schema.createIndex('backups_created').on('backups').column('created_at').execute();
      await db.schema.createIndex('backups_cluster').on('backups').column('cluster_id').execute();

      await db.schema
        .createTable('transfer_jobs')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('backup_id', t.bigint, (c) =>
          c.notNull().unique().references('backups.id').onDelete('cascade'),
        )
        .addColumn('cluster_id', t.bigint, (c) => c.notNull().references('clusters.id'))
        .addColumn('priority', 'integer', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('max_attempts', 'integer', (c) => c.notNull())
        .addColumn('size', t.bigint, (c) => c.notNull())
        .addColumn('enqueued_at', t.bigint, (c) => c.notNull())
        .addColumn('next_attempt_at', t.bigint, (c) => c.notNull())
        .addColumn('lease_node', 'text')
        .addColumn('lease_expires_at', t.bigint)
        .addColumn('bytes_done', t.bigint, (c) => c.notNull().defaultTo(0))
        .addColumn('last_error', 'text')
        .addColumn('updated_at', t.bigint, (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('transfer_jobs_queue')
        .on('transfer_jobs')
        .columns(['cluster_id', 'state', 'priority', 'next_attempt_at'])
        .execute();

      await db.schema
        .createTable('users')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('password_hash', 'text', (c) => c.notNull())
        .addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', t.bigint, (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('tokens')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('user_id', t.bigint, (c) => c.references('users.id').onDelete('cascade'))
        .addColumn('created_at', t.bigint, (c) => c.notNull())
        .addColumn('expires_at', t.bigint)
        .addColumn('revoked_at', t.bigint)
        .addColumn('last_used_at', t.bigint)
        .execute();

      await db.schema
        .createTable('audit_log')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('at', t.bigint, (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('subject', 'text', (c) => c.notNull())
        .addColumn('detail', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('audit_log_at').on('audit_log').column('at').execute();
    },
  };
}
