import { describe, expect, it } from 'vitest';
import type { DueSchedule } from '../../src/server/alerts/next-due.js';
import { type ReportFact, reportVerdict } from '../../src/server/alerts/report-verdict.js';

// Frozen time: the verdict's `now` is passed in.
const SECOND = 1000;
const HOUR = 3600 * SECOND;
const DAY = 24 * HOUR;
const D0 = Date.UTC(2026, 10, 24, 4, 0, 0);
const DAILY: DueSchedule = { schedule: null, intervalSeconds: 86_400, timezone: 'UTC', graceSeconds: 3000 };

function ok(createdAt: number, fields: Partial<ReportFact> = {}): ReportFact {
  return { status: 'ok', createdAt, error: null, legality: 'legal', illegalReason: null, ...fields };
}

function failed(createdAt: number, error: string | null, fields: Partial<ReportFact> = {}): ReportFact {
  return { status: 'failed', createdAt, error, legality: 'legal', illegalReason: null, ...fields };
}

describe('script_failed', () => {
  it('a failed newest report opens it with its error', () => {
    const verdict = reportVerdict([ok(D0), failed(D0 + DAY, 'exit code 1')], null);
    expect(verdict.scriptFailed).toEqual({
      action: 'open',
      summary: 'backup of 2026-11-25 04:00 UTC failed: exit code 1',
    });
  });

  it('auto-resolves on the next success', () => {
    const verdict = reportVerdict(
      [failed(D0, 'exit code 1'), failed(D0 + HOUR, 'wrong'), ok(D0 + 2 * HOUR)],
      null,
    );
    expect(verdict.scriptFailed).toEqual({ action: 'resolve' });
  });

  it('the newest report decides, whatever came before', () => {
    expect(reportVerdict([ok(D0), ok(D0 + HOUR)], null).scriptFailed).toEqual({ action: 'resolve' });
    expect(
      reportVerdict([failed(D0, 'a'), ok(D0 + HOUR), failed(D0 + 2 * HOUR, 'b')], null).scriptFailed,
    ).toEqual({
      action: 'open',
      summary: 'backup of 2026-11-24 06:00 UTC failed: b',
    });
  });

  it('on equal times the later report in the batch is the newer', () => {
    expect(reportVerdict([failed(D0, 'a'), ok(D0)], null).scriptFailed).toEqual({ action: 'resolve' });
    expect(reportVerdict([ok(D0), failed(D0, 'a')], null).scriptFailed?.action).toBe('open');
  });

  it('a failure without a message still opens it', () => {
    expect(reportVerdict([failed(D0, null)], null).scriptFailed).toEqual({
      action: 'open',
      summary: 'backup of 2026-11-24 04:00 UTC failed (no error message)',
    });
  });

  it('no reports, no decision', () => {
    expect(reportVerdict([], { schedule: DAILY, now: D0 })).toEqual({
      scriptFailed: null,
      illegal: null,
      overdueResolvedBySuccess: false,
      newestSuccessAt: null,
    });
  });
});

describe('illegal', () => {
  it('any illegal report opens it with the newest illegal reason', () => {
    const verdict = reportVerdict(
      [
        ok(D0, { legality: 'illegal', illegalReason: 'unknown business g9' }),
        ok(D0 + HOUR, { legality: 'illegal', illegalReason: 'instance is not registered' }),
        ok(D0 + 2 * HOUR),
      ],
      null,
    );
    expect(verdict.illegal).toEqual({
      action: 'open',
      summary: 'report not accepted: instance is not registered',
    });
    // Legality and success are separate questions: the newest success still resolves script_failed.
    expect(verdict.scriptFailed).toEqual({ action: 'resolve' });
  });

  it('is never resolved by reports (an administrator does that)', () => {
    expect(reportVerdict([ok(D0), ok(D0 + HOUR)], null).illegal).toBeNull();
  });

  it('without a stated reason', () => {
    expect(reportVerdict([failed(D0, 'x', { legality: 'illegal' })], null).illegal).toEqual({
      action: 'open',
      summary: 'report not accepted by the registry',
    });
  });
});

describe('overdue resolved by a success', () => {
  it('a success made on time resolves it, however late it is processed', () => {
    // Made at D0 + 1 day, the instance is next due at D0 + 2 days + 50 min.
    const made = D0 + DAY;
    for (const processedAt of [made + SECOND, made + 6 * HOUR, made + DAY + 50 * 60 * SECOND]) {
      const verdict = reportVerdict([ok(made)], { schedule: DAILY, now: processedAt });
      expect(verdict.overdueResolvedBySuccess).toBe(true);
      expect(verdict.newestSuccessAt).toBe(made);
    }
  });

  it('a success whose own time already leaves the instance overdue does not', () => {
    const made = D0 + DAY;
    const dueAfterIt = made + DAY + 50 * 60 * SECOND;
    expect(
      reportVerdict([ok(made)], { schedule: DAILY, now: dueAfterIt + SECOND }).overdueResolvedBySuccess,
    ).toBe(false);
  });

  it('failures resolve nothing; the newest success counts', () => {
    const now = D0 + DAY + HOUR;
    expect(reportVerdict([failed(D0 + DAY, 'x')], { schedule: DAILY, now }).overdueResolvedBySuccess).toBe(
      false,
    );
    const verdict = reportVerdict([ok(D0 - DAY), ok(D0 + DAY), failed(D0 + DAY + HOUR, 'x')], {
      schedule: DAILY,
      now,
    });
    expect(verdict.newestSuccessAt).toBe(D0 + DAY);
    expect(verdict.overdueResolvedBySuccess).toBe(true);
  });

  it('an instance without a registry entry has no overdue alert to resolve', () => {
    expect(reportVerdict([ok(D0)], null).overdueResolvedBySuccess).toBe(false);
  });
});
