import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { typeNameSchema } from '../../shared/report.js';
import type { AppContext } from '../app-context.js';
import { describedResourceRoutes } from './described-resource.js';

/**
 * `GET/POST /api/v1/backup-types`, `GET/PATCH/DELETE /api/v1/backup-types/:name`.
 * Instances name their type by name, so a type in use can be neither deleted nor renamed.
 */
export function backupTypeRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return describedResourceRoutes(ctx, {
    table: 'backup_types',
    path: '/api/v1/backup-types',
    noun: 'backup_type',
    nameSchema: typeNameSchema,
    protectedNames: [],
    referencedByName: true,
    async usage(db, type) {
      const row = await db
        .selectFrom('instances')
        .select((eb) => eb.fn.countAll<number | string>().as('n'))
        .where('type', '=', type.name)
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },
  });
}
