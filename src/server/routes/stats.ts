import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ApiError } from '../api-error.js';
import type { AppContext } from '../app-context.js';
import { foldTopKeys, MAX_TOP_KEYS, type SeriesRow } from '../stats/fold-top-keys.js';
import { sumByKey, sumRows } from '../stats/series-sums.js';
import { SharedReads } from '../stats/shared-reads.js';
import {
  queueFlows,
  rollupSeries,
  type SeriesKey,
  type StatsFilter,
  slowestTransfers,
  topFailing,
} from '../stats/stats-queries.js';
import {
  DEFAULT_HOURLY_DAYS,
  DEFAULT_QUEUE_DAYS,
  DEFAULT_RANGE_DAYS,
  depthHistory,
  MAX_HOURLY_DAYS,
  MAX_QUEUE_DAYS,
  MAX_RANGE_DAYS,
  type StatsRange,
  statsRange,
} from '../stats/stats-range.js';
import { isoTime } from './iso-time.js';
import { isoTimeInput } from './iso-time-input.js';

/** A bound: a UTC day (YYYY-MM-DD; as `to`, that whole day) or an ISO time with a zone. */
const bound = z.union([
  z.iso.date().transform((text) => ({ ms: Date.parse(`${text}T00:00:00Z`), day: true })),
  isoTimeInput.transform((ms) => ({ ms, day: false })),
]);

const name = z.string().min(1).max(128);

export const StatsQuerySchema = z.strictObject({
  from: bound.optional(),
  to: bound.optional(),
  /** Businesses (game_id), comma-separated. */
  business: z
    .string()
    .max(4096)
    .optional()
    .transform((text) => (text === undefined ? [] : text.split(',').filter((b) => b !== ''))),
  type: name.optional(),
  cluster: name.optional(),
  node: name.optional(),
});
type StatsQuery = z.infer<typeof StatsQuerySchema>;

const SumsSchema = z.object({
  backups: z.number().int(),
  failures: z.number().int(),
  bytes: z.number(),
  transfer_seconds: z.number(),
  transfers: z.number().int(),
  deleted: z.number().int(),
  deleted_bytes: z.number(),
});
const RangeSchema = { from: z.string(), to: z.string() };

function filterOf(q: StatsQuery): StatsFilter {
  return { businesses: q.business, type: q.type ?? null, node: q.node ?? null, cluster: q.cluster ?? null };
}

function rangeOf(q: StatsQuery, nowMs: number, limits: { defaultDays: number; maxDays: number }): StatsRange {
  const result = statsRange(
    { ...(q.from ? { from: q.from } : {}), ...(q.to ? { to: q.to } : {}) },
    nowMs,
    limits,
  );
  if (!result.ok) throw new ApiError(400, 'invalid_range', result.problem);
  return result.range;
}

const shown = <T extends { transfer_ms: number }>({ transfer_ms, ...rest }: T) => ({
  ...rest,
  transfer_seconds: transfer_ms / 1000,
});

const SERIES_BY = ['business', 'node', 'type'] as const;
type SeriesBy = (typeof SERIES_BY)[number];

/** The per-bucket series' query: by which key, and optionally folded to the `top` keys by `rank`. */
const SeriesQuerySchema = StatsQuerySchema.extend({
  by: z.enum(SERIES_BY).default('business'),
  /** Keep the rows of this many keys (biggest `rank` total first); the rest is summed per bucket in `other`. */
  top: z.coerce.number().int().min(0).max(MAX_TOP_KEYS).optional(),
  rank: z.enum(['backups', 'bytes', 'failures']).default('backups'),
});
type SeriesQuery = z.infer<typeof SeriesQuerySchema>;

const seriesKey = (by: SeriesBy): SeriesKey => (by === 'business' ? 'game_id' : by);

function seriesAnswer<B extends 'day' | 'hour'>(bucket: B) {
  const at = { [bucket]: z.string() } as { [K in B]: z.ZodString };
  return z.object({
    ...RangeSchema,
    by: z.enum(SERIES_BY),
    items: z.array(z.object({ ...at, key: z.string(), ...SumsSchema.shape })),
    /** Present when `top` was given: per bucket, the folded keys' sums and how many keys they were. */
    other: z.array(z.object({ ...at, keys: z.number().int(), ...SumsSchema.shape })).optional(),
  });
}

/** A series' rows as the API shows them, folded when the query asks for `top`. */
function folded<B extends 'day' | 'hour'>(rows: SeriesRow[], query: SeriesQuery, bucket: B) {
  const show = <T extends { day: number; transfer_ms: number }>({ day, ...rest }: T) =>
    ({ ...shown(rest), [bucket]: isoTime(day) }) as Omit<T, 'day' | 'transfer_ms'> & {
      transfer_seconds: number;
    } & { [K in B]: string };
  if (query.top === undefined) return { items: rows.map(show) };
  const fold = foldTopKeys(rows, query.top, query.rank);
  return { items: fold.items.map(show), other: fold.other.map(show) };
}

/**
 * `GET /api/v1/stats/…`: statistics from the rollups (docs/operations.md,
 * Statistics). Every route takes from / to (default the last 30 UTC days),
 * business (comma-separated), type, cluster and node filters.
 */
export function statsRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  const db = ctx.catalog.db;
  const days = { defaultDays: DEFAULT_RANGE_DAYS, maxDays: MAX_RANGE_DAYS };
  // Totals, share and the per-day series of one range and filter come from one rollup read.
  const reads = new SharedReads();
  const series = (
    range: StatsRange,
    query: StatsQuery,
    key: SeriesKey,
    grain: 'day' | 'hour' = 'day',
  ): Promise<SeriesRow[]> => {
    const filter = filterOf(query);
    return reads.read(JSON.stringify([range.fromMs, range.toMs, filter, key, grain]), () =>
      rollupSeries(db, range, filter, key, grain),
    );
  };
  return async (app) => {
    app.get(
      '/api/v1/stats/totals',
      {
        config: { access: 'viewer' },
        schema: {
          querystring: StatsQuerySchema,
          response: { 200: z.object({ ...RangeSchema, ...SumsSchema.shape }) },
        },
      },
      async (request) => {
        const range = rangeOf(request.query, ctx.clock().getTime(), days);
        const totals = sumRows(await series(range, request.query, 'game_id'));
        return { from: isoTime(range.fromMs), to: isoTime(range.toMs), ...shown(totals) };
      },
    );

    app.get(
      '/api/v1/stats/daily',
      {
        config: { access: 'viewer' },
        schema: { querystring: SeriesQuerySchema, response: { 200: seriesAnswer('day') } },
      },
      async (request) => {
        const { by } = request.query;
        if (by === 'type' && request.query.business.length !== 1)
          throw new ApiError(400, 'invalid_request', 'by=type needs exactly one business');
        const range = rangeOf(request.query, ctx.clock().getTime(), days);
        const rows = await series(range, request.query, seriesKey(by));
        return {
          from: isoTime(range.fromMs),
          to: isoTime(range.toMs),
          by,
          ...folded(rows, request.query, 'day'),
        };
      },
    );

    app.get(
      '/api/v1/stats/hourly',
      {
        config: { access: 'viewer' },
        schema: { querystring: SeriesQuerySchema, response: { 200: seriesAnswer('hour') } },
      },
      async (request) => {
        const { by } = request.query;
        const range = rangeOf(request.query, ctx.clock().getTime(), {
          defaultDays: DEFAULT_HOURLY_DAYS,
          maxDays: MAX_HOURLY_DAYS,
        });
        const rows = await series(range, request.query, seriesKey(by), 'hour');
        return {
          from: isoTime(range.fromMs),
          to: isoTime(range.toMs),
          by,
          ...folded(rows, request.query, 'hour'),
        };
      },
    );

    app.get(
      '/api/v1/stats/share',
      {
        config: { access: 'viewer' },
        schema: {
          querystring: StatsQuerySchema,
          response: {
            200: z.object({
              ...RangeSchema,
              items: z.array(
                z.object({
                  game_id: z.string(),
                  backups: z.number().int(),
                  bytes: z.number(),
                  backups_share: z.number(),
                  bytes_share: z.number(),
                }),
              ),
            }),
          },
        },
      },
      async (request) => {
        const range = rangeOf(request.query, ctx.clock().getTime(), days);
        const rows = sumByKey(await series(range, request.query, 'game_id')).map(({ key, ...sums }) => ({
          game_id: key,
          ...sums,
        }));
        const backups = rows.reduce((n, r) => n + r.backups, 0);
        const bytes = rows.reduce((n, r) => n + r.bytes, 0);
        return {
          from: isoTime(range.fromMs),
          to: isoTime(range.toMs),
          items: rows.map((r) => ({
            game_id: r.game_id,
            backups: r.backups,
            bytes: r.bytes,
            backups_share: backups === 0 ? 0 : r.backups / backups,
            bytes_share: bytes === 0 ? 0 : r.bytes / bytes,
          })),
        };
      },
    );

    app.get(
      '/api/v1/stats/throughput',
      {
        config: { access: 'viewer' },
        schema: {
          querystring: StatsQuerySchema,
          response: {
            200: z.object({
              ...RangeSchema,
              items: z.array(
                z.object({
                  day: z.string(),
                  node: z.string(),
                  bytes: z.number(),
                  transfers: z.number().int(),
                  transfer_seconds: z.number(),
                  bytes_per_second: z.number().nullable(),
                }),
              ),
            }),
          },
        },
      },
      async (request) => {
        const range = rangeOf(request.query, ctx.clock().getTime(), days);
        const rows = await series(range, request.query, 'node');
        return {
          from: isoTime(range.fromMs),
          to: isoTime(range.toMs),
          items: rows
            .filter((r) => r.key !== '')
            .map((r) => ({
              day: isoTime(r.day),
              node: r.key,
              bytes: r.bytes,
              transfers: r.transfers,
              transfer_seconds: r.transfer_ms / 1000,
              bytes_per_second: r.transfer_ms === 0 ? null : (r.bytes * 1000) / r.transfer_ms,
            })),
        };
      },
    );

    app.get(
      '/api/v1/stats/queue',
      {
        config: { access: 'viewer' },
        schema: {
          querystring: StatsQuerySchema,
          response: {
            200: z.object({
              ...RangeSchema,
              clusters: z.array(
                z.object({
                  cluster: z.string(),
                  depth: z.number().int(),
                  minutes: z.array(
                    z.object({
                      minute: z.string(),
                      enqueued: z.number().int(),
                      done: z.number().int(),
                      dead: z.number().int(),
                      depth: z.number().int(),
                    }),
                  ),
                }),
              ),
            }),
          },
        },
      },
      async (request) => {
        const nowMs = ctx.clock().getTime();
        const range = rangeOf(request.query, nowMs, {
          defaultDays: DEFAULT_QUEUE_DAYS,
          maxDays: MAX_QUEUE_DAYS,
        });
        // The depth history walks back from now, so it reads every minute from `from` on.
        const { clusters, flows } = await queueFlows(db, range.fromMs, request.query.cluster ?? null);
        return {
          from: isoTime(range.fromMs),
          to: isoTime(range.toMs),
          clusters: clusters.map((c) => ({
            cluster: c.name,
            depth: c.depth,
            minutes: depthHistory(
              flows.filter((f) => f.cluster_id === c.id),
              c.depth,
            )
              .filter((m) => m.minute < range.toMs)
              .map((m) => ({ ...m, minute: isoTime(m.minute) })),
          })),
        };
      },
    );

    app.get(
      '/api/v1/stats/top-failing',
      {
        config: { access: 'viewer' },
        schema: {
          querystring: StatsQuerySchema,
          response: {
            200: z.object({
              ...RangeSchema,
              items: z.array(
                z.object({
                  game_id: z.string(),
                  server_id: z.string(),
                  type: z.string(),
                  instance: z.string(),
                  failures: z.number().int(),
                  last_failure_at: z.string(),
                }),
              ),
            }),
          },
        },
      },
      async (request) => {
        const range = rangeOf(request.query, ctx.clock().getTime(), days);
        const rows = await topFailing(db, range, filterOf(request.query));
        return {
          from: isoTime(range.fromMs),
          to: isoTime(range.toMs),
          items: rows.map((r) => ({ ...r, last_failure_at: isoTime(r.last_failure_at) })),
        };
      },
    );

    app.get(
      '/api/v1/stats/slowest',
      {
        config: { access: 'viewer' },
        schema: {
          querystring: StatsQuerySchema,
          response: {
            200: z.object({
              ...RangeSchema,
              items: z.array(
                z.object({
                  job_id: z.number().int(),
                  backup_id: z.number().int(),
                  game_id: z.string(),
                  server_id: z.string(),
                  type: z.string(),
                  instance: z.string(),
                  cluster: z.string(),
                  node: z.string(),
                  size: z.number(),
                  transfer_seconds: z.number(),
                  finished_at: z.string(),
                }),
              ),
            }),
          },
        },
      },
      async (request) => {
        const range = rangeOf(request.query, ctx.clock().getTime(), days);
        const rows = await slowestTransfers(db, range, filterOf(request.query));
        return {
          from: isoTime(range.fromMs),
          to: isoTime(range.toMs),
          items: rows.map((r) => ({ ...shown(r), finished_at: isoTime(r.finished_at) })),
        };
      },
    );
  };
}
