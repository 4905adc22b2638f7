import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ReportReceiptSchema, ReportSchema } from '../../shared/report.js';
import { ApiError } from '../api-error.js';
import type { AppContext } from '../app-context.js';
import { ingestReport } from '../ingest.js';

/** `POST /api/v1/reports`: 201 when stored, 200 for a report_id already stored (nothing changes). */
export function reportRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.post(
      '/api/v1/reports',
      {
        config: { access: 'host' },
        schema: { body: ReportSchema, response: { 200: ReportReceiptSchema, 201: ReportReceiptSchema } },
      },
      async (request, reply) => {
        const principal = request.principal;
        if (principal?.kind !== 'host') throw new ApiError(403, 'forbidden', 'reports need an agent credential');
        const result = await ingestReport(
          ctx.catalog.db,
          request.body,
          principal,
          { policy: ctx.policy, maxAttempts: ctx.maxAttempts, defaultClusterId: ctx.defaultClusterId },
          ctx.clock().getTime(),
        );
        return reply.code(result.created ? 201 : 200).send(result.receipt);
      },
    );
  };
}
