import type { Migration } from 'kysely';
import type { CatalogDialect } from '../dialect.js';
import { initialMigration } from './0001-initial.js';

/** Every catalog migration, by name; names sort in the order they run. */
export function catalogMigrations(dialect: CatalogDialect): Record<string, Migration> {
  return {
    '0001-initial': initialMigration(dialect),
  };
}
