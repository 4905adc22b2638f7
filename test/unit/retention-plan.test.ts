import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { planRetention, type RetentionBackup } from '../../src/server/retention/retention-plan.js';
import {
  DEFAULT_KEEP_FULLS,
  DEFAULT_RETENTION_DAYS,
  resolveRetentionPolicy,
} from '../../src/server/retention/retention-policy.js';

// Frozen time: every plan gets `now` from the test.
const NOW = Date.UTC(2026, 10, 30, 0, 0, 0);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function backup(id: number, kind: string, createdAt: number, extra: Partial<RetentionBackup> = {}) {
  const row: RetentionBackup = {
    id,
    kind,
    status: 'ok',
    created_at: createdAt,
    base_backup_id: null,
    filename: `b${id}.xb`,
    size: 1000,
    permanent: false,
    stored: true,
    deleted: false,
    ...extra,
  };
  return row;
}

describe('retention policy', () => {
  it('takes each setting from the instance, else the type, else the business, else the default', () => {
    expect(resolveRetentionPolicy(null, null, null)).toEqual({
      retentionDays: DEFAULT_RETENTION_DAYS,
      keepFulls: DEFAULT_KEEP_FULLS,
      source: { retentionDays: 'default', keepFulls: 'default' },
    });
    expect(DEFAULT_RETENTION_DAYS).toBe(15);
    expect(DEFAULT_KEEP_FULLS).toBe(2);
    expect(
      resolveRetentionPolicy(
        { retention_days: 30, keep_fulls: null },
        { retention_days: 7, keep_fulls: 4 },
        { retention_days: 3, keep_fulls: 1 },
      ),
    ).toEqual({ retentionDays: 30, keepFulls: 4, source: { retentionDays: 'instance', keepFulls: 'type' } });
    expect(
      resolveRetentionPolicy(
        { retention_days: null },
        { retention_days: null },
        { retention_days: 3, keep_fulls: 0 },
      ),
    ).toEqual({
      retentionDays: 3,
      keepFulls: 0,
      source: { retentionDays: 'business', keepFulls: 'business' },
    });
  });
});

describe('retention plan: frozen examples', () => {
  const policy = { retentionDays: 15, keepFulls: 2 };

  it('keeps what is recent and the last fulls; deletes the rest with the reason', () => {
    const rows = [
      backup(1, 'full', NOW - 40 * DAY),
      backup(2, 'full', NOW - 30 * DAY),
      backup(3, 'full', NOW - 20 * DAY),
      backup(4, 'full', NOW - 10 * DAY),
    ];
    const plan = planRetention(rows, policy, NOW);
    expect(plan.map((d) => [d.backup_id, d.action, d.rule])).toEqual([
      [4, 'keep', 'recent'],
      [3, 'keep', 'last_fulls'],
      [2, 'delete', 'expired'],
      [1, 'delete', 'expired'],
    ]);
    expect(plan[2]?.reason).toBe(
      'older than 15 days, not one of the last 2 fulls, not permanent, and no kept incremental needs it',
    );
  });

  it('never deletes the base full or an earlier incremental of a kept incremental', () => {
    const rows = [
      backup(1, 'full', NOW - 20 * DAY),
      backup(2, 'incremental', NOW - 19 * DAY, { base_backup_id: 1 }),
      backup(3, 'incremental', NOW - 16 * DAY, { base_backup_id: 1 }),
      backup(4, 'incremental', NOW - 14 * DAY, { base_backup_id: 1 }),
      backup(5, 'full', NOW - 13 * DAY),
      backup(6, 'full', NOW - 12 * DAY),
    ];
    const plan = planRetention(rows, policy, NOW);
    const byId = new Map(plan.map((d) => [d.backup_id, d]));
    expect(byId.get(4)).toMatchObject({ action: 'keep', rule: 'recent' });
    expect(byId.get(3)).toMatchObject({
      action: 'keep',
      rule: 'chain_of_kept',
      reason: 'kept incremental #4 is built on it',
    });
    expect(byId.get(2)).toMatchObject({ action: 'keep', rule: 'chain_of_kept' });
    expect(byId.get(1)).toMatchObject({
      action: 'keep',
      rule: 'base_of_kept',
      reason: 'base full of kept incremental #4',
    });
  });

  it('shortens an old chain from its newest end only', () => {
    const rows = [
      backup(1, 'full', NOW - 40 * DAY),
      backup(2, 'incremental', NOW - 39 * DAY, { base_backup_id: 1, permanent: true }),
      backup(3, 'incremental', NOW - 38 * DAY, { base_backup_id: 1 }),
      backup(4, 'full', NOW - 2 * DAY),
      backup(5, 'full', NOW - DAY),
    ];
    const plan = planRetention(rows, policy, NOW);
    expect(plan.map((d) => [d.backup_id, d.action, d.rule])).toEqual([
      [5, 'keep', 'recent'],
      [4, 'keep', 'recent'],
      [3, 'delete', 'expired'],
      [2, 'keep', 'permanent'],
      [1, 'keep', 'base_of_kept'],
    ]);
  });

  it('an incremental still waiting for its transfer protects its base; it gets no decision itself', () => {
    const rows = [
      backup(1, 'full', NOW - 40 * DAY),
      backup(2, 'full', NOW - 30 * DAY),
      backup(3, 'full', NOW - 20 * DAY),
      backup(4, 'incremental', NOW - HOUR, { base_backup_id: 1, stored: false }),
    ];
    const plan = planRetention(rows, policy, NOW);
    expect(plan.map((d) => [d.backup_id, d.action, d.rule])).toEqual([
      [3, 'keep', 'last_fulls'],
      [2, 'keep', 'last_fulls'],
      [1, 'keep', 'base_of_kept'],
    ]);
  });

  it('gives no decision for deleted or failed backups, and a pending full does not count among the last fulls', () => {
    const rows = [
      backup(1, 'full', NOW - 40 * DAY),
      backup(2, 'full', NOW - 30 * DAY, { deleted: true }),
      backup(3, 'single', NOW - 20 * DAY, { status: 'failed' }),
      backup(4, 'full', NOW - 19 * DAY, { stored: false }),
    ];
    const plan = planRetention(rows, { retentionDays: 15, keepFulls: 1 }, NOW);
    expect(plan.map((d) => [d.backup_id, d.action, d.rule])).toEqual([[1, 'keep', 'last_fulls']]);
  });
});

// ---------------------------------------------------------------------------
// Random histories over several weeks.

interface Step {
  kind: 'full' | 'incremental' | 'single';
  gapHours: number;
  stored: boolean;
  permanent: boolean;
  deleted: boolean;
  failed: boolean;
}

const stepArb: fc.Arbitrary<Step> = fc.record({
  kind: fc.constantFrom('full', 'incremental', 'incremental', 'incremental', 'single'),
  gapHours: fc.integer({ min: 0, max: 30 }),
  stored: fc.integer({ min: 0, max: 9 }).map((n) => n > 0),
  permanent: fc.integer({ min: 0, max: 19 }).map((n) => n === 0),
  deleted: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
  failed: fc.integer({ min: 0, max: 19 }).map((n) => n === 0),
});

function history(steps: readonly Step[]): { rows: RetentionBackup[]; end: number } {
  const rows: RetentionBackup[] = [];
  let at = NOW - 40 * DAY;
  let lastFull: number | null = null;
  steps.forEach((step, i) => {
    at += step.gapHours * HOUR;
    const id = i + 1;
    rows.push(
      backup(id, step.kind, at, {
        base_backup_id: step.kind === 'incremental' ? lastFull : null,
        stored: step.stored && !step.failed,
        permanent: step.permanent,
        deleted: step.deleted,
        status: step.failed ? 'failed' : 'ok',
      }),
    );
    if (step.kind === 'full' && !step.failed) lastFull = id;
  });
  return { rows, end: at };
}

const scenarioArb = fc.record({
  steps: fc.array(stepArb, { maxLength: 60 }),
  retentionDays: fc.integer({ min: 0, max: 20 }),
  keepFulls: fc.integer({ min: 0, max: 4 }),
  nowAfterHours: fc.integer({ min: 0, max: 40 * 24 }),
});

const chainOrder = (a: RetentionBackup, b: RetentionBackup) => a.created_at - b.created_at || a.id - b.id;

describe('retention plan: properties over random histories', () => {
  it('holds its invariants', () => {
    fc.assert(
      fc.property(scenarioArb, ({ steps, retentionDays, keepFulls, nowAfterHours }) => {
        const { rows, end } = history(steps);
        const now = end + nowAfterHours * HOUR;
        const plan = planRetention(rows, { retentionDays, keepFulls }, now);
        const decision = new Map(plan.map((d) => [d.backup_id, d]));
        const live = rows.filter((r) => r.status === 'ok' && !r.deleted);
        const liveIds = new Set(live.map((r) => r.id));
        const recent = (r: RetentionBackup) => r.created_at >= now - retentionDays * DAY;
        /** Stored: kept. Pending (no decision): one that rules 1 or 2 keep once it arrives. */
        const survives = (r: RetentionBackup) =>
          r.stored ? decision.get(r.id)?.action === 'keep' : r.permanent || recent(r);
        /** Not deleted by this plan. */
        const notDeleted = (r: RetentionBackup) => decision.get(r.id)?.action !== 'delete';

        // Exactly one decision per stored, live backup.
        expect(plan.length).toBe(live.filter((r) => r.stored).length);
        for (const r of live) expect(decision.has(r.id)).toBe(r.stored);

        for (const r of live) {
          // Nothing permanent is deleted; everything within N days is kept.
          if (r.permanent) expect(notDeleted(r)).toBe(true);
          if (recent(r)) expect(notDeleted(r)).toBe(true);
        }

        // No kept incremental loses its base full or an incremental between them.
        for (const r of live) {
          if (r.kind !== 'incremental' || !survives(r)) continue;
          if (r.base_backup_id === null || !liveIds.has(r.base_backup_id)) continue;
          const base = live.find((b) => b.id === r.base_backup_id) as RetentionBackup;
          expect(notDeleted(base)).toBe(true);
          for (const other of live) {
            if (other.kind === 'incremental' && other.base_backup_id === base.id && chainOrder(other, r) < 0)
              expect(notDeleted(other)).toBe(true);
          }
        }

        // At least min(K, stored fulls) fulls are kept.
        const storedFulls = live.filter((r) => r.stored && (r.kind === 'full' || r.kind === 'single'));
        const keptFulls = storedFulls.filter((r) => decision.get(r.id)?.action === 'keep');
        expect(keptFulls.length).toBeGreaterThanOrEqual(Math.min(keepFulls, storedFulls.length));

        // Every decision explains itself; newest first.
        for (const d of plan) {
          expect(d.reason.length).toBeGreaterThan(0);
          expect(d.action === 'delete').toBe(d.rule === 'expired');
        }
        for (let i = 1; i < plan.length; i += 1)
          expect((plan[i - 1] as { created_at: number }).created_at).toBeGreaterThanOrEqual(
            (plan[i] as { created_at: number }).created_at,
          );
      }),
      { numRuns: 500 },
    );
  });

  it('deletes only what no rule keeps', () => {
    fc.assert(
      fc.property(scenarioArb, ({ steps, retentionDays, keepFulls, nowAfterHours }) => {
        const { rows, end } = history(steps);
        const now = end + nowAfterHours * HOUR;
        const plan = planRetention(rows, { retentionDays, keepFulls }, now);
        // Deleting less is always allowed; check that a delete is never of something a rule names.
        const storedFulls = rows
          .filter(
            (r) => r.status === 'ok' && !r.deleted && r.stored && (r.kind === 'full' || r.kind === 'single'),
          )
          .sort((a, b) => chainOrder(b, a))
          .slice(0, keepFulls)
          .map((r) => r.id);
        for (const d of plan.filter((x) => x.action === 'delete')) {
          const r = rows.find((x) => x.id === d.backup_id) as RetentionBackup;
          expect(r.permanent).toBe(false);
          expect(r.created_at).toBeLessThan(now - retentionDays * DAY);
          expect(storedFulls).not.toContain(r.id);
        }
      }),
      { numRuns: 300 },
    );
  });
});
