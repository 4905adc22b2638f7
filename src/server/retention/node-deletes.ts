import type { CatalogDb } from '../../catalog/database.js';
import { IN_LIST_BATCH, inBatches } from '../../catalog/statement-batches.js';
import { MAX_DELETES_PER_HEARTBEAT, type StoredDelete } from '../../shared/node-protocol.js';
import { recordBackupEvents } from '../stats/record-rollups.js';

/**
 * Retention's deletes as the nodes see them (DESIGN §11). A pending delete is
 * a backup with `delete_requested_at` set and `deleted_at` null; the node
 * that stores it gets it in its heartbeat reply, removes file and sidecar and
 * confirms. The confirmation sets `deleted_at` and clears
 * `delete_requested_at`, so the index `backups_node_delete (stored_node,
 * delete_requested_at)` leads straight to what is still pending instead of
 * through every copy the node ever deleted; `delete_reason` stays as the
 * record of why.
 */

/** Longest stored path a heartbeat reply may carry (the protocol's bound). */
const MAX_PATH_CHARS = 4096;

/** The oldest pending deletes of the copies stored on `node`, at most `limit`. */
export async function pendingDeletes(
  db: CatalogDb,
  node: string,
  limit: number = MAX_DELETES_PER_HEARTBEAT,
): Promise<StoredDelete[]> {
  const rows = await db
    .selectFrom('backups')
    .select(['id', 'stored_path'])
    .where('stored_node', '=', node)
    .where('delete_requested_at', 'is not', null)
    .where('deleted_at', 'is', null)
    .orderBy('delete_requested_at')
    .orderBy('id')
    .limit(limit)
    .execute();
  const deletes: StoredDelete[] = [];
  for (const row of rows) {
    // Not a path `complete` could have reported: the node would refuse it anyway,
    // and it must not make the whole reply invalid.
    if (row.stored_path === null || row.stored_path === '' || row.stored_path.length > MAX_PATH_CHARS)
      continue;
    deletes.push({ backup_id: row.id, path: row.stored_path });
  }
  return deletes;
}

/**
 * Records the copies `node` confirmed deleted: only backups stored on that
 * node with a pending delete; any other id is ignored. Returns the ids now
 * recorded as deleted. Call it inside a transaction: the statistics rollups'
 * deleted counts are written with the same statements.
 */
export async function confirmDeletes(
  db: CatalogDb,
  node: string,
  backupIds: readonly number[],
  nowMs: number,
): Promise<number[]> {
  const confirmed: number[] = [];
  for (const ids of inBatches([...new Set(backupIds)], IN_LIST_BATCH)) {
    const rows = await db
      .updateTable('backups')
      .set({ deleted_at: nowMs, delete_requested_at: null })
      .where('id', 'in', ids)
      .where('stored_node', '=', node)
      .where('delete_requested_at', 'is not', null)
      .where('deleted_at', 'is', null)
      .returning(['id', 'created_at', 'game_id', 'type', 'size'])
      .execute();
    await recordBackupEvents(
      db,
      rows.map((b) => ({ event: 'deleted', ...b, size: b.size ?? 0, node })),
    );
    for (const row of rows) confirmed.push(row.id);
  }
  return confirmed.sort((a, b) => a - b);
}

/**
 * Of `backupIds`, those stored on `node` and not deleted in the catalog: a
 * node confirming one of them removed a copy whose delete was withdrawn
 * (marked permanent) after the heartbeat reply had carried it.
 */
export async function liveCopiesAmong(
  db: CatalogDb,
  node: string,
  backupIds: readonly number[],
): Promise<number[]> {
  const live: number[] = [];
  for (const ids of inBatches([...new Set(backupIds)], IN_LIST_BATCH)) {
    const rows = await db
      .selectFrom('backups')
      .select('id')
      .where('id', 'in', ids)
      .where('stored_node', '=', node)
      .where('deleted_at', 'is', null)
      .execute();
    for (const row of rows) live.push(row.id);
  }
  return live.sort((a, b) => a - b);
}
