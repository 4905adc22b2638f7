import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { BackupRow } from '../../catalog/schema.js';
import type { AppContext } from '../app-context.js';

export const BackupListQuerySchema = z.strictObject({
  server_id: z.string().max(64).optional(),
  type: z.string().max(64).optional(),
  instance: z.string().max(128).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(480),
});

/** One backup as the old list showed it, plus digest, kind and legality. */
export const BackupListItemSchema = z.object({
  id: z.number(),
  report_id: z.string(),
  server_id: z.string(),
  type: z.string(),
  instance: z.string(),
  game_id: z.string(),
  status: z.enum(['ok', 'failed']),
  storage_node: z.string().nullable(),
  host_ip: z.string(),
  backup_time: z.string(),
  stored_time: z.string().nullable(),
  file_name: z.string().nullable(),
  size: z.number().nullable(),
  full_time: z.string().nullable(),
  full_name: z.string().nullable(),
  log: z.string(),
  error: z.string().nullable(),
  blake3: z.string().nullable(),
  kind: z.enum(['single', 'full', 'incremental']).nullable(),
  legality: z.enum(['legal', 'illegal']),
  illegal_reason: z.string().nullable(),
  transfer_state: z.string().nullable(),
  /** When the stored copy's digest was last confirmed; null while unverified or after a failed scrub. */
  verified_at: z.string().nullable(),
  /** Why the last scrub found the stored copy damaged or missing. */
  scrub_error: z.string().nullable(),
  /** When retention deleted the stored copy. */
  deleted_at: z.string().nullable(),
  /** Marked to be kept whatever retention says. */
  permanent: z.boolean(),
});
export type BackupListItem = z.infer<typeof BackupListItemSchema>;

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export function toBackupListItem(row: BackupRow & { transfer_state: string | null }): BackupListItem {
  const isItsOwnFull = row.kind === 'full' || row.kind === 'single';
  return {
    id: row.id,
    report_id: row.report_id,
    server_id: row.server_id,
    type: row.type,
    instance: row.instance,
    game_id: row.game_id,
    status: row.status === 'ok' ? 'ok' : 'failed',
    storage_node: row.stored_node,
    host_ip: row.host_ip,
    backup_time: new Date(row.created_at).toISOString(),
    stored_time: iso(row.stored_at),
    file_name: row.filename,
    size: row.size,
    full_time: isItsOwnFull ? iso(row.created_at) : iso(row.base_created_at),
    full_name: isItsOwnFull ? row.filename : row.base_filename,
    log: row.log,
    error: row.error,
    blake3: row.blake3,
    kind: row.kind === 'single' || row.kind === 'full' || row.kind === 'incremental' ? row.kind : null,
    legality: row.legality === 'illegal' ? 'illegal' : 'legal',
    illegal_reason: row.illegal_reason,
    transfer_state: row.transfer_state,
    verified_at: iso(row.verified_at),
    scrub_error: row.scrub_error,
    deleted_at: iso(row.deleted_at),
    permanent: row.permanent !== 0,
  };
}

/** `GET /api/v1/backups`: newest first, filtered by identity. */
export function backupRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/api/v1/backups',
      {
        config: { access: 'viewer' },
        schema: {
          querystring: BackupListQuerySchema,
          response: { 200: z.object({ items: z.array(BackupListItemSchema) }) },
        },
      },
      async (request) => {
        const q = request.query;
        let query = ctx.catalog.db
          .selectFrom('backups')
          .leftJoin('transfer_jobs', 'transfer_jobs.backup_id', 'backups.id')
          .selectAll('backups')
          .select('transfer_jobs.state as transfer_state');
        if (q.server_id !== undefined) query = query.where('backups.server_id', '=', q.server_id);
        if (q.type !== undefined) query = query.where('backups.type', '=', q.type);
        if (q.instance !== undefined) query = query.where('backups.instance', '=', q.instance);
        const rows = await query
          .orderBy('backups.created_at', 'desc')
          .orderBy('backups.id', 'desc')
          .limit(q.limit)
          .execute();
        return { items: rows.map(toBackupListItem) };
      },
    );
  };
}
