import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { instanceNameSchema, serverIdSchema, typeNameSchema } from '../../shared/report.js';
import { signTicket, TICKET_VERSION } from '../../shared/ticket.js';
import { ApiError } from '../api-error.js';
import type { AppContext } from '../app-context.js';
import { loadRestorePlan } from '../restore/load-restore-plan.js';
import type { MissingPiece, SkippedBackup } from '../restore/restore-plan.js';
import { storedFileUrl } from '../restore/stored-file-url.js';
import { isoTime } from './iso-time.js';
import { isoTimeInput } from './iso-time-input.js';

/** How long a restore download ticket stays valid: long enough for a big chain on a slow link. */
export const RESTORE_TICKET_TTL_MS = 6 * 3_600_000;

export const RestorePlanQuerySchema = z.strictObject({
  server_id: serverIdSchema,
  type: typeNameSchema,
  instance: instanceNameSchema,
  /** Restore to the newest good backup made at or before this time (default: now). */
  at: isoTimeInput.optional(),
});

const KindSchema = z.enum(['single', 'full', 'incremental']);

const MissingPieceSchema = z.object({
  backup_id: z.number().nullable(),
  role: z.enum(['target', 'base', 'incremental']),
  problem: z.string(),
  message: z.string(),
});

const SkippedSchema = z.object({
  backup_id: z.number(),
  kind: z.string().nullable(),
  created_at: z.string(),
  reason: z.string(),
  missing: z.array(MissingPieceSchema),
});

export const RestorePlanResponseSchema = z.object({
  at: z.string(),
  target: z.object({ backup_id: z.number(), kind: KindSchema, created_at: z.string(), filename: z.string() }),
  /** The files to restore, in the order the restore hook applies them. */
  chain: z.array(
    z.object({
      backup_id: z.number(),
      kind: KindSchema,
      filename: z.string(),
      size: z.number(),
      blake3: z.string(),
      created_at: z.string(),
      node: z.string(),
      path: z.string(),
      /** `url` is null while the node has not announced its address. */
      download: z.object({ url: z.string().nullable(), ticket: z.string() }),
    }),
  ),
  /** Newer backups that could not be restored, newest first, and why. */
  skipped: z.array(SkippedSchema),
});
export type RestorePlanResponse = z.infer<typeof RestorePlanResponseSchema>;

const skippedView = (s: SkippedBackup) => ({
  backup_id: s.backup_id,
  kind: s.kind,
  created_at: isoTime(s.created_at),
  reason: s.reason,
  missing: s.missing.map((m: MissingPiece) => ({ ...m })),
});

/** `GET /api/v1/restore-plan`: what to download, from where, in which order (DESIGN §11). */
export function restorePlanRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/api/v1/restore-plan',
      {
        config: { access: 'viewer' },
        schema: { querystring: RestorePlanQuerySchema, response: { 200: RestorePlanResponseSchema } },
      },
      async (request) => {
        const { server_id, type, instance } = request.query;
        const now = ctx.clock().getTime();
        const at = request.query.at ?? now;
        const plan = await loadRestorePlan(ctx.catalog.db, { server_id, type, instance }, at);
        if (!plan.ok) {
          const details = { at: isoTime(at), missing: plan.missing, skipped: plan.skipped.map(skippedView) };
          throw new ApiError(
            plan.code === 'plan_not_found' ? 404 : 409,
            plan.code,
            `${server_id}/${type}/${instance}: ${plan.message}`,
            details,
          );
        }
        const nodeNames = [...new Set(plan.chain.map((link) => link.stored_node))];
        const nodes = await ctx.catalog.db
          .selectFrom('nodes')
          .select(['name', 'address'])
          .where('name', 'in', nodeNames)
          .execute();
        const addressOf = new Map(nodes.map((n) => [n.name, n.address]));
        const exp = now + RESTORE_TICKET_TTL_MS;
        const chain = plan.chain.map((link) => ({
          backup_id: link.id,
          kind: link.kind,
          filename: link.filename,
          size: link.size,
          blake3: link.blake3,
          created_at: isoTime(link.created_at),
          node: link.stored_node,
          path: link.stored_path,
          download: {
            url: storedFileUrl(addressOf.get(link.stored_node) ?? null, link.id),
            ticket: signTicket(
              {
                v: TICKET_VERSION,
                purpose: 'restore',
                job_id: null,
                backup_id: link.id,
                server_id,
                type,
                instance,
                filename: link.filename,
                size: link.size,
                blake3: link.blake3,
                node: link.stored_node,
                exp,
              },
              ctx.ticketKeys.privateKey,
            ),
          },
        }));
        return {
          at: isoTime(at),
          target: {
            backup_id: plan.target.id,
            kind: plan.target.kind,
            created_at: isoTime(plan.target.created_at),
            filename: plan.target.filename,
          },
          chain,
          skipped: plan.skipped.map(skippedView),
        };
      },
    );
  };
}
