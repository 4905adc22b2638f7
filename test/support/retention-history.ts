import type { NewBackup } from '../../src/catalog/schema.js';
import { backupRow } from './backup-row.js';

const DAY = 86_400_000;

/** Inserts one row under a name the test uses later; returns its id. */
export type InsertBackup = (name: string, row: NewBackup) => Promise<number>;

/**
 * 111111/mysql/3306 under the default policy (15 days, 2 fulls): an old chain,
 * two newer fulls, incrementals on the newest (one 19 days old, one recent),
 * a permanent backup and one already deleted. Retention's dry run and its
 * application are both tested on this history.
 */
export async function seedRetentionHistory(insert: InsertBackup, now: number): Promise<void> {
  const oldFull = await insert('oldFull', backupRow(now - 40 * DAY, { filename: 'full-old.xb' }));
  await insert(
    'oldInc',
    backupRow(now - 39 * DAY, { kind: 'incremental', base_backup_id: oldFull, filename: 'inc-old.xb' }),
  );
  await insert('full30', backupRow(now - 30 * DAY, { filename: 'full-30.xb' }));
  const base = await insert('full20', backupRow(now - 20 * DAY, { filename: 'full-20.xb' }));
  await insert(
    'inc19',
    backupRow(now - 19 * DAY, { kind: 'incremental', base_backup_id: base, filename: 'inc-19.xb' }),
  );
  await insert(
    'inc2',
    backupRow(now - 2 * DAY, { kind: 'incremental', base_backup_id: base, filename: 'inc-2.xb' }),
  );
  await insert('permanent', backupRow(now - 50 * DAY, { filename: 'keep-me.xb', permanent: 1 }));
  await insert('deleted', backupRow(now - 60 * DAY, { filename: 'gone.xb', deleted_at: now - DAY }));
}
