import type { Kysely } from 'kysely';
import type { CatalogSchema } from '../../catalog/schema.js';
import { openAlerts, resolveAlertsAbout } from './alert-store.js';
import { alertSummary } from './alert-summary.js';
import { instanceSubject } from './instance-subject.js';

/**
 * The transfer alerts (DESIGN §10), raised where the queue decides, in the
 * same transaction: `transfer_failed` when a job goes dead, `integrity` when a
 * node found the file different from what the agent reported, both about the
 * backup's instance and both resolved by the instance's next verified copy.
 */

type Db = Kysely<CatalogSchema>;

export interface DeadJob {
  jobId: number;
  attempts: number;
  error: string | null;
}

/** Opens `transfer_failed` for jobs that just went dead. */
export async function raiseTransferFailed(db: Db, jobs: readonly DeadJob[], nowMs: number): Promise<void> {
  if (jobs.length === 0) return;
  const byJob = new Map(jobs.map((j) => [j.jobId, j]));
  const rows = await db
    .selectFrom('transfer_jobs')
    .innerJoin('backups', 'backups.id', 'transfer_jobs.backup_id')
    .select([
      'transfer_jobs.id',
      'backups.server_id',
      'backups.type',
      'backups.instance',
      'backups.game_id',
      'backups.filename',
    ])
    .where('transfer_jobs.id', 'in', [...byJob.keys()])
    .execute();
  await openAlerts(
    db,
    rows.map((r) => {
      const job = byJob.get(r.id);
      return {
        type: 'transfer_failed' as const,
        subject: instanceSubject(r.server_id, r.type, r.instance),
        gameId: r.game_id,
        summary: alertSummary({
          type: 'transfer_failed',
          filename: r.filename ?? '?',
          attempts: job?.attempts ?? 0,
          error: job?.error ?? null,
        }),
      };
    }),
    nowMs,
  );
}

/** Opens `integrity` for a backup whose pulled copy did not match its reported size and BLAKE3. */
export async function raiseIntegrity(
  db: Db,
  backupId: number,
  stage: 'pull' | 'scrub' | 'restore',
  node: string | null,
  nowMs: number,
): Promise<void> {
  const backup = await db
    .selectFrom('backups')
    .select(['server_id', 'type', 'instance', 'game_id', 'filename'])
    .where('id', '=', backupId)
    .executeTakeFirst();
  if (!backup) return;
  await openAlerts(
    db,
    [
      {
        type: 'integrity',
        subject: instanceSubject(backup.server_id, backup.type, backup.instance),
        gameId: backup.game_id,
        summary: alertSummary({ type: 'integrity', filename: backup.filename ?? '?', stage, node }),
      },
    ],
    nowMs,
  );
}

/** A verified copy of one of the instance's backups is stored: its transfer alerts are over. */
export async function resolveTransferAlerts(
  db: Db,
  backupId: number,
  node: string,
  nowMs: number,
): Promise<void> {
  const backup = await db
    .selectFrom('backups')
    .select(['server_id', 'type', 'instance', 'filename'])
    .where('id', '=', backupId)
    .executeTakeFirst();
  if (!backup) return;
  await resolveAlertsAbout(
    db,
    ['transfer_failed', 'integrity'],
    [instanceSubject(backup.server_id, backup.type, backup.instance)],
    nowMs,
    'system',
    `${backup.filename ?? 'a backup'} was stored and verified on node ${node}`,
  );
}
