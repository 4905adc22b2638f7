import { sql } from 'kysely';
import type { CatalogDb } from '../../catalog/database.js';
import { raiseTransferFailed } from '../alerts/transfer-alerts.js';
import { recordQueueEvents } from '../stats/record-rollups.js';
import { queueEvent } from '../stats/rollup-increments.js';

/**
 * Expired leases go back to the queue (DESIGN §3 invariant 4): the node that
 * held them stopped reporting progress (crashed, cut off). The job is leasable
 * again at once, by any node of the cluster; a job whose last allowed attempt
 * expired is dead, with the reason and a transfer_failed alert.
 * Returns how many jobs were requeued and how many died.
 */
export async function sweepExpiredLeases(
  db: CatalogDb,
  nowMs: number,
): Promise<{ requeued: number; dead: number }> {
  return db.transaction().execute(async (trx) => {
    const dead = await trx
      .updateTable('transfer_jobs')
      .set({
        state: 'dead',
        last_error: 'the lease expired on the last allowed attempt: the node stopped reporting progress',
        lease_expires_at: null,
        updated_at: nowMs,
      })
      .where('state', '=', 'leased')
      .where('lease_expires_at', '<=', nowMs)
      .whereRef('attempts', '>=', 'max_attempts')
      .returning(['id', 'attempts', 'last_error', 'cluster_id'])
      .execute();
    await raiseTransferFailed(
      trx,
      dead.map((j) => ({ jobId: j.id, attempts: j.attempts, error: j.last_error })),
      nowMs,
    );
    await recordQueueEvents(
      trx,
      dead.map((j) => queueEvent(nowMs, j.cluster_id, 'dead')),
    );
    const requeued = await trx
      .updateTable('transfer_jobs')
      .set({
        state: 'queued',
        last_error: sql<string>`'the lease of node ' || coalesce(lease_node, '?') || ' expired'`,
        lease_node: null,
        lease_expires_at: null,
        next_attempt_at: nowMs,
        updated_at: nowMs,
      })
      .where('state', '=', 'leased')
      .where('lease_expires_at', '<=', nowMs)
      .executeTakeFirst();
    return { requeued: Number(requeued.numUpdatedRows), dead: dead.length };
  });
}
