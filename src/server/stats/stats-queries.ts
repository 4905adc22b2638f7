import { type ExpressionBuilder, sql } from 'kysely';
import type { CatalogDb } from '../../catalog/database.js';
import type { CatalogSchema } from '../../catalog/schema.js';
import type { RollupCounts } from './rollup-increments.js';
import type { StatsRange } from './stats-range.js';

/**
 * The statistics API's reads. Everything answers from the rollups
 * (`daily_stats`, `queue_stats`) except the top failing instances (failed
 * backups of the range, index `backups_failed_created`) and the slowest
 * transfers (index `transfer_jobs_transfer_ms`), both limited.
 */

export interface StatsFilter {
  businesses: readonly string[];
  type: string | null;
  node: string | null;
  /** Cluster name: the rollups keep only stored backups on that cluster's nodes. */
  cluster: string | null;
}

const num = (v: number | string | bigint | null | undefined) => Number(v ?? 0);

function rollupWhere(range: StatsRange, filter: StatsFilter) {
  return (eb: ExpressionBuilder<CatalogSchema, 'daily_stats'>) => {
    const parts = [eb('daily_stats.bucket', '>=', range.fromMs), eb('daily_stats.bucket', '<', range.toMs)];
    if (filter.businesses.length > 0) parts.push(eb('daily_stats.game_id', 'in', [...filter.businesses]));
    if (filter.type !== null) parts.push(eb('daily_stats.type', '=', filter.type));
    if (filter.node !== null) parts.push(eb('daily_stats.node', '=', filter.node));
    if (filter.cluster !== null) {
      parts.push(
        eb(
          'daily_stats.node',
          'in',
          eb
            .selectFrom('nodes')
            .innerJoin('clusters', 'clusters.id', 'nodes.cluster_id')
            .select('nodes.name')
            .where('clusters.name', '=', filter.cluster),
        ),
      );
    }
    return eb.and(parts);
  };
}

/** What every statistics answer sums: the rollups' counters. */
export type RollupSums = RollupCounts;

type RawSums = { [K in keyof RollupSums]: number | string | null };

const sumColumns = (eb: ExpressionBuilder<CatalogSchema, 'daily_stats'>) => [
  eb.fn.sum<number | string | null>('daily_stats.backups').as('backups'),
  eb.fn.sum<number | string | null>('daily_stats.failures').as('failures'),
  eb.fn.sum<number | string | null>('daily_stats.bytes').as('bytes'),
  eb.fn.sum<number | string | null>('daily_stats.transfer_ms').as('transfer_ms'),
  eb.fn.sum<number | string | null>('daily_stats.transfers').as('transfers'),
  eb.fn.sum<number | string | null>('daily_stats.deleted').as('deleted'),
  eb.fn.sum<number | string | null>('daily_stats.deleted_bytes').as('deleted_bytes'),
];

function sums(row: RawSums): RollupSums {
  return {
    backups: num(row.backups),
    failures: num(row.failures),
    bytes: num(row.bytes),
    transfer_ms: num(row.transfer_ms),
    transfers: num(row.transfers),
    deleted: num(row.deleted),
    deleted_bytes: num(row.deleted_bytes),
  };
}

export type SeriesKey = 'game_id' | 'node' | 'type';

/**
 * The range's sums per bucket (day, or hour from `hourly_stats`) and per
 * business, node or type (`key`), ordered by bucket then key.
 */
export async function rollupSeries(
  db: CatalogDb,
  range: StatsRange,
  filter: StatsFilter,
  key: SeriesKey,
  grain: 'day' | 'hour' = 'day',
): Promise<Array<RollupSums & { day: number; key: string }>> {
  // Both tables have the same columns: the hourly one is read under the daily one's name.
  const table = (grain === 'hour' ? 'hourly_stats as daily_stats' : 'daily_stats') as 'daily_stats';
  const rows = await db
    .selectFrom(table)
    .select((eb) => [
      eb.ref('daily_stats.bucket').as('day'),
      eb.ref(`daily_stats.${key}`).as('key'),
      ...sumColumns(eb),
    ])
    .where(rollupWhere(range, filter))
    .groupBy(['daily_stats.bucket', `daily_stats.${key}`])
    .orderBy('daily_stats.bucket')
    .orderBy(`daily_stats.${key}`)
    .execute();
  return rows.map((r) => ({ day: num(r.day), key: String(r.key), ...sums(r) }));
}

/** Per-minute queue flows from `fromMs` on, per cluster (with its name), and each cluster's depth now. */
export async function queueFlows(
  db: CatalogDb,
  fromMs: number,
  cluster: string | null,
): Promise<{
  clusters: Array<{ id: number; name: string; depth: number }>;
  flows: Array<{ cluster_id: number; minute: number; enqueued: number; done: number; dead: number }>;
}> {
  let clusterQuery = db.selectFrom('clusters').select(['id', 'name']).orderBy('name');
  if (cluster !== null) clusterQuery = clusterQuery.where('name', '=', cluster);
  const clusters = await clusterQuery.execute();
  const ids = clusters.map((c) => c.id);
  if (ids.length === 0) return { clusters: [], flows: [] };
  const [depths, flows] = await Promise.all([
    db
      .selectFrom('transfer_jobs')
      .select((eb) => ['cluster_id', eb.fn.countAll<number | string>().as('n')])
      .where('cluster_id', 'in', ids)
      .where('state', 'in', ['queued', 'leased'])
      .groupBy('cluster_id')
      .execute(),
    db
      .selectFrom('queue_stats')
      .select((eb) => [
        'cluster_id',
        'minute',
        eb.fn.sum<number | string>('enqueued').as('enqueued'),
        eb.fn.sum<number | string>('done').as('done'),
        eb.fn.sum<number | string>('dead').as('dead'),
      ])
      .where('cluster_id', 'in', ids)
      .where('minute', '>=', fromMs)
      .groupBy(['cluster_id', 'minute'])
      .execute(),
  ]);
  const depthOf = new Map(depths.map((d) => [d.cluster_id, num(d.n)]));
  return {
    clusters: clusters.map((c) => ({ ...c, depth: depthOf.get(c.id) ?? 0 })),
    flows: flows.map((f) => ({
      cluster_id: f.cluster_id,
      minute: num(f.minute),
      enqueued: num(f.enqueued),
      done: num(f.done),
      dead: num(f.dead),
    })),
  };
}

/** How many instances `topFailing` and transfers `slowestTransfers` answer with at most. */
export const STATS_LIST_LIMIT = 20;

/**
 * The instances with the most failed backups created in the range: reads the
 * failed backups of the range (partial index `backups_failed_created`), not the rollups.
 */
export async function topFailing(db: CatalogDb, range: StatsRange, filter: StatsFilter) {
  let query = db
    .selectFrom('backups')
    .select((eb) => [
      'game_id',
      'server_id',
      'type',
      'instance',
      eb.fn.countAll<number | string>().as('failures'),
      eb.fn.max<number | string>('created_at').as('last_failure_at'),
    ])
    .where('status', '<>', 'ok')
    .where('created_at', '>=', range.fromMs)
    .where('created_at', '<', range.toMs);
  if (filter.businesses.length > 0) query = query.where('game_id', 'in', [...filter.businesses]);
  if (filter.type !== null) query = query.where('type', '=', filter.type);
  const rows = await query
    .groupBy(['game_id', 'server_id', 'type', 'instance'])
    .orderBy(sql`count(*)`, 'desc')
    .orderBy('server_id')
    .orderBy('type')
    .orderBy('instance')
    .limit(STATS_LIST_LIMIT)
    .execute();
  return rows.map((r) => ({ ...r, failures: num(r.failures), last_failure_at: num(r.last_failure_at) }));
}

/**
 * The longest completed transfers that finished in the range (index
 * `transfer_jobs_transfer_ms`, walked from the longest down).
 */
export async function slowestTransfers(db: CatalogDb, range: StatsRange, filter: StatsFilter) {
  let query = db
    .selectFrom('transfer_jobs')
    .innerJoin('backups', 'backups.id', 'transfer_jobs.backup_id')
    .innerJoin('clusters', 'clusters.id', 'transfer_jobs.cluster_id')
    .select([
      'transfer_jobs.id as job_id',
      'transfer_jobs.backup_id',
      'transfer_jobs.transfer_ms',
      'transfer_jobs.size',
      'transfer_jobs.lease_node as node',
      'transfer_jobs.updated_at as finished_at',
      'clusters.name as cluster',
      'backups.game_id',
      'backups.server_id',
      'backups.type',
      'backups.instance',
    ])
    .where('transfer_jobs.transfer_ms', 'is not', null)
    .where('transfer_jobs.state', '=', 'done')
    .where('transfer_jobs.updated_at', '>=', range.fromMs)
    .where('transfer_jobs.updated_at', '<', range.toMs);
  if (filter.businesses.length > 0) query = query.where('backups.game_id', 'in', [...filter.businesses]);
  if (filter.type !== null) query = query.where('backups.type', '=', filter.type);
  if (filter.node !== null) query = query.where('transfer_jobs.lease_node', '=', filter.node);
  if (filter.cluster !== null) query = query.where('clusters.name', '=', filter.cluster);
  const rows = await query
    .orderBy('transfer_jobs.transfer_ms', 'desc')
    .orderBy('transfer_jobs.id')
    .limit(STATS_LIST_LIMIT)
    .execute();
  return rows.map((r) => ({ ...r, transfer_ms: num(r.transfer_ms), node: r.node ?? '' }));
}
