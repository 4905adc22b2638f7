import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { type ExpressionBuilder, sql } from 'kysely';
import { z } from 'zod';
import type { CatalogSchema } from '../../catalog/schema.js';
import type { AppContext } from '../app-context.js';
import { isoTime } from './iso-time.js';
import { isoTimeInput } from './iso-time-input.js';
import { pageOf, pageOffset, pageSchema, pagingQueryShape } from './paging.js';

export const AuditEntrySchema = z.object({
  id: z.number().int(),
  at: z.string(),
  actor: z.string(),
  action: z.string(),
  subject: z.string(),
  detail: z.record(z.string(), z.unknown()),
});
export type AuditEntry = z.infer<typeof AuditEntrySchema>;

export const AuditQuerySchema = z.strictObject({
  ...pagingQueryShape,
  /** Exactly this actor, e.g. `user:alice`, `token:deploy`. */
  actor: z.string().min(1).max(256).optional(),
  /** Exactly this action, or, ending in `.`, every action that starts so (`alert.`). */
  action: z.string().min(1).max(128).optional(),
  subject: z.string().min(1).max(512).optional(),
  since: isoTimeInput.optional(),
  until: isoTimeInput.optional(),
});
export type AuditQuery = z.infer<typeof AuditQuerySchema>;

/** The `detail` column as an object, whatever an old row holds. */
export function parseDetail(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    if (value !== null && typeof value === 'object' && !Array.isArray(value))
      return value as Record<string, unknown>;
    return { value };
  } catch {
    return { text };
  }
}

function filters(query: AuditQuery) {
  return (eb: ExpressionBuilder<CatalogSchema, 'audit_log'>) => {
    const where = [];
    if (query.actor !== undefined) where.push(eb('actor', '=', query.actor));
    if (query.subject !== undefined) where.push(eb('subject', '=', query.subject));
    if (query.action !== undefined) {
      const action = query.action;
      where.push(
        action.endsWith('.')
          ? eb(sql<string>`substr(action, 1, ${sql.lit(action.length)})`, '=', action)
          : eb('action', '=', action),
      );
    }
    if (query.since !== undefined) where.push(eb('at', '>=', query.since));
    if (query.until !== undefined) where.push(eb('at', '<', query.until));
    return eb.and(where);
  };
}

/** `GET /api/v1/audit`: who changed what, newest first (operators and admins). */
export function auditLogRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  const db = ctx.catalog.db;
  return async (app) => {
    app.get(
      '/api/v1/audit',
      {
        config: { access: 'operator' },
        schema: { querystring: AuditQuerySchema, response: { 200: pageSchema(AuditEntrySchema) } },
      },
      async (request) => {
        const query = request.query;
        const [rows, count] = await Promise.all([
          db
            .selectFrom('audit_log')
            .select(['id', 'at', 'actor', 'action', 'subject', 'detail'])
            .where(filters(query))
            .orderBy('at', 'desc')
            .orderBy('id', 'desc')
            .offset(pageOffset(query))
            .limit(query.page_size)
            .execute(),
          db
            .selectFrom('audit_log')
            .select((eb) => eb.fn.countAll<number | string>().as('n'))
            .where(filters(query))
            .executeTakeFirstOrThrow(),
        ]);
        return pageOf(
          rows.map((r) => ({
            id: r.id,
            at: isoTime(r.at),
            actor: r.actor,
            action: r.action,
            subject: r.subject,
            detail: parseDetail(r.detail),
          })),
          Number(count.n),
          query,
        );
      },
    );
  };
}
