import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import {
  ScrubLeaseRequestSchema,
  ScrubLeaseResponseSchema,
  ScrubResultsRequestSchema,
  ScrubResultsResponseSchema,
} from '../../shared/node-protocol.js';
import { ApiError } from '../api-error.js';
import type { AppContext } from '../app-context.js';
import type { Principal } from '../auth/principal.js';
import { dueForScrub, recordScrubResults } from '../scrub/node-scrubs.js';

/** The node's name; anything but a node credential is refused. */
function nodeName(principal: Principal | null | undefined): string {
  if (principal?.kind !== 'node') throw new ApiError(403, 'forbidden', 'scrubs need a node credential');
  return principal.name;
}

/**
 * The scrub (DESIGN §11), driven by the server so a copy that vanished with
 * its sidecar is still checked: `POST /api/v1/nodes/scrub/lease` gives a node
 * the copies it stores that are due for a re-hash, and `POST
 * /api/v1/nodes/scrub/results` records what it found (scrub/node-scrubs.ts).
 */
export function nodeScrubRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.post(
      '/api/v1/nodes/scrub/lease',
      {
        config: { access: 'node' },
        schema: { body: ScrubLeaseRequestSchema, response: { 200: ScrubLeaseResponseSchema } },
      },
      async (request) => {
        const node = nodeName(request.principal);
        const cutoff = ctx.clock().getTime() - request.body.period_seconds * 1000;
        return { files: await dueForScrub(ctx.catalog.db, node, cutoff, request.body.limit) };
      },
    );

    app.post(
      '/api/v1/nodes/scrub/results',
      {
        config: { access: 'node' },
        schema: { body: ScrubResultsRequestSchema, response: { 200: ScrubResultsResponseSchema } },
      },
      async (request) => {
        const node = nodeName(request.principal);
        const nowMs = ctx.clock().getTime();
        const recorded = await ctx.catalog.db
          .transaction()
          .execute((trx) => recordScrubResults(trx, node, request.body.results, nowMs));
        if (recorded.damaged.length > 0) {
          request.log.warn(
            { node, backups: recorded.damaged },
            'the scrub found stored copies damaged or missing: restores skip them (integrity alert raised)',
          );
        }
        if (recorded.recovered.length > 0) {
          request.log.info(
            { node, backups: recorded.recovered },
            'the scrub found damaged copies whole again',
          );
        }
        return { recorded: recorded.recorded };
      },
    );
  };
}
