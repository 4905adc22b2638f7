import { alertSummary } from './alert-summary.js';
import { type DueSchedule, nextDueAt } from './next-due.js';

/**
 * What a batch of one instance's reports means for that instance's
 * report-driven alerts (DESIGN §10):
 *
 * - `script_failed`: the newest report decides. A failed one opens the alert
 *   with its error; a successful one resolves it ("the instance's next
 *   successful backup").
 * - `illegal`: any illegal report opens it with the newest illegal report's
 *   reason. Reports never resolve it; an administrator does.
 * - `overdue`: a successful backup resolves it when, anchored at that
 *   backup's own `created_at`, the instance is no longer past due. A backup
 *   made on time but processed hours later therefore resolves it, and an old
 *   backup replayed late does not.
 */

/** One report as the verdict needs it. Times are epoch ms. */
export interface ReportFact {
  status: 'ok' | 'failed';
  /** When the backup was made (the report's own time, not when it was processed). */
  createdAt: number;
  error: string | null;
  legality: 'legal' | 'illegal';
  illegalReason: string | null;
}

/** The registered instance's schedule and the time the verdict is made at. */
export interface VerdictDue {
  schedule: DueSchedule;
  now: number;
}

export interface ReportVerdict {
  scriptFailed: { action: 'open'; summary: string } | { action: 'resolve' } | null;
  illegal: { action: 'open'; summary: string } | null;
  overdueResolvedBySuccess: boolean;
  /** `created_at` of the newest successful report: the anchor for the next due time (keep the later of it and the stored one). */
  newestSuccessAt: number | null;
}

/**
 * `reports` are one instance's, in ascending `created_at` order (on equal
 * times, the later in the array counts as newer). `due` is null for an
 * instance without a registry entry, which has no due time and so no overdue
 * alert to resolve.
 */
export function reportVerdict(reports: ReadonlyArray<ReportFact>, due: VerdictDue | null): ReportVerdict {
  let newest: ReportFact | null = null;
  let newestIllegal: ReportFact | null = null;
  let newestSuccessAt: number | null = null;
  for (const report of reports) {
    if (newest === null || report.createdAt >= newest.createdAt) newest = report;
    if (
      report.legality === 'illegal' &&
      (newestIllegal === null || report.createdAt >= newestIllegal.createdAt)
    ) {
      newestIllegal = report;
    }
    if (report.status === 'ok' && (newestSuccessAt === null || report.createdAt > newestSuccessAt)) {
      newestSuccessAt = report.createdAt;
    }
  }

  let scriptFailed: ReportVerdict['scriptFailed'] = null;
  if (newest?.status === 'failed') {
    scriptFailed = {
      action: 'open',
      summary: alertSummary({ type: 'script_failed', createdAt: newest.createdAt, error: newest.error }),
    };
  } else if (newest?.status === 'ok') {
    scriptFailed = { action: 'resolve' };
  }

  const illegal: ReportVerdict['illegal'] =
    newestIllegal === null
      ? null
      : { action: 'open', summary: alertSummary({ type: 'illegal', reason: newestIllegal.illegalReason }) };

  // Due times never shrink as the anchor grows, so judging by this batch's
  // newest success alone is enough: an older success than the stored one
  // cannot clear an instance the stored one leaves overdue.
  const overdueResolvedBySuccess =
    due !== null && newestSuccessAt !== null && due.now <= nextDueAt(due.schedule, newestSuccessAt);

  return { scriptFailed, illegal, overdueResolvedBySuccess, newestSuccessAt };
}
