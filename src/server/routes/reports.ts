import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ReportReceiptSchema, ReportSchema } from '../../shared/report.js';
import { openAlerts } from '../alerts/alert-store.js';
import { alertSummary } from '../alerts/alert-summary.js';
import { instanceSubject } from '../alerts/instance-subject.js';
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
        try {
          const result = await ctx.ingest.submit(request.body, principal);
          if (result.created) ctx.metrics.reportStored(request.body.status, result.receipt.legality);
          return reply.code(result.created ? 201 : 200).send(result.receipt);
        } catch (error) {
          if (error instanceof ApiError && error.code === 'server_id_mismatch') {
            // Refused and stored nowhere, but someone must hear of it (DESIGN §10: illegal).
            const report = request.body;
            await openAlerts(
              ctx.catalog.db,
              [
                {
                  type: 'illegal',
                  subject: instanceSubject(report.server_id, report.type, report.instance),
                  gameId: report.game_id,
                  summary: alertSummary({
                    type: 'illegal',
                    reason: `a report was refused: it came from ${report.host_ip} with the credential of server_id ${principal.serverId}`,
                  }),
                },
              ],
              ctx.clock().getTime(),
            ).catch((alertError: unknown) =>
              request.log.error({ err: alertError }, 'could not open the alert'),
            );
          }
          throw error;
        }
      },
    );
  };
}
