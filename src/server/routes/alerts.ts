import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { type ExpressionBuilder, type SqlBool, sql } from 'kysely';
import { z } from 'zod';
import type { CatalogDb } from '../../catalog/database.js';
import type { AlertRow, CatalogSchema } from '../../catalog/schema.js';
import { gameIdSchema } from '../../shared/report.js';
import {
  ALERT_SEVERITY,
  ALERT_STATES,
  ALERT_TYPES,
  type AlertState,
  type AlertType,
  SEVERITIES,
  type Severity,
} from '../alerts/alert-kind.js';
import { acknowledgeAlert, resolveAlertByHand } from '../alerts/alert-store.js';
import { ApiError } from '../api-error.js';
import type { AppContext } from '../app-context.js';
import { recordAudit } from '../audit.js';
import { actorName } from '../auth/principal.js';
import { isoTime, isoTimeOrNull } from './iso-time.js';
import { isoTimeInput } from './iso-time-input.js';
import { booleanFlag, listFilter, pageOf, pageOffset, pageSchema, pagingQueryShape } from './paging.js';
import { needsPerson, personOf } from './person.js';

/** Longest comment on an acknowledgement or a manual resolve. */
export const MAX_ALERT_COMMENT_CHARS = 1000;
/** Longest free-text search. */
export const MAX_ALERT_SEARCH_CHARS = 200;
/** Most alerts the summary lists under `newest`. */
export const SUMMARY_NEWEST_LIMIT = 50;

/** The states the list shows when none is asked for: what still needs someone. */
const UNRESOLVED: AlertState[] = ['open', 'acknowledged'];

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we reject
const CONTROL_EXCEPT_LINE_BREAKS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

export const AlertCommentSchema = z.strictObject({
  comment: z
    .string()
    .trim()
    .min(1, 'comment is empty')
    .max(MAX_ALERT_COMMENT_CHARS)
    .refine((v) => !CONTROL_EXCEPT_LINE_BREAKS.test(v), 'comment contains a control character'),
});

export const AlertSchema = z.object({
  id: z.number().int(),
  type: z.enum(ALERT_TYPES),
  severity: z.enum(SEVERITIES),
  /** `server_id/type/instance`, a node's name or a cluster's name. */
  subject: z.string(),
  /** The subject's game_id; empty for nodes and clusters. */
  business: z.string(),
  state: z.enum(ALERT_STATES),
  summary: z.string(),
  opened_at: z.string(),
  acknowledged_at: z.string().nullable(),
  acknowledged_by: z.string().nullable(),
  ack_comment: z.string().nullable(),
  resolved_at: z.string().nullable(),
  resolved_by: z.string().nullable(),
  last_event_at: z.string(),
  /** Whether the caller follows the alert's business. */
  followed: z.boolean(),
});
export type Alert = z.infer<typeof AlertSchema>;

export const AlertEventSchema = z.object({
  at: z.string(),
  /** opened | acknowledged | commented | resolved | updated */
  kind: z.string(),
  actor: z.string(),
  detail: z.string(),
});

export const AlertDetailSchema = AlertSchema.extend({ events: z.array(AlertEventSchema) });
export type AlertDetail = z.infer<typeof AlertDetailSchema>;

export const AlertListQuerySchema = z.strictObject({
  ...pagingQueryShape,
  type: listFilter(z.enum(ALERT_TYPES)).optional(),
  /** Default: open,acknowledged. */
  state: listFilter(z.enum(ALERT_STATES)).optional(),
  business: listFilter(gameIdSchema).optional(),
  /** true: only the caller's followed businesses; false: all others. Needs a person's token. */
  followed: booleanFlag.optional(),
  /** Case-insensitive substring of the subject, summary, game_id or type. */
  q: z.string().min(1, 'q is empty').max(MAX_ALERT_SEARCH_CHARS).optional(),
  /** Only alerts whose last event is at or after this time. */
  since: isoTimeInput.optional(),
});
export type AlertListQuery = z.infer<typeof AlertListQuerySchema>;

export const AlertParamsSchema = z.strictObject({
  id: z
    .string()
    .regex(/^[1-9][0-9]{0,14}$/, 'id must be a positive whole number')
    .transform(Number),
});

export const AlertSummaryQuerySchema = z.strictObject({
  /** List under `newest` the alerts whose last event is after this time; without it `newest` is empty. */
  since: isoTimeInput.optional(),
});

const CountsSchema = z.object({ open: z.number().int(), acknowledged: z.number().int() });

export const AlertSummarySchema = z.object({
  /** Unresolved alerts of the businesses the caller follows; all zero for a token without a person. */
  followed: CountsSchema.extend({
    /** The followed open (not acknowledged) alerts by type; types without any are left out. */
    by_type: z.record(z.string(), z.number().int()),
  }),
  others_open: z.number().int(),
  others_acknowledged: z.number().int(),
  total_open: z.number().int(),
  total_acknowledged: z.number().int(),
  /** Whether the caller follows any business: then `newest` holds only followed alerts. */
  following: z.boolean(),
  /** Alerts (any state) whose last event is after `since`, newest first, at most 50. */
  newest: z.array(AlertSchema),
  /** The server's clock when it answered: pass it (a little earlier, to be safe) as the next `since`. */
  server_time: z.string(),
});
export type AlertSummary = z.infer<typeof AlertSummarySchema>;

type AlertWithFollowed = AlertRow & { followed: unknown };

function toAlert(row: AlertWithFollowed): Alert {
  const type: AlertType = isAlertType(row.type) ? row.type : 'illegal';
  return {
    id: row.id,
    type,
    severity: isSeverity(row.severity) ? row.severity : ALERT_SEVERITY[type],
    subject: row.subject,
    business: row.game_id,
    state: isAlertState(row.state) ? row.state : 'open',
    summary: row.summary,
    opened_at: isoTime(row.opened_at),
    acknowledged_at: isoTimeOrNull(row.acknowledged_at),
    acknowledged_by: row.acknowledged_by,
    ack_comment: row.ack_comment,
    resolved_at: isoTimeOrNull(row.resolved_at),
    resolved_by: row.resolved_by,
    last_event_at: isoTime(row.last_event_at),
    // PostgreSQL answers a boolean, SQLite 0/1.
    followed: row.followed === true || Number(row.followed) === 1,
  };
}

function isAlertType(value: string): value is AlertType {
  return (ALERT_TYPES as readonly string[]).includes(value);
}

function isSeverity(value: string): value is Severity {
  return (SEVERITIES as readonly string[]).includes(value);
}

function isAlertState(value: string): value is AlertState {
  return (ALERT_STATES as readonly string[]).includes(value);
}

/** Whether `userId` follows the alert's business (false for no person). */
function followedColumn(userId: number | null) {
  return (eb: ExpressionBuilder<CatalogSchema, 'alerts'>) =>
    userId === null
      ? sql<number>`0`.as('followed')
      : eb
          .exists(
            eb
              .selectFrom('user_focus')
              .select(sql.lit(1).as('one'))
              .where('user_focus.user_id', '=', userId)
              .whereRef('user_focus.game_id', '=', 'alerts.game_id'),
          )
          .as('followed');
}

function followedGames(db: CatalogDb, userId: number) {
  return db.selectFrom('user_focus').select('user_focus.game_id').where('user_focus.user_id', '=', userId);
}

/** `text` as a LIKE pattern matching itself anywhere: `%`, `_` and the escape character are literal. */
export function containsPattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

const SEARCHED_COLUMNS = ['alerts.subject', 'alerts.summary', 'alerts.game_id', 'alerts.type'] as const;

async function listAlerts(db: CatalogDb, query: AlertListQuery, userId: number | null) {
  let filtered = db.selectFrom('alerts').where('alerts.state', 'in', query.state ?? UNRESOLVED);
  if (query.type) filtered = filtered.where('alerts.type', 'in', query.type);
  if (query.business) filtered = filtered.where('alerts.game_id', 'in', query.business);
  if (query.since !== undefined) filtered = filtered.where('alerts.last_event_at', '>=', query.since);
  if (query.followed !== undefined) {
    if (userId === null) throw needsPerson();
    filtered = filtered.where('alerts.game_id', query.followed ? 'in' : 'not in', followedGames(db, userId));
  }
  if (query.q !== undefined) {
    const pattern = containsPattern(query.q);
    filtered = filtered.where((eb) =>
      eb.or(
        SEARCHED_COLUMNS.map(
          (column) => sql<SqlBool>`lower(${sql.ref(column)}) like lower(${pattern}) escape '\\'`,
        ),
      ),
    );
  }
  const [counted, rows] = await Promise.all([
    filtered.select((eb) => eb.fn.countAll<number | string>().as('n')).executeTakeFirstOrThrow(),
    filtered
      .selectAll('alerts')
      .select(followedColumn(userId))
      .orderBy('alerts.last_event_at', 'desc')
      .orderBy('alerts.id', 'desc')
      .limit(query.page_size)
      .offset(pageOffset(query))
      .execute(),
  ]);
  return pageOf(rows.map(toAlert), Number(counted.n), query);
}

async function findAlert(db: CatalogDb, id: number, userId: number | null): Promise<Alert | undefined> {
  const row = await db
    .selectFrom('alerts')
    .selectAll('alerts')
    .select(followedColumn(userId))
    .where('alerts.id', '=', id)
    .executeTakeFirst();
  return row && toAlert(row);
}

async function alertDetail(db: CatalogDb, id: number, userId: number | null): Promise<AlertDetail> {
  const [alert, events] = await Promise.all([
    findAlert(db, id, userId),
    db
      .selectFrom('alert_events')
      .select(['at', 'kind', 'actor', 'detail'])
      .where('alert_id', '=', id)
      .orderBy('at')
      .orderBy('id')
      .execute(),
  ]);
  if (!alert) throw alertNotFound(id);
  return { ...alert, events: events.map((e) => ({ ...e, at: isoTime(e.at) })) };
}

async function summarize(
  db: CatalogDb,
  userId: number | null,
  sinceMs: number | undefined,
  nowMs: number,
): Promise<AlertSummary> {
  const count = (eb: ExpressionBuilder<CatalogSchema, 'alerts'>) => eb.fn.countAll<number | string>().as('n');
  // Both counts read the (state, game_id) index; only the caller's followed businesses are joined.
  const [totals, followedCounts, anyFocus] = await Promise.all([
    db
      .selectFrom('alerts')
      .select(['alerts.state', count])
      .where('alerts.state', 'in', UNRESOLVED)
      .groupBy('alerts.state')
      .execute(),
    userId === null
      ? Promise.resolve([])
      : db
          .selectFrom('alerts')
          .innerJoin('user_focus', (join) =>
            join.onRef('user_focus.game_id', '=', 'alerts.game_id').on('user_focus.user_id', '=', userId),
          )
          .select(['alerts.state', 'alerts.type', count])
          .where('alerts.state', 'in', UNRESOLVED)
          .groupBy(['alerts.state', 'alerts.type'])
          .execute(),
    userId === null
      ? Promise.resolve(undefined)
      : db
          .selectFrom('user_focus')
          .select('user_focus.game_id')
          .where('user_focus.user_id', '=', userId)
          .limit(1)
          .executeTakeFirst(),
  ]);
  const total = { open: 0, acknowledged: 0 };
  for (const row of totals)
    if (row.state === 'open' || row.state === 'acknowledged') total[row.state] = Number(row.n);
  const followed = { open: 0, acknowledged: 0, by_type: {} as Record<string, number> };
  for (const row of followedCounts) {
    const n = Number(row.n);
    if (row.state === 'open') {
      followed.open += n;
      followed.by_type[row.type] = n;
    } else if (row.state === 'acknowledged') followed.acknowledged += n;
  }
  const following = anyFocus !== undefined;
  let newest: Alert[] = [];
  if (sinceMs !== undefined) {
    let recent = db
      .selectFrom('alerts')
      .selectAll('alerts')
      .select(followedColumn(userId))
      .where('alerts.last_event_at', '>', sinceMs);
    if (following && userId !== null) {
      recent = recent.where('alerts.game_id', 'in', followedGames(db, userId));
    }
    const rows = await recent
      .orderBy('alerts.last_event_at', 'desc')
      .orderBy('alerts.id', 'desc')
      .limit(SUMMARY_NEWEST_LIMIT)
      .execute();
    newest = rows.map(toAlert);
  }
  return {
    followed,
    others_open: total.open - followed.open,
    others_acknowledged: total.acknowledged - followed.acknowledged,
    total_open: total.open,
    total_acknowledged: total.acknowledged,
    following,
    newest,
    server_time: isoTime(nowMs),
  };
}

function alertNotFound(id: number): ApiError {
  return new ApiError(404, 'alert_not_found', `no alert ${id}`);
}

function alertOutcomeError(id: number, code: 'alert_not_found' | 'alert_resolved'): ApiError {
  return code === 'alert_not_found'
    ? alertNotFound(id)
    : new ApiError(409, 'alert_resolved', `alert ${id} is already resolved`);
}

/**
 * The alert API (DESIGN §10): `GET /api/v1/alerts`, `GET /api/v1/alerts/summary`,
 * `GET /api/v1/alerts/:id`, `POST /api/v1/alerts/:id/acknowledge`, `POST /api/v1/alerts/:id/resolve`.
 */
export function alertRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  const db = ctx.catalog.db;
  return async (app) => {
    app.get(
      '/api/v1/alerts',
      {
        config: { access: 'viewer' },
        schema: { querystring: AlertListQuerySchema, response: { 200: pageSchema(AlertSchema) } },
      },
      (request) => listAlerts(db, request.query, personOf(request.principal)),
    );

    // Polled by every user's browser extension: a few grouped counts, no paging.
    app.get(
      '/api/v1/alerts/summary',
      {
        config: { access: 'viewer' },
        schema: { querystring: AlertSummaryQuerySchema, response: { 200: AlertSummarySchema } },
      },
      (request) => summarize(db, personOf(request.principal), request.query.since, ctx.clock().getTime()),
    );

    app.get(
      '/api/v1/alerts/:id',
      {
        config: { access: 'viewer' },
        schema: { params: AlertParamsSchema, response: { 200: AlertDetailSchema } },
      },
      (request) => alertDetail(db, request.params.id, personOf(request.principal)),
    );

    // A person acts on an alert: the change, its event and the audit record commit together.
    const actions = [
      { verb: 'acknowledge', change: acknowledgeAlert },
      { verb: 'resolve', change: resolveAlertByHand },
    ] as const;
    for (const { verb, change } of actions) {
      app.post(
        `/api/v1/alerts/:id/${verb}`,
        {
          config: { access: 'operator' },
          schema: { params: AlertParamsSchema, body: AlertCommentSchema, response: { 200: AlertSchema } },
        },
        async (request) => {
          const { id } = request.params;
          const { comment } = request.body;
          const nowMs = ctx.clock().getTime();
          const actor = actorName(request.principal);
          const outcome = await change(db, id, actor, comment, nowMs, (trx) =>
            recordAudit(trx, {
              at: nowMs,
              actor,
              action: `alert.${verb}`,
              subject: `alert:${id}`,
              detail: { comment },
            }),
          );
          if (!outcome.ok) throw alertOutcomeError(id, outcome.code);
          return answerAlert(db, id, personOf(request.principal));
        },
      );
    }
  };
}

async function answerAlert(db: CatalogDb, id: number, userId: number | null): Promise<Alert> {
  const alert = await findAlert(db, id, userId);
  if (!alert) throw alertNotFound(id);
  return alert;
}
