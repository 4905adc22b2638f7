import { sql } from 'kysely';
import type { Catalog, CatalogDb } from '../../catalog/database.js';
import { IN_LIST_BATCH, inBatches } from '../../catalog/statement-batches.js';
import { recordAudit } from '../audit.js';
import { PLAN_PAGE_INSTANCES, retentionPlanPages } from './load-retention-plans.js';
import type { RetentionDecision } from './retention-plan.js';

/**
 * One retention round (DESIGN §11): plan every instance that has stored
 * backups still to decide on, and request the delete of every backup the plan
 * deletes (`delete_requested_at`, `delete_reason`). The nodes that store them
 * learn of it from their heartbeat replies and confirm (node-deletes.ts).
 *
 * The plan is read before it is written, so the write re-checks, per row, what
 * may have changed in between; a row that fails a check keeps its copy until a
 * later round decides again:
 *
 * - it is still stored, not deleted, not already requested, not permanent;
 * - no incremental that needs it appeared meanwhile or was marked permanent:
 *   none built on it (it is a base full), and none later in its chain (it is
 *   an incremental), that was received since the round began (minus
 *   {@link ARRIVAL_MARGIN_MS} for batched ingest and clock skew between
 *   servers) or is permanent. Incrementals are requested before fulls, so a
 *   chain deleted whole passes this check for its base.
 *
 * This keeps the planner's invariant against concurrent ingest and permanent
 * marks: a full is deleted only if no kept incremental is built on it.
 */

/** Arrivals this long before a round began still count as "new" for its checks. */
export const ARRIVAL_MARGIN_MS = 5 * 60_000;

/** The audit log's actor for the server's own rounds. */
export const RETENTION_ACTOR = 'system';

export interface RetentionRound {
  /** Instances planned. */
  instances: number;
  /** Stored backups kept. */
  kept: number;
  /** Stored backups the plan deletes. */
  to_delete: number;
  /** Of those, deletes requested now. */
  requested: number;
  requested_bytes: number;
  /** Of those, held back by the write's checks (see above); decided again next round. */
  held_back: number;
}

export interface ApplyRetentionOptions {
  /** Instances planned and written per page (default {@link PLAN_PAGE_INSTANCES}). */
  pageInstances?: number;
  arrivalMarginMs?: number;
}

export async function applyRetention(
  catalog: Catalog,
  nowMs: number,
  options: ApplyRetentionOptions = {},
): Promise<RetentionRound> {
  const since = nowMs - (options.arrivalMarginMs ?? ARRIVAL_MARGIN_MS);
  const round: RetentionRound = {
    instances: 0,
    kept: 0,
    to_delete: 0,
    requested: 0,
    requested_bytes: 0,
    held_back: 0,
  };
  const pages = retentionPlanPages(catalog, nowMs, options.pageInstances ?? PLAN_PAGE_INSTANCES);
  for await (const page of pages) {
    round.instances += page.length;
    const deletes: RetentionDecision[] = [];
    for (const plan of page) {
      for (const d of plan.decisions) {
        if (d.action === 'delete') deletes.push(d);
        else round.kept += 1;
      }
    }
    round.to_delete += deletes.length;
    // Incrementals first: a chain requested whole then passes its base's check.
    const incrementals = deletes.filter((d) => d.kind === 'incremental');
    const others = deletes.filter((d) => d.kind !== 'incremental');
    for (const group of [incrementals, others]) {
      const requested = await requestDeletes(catalog.db, group, nowMs, since);
      const bytes = new Map(group.map((d) => [d.backup_id, d.size ?? 0]));
      round.requested += requested.length;
      for (const id of requested) round.requested_bytes += bytes.get(id) ?? 0;
    }
  }
  round.held_back = round.to_delete - round.requested;
  if (round.requested > 0) {
    await recordAudit(catalog.db, {
      at: nowMs,
      actor: RETENTION_ACTOR,
      action: 'retention.apply',
      subject: 'retention',
      detail: round,
    });
  }
  return round;
}

/** Requests the deletes (one statement per reason and batch of ids); returns the ids requested. */
async function requestDeletes(
  db: CatalogDb,
  decisions: readonly RetentionDecision[],
  nowMs: number,
  since: number,
): Promise<number[]> {
  const byReason = new Map<string, number[]>();
  for (const d of decisions) {
    const ids = byReason.get(d.reason);
    if (ids) ids.push(d.backup_id);
    else byReason.set(d.reason, [d.backup_id]);
  }
  const requested: number[] = [];
  for (const [reason, allIds] of byReason) {
    for (const ids of inBatches(allIds, IN_LIST_BATCH)) {
      const rows = await db
        .updateTable('backups')
        .set({ delete_requested_at: nowMs, delete_reason: reason })
        .where('id', 'in', ids)
        .where('stored_path', 'is not', null)
        .where('deleted_at', 'is', null)
        .where('delete_requested_at', 'is', null)
        .where('permanent', '=', 0)
        .where(({ not, exists, selectFrom }) =>
          not(
            exists(
              selectFrom('backups as later')
                .select(sql.lit(1).as('one'))
                .whereRef('later.server_id', '=', 'backups.server_id')
                .whereRef('later.type', '=', 'backups.type')
                .whereRef('later.instance', '=', 'backups.instance')
                .whereRef('later.id', '<>', 'backups.id')
                .where('later.kind', '=', 'incremental')
                .where('later.status', '=', 'ok')
                .where('later.deleted_at', 'is', null)
                .where('later.delete_requested_at', 'is', null)
                .where((eb) => eb.or([eb('later.received_at', '>=', since), eb('later.permanent', '=', 1)]))
                .where((eb) =>
                  eb.or([
                    // Built on it: it is their base full.
                    eb('later.base_backup_id', '=', eb.ref('backups.id')),
                    // Later in its chain: it is an incremental they replay.
                    eb.and([
                      eb('later.base_backup_id', '=', eb.ref('backups.base_backup_id')),
                      eb.or([
                        eb('later.created_at', '>', eb.ref('backups.created_at')),
                        eb.and([
                          eb('later.created_at', '=', eb.ref('backups.created_at')),
                          eb('later.id', '>', eb.ref('backups.id')),
                        ]),
                      ]),
                    ]),
                  ]),
                ),
            ),
          ),
        )
        .returning('id')
        .execute();
      for (const row of rows) requested.push(row.id);
    }
  }
  return requested;
}
