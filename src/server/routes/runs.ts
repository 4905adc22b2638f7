import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { RunStartReceiptSchema, RunStartSchema } from '../../shared/run-start.js';
import { stuckDeadline } from '../alerts/instance-watch.js';
import { ApiError } from '../api-error.js';
import type { AppContext } from '../app-context.js';

/** `POST /api/v1/runs`: a registered instance's run started; it is stuck after its timeout plus grace. */
export function runRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.post(
      '/api/v1/runs',
      {
        config: { access: 'host' },
        schema: { body: RunStartSchema, response: { 200: RunStartReceiptSchema } },
      },
      async (request) => {
        const principal = request.principal;
        if (principal?.kind !== 'host') throw new ApiError(403, 'forbidden', 'runs need an agent credential');
        const body = request.body;
        if (body.server_id !== principal.serverId) {
          throw new ApiError(
            403,
            'server_id_mismatch',
            `this credential belongs to server_id ${principal.serverId}, not ${body.server_id}`,
          );
        }
        const startedAt = Date.parse(body.started_at);
        const instance = await ctx.catalog.db
          .selectFrom('instances')
          .select(['id', 'grace_seconds'])
          .where('server_id', '=', body.server_id)
          .where('type', '=', body.type)
          .where('instance', '=', body.instance)
          .executeTakeFirst();
        if (!instance) return { registered: false, deadline_at: null };
        const deadline = stuckDeadline(startedAt, body.timeout_seconds, instance.grace_seconds);
        await ctx.catalog.db
          .updateTable('instances')
          .set({ run_started_at: startedAt, run_deadline_at: deadline })
          .where('id', '=', instance.id)
          .execute();
        return { registered: true, deadline_at: new Date(deadline).toISOString() };
      },
    );
  };
}
