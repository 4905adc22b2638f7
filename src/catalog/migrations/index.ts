import type { Migration } from 'kysely';
import type { CatalogDialect } from '../dialect.js';
import { initialMigration } from './0001-initial.js';
import { storageClusterMigration } from './0002-storage-cluster.js';
import { alertsMigration } from './0003-alerts.js';
import { retentionMigration } from './0004-retention.js';
import { nodeTasksMigration } from './0005-node-tasks.js';
import { sessionsMigration } from './0006-sessions.js';
import { dashboardIndexesMigration } from './0007-dashboard-indexes.js';
import { statsRollupsMigration } from './0008-stats-rollups.js';

/** Every catalog migration, by name; names sort in the order they run. */
export function catalogMigrations(dialect: CatalogDialect): Record<string, Migration> {
  return {
    '0001-initial': initialMigration(dialect),
    '0002-storage-cluster': storageClusterMigration(dialect),
    '0003-alerts': alertsMigration(dialect),
    '0004-retention': retentionMigration(dialect),
    '0005-node-tasks': nodeTasksMigration(dialect),
    '0006-sessions': sessionsMigration(dialect),
    '0007-dashboard-indexes': dashboardIndexesMigration(dialect),
    '0008-stats-rollups': statsRollupsMigration(dialect),
  };
}
