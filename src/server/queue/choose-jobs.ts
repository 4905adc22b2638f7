import { effectivePriority } from './effective-priority.js';

/**
 * The lease decision (DESIGN §8): which queued jobs a node gets when it asks
 * `lease {slots, free_bytes}`. Pure: the caller reads the candidates, computes
 * the budget and applies the result in one transaction.
 */

/** A queued job as the decision sees it (a `transfer_jobs` row, times in epoch ms). */
export interface QueueCandidate {
  id: number;
  /** Base rank: 0 = critical … 3 = low. */
  priority: number;
  /** When the report arrived; aging counts from here. */
  enqueuedAtMs: number;
  /** Not leasable before this (retry backoff). */
  nextAttemptAtMs: number;
  /** Bytes the node will write. */
  size: number;
}

export interface LeaseCapacity {
  /** How many jobs the node takes at most. */
  slots: number;
  /**
   * `free_bytes − reserve − bytes already leased to that node`, computed by the
   * caller. May be negative, and then nothing is leased.
   */
  budgetBytes: number;
}

/**
 * The queue order: effective priority (lower first), then enqueue time (older
 * first), then id. A total order when ids are unique, so the choice is
 * deterministic whatever order the candidates were read in.
 */
export function compareCandidates(
  a: QueueCandidate,
  b: QueueCandidate,
  nowMs: number,
  agingSeconds: number,
): number {
  return compareRanked(
    { c: a, effective: effectivePriority(a.priority, a.enqueuedAtMs, nowMs, agingSeconds) },
    { c: b, effective: effectivePriority(b.priority, b.enqueuedAtMs, nowMs, agingSeconds) },
  );
}

interface Ranked<C extends QueueCandidate> {
  c: C;
  effective: number;
}

function compareRanked(a: Ranked<QueueCandidate>, b: Ranked<QueueCandidate>): number {
  return a.effective - b.effective || a.c.enqueuedAtMs - b.c.enqueuedAtMs || a.c.id - b.c.id;
}

/** A candidate may be leased once its backoff is over (`next_attempt_at ≤ now`). */
export function isLeasable(candidate: QueueCandidate, nowMs: number): boolean {
  return candidate.nextAttemptAtMs <= nowMs;
}

/**
 * Walks the leasable candidates in queue order and takes up to `slots` of
 * them. A job whose size does not fit in what is left of the budget is
 * skipped, not a stop: a smaller job further down may still fit. Returns the
 * chosen candidates (the same objects) in queue order.
 */
export function chooseJobs<C extends QueueCandidate>(
  candidates: readonly C[],
  request: LeaseCapacity,
  nowMs: number,
  agingSeconds: number,
): C[] {
  const chosen: C[] = [];
  if (request.slots < 1 || request.budgetBytes < 0) return chosen;
  // Compute each effective priority once rather than in every comparison.
  const ranked = candidates
    .filter((c) => isLeasable(c, nowMs))
    .map(
      (c): Ranked<C> => ({
        c,
        effective: effectivePriority(c.priority, c.enqueuedAtMs, nowMs, agingSeconds),
      }),
    )
    .sort(compareRanked);
  let remaining = request.budgetBytes;
  for (const { c } of ranked) {
    if (chosen.length >= request.slots) break;
    if (c.size > remaining) continue;
    chosen.push(c);
    remaining -= c.size;
  }
  return chosen;
}

/** Lower bound of `candidateLimit`: cheap to read, and leaves room for size skips. */
export const MIN_CANDIDATES_PER_LEVEL = 64;

/**
 * How many leasable jobs per base priority level the server reads before it
 * calls `chooseJobs`: the oldest ones, `ORDER BY enqueued_at, id LIMIT n`,
 * filtered by cluster, `state = 'queued'` and `next_attempt_at ≤ now` *before*
 * the limit (a job still in backoff must not take a place in the prefix).
 *
 * Why a per-level oldest-first prefix is enough: within one base level,
 * effective priority only improves with age (an older job's is never worse
 * than a younger one's), and ties fall back to enqueue time and id. So the
 * queue order restricted to one level is exactly that level's oldest-first
 * order, and whatever the full-queue choice takes from a level is a prefix of
 * it. When every size fits, the choice takes at most `slots` jobs in all,
 * hence at most `slots` from any level: reading `slots` per level gives the
 * same answer as reading the whole queue. The rest of the margin (×4, at
 * least 64) is for jobs skipped because they do not fit, so that smaller
 * jobs behind them can still be found; beyond it, a node that is nearly full
 * may be offered a little less than the whole queue could give it, which
 * the next lease makes up.
 */
export function candidateLimit(slots: number): number {
  return Math.max(slots * 4, MIN_CANDIDATES_PER_LEVEL);
}
