import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type PlanBackup, planRestore, unusable } from '../../src/server/restore/restore-plan.js';
import { storedFileUrl } from '../../src/server/restore/stored-file-url.js';

// Frozen time: every plan gets `at` from the test.
const T0 = Date.UTC(2026, 10, 20, 0, 0, 0);
const HOUR = 3_600_000;
const HASH = 'a'.repeat(64);

function backup(id: number, kind: PlanBackup['kind'], createdAt: number, extra: Partial<PlanBackup> = {}) {
  const row: PlanBackup = {
    id,
    kind,
    status: 'ok',
    created_at: createdAt,
    base_backup_id: null,
    filename: `b${id}.xb`,
    size: 100 + id,
    blake3: HASH,
    stored_node: 'node-a',
    stored_path: `/data/b${id}.xb`,
    verified_at: createdAt + 60_000,
    deleted_at: null,
    ...extra,
  };
  return row;
}

const ids = (plan: ReturnType<typeof planRestore>) => (plan.ok ? plan.chain.map((l) => l.id) : null);

describe('restore plan: frozen examples', () => {
  const full = backup(1, 'full', T0);
  const inc1 = backup(2, 'incremental', T0 + HOUR, { base_backup_id: 1 });
  const inc2 = backup(3, 'incremental', T0 + 2 * HOUR, { base_backup_id: 1 });

  it('an incremental brings its base full and every incremental between them, in order', () => {
    const plan = planRestore([inc2, full, inc1], T0 + 3 * HOUR);
    expect(ids(plan)).toEqual([1, 2, 3]);
    expect(plan.ok && plan.target.id).toBe(3);
    expect(plan.ok && plan.skipped).toEqual([]);
  });

  it('restores to the newest backup at or before the time asked for', () => {
    expect(ids(planRestore([full, inc1, inc2], T0 + HOUR))).toEqual([1, 2]);
    expect(ids(planRestore([full, inc1, inc2], T0 + HOUR + 59 * 60_000))).toEqual([1, 2]);
    expect(ids(planRestore([full, inc1, inc2], T0))).toEqual([1]);
  });

  it('a single or a full is a chain of one', () => {
    const single = backup(7, 'single', T0);
    expect(ids(planRestore([single], T0 + HOUR))).toEqual([7]);
    const full2 = backup(4, 'full', T0 + 3 * HOUR);
    expect(ids(planRestore([full, inc1, inc2, full2], T0 + 4 * HOUR))).toEqual([4]);
  });

  it('an incremental that failed in between breaks the later ones: falls back and says why', () => {
    const failed = backup(2, 'incremental', T0 + HOUR, { base_backup_id: 1, status: 'failed' });
    const plan = planRestore([full, failed, inc2], T0 + 3 * HOUR);
    expect(ids(plan)).toEqual([1]);
    if (!plan.ok) throw new Error('expected a plan');
    expect(plan.skipped.map((s) => s.backup_id)).toEqual([3, 2]);
    expect(plan.skipped[0]?.reason).toContain('incremental #2');
    expect(plan.skipped[0]?.reason).toContain('failed');
    expect(plan.skipped[0]?.missing).toEqual([
      expect.objectContaining({ backup_id: 2, role: 'incremental' }),
    ]);
  });

  it('a newer backup that is not verified or not stored yet is skipped for the previous good one', () => {
    const unverified = { ...inc2, verified_at: null };
    const plan = planRestore([full, inc1, unverified], T0 + 3 * HOUR);
    expect(ids(plan)).toEqual([1, 2]);
    expect(plan.ok && plan.skipped[0]).toMatchObject({ backup_id: 3, missing: [{ problem: 'unverified' }] });
    const pending = { ...inc2, stored_path: null, stored_node: null, verified_at: null };
    expect(ids(planRestore([full, inc1, pending], T0 + 3 * HOUR))).toEqual([1, 2]);
  });

  it('a deleted base full with nothing older is a broken chain that names the base', () => {
    const deleted = { ...full, deleted_at: T0 + 5 * HOUR };
    const plan = planRestore([deleted, inc1, inc2], T0 + 3 * HOUR);
    expect(plan.ok).toBe(false);
    if (plan.ok) return;
    expect(plan.code).toBe('chain_broken');
    expect(plan.missing).toEqual([
      expect.objectContaining({ backup_id: 1, role: 'base', problem: 'deleted' }),
    ]);
    expect(plan.message).toContain('full #1');
    expect(plan.message).toContain('was deleted');
  });

  it("an unverified backup's message gives the scrub's finding when there is one", () => {
    const finding =
      'scrub on node node-a at 2026-11-20T05:00:00.000Z: BLAKE3 differs (found b…, expected a…)';
    const damaged = { ...inc1, verified_at: null, scrub_error: finding };
    // The newest chain runs through the damaged incremental: it falls back to the full and says why.
    const plan = planRestore([full, damaged, inc2], T0 + 3 * HOUR);
    expect(ids(plan)).toEqual([1]);
    if (!plan.ok) throw new Error('expected a plan');
    expect(plan.skipped.map((s) => s.backup_id)).toEqual([3, 2]);
    expect(plan.skipped[0]?.reason).toBe(
      `incremental #2 (b2.xb, 2026-11-20T01:00:00.000Z), between the base full #1 and incremental #3 (b3.xb, 2026-11-20T02:00:00.000Z), is not verified: ${finding}`,
    );
    expect(plan.skipped[1]?.reason).toBe(
      `incremental #2 (b2.xb, 2026-11-20T01:00:00.000Z) is not verified: ${finding}`,
    );
    expect(plan.skipped[1]?.missing).toEqual([
      expect.objectContaining({ backup_id: 2, role: 'target', problem: 'unverified' }),
    ]);
  });

  it("a broken chain names the scrub's finding for each damaged piece; without one, the generic text", () => {
    const lost = 'scrub on node node-a at 2026-11-21T00:00:00.000Z: "31/mysql/5001/4000/b1.xb" is missing';
    const gone = { ...full, verified_at: null, scrub_error: lost };
    const plan = planRestore([gone, inc1, inc2], T0 + 3 * HOUR);
    expect(plan.ok).toBe(false);
    if (plan.ok) return;
    expect(plan.code).toBe('chain_broken');
    expect(plan.missing).toEqual([
      expect.objectContaining({
        backup_id: 1,
        problem: 'unverified',
        message: expect.stringContaining(lost),
      }),
    ]);
    expect(plan.message).toContain(`is not verified: ${lost}`);
    // Unverified for another reason (a check still pending): no finding to give.
    const pending = planRestore([{ ...full, verified_at: null }], T0 + HOUR);
    expect(!pending.ok && pending.message).toContain(
      'is not verified (a checksum check failed or is pending)',
    );
    // A verified backup's old finding (cleared in the catalog) does not matter: it is good.
    expect(ids(planRestore([{ ...full, scrub_error: null }, inc1], T0 + HOUR))).toEqual([1, 2]);
  });

  it('an incremental whose base full never reached the catalog names the file', () => {
    const orphan = backup(9, 'incremental', T0 + HOUR, { base_filename: 'full-0400.xb' });
    const plan = planRestore([orphan], T0 + 2 * HOUR);
    expect(plan).toMatchObject({ ok: false, code: 'chain_broken' });
    expect(!plan.ok && plan.message).toContain('full-0400.xb');
  });

  it('falls back to an older whole chain when the newest chain lost its base', () => {
    const oldFull = backup(10, 'full', T0 - 24 * HOUR);
    const oldInc = backup(11, 'incremental', T0 - 23 * HOUR, { base_backup_id: 10 });
    const gone = { ...full, deleted_at: T0 + 5 * HOUR };
    const plan = planRestore([oldFull, oldInc, gone, inc1, inc2], T0 + 3 * HOUR);
    expect(ids(plan)).toEqual([10, 11]);
    expect(plan.ok && plan.skipped.map((s) => s.backup_id)).toEqual([3, 2, 1]);
  });

  it('nothing at or before the time is plan_not_found; only failures too', () => {
    expect(planRestore([full, inc1], T0 - 1)).toMatchObject({ ok: false, code: 'plan_not_found' });
    expect(planRestore([], T0)).toMatchObject({ ok: false, code: 'plan_not_found' });
    const failed = backup(5, null, T0, { status: 'failed', filename: null, size: null, blake3: null });
    const plan = planRestore([failed], T0 + HOUR);
    expect(plan).toMatchObject({ ok: false, code: 'plan_not_found' });
    expect(!plan.ok && plan.skipped.map((s) => s.backup_id)).toEqual([5]);
  });

  it('equal creation times are ordered by id', () => {
    const a = backup(2, 'incremental', T0 + HOUR, { base_backup_id: 1 });
    const b = backup(3, 'incremental', T0 + HOUR, { base_backup_id: 1 });
    expect(ids(planRestore([b, a, full], T0 + HOUR))).toEqual([1, 2, 3]);
  });
});

// ---------------------------------------------------------------------------
// Random histories: a stream of runs (fulls, incrementals of the newest
// successful full, singles, failures), each stored / verified / deleted or not.

interface Step {
  kind: 'full' | 'incremental' | 'single' | 'failed';
  gapHours: number;
  stored: boolean;
  verified: boolean;
  deleted: boolean;
  /** A failed run that said it was an incremental (and so is linked to its base). */
  failedKnown: boolean;
  /** An incremental whose base never reached the catalog. */
  orphan: boolean;
}

const stepArb: fc.Arbitrary<Step> = fc.record({
  kind: fc.constantFrom('full', 'incremental', 'incremental', 'incremental', 'single', 'failed'),
  gapHours: fc.integer({ min: 0, max: 3 }),
  stored: fc.integer({ min: 0, max: 9 }).map((n) => n > 2),
  verified: fc.integer({ min: 0, max: 9 }).map((n) => n > 0),
  deleted: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
  failedKnown: fc.boolean(),
  orphan: fc.integer({ min: 0, max: 19 }).map((n) => n === 0),
});

function history(steps: readonly Step[]): PlanBackup[] {
  const rows: PlanBackup[] = [];
  let at = T0;
  let lastFull: number | null = null;
  steps.forEach((step, i) => {
    const id = i + 1;
    at += step.gapHours * HOUR;
    const stored = {
      stored_node: step.stored ? 'node-a' : null,
      stored_path: step.stored ? `/data/b${id}` : null,
      verified_at: step.stored && step.verified ? at : null,
      deleted_at: step.stored && step.deleted ? at + HOUR : null,
    };
    if (step.kind === 'failed') {
      const kind = step.failedKnown ? 'incremental' : null;
      rows.push(
        backup(id, kind, at, {
          status: 'failed',
          base_backup_id: kind ? lastFull : null,
          filename: null,
          size: null,
          blake3: null,
          stored_node: null,
          stored_path: null,
          verified_at: null,
        }),
      );
      return;
    }
    const base = step.kind === 'incremental' ? (step.orphan ? null : lastFull) : null;
    rows.push(backup(id, step.kind, at, { ...stored, base_backup_id: base }));
    if (step.kind === 'full') lastFull = id;
  });
  return rows;
}

const chainOrder = (a: PlanBackup, b: PlanBackup) => a.created_at - b.created_at || a.id - b.id;
const newer = (a: PlanBackup, b: PlanBackup) => chainOrder(a, b) > 0;

/** The rules, written the slow and obvious way. */
function wholeChain(target: PlanBackup, rows: readonly PlanBackup[]): boolean {
  if (target.status !== 'ok' || target.kind === null || unusable(target) !== null) return false;
  if (target.kind !== 'incremental') return true;
  const base = rows.find((r) => r.id === target.base_backup_id);
  if (base?.kind !== 'full' || unusable(base) !== null) return false;
  return rows
    .filter(
      (r) =>
        r.kind === 'incremental' &&
        r.base_backup_id === base.id &&
        r.created_at >= base.created_at &&
        chainOrder(r, target) < 0,
    )
    .every((r) => unusable(r) === null);
}

const scenarioArb = fc
  .array(stepArb, { minLength: 0, maxLength: 40 })
  .chain((steps) =>
    fc.record({ steps: fc.constant(steps), atHours: fc.integer({ min: -1, max: steps.length * 3 + 1 }) }),
  );

describe('restore plan: properties over random histories', () => {
  it('a plan is made of good files in chain order, from a full or single, sharing one base', () => {
    fc.assert(
      fc.property(scenarioArb, ({ steps, atHours }) => {
        const rows = history(steps);
        const at = T0 + atHours * HOUR;
        const plan = planRestore(rows, at);
        if (!plan.ok) return;
        const byId = new Map(rows.map((r) => [r.id, r]));
        const chain = plan.chain.map((l) => byId.get(l.id) as PlanBackup);
        for (const row of chain) expect(unusable(row)).toBeNull();
        const [first, ...rest] = chain;
        expect(first?.kind === 'full' || first?.kind === 'single').toBe(true);
        if (rest.length > 0) expect(first?.kind).toBe('full');
        for (const row of rest) {
          expect(row.kind).toBe('incremental');
          expect(row.base_backup_id).toBe(first?.id);
        }
        for (let i = 1; i < chain.length; i += 1)
          expect(chainOrder(chain[i - 1] as PlanBackup, chain[i] as PlanBackup)).toBeLessThan(0);
        expect(plan.target.id).toBe(chain.at(-1)?.id);
        expect(plan.target.created_at).toBeLessThanOrEqual(at);
      }),
      { numRuns: 400 },
    );
  });

  it('leaves out no incremental of the base between base and target', () => {
    fc.assert(
      fc.property(scenarioArb, ({ steps, atHours }) => {
        const rows = history(steps);
        const plan = planRestore(rows, T0 + atHours * HOUR);
        if (!plan.ok || plan.chain.length === 1) return;
        const base = rows.find((r) => r.id === plan.chain[0]?.id) as PlanBackup;
        const target = rows.find((r) => r.id === plan.target.id) as PlanBackup;
        const expected = rows
          .filter(
            (r) =>
              r.kind === 'incremental' &&
              r.base_backup_id === base.id &&
              r.created_at >= base.created_at &&
              chainOrder(r, target) <= 0,
          )
          .sort(chainOrder)
          .map((r) => r.id);
        expect(plan.chain.slice(1).map((l) => l.id)).toEqual(expected);
      }),
      { numRuns: 400 },
    );
  });

  it('picks the newest target whose chain is whole; reports every newer one as skipped', () => {
    fc.assert(
      fc.property(scenarioArb, ({ steps, atHours }) => {
        const rows = history(steps);
        const at = T0 + atHours * HOUR;
        const plan = planRestore(rows, at);
        const eligible = rows.filter((r) => r.created_at <= at);
        const whole = eligible.filter((r) => wholeChain(r, rows)).sort(chainOrder);
        const best = whole.at(-1);
        if (best === undefined) {
          expect(plan.ok).toBe(false);
          if (plan.ok) return;
          const candidates = eligible.filter((r) => r.status === 'ok' && r.kind !== null);
          expect(plan.code).toBe(candidates.length === 0 ? 'plan_not_found' : 'chain_broken');
          if (plan.code === 'chain_broken') expect(plan.missing.length).toBeGreaterThan(0);
          expect(plan.skipped.length).toBe(eligible.length);
          return;
        }
        expect(plan.ok).toBe(true);
        if (!plan.ok) return;
        expect(plan.target.id).toBe(best.id);
        const newerOnes = eligible
          .filter((r) => newer(r, best))
          .sort(chainOrder)
          .reverse();
        expect(plan.skipped.map((s) => s.backup_id)).toEqual(newerOnes.map((r) => r.id));
        for (const s of plan.skipped) expect(s.reason.length).toBeGreaterThan(0);
      }),
      { numRuns: 600 },
    );
  });

  it('does not depend on the order the rows were read in', () => {
    fc.assert(
      fc.property(scenarioArb, fc.integer(), ({ steps, atHours }, seed) => {
        const rows = history(steps);
        const shuffled = [...rows].sort(
          (a, b) => ((a.id * 7919 + seed) % 101) - ((b.id * 7919 + seed) % 101),
        );
        const at = T0 + atHours * HOUR;
        expect(planRestore(shuffled, at)).toEqual(planRestore(rows, at));
      }),
      { numRuns: 200 },
    );
  });
});

describe('stored file URL', () => {
  it('builds the node URL from host:port or a full URL; null without an address', () => {
    expect(storedFileUrl('10.0.9.1:8874', 12)).toBe('http://10.0.9.1:8874/v1/stored/12');
    expect(storedFileUrl('[fd00::1]:8874', 12)).toBe('http://[fd00::1]:8874/v1/stored/12');
    expect(storedFileUrl('http://10.0.9.1:8874', 12)).toBe('http://10.0.9.1:8874/v1/stored/12');
    expect(storedFileUrl('https://backup.example/node-a/', 12)).toBe(
      'https://backup.example/node-a/v1/stored/12',
    );
    expect(storedFileUrl(null, 12)).toBeNull();
    expect(storedFileUrl('  ', 12)).toBeNull();
  });
});
