import { type RawBuilder, sql, type Transaction } from 'kysely';
import type { CatalogDb } from '../catalog/database.js';
import { runTogether } from '../catalog/run-together.js';
import type { CatalogSchema, NewBackup, NewTransferJob } from '../catalog/schema.js';
import { IN_LIST_BATCH, INSERT_BATCH, inBatches } from '../catalog/statement-batches.js';
import { isPriority, type Priority, priorityRank } from '../shared/priority.js';
import type { Report, ReportReceipt } from '../shared/report.js';
import { ApiError } from './api-error.js';
import { decideIngest, type IllegalReportPolicy, identityOf, type RegistryEntry } from './ingest-decision.js';
import { rollupStatements } from './stats/record-rollups.js';
import { queueEvent } from './stats/rollup-increments.js';

export interface IngestSettings {
  policy: IllegalReportPolicy;
  maxAttempts: number;
  defaultClusterId: number;
}

export interface IngestResult {
  receipt: ReportReceipt;
  /** false when the report_id was already stored: nothing was changed. */
  created: boolean;
}

export type IngestOutcome = { ok: true; result: IngestResult } | { ok: false; error: ApiError };

export interface ReportingHost {
  hostId: number;
  serverId: string;
}

export interface Submission {
  report: Report;
  host: ReportingHost;
}

type Trx = Transaction<CatalogSchema>;

/** A report is accepted only from the host whose credential matches its server_id. */
export function checkReportOwner(report: Report, host: ReportingHost): void {
  if (host.serverId !== report.server_id) {
    throw new ApiError(
      403,
      'server_id_mismatch',
      `this credential belongs to server_id ${host.serverId}, the report names ${report.server_id}`,
    );
  }
}

/**
 * Stores a group of reports inside the caller's transaction, with a fixed
 * number of statements whatever the group's size: each new report gets its
 * backup row and, for a successful run, its queued transfer job. A report_id
 * already stored (earlier, or earlier in the same group) changes nothing and
 * answers with the stored backup. A refusal (policy, a report_id of another
 * host) is that report's outcome and writes nothing for it.
 */
export async function storeReports(
  trx: Trx,
  submissions: readonly Submission[],
  settings: IngestSettings,
  nowMs: number,
): Promise<IngestOutcome[]> {
  const reports = submissions.map((s) => s.report);
  const stored = await storedByReportId(
    trx,
    reports.map((r) => r.report_id),
  );
  const registry = await registryEntries(trx, reports);
  const knownBusinesses = await existingBusinesses(trx, reports);

  const outcomes: Array<IngestOutcome | undefined> = new Array(reports.length);
  const firstInGroup = new Map<string, number>();
  const toInsert: Array<{ index: number; row: NewBackup; enqueue: boolean; priority: Priority }> = [];
  reports.forEach((report, index) => {
    const earlier = stored.get(report.report_id);
    if (earlier) {
      outcomes[index] = duplicateOutcome(earlier, report);
      return;
    }
    if (firstInGroup.has(report.report_id)) return; // answered below, from the first copy
    firstInGroup.set(report.report_id, index);
    const decision = decideIngest({
      report,
      registered: registry.get(identityOf(report)) ?? null,
      reportedBusinessKnown: knownBusinesses.has(report.game_id),
      defaultClusterId: settings.defaultClusterId,
      policy: settings.policy,
    });
    if (decision.action === 'reject') {
      outcomes[index] = { ok: false, error: new ApiError(403, decision.code, decision.message) };
      return;
    }
    toInsert.push({
      index,
      enqueue: decision.enqueue,
      priority: decision.priority,
      row: backupRow(report, decision, nowMs),
    });
  });

  await resolveBaseFulls(
    trx,
    toInsert.map((t) => t.row),
  );
  const insertedIds = await insertBackups(
    trx,
    toInsert.map((t) => t.row),
  );
  const raced = toInsert.filter((t) => !insertedIds.has(t.row.report_id)).map((t) => t.row.report_id);
  const racedRows = await storedByReportId(trx, raced);

  const jobs = toInsert.filter((t) => t.enqueue && insertedIds.has(t.row.report_id));
  const jobIds = await insertJobs(
    trx,
    jobs.map((t) => ({
      backup_id: insertedIds.get(t.row.report_id) as number,
      cluster_id: t.row.cluster_id,
      priority: priorityRank(t.priority),
      state: 'queued',
      attempts: 0,
      max_attempts: settings.maxAttempts,
      size: t.row.size ?? 0,
      enqueued_at: nowMs,
      next_attempt_at: nowMs,
      bytes_done: 0,
      updated_at: nowMs,
    })),
  );
  await linkBaseFullsWithinGroup(trx, toInsert, insertedIds);

  for (const t of toInsert) {
    const report = reports[t.index] as Report;
    const backupId = insertedIds.get(t.row.report_id);
    if (backupId === undefined) {
      const row = racedRows.get(t.row.report_id);
      outcomes[t.index] = row
        ? duplicateOutcome(row, report)
        : { ok: false, error: new ApiError(500, 'internal', `report ${report.report_id} was not stored`) };
      continue;
    }
    outcomes[t.index] = {
      ok: true,
      result: {
        created: true,
        receipt: {
          backup_id: backupId,
          report_id: report.report_id,
          duplicate: false,
          legality: t.row.legality === 'illegal' ? 'illegal' : 'legal',
          illegal_reason: t.row.illegal_reason ?? null,
          job_id: jobIds.get(backupId) ?? null,
        },
      },
    };
  }
  // Later copies of a report_id within the group answer like a repeat of the first,
  // unless another host sent them: a report_id belongs to one host.
  reports.forEach((report, index) => {
    if (outcomes[index] !== undefined) return;
    const firstIndex = firstInGroup.get(report.report_id) as number;
    if (reports[firstIndex]?.server_id !== report.server_id) {
      outcomes[index] = { ok: false, error: reportIdConflict(report) };
      return;
    }
    const first = outcomes[firstIndex];
    outcomes[index] =
      first?.ok === true
        ? { ok: true, result: { created: false, receipt: { ...first.result.receipt, duplicate: true } } }
        : (first ?? { ok: false, error: new ApiError(500, 'internal', 'report was not stored') });
  });
  // The instances, the hosts and the rollups in one round trip, last: the rollup rows every
  // ingest touches then stay locked for as short a time as possible.
  const inserted = toInsert.filter((t) => insertedIds.has(t.row.report_id)).map((t) => t.row);
  await runTogether(trx, [
    ...touchInstances(inserted, nowMs),
    ...touchHosts(submissions, outcomes, nowMs),
    ...rollupStatements(
      trx,
      inserted.map((row) => ({
        event: 'ingested',
        created_at: row.created_at,
        game_id: row.game_id,
        type: row.type,
        status: row.status,
      })),
      jobs.map((t) => queueEvent(nowMs, t.row.cluster_id, 'enqueued')),
    ),
  ]);
  return outcomes as IngestOutcome[];
}

/** One report in its own transaction. */
export async function ingestReport(
  db: CatalogDb,
  submission: Submission,
  settings: IngestSettings,
  nowMs: number,
): Promise<IngestResult> {
  checkReportOwner(submission.report, submission.host);
  const [outcome] = await db.transaction().execute((trx) => storeReports(trx, [submission], settings, nowMs));
  if (!outcome) throw new Error('ingest produced no outcome');
  if (!outcome.ok) throw outcome.error;
  return outcome.result;
}

function backupRow(
  report: Report,
  decision: {
    legality: string;
    illegalReason: string | null;
    instanceId: number | null;
    gameId: string;
    clusterId: number;
    priority: Priority;
  },
  nowMs: number,
): NewBackup {
  return {
    report_id: report.report_id,
    instance_id: decision.instanceId,
    server_id: report.server_id,
    type: report.type,
    instance: report.instance,
    section: report.section,
    reported_game_id: report.game_id,
    game_id: decision.gameId,
    cluster_id: decision.clusterId,
    host_ip: report.host_ip,
    created_at: Date.parse(report.created_at),
    finished_at: Date.parse(report.finished_at),
    received_at: nowMs,
    status: report.status,
    kind: report.kind,
    filename: report.filename,
    size: report.size,
    blake3: report.blake3,
    base_filename: report.base_filename,
    base_created_at: report.base_created_at === null ? null : Date.parse(report.base_created_at),
    base_backup_id: null,
    log: report.log,
    error: report.error,
    exit_code: report.exit_code,
    output_tail: report.output_tail,
    legality: decision.legality,
    illegal_reason: decision.illegalReason,
    priority: decision.priority,
    agent_version: report.agent_version,
    transport: report.transport,
    rsync_model: report.rsync_model,
  };
}

interface StoredBackup {
  id: number;
  report_id: string;
  server_id: string;
  legality: string;
  illegal_reason: string | null;
  job_id: number | null;
}

function reportIdConflict(report: Report): ApiError {
  return new ApiError(
    409,
    'report_id_conflict',
    `report_id ${report.report_id} is already used by another host`,
  );
}

function duplicateOutcome(stored: StoredBackup, report: Report): IngestOutcome {
  if (stored.server_id !== report.server_id) return { ok: false, error: reportIdConflict(report) };
  return {
    ok: true,
    result: {
      created: false,
      receipt: {
        backup_id: stored.id,
        report_id: stored.report_id,
        duplicate: true,
        legality: stored.legality === 'illegal' ? 'illegal' : 'legal',
        illegal_reason: stored.illegal_reason,
        job_id: stored.job_id,
      },
    },
  };
}

async function storedByReportId(trx: Trx, reportIds: readonly string[]): Promise<Map<string, StoredBackup>> {
  const found = new Map<string, StoredBackup>();
  for (const ids of inBatches([...new Set(reportIds)], IN_LIST_BATCH)) {
    const rows = await trx
      .selectFrom('backups')
      .leftJoin('transfer_jobs', 'transfer_jobs.backup_id', 'backups.id')
      .select([
        'backups.id',
        'backups.report_id',
        'backups.server_id',
        'backups.legality',
        'backups.illegal_reason',
        'transfer_jobs.id as job_id',
      ])
      .where('backups.report_id', 'in', ids)
      .execute();
    for (const row of rows) found.set(row.report_id, row);
  }
  return found;
}

async function registryEntries(trx: Trx, reports: readonly Report[]): Promise<Map<string, RegistryEntry>> {
  const wanted = new Set(reports.map(identityOf));
  const entries = new Map<string, RegistryEntry>();
  for (const serverIds of inBatches([...new Set(reports.map((r) => r.server_id))], IN_LIST_BATCH)) {
    const rows = await trx
      .selectFrom('instances')
      .select(['id', 'server_id', 'type', 'instance', 'game_id', 'cluster_id', 'priority'])
      .where('server_id', 'in', serverIds)
      .execute();
    for (const row of rows) {
      const identity = identityOf(row);
      if (!wanted.has(identity)) continue;
      const priority: Priority = isPriority(row.priority) ? row.priority : 'normal';
      entries.set(identity, { instanceId: row.id, gameId: row.game_id, clusterId: row.cluster_id, priority });
    }
  }
  return entries;
}

async function existingBusinesses(trx: Trx, reports: readonly Report[]): Promise<Set<string>> {
  const known = new Set<string>();
  for (const gameIds of inBatches([...new Set(reports.map((r) => r.game_id))], IN_LIST_BATCH)) {
    const rows = await trx
      .selectFrom('businesses')
      .select('game_id')
      .where('game_id', 'in', gameIds)
      .execute();
    for (const row of rows) known.add(row.game_id);
  }
  return known;
}

/**
 * Fills base_backup_id of incrementals whose base full is already stored (the
 * newest of that name). When that newest full is deleted, or retention has
 * requested its delete, the incremental gets no base: it must not be linked
 * to a full that is going away (nor to an older full of the same name).
 */
async function resolveBaseFulls(trx: Trx, rows: NewBackup[]): Promise<void> {
  const incrementals = rows.filter((r) => r.kind === 'incremental' && r.base_filename);
  if (incrementals.length === 0) return;
  const newest = new Map<string, { id: number; created_at: number; gone: boolean }>();
  const serverIds = [...new Set(incrementals.map((r) => r.server_id))];
  const names = [...new Set(incrementals.map((r) => r.base_filename as string))];
  for (const ids of inBatches(serverIds, IN_LIST_BATCH)) {
    for (const fileNames of inBatches(names, IN_LIST_BATCH)) {
      const fulls = await trx
        .selectFrom('backups')
        .select([
          'id',
          'server_id',
          'type',
          'instance',
          'filename',
          'created_at',
          'deleted_at',
          'delete_requested_at',
        ])
        .where('server_id', 'in', ids)
        .where('filename', 'in', fileNames)
        .where('kind', '=', 'full')
        .where('status', '=', 'ok')
        .execute();
      for (const full of fulls) {
        const key = `${identityOf(full)}\u0000${full.filename}`;
        const seen = newest.get(key);
        if (!seen || seen.created_at < full.created_at) {
          const gone = full.deleted_at !== null || full.delete_requested_at !== null;
          newest.set(key, { id: full.id, created_at: full.created_at, gone });
        }
      }
    }
  }
  for (const row of incrementals) {
    const base = newest.get(`${identityOf(row)}\u0000${row.base_filename}`);
    row.base_backup_id = base === undefined || base.gone ? null : base.id;
  }
}

/** An incremental whose base full arrived in the same group is linked once both have ids. */
async function linkBaseFullsWithinGroup(
  trx: Trx,
  inserted: ReadonlyArray<{ row: NewBackup }>,
  ids: ReadonlyMap<string, number>,
): Promise<void> {
  const fulls = new Map<string, number>();
  for (const { row } of inserted) {
    const id = ids.get(row.report_id);
    if (row.kind === 'full' && row.status === 'ok' && id !== undefined)
      fulls.set(`${identityOf(row)}\u0000${row.filename}`, id);
  }
  for (const { row } of inserted) {
    if (row.kind !== 'incremental' || row.base_backup_id !== null) continue;
    const baseId = fulls.get(`${identityOf(row)}\u0000${row.base_filename}`);
    const id = ids.get(row.report_id);
    if (baseId !== undefined && id !== undefined) {
      await trx.updateTable('backups').set({ base_backup_id: baseId }).where('id', '=', id).execute();
    }
  }
}

/** Inserts new backup rows; a report_id stored meanwhile by another server is skipped. */
async function insertBackups(trx: Trx, rows: readonly NewBackup[]): Promise<Map<string, number>> {
  const ids = new Map<string, number>();
  for (const part of inBatches(rows, INSERT_BATCH)) {
    const inserted = await trx
      .insertInto('backups')
      .values(part)
      .onConflict((oc) => oc.column('report_id').doNothing())
      .returning(['id', 'report_id'])
      .execute();
    for (const row of inserted) ids.set(row.report_id, row.id);
  }
  return ids;
}

async function insertJobs(trx: Trx, rows: readonly NewTransferJob[]): Promise<Map<number, number>> {
  const ids = new Map<number, number>();
  for (const part of inBatches(rows, INSERT_BATCH)) {
    const inserted = await trx
      .insertInto('transfer_jobs')
      .values(part)
      .returning(['id', 'backup_id'])
      .execute();
    for (const row of inserted) ids.set(row.backup_id, row.id);
  }
  return ids;
}

/**
 * Records each registered instance's latest report and, for successes, its
 * newest backup time; a newer success clears the due time for the alert
 * engine to recompute from it, and any report ends the run the agent announced.
 */
/** Updates of the instances that reported: last report, last success, due time (see `runTogether`). */
function touchInstances(rows: readonly NewBackup[], nowMs: number): Array<RawBuilder<unknown>> {
  const latest = new Map<number, number | null>();
  for (const row of rows) {
    if (row.instance_id === null || row.instance_id === undefined) continue;
    const success = row.status === 'ok' ? row.created_at : null;
    const seen = latest.get(row.instance_id) ?? null;
    latest.set(row.instance_id, success === null ? seen : Math.max(seen ?? success, success));
  }
  return inBatches([...latest], INSERT_BATCH).map((part) => {
    const values = sql.join(
      part.map(([id, success]) => sql`(cast(${id} as bigint), cast(${success} as bigint))`),
    );
    return sql`
      with v(id, success) as (values ${values})
      update instances set
        last_report_at = ${nowMs},
        updated_at = ${nowMs},
        last_success_at = case
          when v.success is not null and (instances.last_success_at is null or instances.last_success_at < v.success)
          then v.success else instances.last_success_at end,
        next_due_at = case
          when v.success is not null and (instances.last_success_at is null or instances.last_success_at < v.success)
          then null else instances.next_due_at end,
        run_started_at = null,
        run_deadline_at = null
      from v where instances.id = v.id`;
  });
}

/** Marks the hosts that reported as seen, with the address and version of their newest stored report. */
function touchHosts(
  submissions: readonly Submission[],
  outcomes: ReadonlyArray<IngestOutcome | undefined>,
  nowMs: number,
): Array<RawBuilder<unknown>> {
  const seen = new Map<number, { ip: string; version: string; port: number | null; tls: number }>();
  submissions.forEach((s, i) => {
    if (!outcomes[i]?.ok) return;
    const { host_ip, agent_version, pull_port, pull_tls } = s.report;
    seen.set(s.host.hostId, { ip: host_ip, version: agent_version, port: pull_port, tls: pull_tls ? 1 : 0 });
  });
  return inBatches([...seen], INSERT_BATCH).map((part) => {
    const values = sql.join(
      part.map(
        ([id, v]) =>
          sql`(cast(${id} as bigint), cast(${v.ip} as text), cast(${v.version} as text), cast(${v.port} as integer), cast(${v.tls} as integer))`,
      ),
    );
    return sql`
      with v(id, ip, version, port, tls) as (values ${values})
      update hosts set last_seen_at = ${nowMs}, ip = v.ip, agent_version = v.version, pull_port = v.port, pull_tls = v.tls
      from v where hosts.id = v.id`;
  });
}
