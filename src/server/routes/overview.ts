import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { sql } from 'kysely';
import { z } from 'zod';
import { startOfDay } from '../../shared/time-zone.js';
import type { AppContext } from '../app-context.js';
import { clusterSpace, spaceOf } from '../cluster-space.js';
import { isoTime, isoTimeOrNull } from './iso-time.js';
import { timeZoneInput } from './time-zone-input.js';

/** How many of the newest backups the overview lists. */
export const OVERVIEW_LATEST = 20;

export const OverviewQuerySchema = z.strictObject({
  tz: timeZoneInput.default('UTC'),
});

export const OverviewSchema = z.object({
  /** Midnight in `tz`: "today" starts here. */
  since: z.string(),
  backups_today: z.number().int(),
  bytes_today: z.number(),
  failures_today: z.number().int(),
  open_alerts: z.number().int(),
  queue: z.object({
    depth: z.number().int(),
    oldest_queued_at: z.string().nullable(),
    oldest_wait_seconds: z.number().int().nullable(),
  }),
  clusters: z.array(
    z.object({ id: z.number().int(), name: z.string(), total_bytes: z.number(), free_bytes: z.number() }),
  ),
  latest: z.array(
    z.object({
      id: z.number().int(),
      status: z.string(),
      game_id: z.string(),
      type: z.string(),
      instance: z.string(),
      server_id: z.string(),
      host_ip: z.string(),
      filename: z.string().nullable(),
      size: z.number().nullable(),
      log: z.string(),
      created_at: z.string(),
    }),
  ),
});
export type Overview = z.infer<typeof OverviewSchema>;

/** `GET /api/v1/overview?tz=`: the dashboard's first page, in six indexed queries. */
export function overviewRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  const db = ctx.catalog.db;
  return async (app) => {
    app.get(
      '/api/v1/overview',
      {
        config: { access: 'viewer' },
        schema: { querystring: OverviewQuerySchema, response: { 200: OverviewSchema } },
      },
      async (request) => {
        const nowMs = ctx.clock().getTime();
        const since = startOfDay(nowMs, request.query.tz);
        const [today, alerts, queue, clusters, space, latest] = await Promise.all([
          // backups_created_totals holds every column read here: today's rows are summed from the index alone.
          db
            .selectFrom('backups')
            .select((eb) => [
              eb.fn.countAll<number | string>().as('n'),
              eb.fn
                .sum<number | string | null>(sql`case when status <> 'ok' then 1 else 0 end`)
                .as('failures'),
              eb.fn
                .sum<number | string | null>(sql`case when stored_at is not null then size else 0 end`)
                .as('bytes'),
            ])
            .where('created_at', '>=', since)
            .executeTakeFirstOrThrow(),
          db
            .selectFrom('alerts')
            .select((eb) => eb.fn.countAll<number | string>().as('n'))
            .where('state', '=', 'open')
            .executeTakeFirstOrThrow(),
          db
            .selectFrom('transfer_jobs')
            .select((eb) => [
              eb.fn.countAll<number | string>().as('n'),
              eb.fn.min<number | string | null>('enqueued_at').as('oldest'),
            ])
            .where('state', '=', 'queued')
            .executeTakeFirstOrThrow(),
          db.selectFrom('clusters').select(['id', 'name']).orderBy('name').execute(),
          clusterSpace(db, nowMs),
          db
            .selectFrom('backups')
            .select([
              'id',
              'status',
              'game_id',
              'type',
              'instance',
              'server_id',
              'host_ip',
              'filename',
              'size',
              'log',
              'created_at',
            ])
            .orderBy('created_at', 'desc')
            .orderBy('id', 'desc')
            .limit(OVERVIEW_LATEST)
            .execute(),
        ]);
        const oldest = queue.oldest === null ? null : Number(queue.oldest);
        return {
          since: isoTime(since),
          backups_today: Number(today.n),
          bytes_today: Number(today.bytes ?? 0),
          failures_today: Number(today.failures ?? 0),
          open_alerts: Number(alerts.n),
          queue: {
            depth: Number(queue.n),
            oldest_queued_at: isoTimeOrNull(oldest),
            oldest_wait_seconds: oldest === null ? null : Math.max(0, Math.floor((nowMs - oldest) / 1000)),
          },
          clusters: clusters.map((c) => ({ id: c.id, name: c.name, ...spaceOf(space, c.id) })),
          latest: latest.map((b) => ({ ...b, created_at: isoTime(b.created_at) })),
        };
      },
    );
  };
}
