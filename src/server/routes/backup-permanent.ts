import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Transaction } from 'kysely';
import { z } from 'zod';
import type { CatalogSchema } from '../../catalog/schema.js';
import { IN_LIST_BATCH, inBatches } from '../../catalog/statement-batches.js';
import { ApiError } from '../api-error.js';
import type { AppContext } from '../app-context.js';
import { recordAudit } from '../audit.js';
import { actorName } from '../auth/principal.js';

const ParamsSchema = z.strictObject({
  id: z
    .string()
    .regex(/^[1-9][0-9]{0,14}$/, 'id must be a positive whole number')
    .transform(Number),
});

export const PermanentBodySchema = z.strictObject({ permanent: z.boolean() });

export const PermanentResponseSchema = z.object({
  id: z.number().int(),
  permanent: z.boolean(),
  /**
   * Pending retention deletes withdrawn (not yet confirmed by a node): the
   * backup's own and those of the base full and earlier incrementals its
   * restore needs.
   */
  delete_cancelled: z.array(z.number().int()),
  /** Backups its restore needs that are deleted already: it cannot be restored whole. */
  needs_deleted: z.array(z.number().int()),
});

type Trx = Transaction<CatalogSchema>;

interface ChainRow {
  id: number;
  kind: string | null;
  server_id: string;
  type: string;
  instance: string;
  created_at: number;
  base_backup_id: number | null;
}

/**
 * `PUT /api/v1/backups/:id/permanent` (DESIGN §11): a permanent backup is
 * never deleted by retention. Marking one permanent also withdraws pending
 * deletes (requested, not yet confirmed by the node) of it and of everything
 * its restore needs (its base full and the incrementals before it on that
 * base), so what is kept stays restorable. A delete a node already confirmed
 * cannot be withdrawn; those pieces are named in `needs_deleted`.
 */
export function backupPermanentRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.put(
      '/api/v1/backups/:id/permanent',
      {
        config: { access: 'operator' },
        schema: {
          params: ParamsSchema,
          body: PermanentBodySchema,
          response: { 200: PermanentResponseSchema },
        },
      },
      async (request) => {
        const { id } = request.params;
        const { permanent } = request.body;
        const nowMs = ctx.clock().getTime();
        return ctx.catalog.db.transaction().execute(async (trx) => {
          const backup = await trx
            .selectFrom('backups')
            .select([
              'id',
              'kind',
              'server_id',
              'type',
              'instance',
              'created_at',
              'base_backup_id',
              'permanent',
              'deleted_at',
            ])
            .where('id', '=', id)
            .executeTakeFirst();
          if (!backup) throw new ApiError(404, 'not_found', `no backup ${id}`);
          if (permanent && backup.deleted_at !== null) {
            throw new ApiError(
              409,
              'deleted',
              `backup ${id} was deleted at ${new Date(backup.deleted_at).toISOString()}; there is no copy left to keep`,
            );
          }
          await trx
            .updateTable('backups')
            .set({ permanent: permanent ? 1 : 0 })
            .where('id', '=', id)
            .execute();
          const needed = permanent ? await restoreNeeds(trx, backup) : [];
          const cancelled = permanent
            ? await cancelPendingDeletes(trx, [id, ...needed.map((n) => n.id)])
            : [];
          const needsDeleted = needed.filter((n) => n.deleted).map((n) => n.id);
          await recordAudit(trx, {
            at: nowMs,
            actor: actorName(request.principal),
            action: 'backup.permanent',
            subject: `backup:${id}`,
            detail: {
              permanent: { from: backup.permanent === 1, to: permanent },
              delete_cancelled: cancelled,
              ...(needsDeleted.length > 0 ? { needs_deleted: needsDeleted } : {}),
            },
          });
          return { id, permanent, delete_cancelled: cancelled, needs_deleted: needsDeleted };
        });
      },
    );
  };
}

/** The base full and the earlier incrementals on it that restoring `backup` replays. */
async function restoreNeeds(trx: Trx, backup: ChainRow): Promise<Array<{ id: number; deleted: boolean }>> {
  if (backup.kind !== 'incremental' || backup.base_backup_id === null) return [];
  const baseId = backup.base_backup_id;
  const rows = await trx
    .selectFrom('backups')
    .select(['id', 'deleted_at'])
    .where('server_id', '=', backup.server_id)
    .where('type', '=', backup.type)
    .where('instance', '=', backup.instance)
    .where('status', '=', 'ok')
    .where((eb) =>
      eb.or([
        eb('id', '=', baseId),
        eb.and([
          eb('kind', '=', 'incremental'),
          eb('base_backup_id', '=', baseId),
          eb.or([
            eb('created_at', '<', backup.created_at),
            eb.and([eb('created_at', '=', backup.created_at), eb('id', '<', backup.id)]),
          ]),
        ]),
      ]),
    )
    .execute();
  return rows.map((r) => ({ id: r.id, deleted: r.deleted_at !== null }));
}

/** Withdraws the pending (not yet confirmed) deletes among `ids`; returns the ids withdrawn. */
async function cancelPendingDeletes(trx: Trx, ids: readonly number[]): Promise<number[]> {
  const cancelled: number[] = [];
  for (const batch of inBatches(ids, IN_LIST_BATCH)) {
    const rows = await trx
      .updateTable('backups')
      .set({ delete_requested_at: null, delete_reason: null })
      .where('id', 'in', batch)
      .where('delete_requested_at', 'is not', null)
      .where('deleted_at', 'is', null)
      .returning('id')
      .execute();
    for (const row of rows) cancelled.push(row.id);
  }
  return cancelled.sort((a, b) => a - b);
}
