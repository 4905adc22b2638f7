import type { Kysely, Migration } from 'kysely';
import { type CatalogDialect, columnTypes } from '../dialect.js';

/**
 * People logged in to the dashboard (DESIGN §6): one row per browser login,
 * found by the SHA-256 of the cookie's secret. `csrf_token` is the
 * synchronizer token every cookie-authenticated write must echo.
 * People also get the language and time zone the dashboard shows them.
 */
export function sessionsMigration(dialect: CatalogDialect): Migration {
  const t = columnTypes(dialect);
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('sessions')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('user_id', t.bigint, (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('secret_hash', 'text', (c) => c.notNull().unique())
        .addColumn('csrf_token', 'text', (c) => c.notNull())
        .addColumn('created_at', t.bigint, (c) => c.notNull())
        .addColumn('last_seen_at', t.bigint, (c) => c.notNull())
        .addColumn('expires_at', t.bigint, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('sessions_user').on('sessions').column('user_id').execute();
      await db.schema.createIndex('sessions_expires').on('sessions').column('expires_at').execute();
      await db.schema
        .alterTable('users')
        .addColumn('locale', 'text', (c) => c.notNull().defaultTo('en-US'))
        .execute();
      await db.schema
        .alterTable('users')
        .addColumn('time_zone', 'text', (c) => c.notNull().defaultTo('UTC'))
        .execute();
    },
  };
}
