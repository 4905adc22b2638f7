import { setTimeout as sleep } from 'node:timers/promises';

export type NotReady = undefined | null | false;

export interface WaitForOptions {
  /** Deadline for the whole wait, including a probe call that hangs. */
  timeoutMs: number;
  /** Pause between probe calls; default 50 ms. */
  intervalMs?: number;
  /** Shown in the timeout error: `timed out after 5000ms waiting for <what>`. */
  what: string;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

const TIMED_OUT: unique symbol = Symbol('timed out');

/**
 * Calls `probe` until it returns a truthy value and resolves with that value. A probe that throws
 * counts as "not ready yet"; the last error is included in the timeout error (and is its `cause`).
 * At least one probe call is always made. A probe call still running at the deadline is abandoned.
 */
export async function waitFor<T>(
  probe: () => Promise<T | NotReady> | T | NotReady,
  opts: WaitForOptions,
): Promise<T> {
  const intervalMs = opts.intervalMs ?? 50;
  const deadline = Date.now() + opts.timeoutMs;
  let lastError: unknown;
  let hasError = false;

  for (;;) {
    const remaining = deadline - Date.now();
    const timer = new AbortController();
    try {
      const attempt = Promise.resolve().then(probe);
      // If the probe is abandoned at the deadline, its late rejection must not become unhandled.
      attempt.catch(() => undefined);
      const result = await Promise.race([
        attempt,
        sleep(Math.max(remaining, 0), TIMED_OUT, { signal: timer.signal }),
      ]);
      if (result !== TIMED_OUT && result) return result as T;
    } catch (error) {
      lastError = error;
      hasError = true;
    } finally {
      timer.abort();
    }

    const left = deadline - Date.now();
    if (left <= 0) {
      const suffix = hasError ? `; last error: ${describe(lastError)}` : '';
      throw new Error(
        `timed out after ${opts.timeoutMs}ms waiting for ${opts.what}${suffix}`,
        hasError ? { cause: lastError } : undefined,
      );
    }
    await sleep(Math.min(intervalMs, left));
  }
}
