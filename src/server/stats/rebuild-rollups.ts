import { sql } from 'kysely';
import type { Catalog } from '../../catalog/database.js';
import { ROLLUP_TABLES } from './record-rollups.js';
import { DAY_MS } from './rollup-increments.js';

/** Which backups' buckets to recompute: created_at in [fromMs, toMs); null bounds are open. */
export interface RebuildRange {
  fromMs: number | null;
  toMs: number | null;
}

export interface RebuildOutcome {
  /** Rows written per table. */
  rows: Record<'daily_stats' | 'hourly_stats' | 'queue_stats', number>;
  ms: number;
}

/**
 * Recomputes the rollups of a range from `backups` and `transfer_jobs`, with
 * set-based SQL: delete the range's rows, then insert … select … group by,
 * all in one transaction. The range is widened to whole UTC days so every
 * bucket it touches is recomputed whole. On PostgreSQL the rollup tables are
 * locked first: an ingest or completion in flight either committed before
 * the recount (and is in it) or waits and adds its increment after.
 */
export async function rebuildRollups(catalog: Catalog, range: RebuildRange): Promise<RebuildOutcome> {
  const started = performance.now();
  const fromMs = range.fromMs === null ? null : Math.floor(range.fromMs / DAY_MS) * DAY_MS;
  const toMs = range.toMs === null ? null : Math.ceil(range.toMs / DAY_MS) * DAY_MS;
  const rows = await catalog.db.transaction().execute(async (trx) => {
    if (catalog.dialect === 'postgres') {
      await sql`lock table daily_stats, hourly_stats, queue_stats in exclusive mode`.execute(trx);
    }
    const within = (column: string) => {
      const ref = sql.ref(column);
      return sql`${fromMs === null ? sql`true` : sql`${ref} >= ${fromMs}`} and ${toMs === null ? sql`true` : sql`${ref} < ${toMs}`}`;
    };
    const written = { daily_stats: 0, hourly_stats: 0, queue_stats: 0 };
    for (const { table, bucketMs } of ROLLUP_TABLES) {
      await sql`delete from ${sql.table(table)} where ${within('bucket')}`.execute(trx);
      const inserted = await sql`
        insert into ${sql.table(table)}
          (bucket, game_id, type, node, backups, failures, bytes, transfer_ms, transfers, deleted, deleted_bytes)
        select
          (b.created_at / ${sql.lit(bucketMs)}) * ${sql.lit(bucketMs)},
          b.game_id,
          b.type,
          coalesce(b.stored_node, ''),
          count(*),
          sum(case when b.status <> 'ok' then 1 else 0 end),
          sum(case when b.stored_node is not null then coalesce(b.size, 0) else 0 end),
          sum(case when b.stored_node is not null then coalesce(j.transfer_ms, 0) else 0 end),
          sum(case when b.stored_node is not null then 1 else 0 end),
          sum(case when b.deleted_at is not null then 1 else 0 end),
          sum(case when b.deleted_at is not null then coalesce(b.size, 0) else 0 end)
        from backups b
        left join (
          select backup_id, sum(transfer_ms) as transfer_ms from transfer_jobs
          where transfer_ms is not null group by backup_id
        ) j on j.backup_id = b.id
        where ${within('b.created_at')}
        group by 1, 2, 3, 4`.execute(trx);
      written[table] = Number(inserted.numAffectedRows ?? 0);
    }
    await sql`delete from queue_stats where ${within('minute')}`.execute(trx);
    const queue = await sql`
      insert into queue_stats (minute, cluster_id, enqueued, done, dead)
      select minute, cluster_id, sum(enqueued), sum(done), sum(dead) from (
        select (enqueued_at / 60000) * 60000 as minute, cluster_id, 1 as enqueued, 0 as done, 0 as dead
          from transfer_jobs
        union all
        select (updated_at / 60000) * 60000, cluster_id, 0, 1, 0 from transfer_jobs where state = 'done'
        union all
        select (updated_at / 60000) * 60000, cluster_id, 0, 0, 1 from transfer_jobs where state = 'dead'
      ) e
      where ${within('minute')}
      group by minute, cluster_id`.execute(trx);
    written.queue_stats = Number(queue.numAffectedRows ?? 0);
    return written;
  });
  return { rows, ms: Math.round(performance.now() - started) };
}
