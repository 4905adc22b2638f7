import { describe, expect, it } from 'vitest';
import { alertKey, reconcile, type WantedAlert } from '../../src/server/alerts/alert-reconcile.js';
import { alertSummary } from '../../src/server/alerts/alert-summary.js';
import { isBacklogged } from '../../src/server/alerts/backlog-watch.js';
import { type InstanceWatch, isOverdue } from '../../src/server/alerts/instance-watch.js';
import { type DueSchedule, nextDueAt } from '../../src/server/alerts/next-due.js';
import { reportVerdict } from '../../src/server/alerts/report-verdict.js';

// The overdue rule end to end, with frozen time: a backup is anchored at its own
// `created_at`, so when the server processes it (or when its copy leaves the
// queue) never makes an instance overdue, and a late-processed backup clears an
// overdue alert exactly when its own time says the instance is on schedule.
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const SUBJECT = 'db-17/mysql/3306';

const DAILY_INTERVAL: DueSchedule = {
  schedule: null,
  intervalSeconds: 86_400,
  timezone: 'UTC',
  graceSeconds: 3000,
};
const DAILY_CRON_SHANGHAI: DueSchedule = {
  schedule: '0 4 * * *',
  intervalSeconds: 3600,
  timezone: 'Asia/Shanghai',
  graceSeconds: 3000,
};

function watchAt(schedule: DueSchedule, lastSuccessCreatedAt: number): InstanceWatch {
  return {
    paused: false,
    mutedUntil: null,
    nextDueAt: nextDueAt(schedule, lastSuccessCreatedAt),
    runStartedAt: null,
    runDeadlineAt: null,
  };
}

/** The overdue alerts a sweep wants for one instance. */
function wantedOverdue(schedule: DueSchedule, lastSuccessAt: number, now: number): Map<string, WantedAlert> {
  const w = watchAt(schedule, lastSuccessAt);
  if (!isOverdue(w, now)) return new Map();
  const summary = alertSummary({ type: 'overdue', lastSuccessAt, dueAt: w.nextDueAt ?? 0 });
  return new Map([
    [alertKey('overdue', SUBJECT), { type: 'overdue', subject: SUBJECT, summary, gameId: 'g1' }],
  ]);
}

describe.each([
  // [schedule, a backup made on schedule, the one after it]
  ['a daily interval', DAILY_INTERVAL, Date.UTC(2026, 10, 25, 4, 0, 0)],
  ['a daily cron in Asia/Shanghai', DAILY_CRON_SHANGHAI, Date.UTC(2026, 10, 24, 20, 0, 0)], // 04:00 CST
])('%s', (_name, schedule, made) => {
  const dueAfterIt = made + DAY + 50 * MINUTE;

  it('the due time depends on created_at only, not on when the backup was processed', () => {
    expect(nextDueAt(schedule, made)).toBe(dueAfterIt);
    for (const processedAt of [made, made + HOUR, made + 20 * HOUR]) {
      // Nothing about processing enters the computation: the verdict uses the report's own time.
      const verdict = reportVerdict(
        [{ status: 'ok', createdAt: made, error: null, legality: 'legal', illegalReason: null }],
        { schedule, now: processedAt },
      );
      expect(verdict.newestSuccessAt).toBe(made);
    }
  });

  it('a queue backlog raises queue_backlog, never overdue', () => {
    // The backup's copy waits 5 hours in the transfer queue; the instance is on schedule.
    const now = made + 5 * HOUR;
    expect(isBacklogged(made + 1 * SECOND, now, 3600)).toBe(true);
    expect(isOverdue(watchAt(schedule, made), now)).toBe(false);
  });

  it('a backup made on time but processed hours late clears overdue', () => {
    // The previous success was a day earlier, so the instance went overdue when the report was late.
    const previous = made - DAY;
    const lateBy = 6 * HOUR;
    expect(isOverdue(watchAt(schedule, previous), made + lateBy)).toBe(true);
    const open = [{ id: 41, type: 'overdue' as const, subject: SUBJECT }];
    expect(reconcile(open, wantedOverdue(schedule, previous, made + lateBy), new Set(['overdue']))).toEqual({
      toOpen: [],
      toResolve: [],
    });
    // The report arrives: anchored at its own time, the instance is on schedule again.
    const verdict = reportVerdict(
      [{ status: 'ok', createdAt: made, error: null, legality: 'legal', illegalReason: null }],
      { schedule, now: made + lateBy },
    );
    expect(verdict.overdueResolvedBySuccess).toBe(true);
    expect(reconcile(open, wantedOverdue(schedule, made, made + lateBy), new Set(['overdue']))).toEqual({
      toOpen: [],
      toResolve: [41],
    });
  });

  it('a backup processed after its successor was due does not clear overdue', () => {
    const now = dueAfterIt + SECOND;
    const verdict = reportVerdict(
      [{ status: 'ok', createdAt: made, error: null, legality: 'legal', illegalReason: null }],
      { schedule, now },
    );
    expect(verdict.overdueResolvedBySuccess).toBe(false);
    expect(isOverdue(watchAt(schedule, made), now)).toBe(true);
  });

  it('grace boundaries: overdue only after the due time', () => {
    const w = watchAt(schedule, made);
    expect(isOverdue(w, dueAfterIt - SECOND)).toBe(false);
    expect(isOverdue(w, dueAfterIt)).toBe(false);
    expect(isOverdue(w, dueAfterIt + SECOND)).toBe(true);
  });

  it('a sweep opens overdue once, keeps it, and resolves it on the next success', () => {
    const scope = new Set(['overdue'] as const);
    const late = dueAfterIt + SECOND;
    const first = reconcile([], wantedOverdue(schedule, made, late), scope);
    expect(first.toOpen.map((a) => a.summary)).toEqual([
      alertSummary({ type: 'overdue', lastSuccessAt: made, dueAt: dueAfterIt }),
    ]);
    const open = [{ id: 1, type: 'overdue' as const, subject: SUBJECT }];
    expect(reconcile(open, wantedOverdue(schedule, made, late + HOUR), scope)).toEqual({
      toOpen: [],
      toResolve: [],
    });
    // The next backup, made a day after the first, arrives.
    expect(reconcile(open, wantedOverdue(schedule, made + DAY, late + HOUR), scope)).toEqual({
      toOpen: [],
      toResolve: [1],
    });
  });
});

describe('the summary for the example in the design', () => {
  it('reads as a person would write it', () => {
    const made = Date.UTC(2026, 10, 25, 4, 0, 0);
    expect(
      alertSummary({ type: 'overdue', lastSuccessAt: made, dueAt: nextDueAt(DAILY_INTERVAL, made) }),
    ).toBe('no successful backup since 2026-11-25 04:00 UTC (due 2026-11-26 04:50 UTC)');
  });
});
