import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { NodeDeletionsRequestSchema, NodeDeletionsResponseSchema } from '../../shared/node-protocol.js';
import { ApiError } from '../api-error.js';
import type { AppContext } from '../app-context.js';
import { recordAudit } from '../audit.js';
import { actorName } from '../auth/principal.js';
import { confirmDeletes, liveCopiesAmong } from '../retention/node-deletes.js';

/**
 * `POST /api/v1/nodes/deletions`: a storage node confirms the stored copies it
 * deleted for retention (they came in its heartbeat replies). Only backups
 * stored on that node with a pending delete become deleted; other ids are
 * ignored, and the answer says how many counted.
 */
export function nodeDeletionRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.post(
      '/api/v1/nodes/deletions',
      {
        config: { access: 'node' },
        schema: { body: NodeDeletionsRequestSchema, response: { 200: NodeDeletionsResponseSchema } },
      },
      async (request) => {
        const principal = request.principal;
        if (principal?.kind !== 'node')
          throw new ApiError(403, 'forbidden', 'deletions are confirmed with a node credential');
        const nowMs = ctx.clock().getTime();
        const confirmed = await ctx.catalog.db.transaction().execute(async (trx) => {
          const ids = await confirmDeletes(trx, principal.name, request.body.deleted, nowMs);
          if (ids.length > 0) {
            await recordAudit(trx, {
              at: nowMs,
              actor: actorName(principal),
              action: 'retention.deleted',
              subject: `node:${principal.name}`,
              detail: { backups: ids },
            });
          }
          return ids;
        });
        if (confirmed.length < request.body.deleted.length) {
          const counted = new Set(confirmed);
          const ignored = request.body.deleted.filter((id) => !counted.has(id));
          const withdrawn = await liveCopiesAmong(ctx.catalog.db, principal.name, ignored);
          if (withdrawn.length > 0) {
            request.log.warn(
              { node: principal.name, backups: withdrawn },
              'a node deleted stored copies whose delete was withdrawn meanwhile (marked permanent); those copies are gone',
            );
          }
        }
        return { confirmed: confirmed.length };
      },
    );
  };
}
