import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { sql } from 'kysely';
import { z } from 'zod';
import { UBACKUP_VERSION } from '../../shared/version.js';
import type { AppContext } from '../app-context.js';

/** `GET /healthz`: the process is up and the catalog answers. Carries no data. */
export function healthRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/healthz',
      {
        config: { access: 'public' },
        schema: {
          response: { 200: z.object({ status: z.literal('ok'), version: z.string(), catalog: z.string() }) },
        },
      },
      async () => {
        await sql`select 1`.execute(ctx.catalog.db);
        return { status: 'ok' as const, version: UBACKUP_VERSION, catalog: ctx.catalog.dialect };
      },
    );
  };
}
