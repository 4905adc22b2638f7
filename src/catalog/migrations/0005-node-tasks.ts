import { type Kysely, type Migration, sql } from 'kysely';
import { type CatalogDialect, columnTypes } from '../dialect.js';

/**
 * What the server asks of nodes about files they already store (DESIGN §11):
 * retention's deletes and the scrub's re-hashes. Both are kept on the backup
 * row itself, so a task is idempotent and needs no table of its own:
 *
 * - `delete_requested_at` / `delete_reason`: retention decided to delete the
 *   stored copy; the node that stores it deletes file + sidecar and confirms,
 *   and the catalog then sets `deleted_at`.
 * - `scrubbed_at`: when the stored copy was last found whole (set at transfer
 *   time too); `scrub_error`: why the last scrub found it not whole (then
 *   `verified_at` is cleared, so restores skip it).
 */
export function nodeTasksMigration(dialect: CatalogDialect): Migration {
  const t = columnTypes(dialect);
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('backups').addColumn('delete_requested_at', t.bigint).execute();
      await db.schema.alterTable('backups').addColumn('delete_reason', 'text').execute();
      await db.schema.alterTable('backups').addColumn('scrubbed_at', t.bigint).execute();
      await db.schema.alterTable('backups').addColumn('scrub_error', 'text').execute();
      // A copy stored before scrubs existed counts as checked when it was verified.
      await sql`update backups set scrubbed_at = verified_at where stored_path is not null`.execute(db);
      // The heartbeat reads a node's pending deletes; the scrub its least recently checked copies.
      await db.schema
        .createIndex('backups_node_delete')
        .on('backups')
        .columns(['stored_node', 'delete_requested_at'])
        .execute();
      await db.schema
        .createIndex('backups_node_scrub')
        .on('backups')
        .columns(['stored_node', 'scrubbed_at'])
        .execute();
    },
  };
}
