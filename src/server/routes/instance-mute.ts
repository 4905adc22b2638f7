import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ApiError } from '../api-error.js';
import type { AppContext } from '../app-context.js';
import { recordAudit } from '../audit.js';
import { actorName } from '../auth/principal.js';
import { MAX_ALERT_COMMENT_CHARS } from './alerts.js';
import { InstanceParamsSchema } from './instances.js';
import { isoTimeOrNull } from './iso-time.js';
import { isoTimeInput } from './iso-time-input.js';

export const InstanceMuteSchema = z
  .strictObject({
    /** Alerts about the instance stay quiet until then; null unmutes it. */
    until: isoTimeInput.nullable(),
    /** Why: needed to mute, optional to unmute. */
    comment: z.string().trim().max(MAX_ALERT_COMMENT_CHARS).default(''),
  })
  .superRefine((body, ctx) => {
    if (body.until !== null && body.comment === '') {
      ctx.addIssue({ code: 'custom', path: ['comment'], message: 'say why the instance is muted' });
    }
  });

export const InstanceMuteAnswerSchema = z.object({
  id: z.number().int(),
  server_id: z.string(),
  type: z.string(),
  instance: z.string(),
  game_id: z.string(),
  muted_until: z.string().nullable(),
});
export type InstanceMuteAnswer = z.infer<typeof InstanceMuteAnswerSchema>;

/** `POST /api/v1/instances/:id/mute`: quiets an instance's alerts until a time, or unmutes it. */
export function instanceMuteRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  const db = ctx.catalog.db;
  return async (app) => {
    app.post(
      '/api/v1/instances/:id/mute',
      {
        config: { access: 'operator' },
        schema: {
          params: InstanceParamsSchema,
          body: InstanceMuteSchema,
          response: { 200: InstanceMuteAnswerSchema },
        },
      },
      async (request) => {
        const { id } = request.params;
        const { until, comment } = request.body;
        const nowMs = ctx.clock().getTime();
        if (until !== null && until <= nowMs) {
          throw new ApiError(
            400,
            'mute_in_past',
            `until ${new Date(until).toISOString()} is not in the future; give null to unmute`,
          );
        }
        return db.transaction().execute(async (trx): Promise<InstanceMuteAnswer> => {
          const before = await trx
            .selectFrom('instances')
            .select(['id', 'server_id', 'type', 'instance', 'game_id', 'muted_until'])
            .where('id', '=', id)
            .executeTakeFirst();
          if (!before) throw new ApiError(404, 'instance_not_found', `no instance ${id}`);
          await trx.updateTable('instances').set({ muted_until: until }).where('id', '=', id).execute();
          await recordAudit(trx, {
            at: nowMs,
            actor: actorName(request.principal),
            action: until === null ? 'instance.unmute' : 'instance.mute',
            subject: `instance:${id}`,
            detail: {
              identity: `${before.server_id}/${before.type}/${before.instance}`,
              from: isoTimeOrNull(before.muted_until),
              to: isoTimeOrNull(until),
              comment,
            },
          });
          return {
            id: before.id,
            server_id: before.server_id,
            type: before.type,
            instance: before.instance,
            game_id: before.game_id,
            muted_until: isoTimeOrNull(until),
          };
        });
      },
    );
  };
}
