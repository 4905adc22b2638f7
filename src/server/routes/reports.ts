import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ReportReceiptSchema, ReportSchema } from '../../shared/report.js';
import { ApiError } from '../api-error.js';
import type { AppContext } from '../app-context.js';

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
        if (principal?.kind !== 'host')
          throw new ApiError(403, 'forbidden', 'reports need an agent credential');
        const result = await ctx.ingest.submit(request.body, principal);
        return reply.code(result.created ? 201 : 200).send(result.receipt);
      },
    );
  };
}
