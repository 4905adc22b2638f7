import type { JobFailureCode } from '../../shared/node-protocol.js';

/**
 * What happens to a transfer job after a failed attempt (DESIGN §3.4, §8):
 * back off exponentially and retry, or, once `max_attempts` attempts have
 * failed, mark it `dead` (the caller opens the alert). Nothing is dropped
 * silently.
 */

/** First retry delay: 30 s. */
export const RETRY_BASE_DELAY_MS = 30_000;
/** Longest retry delay: 1 h. */
export const RETRY_MAX_DELAY_MS = 3_600_000;

export interface FailedAttempt {
  /** Attempts made so far, this failed one included (≥ 1). */
  attempts: number;
  maxAttempts: number;
  code: JobFailureCode;
  nowMs: number;
  /** First retry delay; default RETRY_BASE_DELAY_MS. */
  baseDelayMs?: number;
}

export type RetryDecision = { state: 'queued'; nextAttemptAtMs: number } | { state: 'dead' };

/**
 * Delay before the next attempt after `attempts` failed ones: base × 2^(attempts − 1)
 * (base 30 s unless the server is told otherwise), capped at 1 h.
 */
export function retryDelayMs(attempts: number, baseDelayMs: number = RETRY_BASE_DELAY_MS): number {
  if (!Number.isInteger(attempts) || attempts < 1) {
    throw new RangeError(`attempts must be an integer ≥ 1, got ${attempts}`);
  }
  // 2 ** n is exact up to 2 ** 1023 and Infinity beyond, so the cap holds for any count.
  return Math.min(RETRY_MAX_DELAY_MS, baseDelayMs * 2 ** (attempts - 1));
}

/**
 * The job's next state. Every failure code counts the same: a source gone
 * (404 from the agent) or a checksum mismatch may be a file rotated or still
 * being written, so it gets the same `max_attempts` as a transient error
 * before the job is declared dead (DESIGN §8).
 */
export function afterFailure(failure: FailedAttempt): RetryDecision {
  if (failure.attempts >= failure.maxAttempts) return { state: 'dead' };
  return {
    state: 'queued',
    nextAttemptAtMs: failure.nowMs + retryDelayMs(failure.attempts, failure.baseDelayMs),
  };
}

/** A lease not renewed by `lease_expires_at` is over: at that very millisecond the job is back in the queue. */
export function leaseExpired(leaseExpiresAtMs: number, nowMs: number): boolean {
  return leaseExpiresAtMs <= nowMs;
}
