import type { CatalogDb } from '../../catalog/database.js';
import { PRIORITIES } from '../../shared/priority.js';
import { ALERT_TYPES } from '../alerts/alert-kind.js';
import { nodeState } from '../routes/nodes.js';
import { type BusinessRpo, rpoByBusiness } from './rpo-by-business.js';

/**
 * What the catalog gauges show, read at scrape time: a few grouped queries,
 * none of which reads a row per backup or per finished job. The shaping of
 * rows into series is pure (`queueSeries`, `alertSeries`, `nodeSeries`).
 */

/** The queue states the gauges count: jobs still to do. Done and dead jobs are history. */
export const QUEUE_STATES = ['queued', 'leased'] as const;
/** The node states `ubackup_node_state` has a series for (each node: 1 for its state, 0 for the rest). */
export const NODE_STATES = ['active', 'paused_admin', 'paused_reserve', 'offline'] as const;

export interface QueueRow {
  cluster: string;
  /** Priority rank: 0 = critical. */
  priority: number;
  state: string;
  jobs: number;
  oldestEnqueuedAt: number | null;
}

export interface QueueSeries {
  jobs: { cluster: string; priority: string; state: string; value: number }[];
  oldestAgeSeconds: { cluster: string; priority: string; value: number }[];
  leasesActive: { cluster: string; value: number }[];
}

export interface NodeRowForGauges {
  name: string;
  cluster: string;
  state: string;
  last_heartbeat_at: number | null;
  disk_free_bytes: number | null;
  reserve_bytes: number;
}

export interface NodeSeries {
  freeBytes: { node: string; cluster: string; value: number }[];
  reserveBytes: { node: string; cluster: string; value: number }[];
  state: { node: string; cluster: string; state: string; value: number }[];
}

export interface CatalogGauges {
  queue: QueueSeries;
  nodes: NodeSeries;
  alertsOpen: { type: string; value: number }[];
  instancesOverdue: number;
  rpo: BusinessRpo[];
}

/**
 * Every cluster × priority × queue state gets a series (0 when empty), so a
 * queue that drains shows 0 rather than vanishing. The oldest age is of the
 * queued jobs (waiting, not being transferred); 0 when none waits.
 */
export function queueSeries(
  clusters: readonly string[],
  rows: readonly QueueRow[],
  nowMs: number,
): QueueSeries {
  const key = (cluster: string, priority: number, state: string) =>
    `${cluster}\u0000${priority}\u0000${state}`;
  const byKey = new Map(rows.map((r) => [key(r.cluster, r.priority, r.state), r]));
  const series: QueueSeries = { jobs: [], oldestAgeSeconds: [], leasesActive: [] };
  for (const cluster of clusters) {
    let leased = 0;
    PRIORITIES.forEach((priority, rank) => {
      for (const state of QUEUE_STATES) {
        const row = byKey.get(key(cluster, rank, state));
        series.jobs.push({ cluster, priority, state, value: row?.jobs ?? 0 });
        if (state === 'leased') leased += row?.jobs ?? 0;
      }
      const oldest = byKey.get(key(cluster, rank, 'queued'))?.oldestEnqueuedAt ?? null;
      series.oldestAgeSeconds.push({
        cluster,
        priority,
        value: oldest === null ? 0 : Math.max(0, (nowMs - oldest) / 1000),
      });
    });
    series.leasesActive.push({ cluster, value: leased });
  }
  return series;
}

/** Every alert type gets a series (0 when none is open). */
export function alertSeries(counts: ReadonlyMap<string, number>): { type: string; value: number }[] {
  const types = [...new Set<string>([...ALERT_TYPES, ...counts.keys()])];
  return types.map((type) => ({ type, value: counts.get(type) ?? 0 }));
}

/** A node's state is the one the API shows (offline after three missed heartbeats). */
export function nodeSeries(
  rows: readonly NodeRowForGauges[],
  nowMs: number,
  heartbeatSeconds: number,
): NodeSeries {
  const series: NodeSeries = { freeBytes: [], reserveBytes: [], state: [] };
  for (const row of rows) {
    const labels = { node: row.name, cluster: row.cluster };
    if (row.disk_free_bytes !== null) series.freeBytes.push({ ...labels, value: row.disk_free_bytes });
    series.reserveBytes.push({ ...labels, value: row.reserve_bytes });
    const current = nodeState(row, nowMs, heartbeatSeconds);
    const states = [...new Set<string>([...NODE_STATES, current])];
    for (const state of states) series.state.push({ ...labels, state, value: state === current ? 1 : 0 });
  }
  return series;
}

/** Unpaused, unmuted instances strictly past their due time (due time includes the grace): `isOverdue`. */
async function countOverdue(db: CatalogDb, nowMs: number): Promise<number> {
  const row = await db
    .selectFrom('instances')
    .select((eb) => eb.fn.countAll<number | string>().as('n'))
    .where('next_due_at', '<', nowMs)
    .where('paused', '=', 0)
    .where((eb) => eb.or([eb('muted_until', 'is', null), eb('muted_until', '<=', nowMs)]))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

export async function readCatalogGauges(
  db: CatalogDb,
  nowMs: number,
  heartbeatSeconds: number,
): Promise<CatalogGauges> {
  const [clusters, queue, nodes, alerts, overdue, rpo] = await Promise.all([
    db.selectFrom('clusters').select('name').orderBy('name').execute(),
    db
      .selectFrom('transfer_jobs')
      .innerJoin('clusters', 'clusters.id', 'transfer_jobs.cluster_id')
      .select((eb) => [
        'clusters.name as cluster',
        'transfer_jobs.priority',
        'transfer_jobs.state',
        eb.fn.countAll<number | string>().as('jobs'),
        eb.fn.min<number | string | null>('transfer_jobs.enqueued_at').as('oldest'),
      ])
      .where('transfer_jobs.state', 'in', [...QUEUE_STATES])
      .groupBy(['clusters.name', 'transfer_jobs.priority', 'transfer_jobs.state'])
      .execute(),
    db
      .selectFrom('nodes')
      .innerJoin('clusters', 'clusters.id', 'nodes.cluster_id')
      .select([
        'nodes.name',
        'clusters.name as cluster',
        'nodes.state',
        'nodes.last_heartbeat_at',
        'nodes.disk_free_bytes',
        'nodes.reserve_bytes',
      ])
      .orderBy('nodes.name')
      .execute(),
    db
      .selectFrom('alerts')
      .select((eb) => ['type', eb.fn.countAll<number | string>().as('n')])
      .where('state', '=', 'open')
      .groupBy('type')
      .execute(),
    countOverdue(db, nowMs),
    rpoByBusiness(db, nowMs),
  ]);
  return {
    queue: queueSeries(
      clusters.map((c) => c.name),
      queue.map((r) => ({
        cluster: r.cluster,
        priority: Number(r.priority),
        state: r.state,
        jobs: Number(r.jobs),
        oldestEnqueuedAt: r.oldest === null ? null : Number(r.oldest),
      })),
      nowMs,
    ),
    nodes: nodeSeries(
      nodes.map((n) => ({
        ...n,
        disk_free_bytes: n.disk_free_bytes === null ? null : Number(n.disk_free_bytes),
        reserve_bytes: Number(n.reserve_bytes),
        last_heartbeat_at: n.last_heartbeat_at === null ? null : Number(n.last_heartbeat_at),
      })),
      nowMs,
      heartbeatSeconds,
    ),
    alertsOpen: alertSeries(new Map(alerts.map((a) => [a.type, Number(a.n)]))),
    instancesOverdue: overdue,
    rpo,
  };
}
