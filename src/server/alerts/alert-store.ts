import { type Kysely, PostgresAdapter, sql } from 'kysely';
import type { AlertRow, CatalogSchema } from '../../catalog/schema.js';
import { IN_LIST_BATCH, INSERT_BATCH, inBatches } from '../../catalog/statement-batches.js';
import { ALERT_SEVERITY, type AlertType } from './alert-kind.js';
import type { OpenAlertRef } from './alert-reconcile.js';

/**
 * Alert rows and their history (DESIGN §10): every change of state is one
 * statement over a set of alerts plus one event per alert changed, so the
 * engine's sweep costs the same few round trips for 1 or 2,000 alerts. At most
 * one alert per (type, subject) is open or acknowledged at a time; a partial
 * unique index holds that, so two writers cannot open the same alert twice.
 */

type Db = Kysely<CatalogSchema>;

export interface AlertOpening {
  type: AlertType;
  subject: string;
  /** The subject's business; empty for nodes and clusters. */
  gameId: string;
  summary: string;
}

/** An alert that is not resolved blocks a second one for the same (type, subject). */
const NOT_RESOLVED = sql.lit('resolved');

/** Opens each alert that is not open yet; returns the ones this call opened. */
export async function openAlerts(
  db: Db,
  openings: readonly AlertOpening[],
  nowMs: number,
  actor = 'system',
): Promise<OpenAlertRef[]> {
  const unique = dedupe(openings);
  if (unique.length === 0) return [];
  if (db.getExecutor().adapter instanceof PostgresAdapter)
    return openAlertsInOneStatement(db, unique, nowMs, actor);
  const opened: OpenAlertRef[] = [];
  for (const batch of inBatches(unique, INSERT_BATCH)) {
    const rows = await db
      .insertInto('alerts')
      .values(
        batch.map((o) => ({
          type: o.type,
          subject: o.subject,
          game_id: o.gameId,
          severity: ALERT_SEVERITY[o.type],
          state: 'open',
          summary: o.summary,
          opened_at: nowMs,
          last_event_at: nowMs,
          notify_pending: 1,
        })),
      )
      .onConflict((oc) => oc.columns(['type', 'subject']).where('state', '<>', NOT_RESOLVED).doNothing())
      .returning(['id', 'type', 'subject', 'summary'])
      .execute();
    if (rows.length === 0) continue;
    await db
      .insertInto('alert_events')
      .values(rows.map((r) => ({ alert_id: r.id, at: nowMs, kind: 'opened', actor, detail: r.summary })))
      .execute();
    for (const r of rows) opened.push({ id: r.id, type: r.type as AlertType, subject: r.subject });
  }
  return opened;
}

/**
 * PostgreSQL: the alerts and their events in one statement (arrays unnested,
 * events written by a data-modifying CTE), whatever the count: a burst of
 * 2,000 costs one round trip instead of twenty multi-row inserts.
 */
async function openAlertsInOneStatement(
  db: Db,
  openings: readonly AlertOpening[],
  nowMs: number,
  actor: string,
): Promise<OpenAlertRef[]> {
  const column = (pick: (o: AlertOpening) => string) => openings.map(pick);
  const { rows } = await sql<{ id: number; type: string; subject: string }>`
    with opened as (
      insert into alerts (type, subject, game_id, severity, state, summary, opened_at, last_event_at, notify_pending)
      select v.type, v.subject, v.game_id, v.severity, 'open', v.summary, cast(${nowMs} as bigint), cast(${nowMs} as bigint), 1
      from unnest(
        cast(${column((o) => o.type)} as text[]), cast(${column((o) => o.subject)} as text[]),
        cast(${column((o) => o.gameId)} as text[]), cast(${column((o) => ALERT_SEVERITY[o.type])} as text[]),
        cast(${column((o) => o.summary)} as text[])
      ) as v(type, subject, game_id, severity, summary)
      on conflict (type, subject) where state <> 'resolved' do nothing
      returning id, type, subject, summary),
    events as (
      insert into alert_events (alert_id, at, kind, actor, detail)
      select id, cast(${nowMs} as bigint), 'opened', cast(${actor} as text), summary from opened)
    select id, type, subject from opened order by id`.execute(db);
  return rows.map((r) => ({ id: Number(r.id), type: r.type as AlertType, subject: r.subject }));
}

/** Resolves the given alerts that are not resolved yet; returns how many it resolved. */
export async function resolveAlerts(
  db: Db,
  ids: readonly number[],
  nowMs: number,
  actor: string,
  detail: string,
): Promise<number> {
  let resolved = 0;
  for (const batch of inBatches([...new Set(ids)], IN_LIST_BATCH)) {
    const rows = await db
      .updateTable('alerts')
      .set({
        state: 'resolved',
        resolved_at: nowMs,
        resolved_by: actor,
        last_event_at: nowMs,
        notify_pending: 1,
      })
      .where('id', 'in', batch)
      .where('state', '<>', 'resolved')
      .returning('id')
      .execute();
    if (rows.length === 0) continue;
    await db
      .insertInto('alert_events')
      .values(rows.map((r) => ({ alert_id: r.id, at: nowMs, kind: 'resolved', actor, detail })))
      .execute();
    resolved += rows.length;
  }
  return resolved;
}

/** Resolves the unresolved alerts of these types about these subjects. */
export async function resolveAlertsAbout(
  db: Db,
  types: readonly AlertType[],
  subjects: readonly string[],
  nowMs: number,
  actor: string,
  detail: string,
): Promise<number> {
  if (types.length === 0 || subjects.length === 0) return 0;
  let resolved = 0;
  for (const batch of inBatches([...new Set(subjects)], IN_LIST_BATCH)) {
    const rows = await db
      .selectFrom('alerts')
      .select('id')
      .where('type', 'in', types)
      .where('subject', 'in', batch)
      .where('state', '<>', 'resolved')
      .execute();
    resolved += await resolveAlerts(
      db,
      rows.map((r) => r.id),
      nowMs,
      actor,
      detail,
    );
  }
  return resolved;
}

/** Every unresolved alert of these types. */
export async function unresolvedAlerts(db: Db, types: readonly AlertType[]): Promise<OpenAlertRef[]> {
  if (types.length === 0) return [];
  const rows = await db
    .selectFrom('alerts')
    .select(['id', 'type', 'subject'])
    .where('type', 'in', types)
    .where('state', '<>', 'resolved')
    .execute();
  return rows.map((r) => ({ id: r.id, type: r.type as AlertType, subject: r.subject }));
}

/** What a person's action on one alert gives: the alert as it now is, or why nothing changed. */
export type PersonActionOutcome =
  | { ok: true; alert: AlertRow }
  | { ok: false; code: 'alert_not_found' | 'alert_resolved' };

/** Runs in the action's transaction once the change is made (the audit record). */
type AlsoRecord = (trx: Db) => Promise<void>;

/**
 * One person's action on one unresolved alert, in one transaction with its
 * event and `alsoRecord`; a missing or resolved alert changes nothing.
 */
async function actOnUnresolved(
  db: Db,
  id: number,
  alsoRecord: AlsoRecord,
  change: (trx: Db, current: AlertRow) => Promise<void>,
): Promise<PersonActionOutcome> {
  return db.transaction().execute(async (trx) => {
    const current = await trx.selectFrom('alerts').selectAll().where('id', '=', id).executeTakeFirst();
    if (!current) return { ok: false, code: 'alert_not_found' };
    if (current.state === 'resolved') return { ok: false, code: 'alert_resolved' };
    await change(trx, current);
    await alsoRecord(trx);
    return {
      ok: true,
      alert: await trx.selectFrom('alerts').selectAll().where('id', '=', id).executeTakeFirstOrThrow(),
    };
  });
}

/** Marks an open alert as being handled; a repeated acknowledgement only adds the comment. */
export function acknowledgeAlert(
  db: Db,
  id: number,
  actor: string,
  comment: string,
  nowMs: number,
  alsoRecord: AlsoRecord = async () => undefined,
): Promise<PersonActionOutcome> {
  return actOnUnresolved(db, id, alsoRecord, async (trx, current) => {
    const first = current.state === 'open';
    await trx
      .updateTable('alerts')
      .set(
        first
          ? { state: 'acknowledged', acknowledged_at: nowMs, acknowledged_by: actor, ack_comment: comment }
          : { ack_comment: comment },
      )
      .set({ last_event_at: nowMs })
      .where('id', '=', id)
      .execute();
    await trx
      .insertInto('alert_events')
      .values({ alert_id: id, at: nowMs, kind: first ? 'acknowledged' : 'commented', actor, detail: comment })
      .execute();
  });
}

/** Resolves one alert by hand (a person says it is handled). */
export function resolveAlertByHand(
  db: Db,
  id: number,
  actor: string,
  comment: string,
  nowMs: number,
  alsoRecord: AlsoRecord = async () => undefined,
): Promise<PersonActionOutcome> {
  return actOnUnresolved(db, id, alsoRecord, async (trx) => {
    await resolveAlerts(trx, [id], nowMs, actor, comment);
  });
}

/** One opening per (type, subject): the last one given wins. */
function dedupe(openings: readonly AlertOpening[]): AlertOpening[] {
  const byKey = new Map<string, AlertOpening>();
  for (const o of openings) byKey.set(`${o.type}\u0000${o.subject}`, o);
  return [...byKey.values()];
}
