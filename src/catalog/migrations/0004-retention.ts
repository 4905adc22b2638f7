import type { Kysely, Migration } from 'kysely';
import type { CatalogDialect } from '../dialect.js';

/**
 * Retention policies (DESIGN §11): keep N days and at least K fulls, set per
 * instance and falling back to its type and then its business (null: not set
 * at that level), and permanent marks on backups. Additive only.
 */
export function retentionMigration(_dialect: CatalogDialect): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      // 1: retention never deletes this backup.
      await db.schema
        .alterTable('backups')
        .addColumn('permanent', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema.alterTable('backup_types').addColumn('retention_days', 'integer').execute();
      await db.schema.alterTable('businesses').addColumn('retention_days', 'integer').execute();
      // The last K fulls are kept however old they are.
      await db.schema.alterTable('instances').addColumn('keep_fulls', 'integer').execute();
      await db.schema.alterTable('backup_types').addColumn('keep_fulls', 'integer').execute();
      await db.schema.alterTable('businesses').addColumn('keep_fulls', 'integer').execute();
    },
  };
}
