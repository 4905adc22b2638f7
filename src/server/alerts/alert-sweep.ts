import { type Kysely, sql } from 'kysely';
import type { CatalogSchema } from '../../catalog/schema.js';
import { IN_LIST_BATCH, INSERT_BATCH, inBatches } from '../../catalog/statement-batches.js';
import { PRIORITIES } from '../../shared/priority.js';
import type { AlertType } from './alert-kind.js';
import { alertKey, reconcile, type WantedAlert } from './alert-reconcile.js';
import { openAlerts, resolveAlerts, resolveAlertsAbout, unresolvedAlerts } from './alert-store.js';
import { alertSummary } from './alert-summary.js';
import { isBacklogged } from './backlog-watch.js';
import { instanceSubject } from './instance-subject.js';
import { type InstanceWatch, isOverdue, isStuck } from './instance-watch.js';
import { DueScheduleError, nextDueAt } from './next-due.js';
import { isNodeOffline, type NodeWatch, nodePausedReason } from './node-watch.js';
import { type ReportFact, reportVerdict } from './report-verdict.js';

/**
 * One pass of the alert engine (DESIGN §10). The decisions are the pure
 * functions beside this file; this reads the catalog state they need, applies
 * what they decide, and keeps each step in its own transaction so a crash
 * between steps loses nothing (every step is recomputed from the catalog on
 * the next pass):
 *
 * 1. reports not yet looked at (`backups.alert_pending`) → script_failed and
 *    illegal opened, script_failed resolved by a newer success;
 * 2. instances without a due time (new, rescheduled, or with a newer success)
 *    → `next_due_at` from the newest success's `created_at`, or registration;
 * 3. instances past `next_due_at` (one indexed range query) → overdue;
 * 4. runs past their deadline → stuck;
 * 5. nodes → node_paused / node_offline;
 * 6. each cluster's oldest queued job → queue_backlog.
 */

type Db = Kysely<CatalogSchema>;

export interface AlertSweepSettings {
  /** The nodes' heartbeat period, seconds (offline after 3 × this). */
  heartbeatSeconds: number;
  /** A cluster whose oldest queued job waited longer than this is backlogged, seconds. */
  backlogSeconds: number;
  /** Rows per step's batch; default 2,000. */
  batchRows?: number;
}

export interface AlertSweepOutcome {
  reportsSeen: number;
  dueTimesComputed: number;
  opened: number;
  resolved: number;
}

const DEFAULT_BATCH_ROWS = 2000;
const SYSTEM = 'system';

export async function sweepAlerts(
  db: Db,
  nowMs: number,
  settings: AlertSweepSettings,
): Promise<AlertSweepOutcome> {
  const batchRows = settings.batchRows ?? DEFAULT_BATCH_ROWS;
  const outcome: AlertSweepOutcome = { reportsSeen: 0, dueTimesComputed: 0, opened: 0, resolved: 0 };
  const add = (step: { opened: number; resolved: number }): void => {
    outcome.opened += step.opened;
    outcome.resolved += step.resolved;
  };
  for (;;) {
    const step = await processReports(db, nowMs, batchRows);
    add(step);
    outcome.reportsSeen += step.seen;
    if (step.seen < batchRows) break;
  }
  for (;;) {
    const computed = await computeDueTimes(db, batchRows);
    outcome.dueTimesComputed += computed;
    if (computed < batchRows) break;
  }
  add(await reconcileInstanceConditions(db, nowMs));
  add(await reconcileNodes(db, nowMs, settings.heartbeatSeconds));
  add(await reconcileBacklog(db, nowMs, settings.backlogSeconds));
  return outcome;
}

interface StepChanges {
  opened: number;
  resolved: number;
}

/** Step 1: the reports stored since the last pass. */
async function processReports(db: Db, nowMs: number, limit: number): Promise<StepChanges & { seen: number }> {
  return db.transaction().execute(async (trx) => {
    const rows = await trx
      .selectFrom('backups')
      .leftJoin('instances', 'instances.id', 'backups.instance_id')
      .select([
        'backups.id',
        'backups.server_id',
        'backups.type',
        'backups.instance',
        'backups.game_id',
        'backups.status',
        'backups.created_at',
        'backups.error',
        'backups.legality',
        'backups.illegal_reason',
        'instances.id as instance_id',
        'instances.paused',
        'instances.muted_until',
        'instances.last_success_at',
      ])
      .where('backups.alert_pending', '=', 1)
      .orderBy('backups.id')
      .limit(limit)
      .execute();
    if (rows.length === 0) return { seen: 0, opened: 0, resolved: 0 };

    const bySubject = new Map<string, typeof rows>();
    for (const row of rows) {
      const subject = instanceSubject(row.server_id, row.type, row.instance);
      const list = bySubject.get(subject);
      if (list) list.push(row);
      else bySubject.set(subject, [row]);
    }
    const openings: WantedAlert[] = [];
    const recovered: string[] = [];
    for (const [subject, list] of bySubject) {
      list.sort((a, b) => a.created_at - b.created_at || a.id - b.id);
      const newest = list[list.length - 1];
      if (newest === undefined) continue;
      const facts: ReportFact[] = list.map((r) => ({
        status: r.status === 'ok' ? 'ok' : 'failed',
        createdAt: r.created_at,
        error: r.error,
        legality: r.legality === 'illegal' ? 'illegal' : 'legal',
        illegalReason: r.illegal_reason,
      }));
      const verdict = reportVerdict(facts, null);
      const silenced =
        newest.instance_id !== null &&
        (newest.paused === 1 || (newest.muted_until !== null && nowMs < newest.muted_until));
      if (verdict.scriptFailed?.action === 'resolve') recovered.push(subject);
      // A failure older than a success already on record (a spooled report arriving late) changes nothing.
      const supersededBySuccess =
        newest.last_success_at !== null && newest.last_success_at > newest.created_at;
      if (verdict.scriptFailed?.action === 'open' && !silenced && !supersededBySuccess) {
        openings.push({
          type: 'script_failed',
          subject,
          gameId: newest.game_id,
          summary: verdict.scriptFailed.summary,
        });
      }
      if (verdict.illegal && !silenced) {
        openings.push({ type: 'illegal', subject, gameId: newest.game_id, summary: verdict.illegal.summary });
      }
    }
    const resolved = await resolveAlertsAbout(
      trx,
      ['script_failed'],
      recovered,
      nowMs,
      SYSTEM,
      'a successful backup arrived',
    );
    const opened = await openAlerts(trx, openings, nowMs);
    for (const ids of inBatches(
      rows.map((r) => r.id),
      IN_LIST_BATCH,
    )) {
      await trx.updateTable('backups').set({ alert_pending: 0 }).where('id', 'in', ids).execute();
    }
    return { seen: rows.length, opened: opened.length, resolved };
  });
}

/** Step 2: due times for instances that have none (new, rescheduled, or with a newer success). */
async function computeDueTimes(db: Db, limit: number): Promise<number> {
  const rows = await db
    .selectFrom('instances')
    .select([
      'id',
      'schedule',
      'interval_seconds',
      'timezone',
      'grace_seconds',
      'last_success_at',
      'created_at',
    ])
    .where('next_due_at', 'is', null)
    .orderBy('id')
    .limit(limit)
    .execute();
  if (rows.length === 0) return 0;
  const due = rows.map((r) => {
    const anchor = r.last_success_at ?? r.created_at;
    const schedule = {
      schedule: r.schedule,
      intervalSeconds: r.interval_seconds,
      timezone: r.timezone,
      graceSeconds: r.grace_seconds,
    };
    try {
      return [r.id, nextDueAt(schedule, anchor)] as const;
    } catch (error) {
      if (!(error instanceof DueScheduleError)) throw error;
      // A row the registry would have refused: measure it by its interval rather than never.
      return [
        r.id,
        nextDueAt({ ...schedule, schedule: null, intervalSeconds: Math.max(60, r.interval_seconds) }, anchor),
      ] as const;
    }
  });
  for (const part of inBatches(due, INSERT_BATCH)) {
    const values = sql.join(part.map(([id, at]) => sql`(cast(${id} as bigint), cast(${at} as bigint))`));
    // Only rows still without a due time: a success stored meanwhile cleared it again, to be computed next pass.
    await sql`
      with v(id, due) as (values ${values})
      update instances set next_due_at = v.due
      from v where instances.id = v.id and instances.next_due_at is null`.execute(db);
  }
  return rows.length;
}

/** Steps 3 and 4: overdue and stuck instances, from two indexed range queries. */
async function reconcileInstanceConditions(db: Db, nowMs: number): Promise<StepChanges> {
  return db.transaction().execute(async (trx) => {
    const columns = [
      'id',
      'server_id',
      'type',
      'instance',
      'game_id',
      'paused',
      'muted_until',
      'next_due_at',
      'last_success_at',
      'run_started_at',
      'run_deadline_at',
    ] as const;
    const due = await trx.selectFrom('instances').select(columns).where('next_due_at', '<', nowMs).execute();
    const late = await trx
      .selectFrom('instances')
      .select(columns)
      .where('run_deadline_at', '<', nowMs)
      .execute();
    const wanted = new Map<string, WantedAlert>();
    const watch = (r: (typeof due)[number]): InstanceWatch => ({
      paused: r.paused === 1,
      mutedUntil: r.muted_until,
      nextDueAt: r.next_due_at,
      runStartedAt: r.run_started_at,
      runDeadlineAt: r.run_deadline_at,
    });
    for (const r of due) {
      if (!isOverdue(watch(r), nowMs) || r.next_due_at === null) continue;
      const subject = instanceSubject(r.server_id, r.type, r.instance);
      wanted.set(alertKey('overdue', subject), {
        type: 'overdue',
        subject,
        gameId: r.game_id,
        summary: alertSummary({ type: 'overdue', lastSuccessAt: r.last_success_at, dueAt: r.next_due_at }),
      });
    }
    for (const r of late) {
      if (!isStuck(watch(r), nowMs) || r.run_started_at === null || r.run_deadline_at === null) continue;
      const subject = instanceSubject(r.server_id, r.type, r.instance);
      wanted.set(alertKey('stuck', subject), {
        type: 'stuck',
        subject,
        gameId: r.game_id,
        summary: alertSummary({
          type: 'stuck',
          startedAt: r.run_started_at,
          deadlineAt: r.run_deadline_at,
          now: nowMs,
        }),
      });
    }
    return apply(trx, ['overdue', 'stuck'], wanted, nowMs);
  });
}

/** Step 5: paused and silent nodes. */
async function reconcileNodes(db: Db, nowMs: number, heartbeatSeconds: number): Promise<StepChanges> {
  return db.transaction().execute(async (trx) => {
    const nodes = await trx
      .selectFrom('nodes')
      .select(['name', 'state', 'paused_by_admin', 'last_heartbeat_at', 'enrolled_at'])
      .execute();
    const wanted = new Map<string, WantedAlert>();
    for (const n of nodes) {
      const node: NodeWatch = {
        name: n.name,
        state: n.state,
        pausedByAdmin: n.paused_by_admin === 1,
        lastHeartbeatAt: n.last_heartbeat_at,
        enrolledAt: n.enrolled_at,
      };
      if (isNodeOffline(node, nowMs, heartbeatSeconds) && n.enrolled_at !== null) {
        wanted.set(alertKey('node_offline', n.name), {
          type: 'node_offline',
          subject: n.name,
          gameId: '',
          summary: alertSummary({
            type: 'node_offline',
            lastHeartbeatAt: n.last_heartbeat_at,
            enrolledAt: n.enrolled_at,
            now: nowMs,
          }),
        });
      }
      const reason = nodePausedReason(node);
      if (reason !== null) {
        wanted.set(alertKey('node_paused', n.name), {
          type: 'node_paused',
          subject: n.name,
          gameId: '',
          summary: alertSummary({ type: 'node_paused', reason }),
        });
      }
    }
    return apply(trx, ['node_paused', 'node_offline'], wanted, nowMs);
  });
}

/** Step 6: clusters whose oldest queued job waited too long. */
async function reconcileBacklog(db: Db, nowMs: number, backlogSeconds: number): Promise<StepChanges> {
  return db.transaction().execute(async (trx) => {
    const clusters = await trx.selectFrom('clusters').select(['id', 'name']).execute();
    const wanted = new Map<string, WantedAlert>();
    for (const cluster of clusters) {
      let oldest: number | null = null;
      // One index seek per priority level (cluster, state, priority, enqueued_at).
      for (let rank = 0; rank < PRIORITIES.length; rank += 1) {
        const row = await trx
          .selectFrom('transfer_jobs')
          .select('enqueued_at')
          .where('cluster_id', '=', cluster.id)
          .where('state', '=', 'queued')
          .where('priority', '=', rank)
          .orderBy('enqueued_at')
          .limit(1)
          .executeTakeFirst();
        if (row && (oldest === null || row.enqueued_at < oldest)) oldest = row.enqueued_at;
      }
      if (oldest === null || !isBacklogged(oldest, nowMs, backlogSeconds)) continue;
      wanted.set(alertKey('queue_backlog', cluster.name), {
        type: 'queue_backlog',
        subject: cluster.name,
        gameId: '',
        summary: alertSummary({
          type: 'queue_backlog',
          cluster: cluster.name,
          oldestQueuedAt: oldest,
          now: nowMs,
        }),
      });
    }
    return apply(trx, ['queue_backlog'], wanted, nowMs);
  });
}

/** Makes the unresolved alerts of `types` exactly the wanted ones. */
async function apply(
  trx: Db,
  types: readonly AlertType[],
  wanted: ReadonlyMap<string, WantedAlert>,
  nowMs: number,
): Promise<StepChanges> {
  const open = await unresolvedAlerts(trx, types);
  const plan = reconcile(open, wanted, new Set(types));
  const resolved = await resolveAlerts(trx, plan.toResolve, nowMs, SYSTEM, 'the condition cleared');
  const opened = await openAlerts(trx, plan.toOpen, nowMs);
  return { opened: opened.length, resolved };
}
