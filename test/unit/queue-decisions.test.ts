import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  candidateLimit,
  chooseJobs,
  compareCandidates,
  isLeasable,
  MIN_CANDIDATES_PER_LEVEL,
  type QueueCandidate,
} from '../../src/server/queue/choose-jobs.js';
import { DEFAULT_AGING_SECONDS, effectivePriority } from '../../src/server/queue/effective-priority.js';
import {
  afterFailure,
  leaseExpired,
  RETRY_BASE_DELAY_MS,
  RETRY_MAX_DELAY_MS,
  retryDelayMs,
} from '../../src/server/queue/retry-schedule.js';
import { JOB_FAILURE_CODES, type JobFailureCode } from '../../src/shared/node-protocol.js';
import { PRIORITIES, priorityRank } from '../../src/shared/priority.js';

// Frozen time: every decision gets `nowMs` from the test, never from a clock.
const NOW = Date.UTC(2026, 10, 20, 4, 0, 0);
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const AGING = DEFAULT_AGING_SECONDS;
const AGING_MS = AGING * SECOND;
const CRITICAL = 0;
const HIGH = 1;
const NORMAL = 2;
const LOW = 3;
const PLENTY = Number.MAX_SAFE_INTEGER;

function job(
  id: number,
  priority: number,
  enqueuedAtMs: number,
  extra: Partial<Omit<QueueCandidate, 'id' | 'priority' | 'enqueuedAtMs'>> = {},
): QueueCandidate {
  return { id, priority, enqueuedAtMs, nextAttemptAtMs: enqueuedAtMs, size: 100, ...extra };
}

const ids = (jobs: readonly QueueCandidate[]): number[] => jobs.map((j) => j.id);
const totalSize = (jobs: readonly QueueCandidate[]): number => jobs.reduce((sum, j) => sum + j.size, 0);

// ---------------------------------------------------------------------------
// Generators. Times are drawn on a grid of aging/8 as well as anywhere, so
// ties (equal enqueue times, equal effective priorities) and exact aging
// boundaries come up often.

const agingArb: fc.Arbitrary<number> = fc.oneof(
  fc.constant(DEFAULT_AGING_SECONDS),
  fc.integer({ min: 1, max: 3600 }),
);

/** How long ago a job was enqueued, in ms (negative: a server clock ahead of ours). */
function waitedArb(agingSeconds: number, maxAgings: number): fc.Arbitrary<number> {
  const agingMs = agingSeconds * SECOND;
  return fc.oneof(
    fc.integer({ min: 0, max: maxAgings * 8 }).map((k) => Math.floor((k * agingMs) / 8)),
    fc.integer({ min: 0, max: maxAgings * agingMs }),
    fc.integer({ min: -agingMs, max: -1 }),
  );
}

interface RawJob {
  id: number;
  priority: number;
  waitedMs: number;
  backoffMs: number;
  size: number;
}

function rawJobArb(agingSeconds: number, sizeArb: fc.Arbitrary<number>): fc.Arbitrary<RawJob> {
  return fc.record({
    id: fc.integer({ min: 1, max: 1_000_000 }),
    priority: fc.integer({ min: CRITICAL, max: LOW }),
    waitedMs: waitedArb(agingSeconds, 5),
    // Most jobs are leasable; some are still backing off, some became leasable exactly now.
    backoffMs: fc.oneof(
      { weight: 3, arbitrary: fc.constant(Number.NEGATIVE_INFINITY) },
      { weight: 1, arbitrary: fc.integer({ min: -HOUR, max: HOUR }) },
      { weight: 1, arbitrary: fc.constant(0) },
    ),
    size: sizeArb,
  });
}

function toCandidate(raw: RawJob, nowMs: number): QueueCandidate {
  const enqueuedAtMs = nowMs - raw.waitedMs;
  // A retried job keeps its enqueue time; only next_attempt_at moves.
  const nextAttemptAtMs = raw.backoffMs === Number.NEGATIVE_INFINITY ? enqueuedAtMs : nowMs + raw.backoffMs;
  return { id: raw.id, priority: raw.priority, enqueuedAtMs, nextAttemptAtMs, size: raw.size };
}

function queueArb(
  agingSeconds: number,
  opts: { maxLength: number; size?: fc.SizeForArbitrary; sizeArb?: fc.Arbitrary<number> },
): fc.Arbitrary<QueueCandidate[]> {
  const sizeArb = opts.sizeArb ?? fc.integer({ min: 0, max: 1000 });
  return fc
    .uniqueArray(rawJobArb(agingSeconds, sizeArb), {
      maxLength: opts.maxLength,
      size: opts.size ?? 'medium',
      selector: (j) => j.id,
    })
    .map((raws) => raws.map((raw) => toCandidate(raw, NOW)));
}

interface Scenario {
  aging: number;
  queue: QueueCandidate[];
  slots: number;
  budgetBytes: number;
}

const scenarioArb: fc.Arbitrary<Scenario> = agingArb.chain((aging) =>
  fc.record({
    aging: fc.constant(aging),
    queue: queueArb(aging, { maxLength: 80 }),
    slots: fc.oneof(fc.integer({ min: 0, max: 10 }), fc.integer({ min: 1, max: 256 })),
    budgetBytes: fc.oneof(
      fc.integer({ min: -5000, max: 5000 }),
      fc.integer({ min: 0, max: 100_000 }),
      fc.constant(PLENTY),
    ),
  }),
);

/** The order the queue promises, written out independently of the implementation. */
function queueKey(c: QueueCandidate, nowMs: number, aging: number): [number, number, number] {
  return [effectivePriority(c.priority, c.enqueuedAtMs, nowMs, aging), c.enqueuedAtMs, c.id];
}

function keyLess(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    if (x !== y) return x < y;
  }
  return false;
}

/**
 * What the server reads: per base level, the oldest `limit` leasable jobs
 * (`next_attempt_at ≤ now` is part of the WHERE clause, before the LIMIT).
 */
function oldestPerLevel(queue: readonly QueueCandidate[], limit: number, nowMs: number): QueueCandidate[] {
  const levels = new Map<number, QueueCandidate[]>();
  for (const c of queue) {
    if (c.nextAttemptAtMs > nowMs) continue;
    const level = levels.get(c.priority) ?? [];
    level.push(c);
    levels.set(c.priority, level);
  }
  return [...levels.values()].flatMap((level) =>
    [...level].sort((a, b) => a.enqueuedAtMs - b.enqueuedAtMs || a.id - b.id).slice(0, limit),
  );
}

// ---------------------------------------------------------------------------

describe('effectivePriority', () => {
  it('defaults to a 600 s aging period', () => {
    expect(DEFAULT_AGING_SECONDS).toBe(600);
  });

  it.each<[string, number, number, number, number]>([
    // name, rank, waited ms, aging s, expected
    ['low, just enqueued', LOW, 0, 600, LOW],
    ['low, one ms short of one period', LOW, AGING_MS - 1, 600, LOW],
    ['low, exactly one period', LOW, AGING_MS, 600, NORMAL],
    ['low, two periods', LOW, 2 * AGING_MS, 600, HIGH],
    ['low, one ms short of three periods', LOW, 3 * AGING_MS - 1, 600, HIGH],
    ['low, three periods', LOW, 3 * AGING_MS, 600, CRITICAL],
    ['low, a day', LOW, 24 * HOUR, 600, CRITICAL],
    ['normal, one period', NORMAL, AGING_MS, 600, HIGH],
    ['high, two periods (never below 0)', HIGH, 2 * AGING_MS, 600, CRITICAL],
    ['critical stays critical', CRITICAL, 0, 600, CRITICAL],
    ['critical, a day', CRITICAL, 24 * HOUR, 600, CRITICAL],
    ['short aging: 60 s', NORMAL, 61 * SECOND, 60, HIGH],
    ['fractional aging: 0.5 s', LOW, 1000, 0.5, HIGH],
    ['enqueued in the future (clock skew) has waited 0', LOW, -HOUR, 600, LOW],
    ['aging off (Infinity)', LOW, 365 * 24 * HOUR, Number.POSITIVE_INFINITY, LOW],
  ])('%s', (_name, rank, waitedMs, agingSeconds, expected) => {
    expect(effectivePriority(rank, NOW - waitedMs, NOW, agingSeconds)).toBe(expected);
  });

  it.each([0, -600, Number.NaN])('refuses aging_seconds = %d', (aging) => {
    expect(() => effectivePriority(LOW, NOW, NOW, aging)).toThrow(RangeError);
  });

  it('is monotonic: never worse with more waiting, never worse than the base rank, never below 0', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: CRITICAL, max: LOW }),
        fc.integer({ min: -10 * HOUR, max: 10 * HOUR }),
        fc.integer({ min: 0, max: 10 * HOUR }),
        agingArb,
        (rank, waitedMs, moreMs, aging) => {
          const enqueued = NOW - waitedMs;
          const now = effectivePriority(rank, enqueued, NOW, aging);
          const later = effectivePriority(rank, enqueued, NOW + moreMs, aging);
          expect(later).toBeLessThanOrEqual(now);
          expect(now).toBeLessThanOrEqual(rank);
          expect(later).toBeGreaterThanOrEqual(0);
          expect(Number.isInteger(later)).toBe(true);
        },
      ),
    );
  });
});

describe('chooseJobs: examples', () => {
  const request = { slots: 10, budgetBytes: PLENTY };

  it('takes the best effective priority first, then the oldest, then the lowest id', () => {
    const queue = [
      job(1, LOW, NOW - 10 * MINUTE), // effective normal
      job(2, CRITICAL, NOW - MINUTE),
      job(3, NORMAL, NOW - 2 * MINUTE),
      job(4, HIGH, NOW),
      job(5, NORMAL, NOW - 2 * MINUTE),
      job(6, LOW, NOW - 30 * MINUTE), // effective critical, older than 2
    ];
    expect(ids(chooseJobs(queue, request, NOW, AGING))).toEqual([6, 2, 4, 1, 3, 5]);
  });

  it('lets an old low job overtake new critical ones once it has aged three periods', () => {
    const old = job(1, LOW, NOW - 3 * AGING_MS);
    const fresh = [job(2, CRITICAL, NOW - 10 * SECOND), job(3, CRITICAL, NOW - 5 * SECOND)];
    expect(ids(chooseJobs([...fresh, old], { slots: 1, budgetBytes: PLENTY }, NOW, AGING))).toEqual([1]);
    expect(ids(chooseJobs([...fresh, old], request, NOW, AGING))).toEqual([1, 2, 3]);
    // One millisecond earlier it was still `high`, behind both.
    expect(ids(chooseJobs([...fresh, old], request, NOW - 1, AGING))).toEqual([2, 3, 1]);
  });

  it('counts the wait from enqueued_at, not from the last retry', () => {
    const retried = job(1, LOW, NOW - 3 * AGING_MS, { nextAttemptAtMs: NOW });
    const fresh = job(2, CRITICAL, NOW - 1);
    expect(ids(chooseJobs([fresh, retried], request, NOW, AGING))).toEqual([1, 2]);
  });

  it('leases a job when next_attempt_at = now, not a millisecond before', () => {
    const queue = [job(1, CRITICAL, NOW - HOUR, { nextAttemptAtMs: NOW }), job(2, LOW, NOW)];
    expect(ids(chooseJobs(queue, request, NOW, AGING))).toEqual([1, 2]);
    expect(ids(chooseJobs(queue, request, NOW - 1, AGING))).toEqual([]);
    expect(isLeasable(queue[0] as QueueCandidate, NOW)).toBe(true);
    expect(isLeasable(queue[0] as QueueCandidate, NOW - 1)).toBe(false);
  });

  it('stops at `slots`', () => {
    const queue = [job(1, NORMAL, NOW - 3), job(2, NORMAL, NOW - 2), job(3, NORMAL, NOW - 1)];
    expect(ids(chooseJobs(queue, { slots: 2, budgetBytes: PLENTY }, NOW, AGING))).toEqual([1, 2]);
    expect(chooseJobs(queue, { slots: 0, budgetBytes: PLENTY }, NOW, AGING)).toEqual([]);
  });

  it('shrinks the budget as it takes jobs', () => {
    const queue = [
      job(1, HIGH, NOW - 3, { size: 40 }),
      job(2, HIGH, NOW - 2, { size: 40 }),
      job(3, HIGH, NOW - 1),
    ];
    expect(ids(chooseJobs(queue, { slots: 10, budgetBytes: 100 }, NOW, AGING))).toEqual([1, 2]);
    expect(ids(chooseJobs(queue, { slots: 10, budgetBytes: 80 }, NOW, AGING))).toEqual([1, 2]);
    expect(ids(chooseJobs(queue, { slots: 10, budgetBytes: 79 }, NOW, AGING))).toEqual([1]);
  });

  it('skips a job that does not fit and still takes smaller ones behind it', () => {
    const queue = [
      job(1, CRITICAL, NOW - 3, { size: 500 }),
      job(2, CRITICAL, NOW - 2, { size: 5000 }),
      job(3, LOW, NOW - 1, { size: 400 }),
      job(4, LOW, NOW, { size: 200 }),
    ];
    expect(ids(chooseJobs(queue, { slots: 10, budgetBytes: 1000 }, NOW, AGING))).toEqual([1, 3]);
    expect(ids(chooseJobs(queue, { slots: 10, budgetBytes: 450 }, NOW, AGING))).toEqual([3]);
  });

  it('leases nothing on a negative budget, and only empty files on a zero budget', () => {
    const queue = [job(1, CRITICAL, NOW - HOUR, { size: 1 }), job(2, LOW, NOW, { size: 0 })];
    expect(chooseJobs(queue, { slots: 10, budgetBytes: -1 }, NOW, AGING)).toEqual([]);
    expect(chooseJobs(queue, { slots: 10, budgetBytes: -1e12 }, NOW, AGING)).toEqual([]);
    expect(ids(chooseJobs(queue, { slots: 10, budgetBytes: 0 }, NOW, AGING))).toEqual([2]);
  });

  it('returns the caller’s own objects, extra fields included, without touching the input', () => {
    const queue = [
      { ...job(2, LOW, NOW), backupId: 20 },
      { ...job(1, CRITICAL, NOW), backupId: 10 },
    ];
    const before = structuredClone(queue);
    const chosen = chooseJobs(queue, request, NOW, AGING);
    expect(chosen.map((c) => c.backupId)).toEqual([10, 20]);
    expect(chosen[0]).toBe(queue[1]);
    expect(queue).toEqual(before);
  });

  it('compareCandidates agrees with the order chooseJobs uses', () => {
    const a = job(1, LOW, NOW - 3 * AGING_MS);
    const b = job(2, CRITICAL, NOW);
    expect(compareCandidates(a, b, NOW, AGING)).toBeLessThan(0);
    expect(compareCandidates(b, a, NOW - 1, AGING)).toBeLessThan(0);
    expect(compareCandidates(a, a, NOW, AGING)).toBe(0);
  });
});

describe('candidateLimit', () => {
  it.each([
    [1, 64],
    [4, 64],
    [16, 64],
    [17, 68],
    [64, 256],
    [256, 1024],
  ])('candidateLimit(%d) = %d', (slots, limit) => {
    expect(candidateLimit(slots)).toBe(limit);
  });

  it('is never less than the slots asked for, nor than the minimum', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 256 }), (slots) => {
        expect(candidateLimit(slots)).toBeGreaterThanOrEqual(slots);
        expect(candidateLimit(slots)).toBeGreaterThanOrEqual(MIN_CANDIDATES_PER_LEVEL);
      }),
    );
  });

  it('needs next_attempt_at in the WHERE clause before the LIMIT (why the server filters first)', () => {
    // 64 old low jobs still backing off, and one leasable low job behind them.
    const backingOff = Array.from({ length: 64 }, (_, i) =>
      job(i + 1, LOW, NOW - HOUR + i, { nextAttemptAtMs: NOW + MINUTE }),
    );
    const ready = job(100, LOW, NOW - MINUTE);
    const queue = [...backingOff, ready];
    const limit = candidateLimit(1);
    const unfilteredPrefix = [...queue].sort((a, b) => a.enqueuedAtMs - b.enqueuedAtMs).slice(0, limit);
    expect(chooseJobs(unfilteredPrefix, { slots: 1, budgetBytes: PLENTY }, NOW, AGING)).toEqual([]);
    const prefix = oldestPerLevel(queue, limit, NOW);
    expect(ids(chooseJobs(prefix, { slots: 1, budgetBytes: PLENTY }, NOW, AGING))).toEqual([100]);
  });
});

describe('chooseJobs: properties', () => {
  it('(a) no job waits forever: a low job reaches 0 after 3 × aging and is then leased before anything enqueued after it', () => {
    const arb = agingArb.chain((aging) => {
      const agingMs = aging * SECOND;
      const other = (offsetMs: fc.Arbitrary<number>, maxRank: number) =>
        fc.record({
          id: fc.integer({ min: 1, max: 1_000_000 }),
          priority: fc.integer({ min: CRITICAL, max: maxRank }),
          offsetMs,
          backoffMs: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2 * agingMs })),
          size: fc.integer({ min: 0, max: 1000 }),
        });
      return fc.record({
        aging: fc.constant(aging),
        lowId: fc.integer({ min: 1, max: 1_000_000 }),
        // When the low job last failed (its next attempt), between enqueue and now.
        lowRetryMs: fc.integer({ min: 0, max: 3 * agingMs }),
        // Anything already in the queue when the low job arrived, any rank, up to the same instant.
        // (Some at the very same millisecond: the id decides.)
        before: fc.array(other(fc.oneof(fc.integer({ min: -10 * agingMs, max: 0 }), fc.constant(0)), LOW), {
          maxLength: 40,
          size: 'max',
        }),
        // A stream of more urgent arrivals after it, some before its 3 × aging are up, some during the leases.
        after: fc.array(other(fc.integer({ min: 1, max: 20 * agingMs }), NORMAL), {
          maxLength: 120,
          size: 'max',
        }),
        extraMs: fc.integer({ min: 0, max: 5 * agingMs }),
        stepMs: fc.integer({ min: 0, max: agingMs }),
        slots: fc.integer({ min: 1, max: 8 }),
      });
    });
    fc.assert(
      fc.property(arb, (s) => {
        const agingMs = s.aging * SECOND;
        const t0 = NOW;
        const low: QueueCandidate = {
          id: s.lowId,
          priority: LOW,
          enqueuedAtMs: t0,
          nextAttemptAtMs: t0 + s.lowRetryMs,
          size: 1000,
        };
        expect(effectivePriority(LOW, t0, t0 + 3 * agingMs - 1, s.aging)).toBe(HIGH);
        expect(effectivePriority(LOW, t0, t0 + 3 * agingMs, s.aging)).toBe(CRITICAL);

        const seen = new Set<number>([low.id]);
        const others: QueueCandidate[] = [];
        for (const o of [...s.before, ...s.after]) {
          if (seen.has(o.id)) continue;
          seen.add(o.id);
          const enqueuedAtMs = t0 + o.offsetMs;
          others.push({
            id: o.id,
            priority: o.priority,
            enqueuedAtMs,
            nextAttemptAtMs: enqueuedAtMs + o.backoffMs,
            size: o.size,
          });
        }
        const aheadOfLow = (c: QueueCandidate): boolean =>
          c.enqueuedAtMs < low.enqueuedAtMs || (c.enqueuedAtMs === low.enqueuedAtMs && c.id < low.id);
        const canBeAhead = others.filter(aheadOfLow).length;

        // Lease rounds from t0 + 3 × aging on; the time moves on and arrivals keep coming.
        let pending = [low, ...others];
        let now = t0 + 3 * agingMs + s.extraMs;
        const leasedBeforeLow: QueueCandidate[] = [];
        for (let round = 0; ; round++) {
          // Bounded wait: each round before the low job's takes `slots` jobs that were queued before it.
          expect(round).toBeLessThanOrEqual(Math.floor(canBeAhead / s.slots));
          expect(effectivePriority(low.priority, low.enqueuedAtMs, now, s.aging)).toBe(CRITICAL);
          const visible = pending.filter((c) => c.enqueuedAtMs <= now);
          const chosen = chooseJobs(visible, { slots: s.slots, budgetBytes: PLENTY }, now, s.aging);
          const at = chosen.indexOf(low);
          if (at >= 0) {
            leasedBeforeLow.push(...chosen.slice(0, at));
            break;
          }
          expect(chosen).toHaveLength(s.slots);
          leasedBeforeLow.push(...chosen);
          pending = pending.filter((c) => !chosen.includes(c));
          now += s.stepMs;
        }
        for (const c of leasedBeforeLow) expect(aheadOfLow(c)).toBe(true);
      }),
    );
  });

  it('(b) with equal enqueue times, critical < high < normal < low exactly', () => {
    const arb = agingArb.chain((aging) =>
      fc.record({
        aging: fc.constant(aging),
        levels: fc.array(fc.constantFrom(...PRIORITIES), { minLength: 1, maxLength: 60 }),
        ids: fc.uniqueArray(fc.integer({ min: 1, max: 1_000_000 }), { minLength: 60, maxLength: 60 }),
        // Younger than one aging period: no level has moved yet.
        waitedMs: fc.integer({ min: 0, max: aging * SECOND - 1 }),
        slots: fc.integer({ min: 1, max: 60 }),
      }),
    );
    fc.assert(
      fc.property(arb, ({ aging, levels, ids: jobIds, waitedMs, slots }) => {
        const enqueuedAtMs = NOW - waitedMs;
        const queue = levels.map((level, i) => job(jobIds[i] as number, priorityRank(level), enqueuedAtMs));
        const expected = [...queue].sort((a, b) => a.priority - b.priority || a.id - b.id).slice(0, slots);
        expect(ids(chooseJobs(queue, { slots, budgetBytes: PLENTY }, NOW, aging))).toEqual(ids(expected));
      }),
    );
  });

  it('(b′) with equal enqueue times, aging never inverts two levels, however long they waited', () => {
    const arb = agingArb.chain((aging) =>
      fc.record({
        aging: fc.constant(aging),
        queue: fc.uniqueArray(
          fc.record({ id: fc.integer({ min: 1, max: 1_000_000 }), priority: fc.integer({ min: 0, max: 3 }) }),
          { maxLength: 60, selector: (j) => j.id },
        ),
        waitedMs: waitedArb(aging, 5),
      }),
    );
    fc.assert(
      fc.property(arb, ({ aging, queue, waitedMs }) => {
        const candidates = queue.map((q) => job(q.id, q.priority, NOW - waitedMs, { nextAttemptAtMs: NOW }));
        const chosen = chooseJobs(candidates, { slots: 256, budgetBytes: PLENTY }, NOW, aging);
        expect(chosen).toHaveLength(candidates.length);
        for (let i = 1; i < chosen.length; i++) {
          const prev = chosen[i - 1] as QueueCandidate;
          const cur = chosen[i] as QueueCandidate;
          expect(effectivePriority(prev.priority, prev.enqueuedAtMs, NOW, aging)).toBeLessThanOrEqual(
            effectivePriority(cur.priority, cur.enqueuedAtMs, NOW, aging),
          );
          if (prev.priority > cur.priority) {
            // Only levels that aging has merged at 0 may come out of base order (by id).
            expect(effectivePriority(prev.priority, prev.enqueuedAtMs, NOW, aging)).toBe(0);
          }
        }
      }),
    );
  });

  it('(c) never exceeds slots nor budget, takes only leasable jobs, each once, and skips only what does not fit', () => {
    fc.assert(
      fc.property(scenarioArb, ({ aging, queue, slots, budgetBytes }) => {
        const chosen = chooseJobs(queue, { slots, budgetBytes }, NOW, aging);
        expect(chosen.length).toBeLessThanOrEqual(Math.max(0, slots));
        if (budgetBytes < 0) expect(chosen).toEqual([]);
        else expect(totalSize(chosen)).toBeLessThanOrEqual(budgetBytes);
        expect(new Set(chosen).size).toBe(chosen.length);
        for (const c of chosen) {
          expect(queue).toContain(c);
          expect(c.nextAttemptAtMs).toBeLessThanOrEqual(NOW);
        }
        // Greedy: while slots were left, every leasable job left behind was too big for
        // what remained of the budget after the chosen jobs ahead of it.
        if (chosen.length < slots && budgetBytes >= 0) {
          for (const c of queue) {
            if (c.nextAttemptAtMs > NOW || chosen.includes(c)) continue;
            const key = queueKey(c, NOW, aging);
            const ahead = chosen.filter((d) => keyLess(queueKey(d, NOW, aging), key));
            expect(c.size).toBeGreaterThan(budgetBytes - totalSize(ahead));
          }
        }
      }),
    );
  });

  it('(c′) does not depend on the order the candidates were read in', () => {
    const arb = scenarioArb.chain((s) =>
      fc.record({
        s: fc.constant(s),
        shuffled: fc.shuffledSubarray(s.queue, { minLength: s.queue.length, maxLength: s.queue.length }),
      }),
    );
    fc.assert(
      fc.property(arb, ({ s, shuffled }) => {
        const request = { slots: s.slots, budgetBytes: s.budgetBytes };
        expect(ids(chooseJobs(shuffled, request, NOW, s.aging))).toEqual(
          ids(chooseJobs(s.queue, request, NOW, s.aging)),
        );
      }),
    );
  });

  it('(d) over the oldest candidateLimit(slots) jobs of each level it chooses what it would over the whole queue', () => {
    const arb = agingArb.chain((aging) =>
      fc.record({
        aging: fc.constant(aging),
        // Long queues, often crowded into one or two levels, so that the prefixes really cut.
        queue: fc.oneof(
          queueArb(aging, { maxLength: 400, size: 'max' }),
          queueArb(aging, { maxLength: 300, size: 'max' }).map((q) =>
            q.map((c) => ({ ...c, priority: c.priority % 2 ? LOW : HIGH })),
          ),
        ),
        slots: fc.oneof(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 256 })),
      }),
    );
    fc.assert(
      fc.property(arb, ({ aging, queue, slots }) => {
        // Every size fits: the budget covers the whole queue.
        const request = { slots, budgetBytes: totalSize(queue) };
        const full = ids(chooseJobs(queue, request, NOW, aging));
        expect(
          ids(chooseJobs(oldestPerLevel(queue, candidateLimit(slots), NOW), request, NOW, aging)),
        ).toEqual(full);
        // The argument in candidateLimit's comment: even `slots` per level is enough when sizes fit.
        expect(ids(chooseJobs(oldestPerLevel(queue, slots, NOW), request, NOW, aging))).toEqual(full);
      }),
      { numRuns: 200 },
    );
  });

  it('(e) the chosen list is sorted by (effective priority, enqueued_at, id)', () => {
    fc.assert(
      fc.property(scenarioArb, ({ aging, queue, slots, budgetBytes }) => {
        const chosen = chooseJobs(queue, { slots, budgetBytes }, NOW, aging);
        for (let i = 1; i < chosen.length; i++) {
          const prev = queueKey(chosen[i - 1] as QueueCandidate, NOW, aging);
          const cur = queueKey(chosen[i] as QueueCandidate, NOW, aging);
          expect(keyLess(prev, cur), `${prev} before ${cur}`).toBe(true);
        }
      }),
    );
  });
});

describe('afterFailure and the retry schedule', () => {
  it('takes the first delay from the server setting, doubling from there', () => {
    expect([1, 2, 3].map((n) => retryDelayMs(n, 1000))).toEqual([1000, 2000, 4000]);
    expect(retryDelayMs(30, 1000)).toBe(HOUR);
  });

  it('backs off 30 s, 60 s, 2 min … and caps at 1 h', () => {
    expect(RETRY_BASE_DELAY_MS).toBe(30 * SECOND);
    expect(RETRY_MAX_DELAY_MS).toBe(HOUR);
    const delays = [1, 2, 3, 4, 5, 6, 7, 8, 9, 20, 2000].map((n) => retryDelayMs(n));
    expect(delays).toEqual([
      30 * SECOND,
      60 * SECOND,
      2 * MINUTE,
      4 * MINUTE,
      8 * MINUTE,
      16 * MINUTE,
      32 * MINUTE,
      HOUR, // 64 min, capped
      HOUR,
      HOUR,
      HOUR,
    ]);
  });

  it.each([0, -1, 1.5, Number.NaN])('refuses attempts = %d', (attempts) => {
    expect(() => retryDelayMs(attempts)).toThrow(RangeError);
  });

  it.each<[number, number, JobFailureCode, ReturnType<typeof afterFailure>]>([
    [1, 5, 'transient', { state: 'queued', nextAttemptAtMs: NOW + 30 * SECOND }],
    [2, 5, 'checksum_mismatch', { state: 'queued', nextAttemptAtMs: NOW + 60 * SECOND }],
    [4, 5, 'source_missing', { state: 'queued', nextAttemptAtMs: NOW + 4 * MINUTE }],
    [5, 5, 'source_missing', { state: 'dead' }],
    [5, 5, 'checksum_mismatch', { state: 'dead' }],
    [5, 5, 'transient', { state: 'dead' }],
    [6, 5, 'size_mismatch', { state: 'dead' }],
    [1, 1, 'transient', { state: 'dead' }],
    [9, 10, 'transient', { state: 'queued', nextAttemptAtMs: NOW + HOUR }],
  ])('attempts %d of %d, %s', (attempts, maxAttempts, code, expected) => {
    expect(afterFailure({ attempts, maxAttempts, code, nowMs: NOW })).toEqual(expected);
  });

  it('(f) backoff is monotonic and capped, and the job is dead exactly at max_attempts', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100 }),
        fc.integer({ min: 1, max: 100 }),
        fc.constantFrom(...JOB_FAILURE_CODES),
        fc.integer({ min: 0, max: 4_000_000_000_000 }),
        (attempts, maxAttempts, code, nowMs) => {
          const delay = retryDelayMs(attempts);
          expect(delay).toBeGreaterThanOrEqual(RETRY_BASE_DELAY_MS);
          expect(delay).toBeLessThanOrEqual(RETRY_MAX_DELAY_MS);
          expect(retryDelayMs(attempts + 1)).toBeGreaterThanOrEqual(delay);
          expect(retryDelayMs(attempts + 1)).toBe(Math.min(RETRY_MAX_DELAY_MS, 2 * delay));
          const decision = afterFailure({ attempts, maxAttempts, code, nowMs });
          if (attempts >= maxAttempts) {
            expect(decision).toEqual({ state: 'dead' });
          } else {
            expect(decision).toEqual({ state: 'queued', nextAttemptAtMs: nowMs + delay });
          }
        },
      ),
    );
  });

  it('a job with max_attempts = n is tried exactly n times', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 30 }),
        fc.constantFrom(...JOB_FAILURE_CODES),
        (maxAttempts, code) => {
          let now = NOW;
          let tries = 0;
          for (;;) {
            tries += 1;
            const decision = afterFailure({ attempts: tries, maxAttempts, code, nowMs: now });
            if (decision.state === 'dead') break;
            expect(decision.nextAttemptAtMs).toBeGreaterThan(now);
            now = decision.nextAttemptAtMs;
          }
          expect(tries).toBe(maxAttempts);
        },
      ),
    );
  });
});

describe('leaseExpired', () => {
  it.each([
    [NOW + 1, false],
    [NOW, true],
    [NOW - 1, true],
  ])('a lease expiring at %d is over at NOW: %s', (expiresAt, expected) => {
    expect(leaseExpired(expiresAt, NOW)).toBe(expected);
  });
});
