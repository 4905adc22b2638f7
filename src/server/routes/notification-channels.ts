import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { NotificationChannelRow } from '../../catalog/schema.js';
import { DELIVERY_TIMEOUT_MS } from '../alerts/delivery-round.js';
import { parseStoredChannel } from '../alerts/notification-round.js';
import { ApiError } from '../api-error.js';
import type { AppContext } from '../app-context.js';
import { recordAudit } from '../audit.js';
import { actorName } from '../auth/principal.js';
import { answerConstraintErrors } from '../constraint-violation.js';
import { type ChannelConfig, ChannelConfigSchema } from '../notify/channel-config.js';
import { deliver } from '../notify/deliver.js';
import type { NotifyMessage } from '../notify/notify-message.js';
import { redactChannel } from '../notify/redact-channel.js';
import { isoTime, isoTimeOrNull } from './iso-time.js';

/**
 * Notification channels (DESIGN §10): admins create, replace, enable, delete
 * and test them; operators list them and their deliveries. Secrets never leave
 * the server: listings show whether one is set, and a replacement that leaves
 * a secret or password out keeps the stored one.
 */

const IdParams = z.strictObject({ id: z.coerce.number().int().positive() });

const ChannelViewSchema = z.object({
  id: z.number(),
  enabled: z.boolean(),
  kind: z.string(),
  name: z.string(),
  filter: z.object({
    businesses: z.array(z.string()),
    types: z.array(z.string()),
    minSeverity: z.string(),
  }),
  repeatSeconds: z.number(),
  settings: z.record(z.string(), z.unknown()),
  created_at: z.string(),
  updated_at: z.string(),
});

const DeliveryViewSchema = z.object({
  id: z.number(),
  channel_id: z.number(),
  channel: z.string(),
  state: z.string(),
  attempts: z.number(),
  alert_count: z.number(),
  title: z.string(),
  created_at: z.string(),
  next_attempt_at: z.string(),
  sent_at: z.string().nullable(),
  last_error: z.string().nullable(),
});

const TestAnswerSchema = z.object({ ok: z.boolean(), error: z.string().nullable() });

function view(row: NotificationChannelRow): z.infer<typeof ChannelViewSchema> {
  const parsed = parseStoredChannel(row);
  if (typeof parsed === 'string') {
    throw new ApiError(500, 'channel_corrupt', `channel ${row.name}: ${parsed}`);
  }
  const redacted = redactChannel(parsed.config);
  return {
    id: row.id,
    enabled: row.enabled === 1,
    ...redacted,
    settings: { ...redacted.settings },
    created_at: isoTime(row.created_at),
    updated_at: isoTime(row.updated_at),
  };
}

/** The new configuration, with the stored secret or password kept where the new one leaves it out. */
function keepSecrets(next: ChannelConfig, before: ChannelConfig): ChannelConfig {
  if (next.kind !== before.kind) return next;
  if (next.kind === 'email' && before.kind === 'email') {
    const kept = before.settings.password;
    if (
      next.settings.password !== undefined ||
      kept === undefined ||
      next.settings.user !== before.settings.user
    ) {
      return next;
    }
    return { ...next, settings: { ...next.settings, password: kept } };
  }
  if (next.kind === 'webhook' || next.kind === 'dingtalk' || next.kind === 'feishu') {
    const kept = 'secret' in before.settings ? before.settings.secret : undefined;
    if (next.settings.secret !== undefined || kept === undefined) return next;
    return { ...next, settings: { ...next.settings, secret: kept } };
  }
  return next;
}

const nameTaken = (name: string) => () =>
  new ApiError(409, 'name_taken', `a notification channel named ${name} already exists`);

export function notificationChannelRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    const load = async (id: number): Promise<NotificationChannelRow> => {
      const row = await ctx.catalog.db
        .selectFrom('notification_channels')
        .selectAll()
        .where('id', '=', id)
        .executeTakeFirst();
      if (!row) throw new ApiError(404, 'channel_not_found', `no notification channel ${id}`);
      return row;
    };

    app.get(
      '/api/v1/notification-channels',
      {
        config: { access: 'operator' },
        schema: { response: { 200: z.object({ items: z.array(ChannelViewSchema) }) } },
      },
      async () => {
        const rows = await ctx.catalog.db
          .selectFrom('notification_channels')
          .selectAll()
          .orderBy('name')
          .execute();
        return { items: rows.map(view) };
      },
    );

    app.get(
      '/api/v1/notification-channels/:id',
      { config: { access: 'operator' }, schema: { params: IdParams, response: { 200: ChannelViewSchema } } },
      async (request) => view(await load(request.params.id)),
    );

    app.post(
      '/api/v1/notification-channels',
      {
        config: { access: 'admin' },
        schema: { body: ChannelConfigSchema, response: { 201: ChannelViewSchema } },
      },
      async (request, reply) => {
        const now = ctx.clock().getTime();
        const config = request.body;
        const row = await answerConstraintErrors(
          ctx.catalog.db.transaction().execute(async (trx) => {
            const created = await trx
              .insertInto('notification_channels')
              .values({
                name: config.name,
                kind: config.kind,
                config: JSON.stringify(config),
                enabled: 1,
                created_at: now,
                updated_at: now,
              })
              .returningAll()
              .executeTakeFirstOrThrow();
            await recordAudit(trx, {
              at: now,
              actor: actorName(request.principal),
              action: 'notification_channel.create',
              subject: config.name,
              detail: redactChannel(config),
            });
            return created;
          }),
          { unique: nameTaken(config.name) },
        );
        return reply.code(201).send(view(row));
      },
    );

    app.put(
      '/api/v1/notification-channels/:id',
      {
        config: { access: 'admin' },
        schema: { params: IdParams, body: ChannelConfigSchema, response: { 200: ChannelViewSchema } },
      },
      async (request) => {
        const now = ctx.clock().getTime();
        const before = await load(request.params.id);
        const stored = parseStoredChannel(before);
        const config = typeof stored === 'string' ? request.body : keepSecrets(request.body, stored.config);
        const row = await answerConstraintErrors(
          ctx.catalog.db.transaction().execute(async (trx) => {
            const updated = await trx
              .updateTable('notification_channels')
              .set({ name: config.name, kind: config.kind, config: JSON.stringify(config), updated_at: now })
              .where('id', '=', before.id)
              .returningAll()
              .executeTakeFirstOrThrow();
            await recordAudit(trx, {
              at: now,
              actor: actorName(request.principal),
              action: 'notification_channel.replace',
              subject: config.name,
              detail: redactChannel(config),
            });
            return updated;
          }),
          { unique: nameTaken(config.name) },
        );
        return view(row);
      },
    );

    app.patch(
      '/api/v1/notification-channels/:id',
      {
        config: { access: 'admin' },
        schema: {
          params: IdParams,
          body: z.strictObject({ enabled: z.boolean() }),
          response: { 200: ChannelViewSchema },
        },
      },
      async (request) => {
        const now = ctx.clock().getTime();
        const before = await load(request.params.id);
        const row = await ctx.catalog.db.transaction().execute(async (trx) => {
          const updated = await trx
            .updateTable('notification_channels')
            .set({ enabled: request.body.enabled ? 1 : 0, updated_at: now })
            .where('id', '=', before.id)
            .returningAll()
            .executeTakeFirstOrThrow();
          await recordAudit(trx, {
            at: now,
            actor: actorName(request.principal),
            action: request.body.enabled ? 'notification_channel.enable' : 'notification_channel.disable',
            subject: before.name,
          });
          return updated;
        });
        return view(row);
      },
    );

    app.delete(
      '/api/v1/notification-channels/:id',
      { config: { access: 'admin' }, schema: { params: IdParams } },
      async (request, reply) => {
        const now = ctx.clock().getTime();
        const before = await load(request.params.id);
        await ctx.catalog.db.transaction().execute(async (trx) => {
          await trx.deleteFrom('notification_marks').where('channel_id', '=', before.id).execute();
          await trx.deleteFrom('notification_deliveries').where('channel_id', '=', before.id).execute();
          await trx.deleteFrom('notification_channels').where('id', '=', before.id).execute();
          await recordAudit(trx, {
            at: now,
            actor: actorName(request.principal),
            action: 'notification_channel.delete',
            subject: before.name,
          });
        });
        return reply.code(204).send();
      },
    );

    app.post(
      '/api/v1/notification-channels/:id/test',
      {
        config: { access: 'admin' },
        schema: { params: IdParams, response: { 200: TestAnswerSchema } },
      },
      async (request) => {
        const row = await load(request.params.id);
        const stored = parseStoredChannel(row);
        if (typeof stored === 'string')
          throw new ApiError(500, 'channel_corrupt', `channel ${row.name}: ${stored}`);
        const now = ctx.clock().getTime();
        const message: NotifyMessage = {
          form: 'single',
          title: `UBackup test message for channel ${row.name}`,
          lines: [
            `Sent by ${actorName(request.principal)} at ${new Date(now).toISOString()} to check that this channel works.`,
          ],
          severity: 'info',
          link: null,
          items: [],
        };
        const result = await deliver(stored.config, message, { nowMs: now, timeoutMs: DELIVERY_TIMEOUT_MS });
        // The attempt is recorded like any delivery, so a failing channel is visible in its history.
        await ctx.catalog.db
          .insertInto('notification_deliveries')
          .values({
            channel_id: row.id,
            created_at: now,
            state: result.ok ? 'sent' : 'failed',
            attempts: 1,
            next_attempt_at: now,
            sent_at: result.ok ? ctx.clock().getTime() : null,
            last_error: result.ok ? null : result.error,
            alert_count: 0,
            message: JSON.stringify(message),
          })
          .execute();
        return { ok: result.ok, error: result.ok ? null : result.error };
      },
    );

    app.get(
      '/api/v1/notification-deliveries',
      {
        config: { access: 'operator' },
        schema: {
          querystring: z.strictObject({
            channel: z.coerce.number().int().positive().optional(),
            state: z.enum(['pending', 'sent', 'failed']).optional(),
            limit: z.coerce.number().int().min(1).max(1000).default(100),
          }),
          response: { 200: z.object({ items: z.array(DeliveryViewSchema) }) },
        },
      },
      async (request) => {
        const q = request.query;
        let query = ctx.catalog.db
          .selectFrom('notification_deliveries')
          .innerJoin(
            'notification_channels',
            'notification_channels.id',
            'notification_deliveries.channel_id',
          )
          .selectAll('notification_deliveries')
          .select('notification_channels.name as channel');
        if (q.channel !== undefined)
          query = query.where('notification_deliveries.channel_id', '=', q.channel);
        if (q.state !== undefined) query = query.where('notification_deliveries.state', '=', q.state);
        const rows = await query
          .orderBy('notification_deliveries.created_at', 'desc')
          .orderBy('notification_deliveries.id', 'desc')
          .limit(q.limit)
          .execute();
        return {
          items: rows.map((r) => ({
            id: r.id,
            channel_id: r.channel_id,
            channel: r.channel,
            state: r.state,
            attempts: r.attempts,
            alert_count: r.alert_count,
            title: (JSON.parse(r.message) as { title?: string }).title ?? '',
            created_at: isoTime(r.created_at),
            next_attempt_at: isoTime(r.next_attempt_at),
            sent_at: isoTimeOrNull(r.sent_at),
            last_error: r.last_error,
          })),
        };
      },
    );
  };
}
