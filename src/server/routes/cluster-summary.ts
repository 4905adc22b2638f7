import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { PRIORITIES } from '../../shared/priority.js';
import type { AppContext } from '../app-context.js';
import { clusterSpace, spaceOf } from '../cluster-space.js';
import { isoTimeOrNull } from './iso-time.js';

export const ClusterSummarySchema = z.object({
  id: z.number().int(),
  name: z.string(),
  description: z.string(),
  node_count: z.number().int(),
  /** Jobs waiting to be leased, by their priority as reported. */
  queue: z.object({
    critical: z.number().int(),
    high: z.number().int(),
    normal: z.number().int(),
    low: z.number().int(),
  }),
  oldest_queued_at: z.string().nullable(),
  total_bytes: z.number(),
  free_bytes: z.number(),
});
export type ClusterSummary = z.infer<typeof ClusterSummarySchema>;

/** `GET /api/v1/clusters/summary`: every cluster with its nodes, queue and space, in four queries. */
export function clusterSummaryRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  const db = ctx.catalog.db;
  return async (app) => {
    app.get(
      '/api/v1/clusters/summary',
      {
        config: { access: 'viewer' },
        schema: { response: { 200: z.object({ items: z.array(ClusterSummarySchema) }) } },
      },
      async () => {
        const nowMs = ctx.clock().getTime();
        const [clusters, nodes, queued, space] = await Promise.all([
          db.selectFrom('clusters').select(['id', 'name', 'description']).orderBy('name').execute(),
          db
            .selectFrom('nodes')
            .select((eb) => ['cluster_id', eb.fn.countAll<number | string>().as('n')])
            .groupBy('cluster_id')
            .execute(),
          db
            .selectFrom('transfer_jobs')
            .select((eb) => [
              'cluster_id',
              'priority',
              eb.fn.countAll<number | string>().as('n'),
              eb.fn.min<number | string>('enqueued_at').as('oldest'),
            ])
            .where('state', '=', 'queued')
            .groupBy(['cluster_id', 'priority'])
            .execute(),
          clusterSpace(db, nowMs),
        ]);
        const nodeCount = new Map(nodes.map((n) => [n.cluster_id, Number(n.n)]));
        return {
          items: clusters.map((c) => {
            const queue = { critical: 0, high: 0, normal: 0, low: 0 };
            let oldest: number | null = null;
            for (const q of queued) {
              if (q.cluster_id !== c.id) continue;
              const level = PRIORITIES[q.priority];
              if (level !== undefined) queue[level] += Number(q.n);
              const at = Number(q.oldest);
              if (oldest === null || at < oldest) oldest = at;
            }
            return {
              id: c.id,
              name: c.name,
              description: c.description,
              node_count: nodeCount.get(c.id) ?? 0,
              queue,
              oldest_queued_at: isoTimeOrNull(oldest),
              ...spaceOf(space, c.id),
            };
          }),
        };
      },
    );
  };
}
