import type { Transaction } from 'kysely';
import type { CatalogDb } from '../catalog/database.js';
import type { BackupRow, CatalogSchema } from '../catalog/schema.js';
import { isPriority, type Priority, priorityRank } from '../shared/priority.js';
import type { Report, ReportReceipt } from '../shared/report.js';
import { ApiError } from './api-error.js';
import { decideIngest, type IllegalReportPolicy, type RegistryEntry } from './ingest-decision.js';

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

export interface ReportingHost {
  hostId: number;
  serverId: string;
}

/**
 * Stores one report inside the caller's transaction: the backup row and, for
 * a successful run, its queued transfer job. A repeated report_id changes
 * nothing and answers with the stored backup. Refusals (policy, a report_id
 * of another host) throw an ApiError before anything is written.
 */
export async function storeReport(
  trx: Transaction<CatalogSchema>,
  report: Report,
  settings: IngestSettings,
  nowMs: number,
): Promise<IngestResult> {
  const registered = await registryEntry(trx, report);
  const businessKnown = await trx
    .selectFrom('businesses')
    .select('id')
    .where('game_id', '=', report.game_id)
    .executeTakeFirst();
  const decision = decideIngest({
    report,
    registered,
    reportedBusinessKnown: businessKnown !== undefined,
    defaultClusterId: settings.defaultClusterId,
    policy: settings.policy,
  });
  if (decision.action === 'reject') {
    const stored = await findByReportId(trx, report.report_id);
    if (stored) return { receipt: await duplicateReceipt(trx, stored, report), created: false };
    throw new ApiError(403, decision.code, decision.message);
  }

  const createdAt = Date.parse(report.created_at);
  const baseBackupId =
    report.kind === 'incremental' && report.base_filename ? await findBaseFull(trx, report) : null;
  const inserted = await trx
    .insertInto('backups')
    .values({
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
      created_at: createdAt,
      finished_at: Date.parse(report.finished_at),
      received_at: nowMs,
      status: report.status,
      kind: report.kind,
      filename: report.filename,
      size: report.size,
      blake3: report.blake3,
      base_filename: report.base_filename,
      base_created_at: report.base_created_at === null ? null : Date.parse(report.base_created_at),
      base_backup_id: baseBackupId,
      log: report.log,
      error: report.error,
      exit_code: report.exit_code,
      output_tail: report.output_tail,
      legality: decision.legality,
      illegal_reason: decision.illegalReason,
      priority: decision.priority,
      agent_version: report.agent_version,
    })
    .onConflict((oc) => oc.column('report_id').doNothing())
    .returning('id')
    .executeTakeFirst();
  if (!inserted) {
    const stored = await findByReportId(trx, report.report_id);
    if (!stored) throw new Error(`report ${report.report_id} conflicted but is not stored`);
    return { receipt: await duplicateReceipt(trx, stored, report), created: false };
  }

  let jobId: number | null = null;
  if (decision.enqueue) {
    const job = await trx
      .insertInto('transfer_jobs')
      .values({
        backup_id: inserted.id,
        cluster_id: decision.clusterId,
        priority: priorityRank(decision.priority),
        state: 'queued',
        attempts: 0,
        max_attempts: settings.maxAttempts,
        size: report.size ?? 0,
        enqueued_at: nowMs,
        next_attempt_at: nowMs,
        bytes_done: 0,
        updated_at: nowMs,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    jobId = job.id;
  }

  if (decision.instanceId !== null) {
    const update =
      report.status === 'ok'
        ? { last_report_at: nowMs, last_success_at: createdAt, updated_at: nowMs }
        : { last_report_at: nowMs, updated_at: nowMs };
    await trx
      .updateTable('instances')
      .set(update)
      .where('id', '=', decision.instanceId)
      .where((eb) =>
        report.status === 'ok'
          ? eb.or([eb('last_success_at', 'is', null), eb('last_success_at', '<', createdAt)])
          : eb.val(true),
      )
      .execute();
  }

  return {
    created: true,
    receipt: {
      backup_id: inserted.id,
      report_id: report.report_id,
      duplicate: false,
      legality: decision.legality,
      illegal_reason: decision.illegalReason,
      job_id: jobId,
    },
  };
}

/** Marks the hosts that reported as seen, with the address and version of their newest report. */
export async function touchHosts(
  trx: Transaction<CatalogSchema>,
  seen: ReadonlyMap<number, { ip: string; agentVersion: string }>,
  nowMs: number,
): Promise<void> {
  for (const [hostId, { ip, agentVersion }] of seen) {
    await trx
      .updateTable('hosts')
      .set({ last_seen_at: nowMs, ip, agent_version: agentVersion })
      .where('id', '=', hostId)
      .execute();
  }
}

/** One report in its own transaction. */
export async function ingestReport(
  db: CatalogDb,
  report: Report,
  host: ReportingHost,
  settings: IngestSettings,
  nowMs: number,
): Promise<IngestResult> {
  checkReportOwner(report, host);
  return db.transaction().execute(async (trx) => {
    const result = await storeReport(trx, report, settings, nowMs);
    await touchHosts(
      trx,
      new Map([[host.hostId, { ip: report.host_ip, agentVersion: report.agent_version }]]),
      nowMs,
    );
    return result;
  });
}

type Db = CatalogDb | Transaction<CatalogSchema>;

function findByReportId(db: Db, reportId: string): Promise<BackupRow | undefined> {
  return db.selectFrom('backups').selectAll().where('report_id', '=', reportId).executeTakeFirst();
}

async function duplicateReceipt(db: Db, stored: BackupRow, report: Report): Promise<ReportReceipt> {
  if (stored.server_id !== report.server_id) {
    throw new ApiError(
      409,
      'report_id_conflict',
      `report_id ${report.report_id} is already used by another host`,
    );
  }
  const job = await db
    .selectFrom('transfer_jobs')
    .select('id')
    .where('backup_id', '=', stored.id)
    .executeTakeFirst();
  return {
    backup_id: stored.id,
    report_id: stored.report_id,
    duplicate: true,
    legality: stored.legality === 'illegal' ? 'illegal' : 'legal',
    illegal_reason: stored.illegal_reason,
    job_id: job?.id ?? null,
  };
}

async function registryEntry(db: Db, report: Report): Promise<RegistryEntry | null> {
  const row = await db
    .selectFrom('instances')
    .select(['id', 'game_id', 'cluster_id', 'priority'])
    .where('server_id', '=', report.server_id)
    .where('type', '=', report.type)
    .where('instance', '=', report.instance)
    .executeTakeFirst();
  if (!row) return null;
  const priority: Priority = isPriority(row.priority) ? row.priority : 'normal';
  return { instanceId: row.id, gameId: row.game_id, clusterId: row.cluster_id, priority };
}

async function findBaseFull(db: Db, report: Report): Promise<number | null> {
  const row = await db
    .selectFrom('backups')
    .select('id')
    .where('server_id', '=', report.server_id)
    .where('type', '=', report.type)
    .where('instance', '=', report.instance)
    .where('filename', '=', report.base_filename)
    .where('kind', '=', 'full')
    .where('status', '=', 'ok')
    .orderBy('created_at', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row?.id ?? null;
}
