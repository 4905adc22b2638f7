import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { pathComponent } from '../../shared/report.js';
import type { AppContext } from '../app-context.js';
import { describedResourceRoutes } from './described-resource.js';

/** The cluster every instance registered without one goes to; created by the first migration. */
export const DEFAULT_CLUSTER = 'default';

export const clusterNameSchema = pathComponent('cluster').pipe(z.string().max(64));

/**
 * `GET/POST /api/v1/clusters`, `GET/PATCH/DELETE /api/v1/clusters/:name`.
 * Instances refer to their cluster by id, so renaming is free, except for `default`.
 */
export function clusterRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return describedResourceRoutes(ctx, {
    table: 'clusters',
    path: '/api/v1/clusters',
    noun: 'cluster',
    nameSchema: clusterNameSchema,
    protectedNames: [DEFAULT_CLUSTER],
    referencedByName: false,
    async usage(db, cluster) {
      const row = await db
        .selectFrom('instances')
        .select((eb) => eb.fn.countAll<number | string>().as('n'))
        .where('cluster_id', '=', cluster.id)
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },
  });
}
