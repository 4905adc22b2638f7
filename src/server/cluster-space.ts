import type { CatalogDb } from '../catalog/database.js';

/** A node counts toward its cluster's space when its last heartbeat is this recent. */
export const SPACE_FRESH_MS = 5 * 60_000;

export interface ClusterSpace {
  total_bytes: number;
  free_bytes: number;
}

/** Disk space per cluster id: the sums over its nodes seen in the last five minutes (one query). */
export async function clusterSpace(db: CatalogDb, nowMs: number): Promise<Map<number, ClusterSpace>> {
  const rows = await db
    .selectFrom('nodes')
    .select((eb) => [
      'cluster_id',
      eb.fn.sum<number | string | null>('disk_total_bytes').as('total'),
      eb.fn.sum<number | string | null>('disk_free_bytes').as('free'),
    ])
    .where('last_heartbeat_at', '>=', nowMs - SPACE_FRESH_MS)
    .groupBy('cluster_id')
    .execute();
  return new Map(
    rows.map((r) => [r.cluster_id, { total_bytes: Number(r.total ?? 0), free_bytes: Number(r.free ?? 0) }]),
  );
}

export function spaceOf(space: Map<number, ClusterSpace>, clusterId: number): ClusterSpace {
  return space.get(clusterId) ?? { total_bytes: 0, free_bytes: 0 };
}
