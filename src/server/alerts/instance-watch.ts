/**
 * The instance conditions that raise alerts by themselves, without a report
 * (DESIGN §10): `overdue` and `stuck`. Pure functions of the instance's state
 * and `now` (epoch ms).
 *
 * A paused instance, or one muted until a time still in the future, raises
 * neither: while silenced its alerts are not wanted, so the reconciler
 * resolves them, and they open again when the condition still holds after the
 * mute expires.
 */

/** What the overdue and stuck rules read from an instance. Times are epoch ms. */
export interface InstanceWatch {
  /** Paused by an operator: expected not to run, so never overdue or stuck. */
  paused: boolean;
  /** Muted until this time (exclusive: muted while `now < mutedUntil`), or null. */
  mutedUntil: number | null;
  /** From `nextDueAt`; null when the instance has no due time (never overdue). */
  nextDueAt: number | null;
  /** When the run in progress started, or null when no run is in progress. */
  runStartedAt: number | null;
  /** From `stuckDeadline`; null when the run has no timeout (never stuck). */
  runDeadlineAt: number | null;
}

/** Paused, or muted until a time still in the future. Muted exactly until `now` is no longer muted. */
export function isSilenced(w: InstanceWatch, now: number): boolean {
  return w.paused || (w.mutedUntil !== null && now < w.mutedUntil);
}

/** Strictly past its due time, and not silenced. Exactly at the due time is not yet overdue. */
export function isOverdue(w: InstanceWatch, now: number): boolean {
  return w.nextDueAt !== null && now > w.nextDueAt && !isSilenced(w, now);
}

/**
 * A run started, has not finished, and is strictly past its deadline; not
 * silenced. Finishing a run clears `runStartedAt`, which is what resolves the
 * alert.
 */
export function isStuck(w: InstanceWatch, now: number): boolean {
  return w.runStartedAt !== null && w.runDeadlineAt !== null && now > w.runDeadlineAt && !isSilenced(w, now);
}

/** The time after which a run that started at `startedAtMs` is stuck: start + timeout + grace. */
export function stuckDeadline(startedAtMs: number, timeoutSeconds: number, graceSeconds: number): number {
  if (!Number.isFinite(startedAtMs)) throw new RangeError(`start must be a finite time, got ${startedAtMs}`);
  if (!(timeoutSeconds > 0) || !Number.isFinite(timeoutSeconds)) {
    throw new RangeError(`timeout must be a positive number of seconds, got ${timeoutSeconds}`);
  }
  if (!(graceSeconds >= 0) || !Number.isFinite(graceSeconds)) {
    throw new RangeError(`grace must be a non-negative number of seconds, got ${graceSeconds}`);
  }
  return startedAtMs + (timeoutSeconds + graceSeconds) * 1000;
}
