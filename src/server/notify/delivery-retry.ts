/**
 * When a failed delivery is tried again (pure). A delivery that failed with
 * `retryable: false` is failed at once by the caller; only retryable failures
 * come here. Delays after the 1st…7th failed attempt: 30 s, 1 m, 2 m, 4 m,
 * 8 m, 16 m, 30 m (capped); the 8th failure gives up, about 62 minutes after
 * the first attempt.
 */

/** Delay after the first failed attempt; it doubles with each further failure. */
export const DELIVERY_RETRY_BASE_MS = 30_000;
/** No wait between two attempts is longer than this. */
export const DELIVERY_RETRY_MAX_DELAY_MS = 30 * 60_000;
/** Attempts in all (the first included); after this many failures the delivery is failed. */
export const DELIVERY_MAX_ATTEMPTS = 8;

export type NextDeliveryAttempt = { state: 'retry'; at: number } | { state: 'failed' };

/** The wait after `attempts` failed attempts (1 or more). */
export function deliveryRetryDelayMs(attempts: number): number {
  const exponent = Math.max(0, Math.floor(attempts) - 1);
  // 2^exponent overflows nothing here: the cap is reached at exponent 6.
  return Math.min(DELIVERY_RETRY_BASE_MS * 2 ** Math.min(exponent, 30), DELIVERY_RETRY_MAX_DELAY_MS);
}

/** `attempts`: how many attempts have been made and failed so far, this one included. */
export function nextDeliveryAttempt(attempts: number, nowMs: number): NextDeliveryAttempt {
  if (attempts >= DELIVERY_MAX_ATTEMPTS) return { state: 'failed' };
  return { state: 'retry', at: nowMs + deliveryRetryDelayMs(attempts) };
}
