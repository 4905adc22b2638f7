/**
 * The `queue_backlog` condition (DESIGN §10): a cluster's oldest queued
 * transfer job has waited longer than a threshold. Resolves when it clears.
 */

/**
 * Default threshold, seconds: one hour. Nodes lease continuously, so in a
 * cluster sized for its load a job waits seconds to minutes, and a nightly
 * burst drains in well under an hour. Aging (600 s per level) has counted a `low`
 * job as `critical` for half an hour by then, so a job still waiting at one
 * hour points at capacity (nodes paused, offline or full), not at priority.
 * Overdue is measured from the backup's own time, so a backlog never shows as
 * overdue: this alert is the one that says off-site copies are running late.
 */
export const DEFAULT_BACKLOG_SECONDS = 3600;

/**
 * The oldest queued job (its enqueue time, epoch ms; null for an empty queue)
 * has waited strictly more than `thresholdSeconds` at `now`.
 */
export function isBacklogged(oldestQueuedAt: number | null, now: number, thresholdSeconds: number): boolean {
  if (!(thresholdSeconds >= 0) || !Number.isFinite(thresholdSeconds)) {
    throw new RangeError(
      `backlog threshold must be a non-negative number of seconds, got ${thresholdSeconds}`,
    );
  }
  return oldestQueuedAt !== null && now - oldestQueuedAt > thresholdSeconds * 1000;
}
