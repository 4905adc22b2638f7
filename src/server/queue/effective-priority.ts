/**
 * Aging (DESIGN §8): every `aging_seconds` a job waits, it counts one priority
 * level higher, so a low-priority job cannot starve behind a stream of more
 * urgent ones. Ranks are the catalog's: 0 = critical … 3 = low (see
 * `src/shared/priority.ts`); lower is more urgent.
 */

/** Default aging period, seconds: a `low` job reaches `critical` after 30 minutes. */
export const DEFAULT_AGING_SECONDS = 600;

/**
 * The rank a job competes with at `nowMs`: `max(0, rank − ⌊waited / aging⌋)`.
 *
 * The wait counts from `enqueuedAtMs` (when the report arrived), never from
 * the last retry, so a job that keeps failing does not lose the age it has
 * earned. A job enqueued "in the future" (clock skew between servers) has
 * waited zero. `agingSeconds` must be positive; `Infinity` turns aging off.
 */
export function effectivePriority(
  rank: number,
  enqueuedAtMs: number,
  nowMs: number,
  agingSeconds: number,
): number {
  if (!(agingSeconds > 0)) throw new RangeError(`aging_seconds must be positive, got ${agingSeconds}`);
  const waitedMs = Math.max(0, nowMs - enqueuedAtMs);
  const levelsGained = Math.floor(waitedMs / (agingSeconds * 1000));
  return Math.max(0, rank - levelsGained);
}
