import { performance } from 'node:perf_hooks';
import { setTimeout as sleepTimer } from 'node:timers/promises';

/** Milliseconds on a monotonic clock. */
export type MonotonicClock = () => number;
/** Resolves after `ms`, or early (resolve or reject) when `signal` aborts. */
export type Sleeper = (ms: number, signal: AbortSignal) => Promise<void>;

export interface TokenBucketOptions {
  /** Sustained rate in bytes per second; 0 = unlimited. */
  bytesPerSecond: number;
  /**
   * Most bytes that may pass at once, and the most that accumulate while the
   * bucket is idle. Default: an eighth of a second's worth, at least 64 KiB
   * (it follows the rate on setRate unless given here).
   */
  burstBytes?: number;
  now?: MonotonicClock;
  sleep?: Sleeper;
}

export const MIN_DEFAULT_BURST_BYTES = 64 * 1024;

const systemNow: MonotonicClock = () => performance.now();
const systemSleep: Sleeper = (ms, signal) => sleepTimer(ms, undefined, { signal });

interface Waiter {
  bytes: number;
  resolve: () => void;
  reject: (reason: unknown) => void;
}

function checkRate(bytesPerSecond: number): void {
  if (!Number.isFinite(bytesPerSecond) || bytesPerSecond < 0) {
    throw new RangeError(`bytesPerSecond must be a finite number ≥ 0, got ${bytesPerSecond}`);
  }
}

/** What a transfer's bytes pass through: a TokenBucket, or a receiver thread's view of the node's. */
export interface Limiter {
  /** 0 = unlimited: `take` is not called at all then. */
  readonly bytesPerSecond: number;
  /** The most bytes one `take` lets pass at once. */
  readonly burstBytes: number;
  /** Resolves when `bytes` may pass; rejects when `signal` aborts. */
  take(bytes: number, signal?: AbortSignal): Promise<void>;
}

/**
 * A token bucket for bandwidth limits. `take(n)` resolves when `n` bytes may
 * pass; waiters are served first come, first served, so transfers sharing the
 * node-wide bucket get fair turns. The bucket starts empty, so a transfer runs
 * at the rate from its first byte. `setRate` applies at once, also to waiters.
 */
export class TokenBucket implements Limiter {
  private rate: number;
  private burst: number;
  private readonly fixedBurst: number | undefined;
  private tokens = 0;
  private last: number;
  private readonly queue: Waiter[] = [];
  private pumping = false;
  private wake: AbortController | null = null;
  private readonly now: MonotonicClock;
  private readonly sleep: Sleeper;

  constructor(options: TokenBucketOptions) {
    checkRate(options.bytesPerSecond);
    if (
      options.burstBytes !== undefined &&
      !(Number.isFinite(options.burstBytes) && options.burstBytes >= 1)
    ) {
      throw new RangeError(`burstBytes must be ≥ 1, got ${options.burstBytes}`);
    }
    this.now = options.now ?? systemNow;
    this.sleep = options.sleep ?? systemSleep;
    this.rate = options.bytesPerSecond;
    this.fixedBurst = options.burstBytes;
    this.burst = this.burstFor(this.rate);
    this.last = this.now();
  }

  get bytesPerSecond(): number {
    return this.rate;
  }

  get burstBytes(): number {
    return this.burst;
  }

  /** Resolves when `bytes` may pass. Requests larger than the burst are split. Rejects when `signal` aborts. */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    let left = Math.max(0, Math.ceil(bytes));
    while (left > 0) {
      signal?.throwIfAborted();
      if (this.rate === 0) return;
      const piece = Math.min(left, this.burst);
      await this.takePiece(piece, signal);
      left -= piece;
    }
  }

  /** Changes the rate (0 = unlimited); waiters are re-timed at once. */
  setRate(bytesPerSecond: number): void {
    checkRate(bytesPerSecond);
    if (bytesPerSecond === this.rate) return;
    this.refill();
    this.rate = bytesPerSecond;
    this.burst = this.burstFor(bytesPerSecond);
    this.tokens = Math.min(this.tokens, this.burst);
    this.wake?.abort();
  }

  /**
   * How long (ms) a request for `bytes` (≤ burst) made now would wait, given
   * the tokens in the bucket and the requests already queued. Does not take anything.
   */
  waitMs(bytes: number): number {
    if (this.rate === 0) return 0;
    this.refill();
    const queued = this.queue.reduce((sum, waiter) => sum + waiter.bytes, 0);
    const missing = queued + bytes - this.tokens;
    return missing <= 0 ? 0 : Math.ceil((missing / this.rate) * 1000);
  }

  private burstFor(rate: number): number {
    if (this.fixedBurst !== undefined) return this.fixedBurst;
    return Math.max(MIN_DEFAULT_BURST_BYTES, Math.floor(rate / 8));
  }

  private refill(): void {
    const now = this.now();
    const elapsed = now - this.last;
    this.last = now;
    if (elapsed > 0 && this.rate > 0)
      this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.rate) / 1000);
  }

  private takePiece(bytes: number, signal: AbortSignal | undefined): Promise<void> {
    if (this.queue.length === 0) {
      this.refill();
      if (this.tokens >= bytes) {
        this.tokens -= bytes;
        return Promise.resolve();
      }
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const index = this.queue.indexOf(waiter);
        if (index >= 0) this.queue.splice(index, 1);
        reject(signal?.reason);
        this.wake?.abort();
      };
      const waiter: Waiter = {
        bytes,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject,
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(waiter);
      void this.pump();
    });
  }

  /** Serves the queue head first; sleeps until it can pass, or until setRate/abort wakes it. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (;;) {
        const head = this.queue[0];
        if (head === undefined) return;
        if (this.rate === 0) {
          for (const waiter of this.queue.splice(0)) waiter.resolve();
          return;
        }
        this.refill();
        // A rate change can shrink the burst below a queued piece: let it pass on a full bucket.
        const needed = Math.min(head.bytes, this.burst);
        if (this.tokens >= needed) {
          this.tokens -= head.bytes;
          this.queue.shift();
          head.resolve();
          continue;
        }
        const wait = Math.ceil(((needed - this.tokens) / this.rate) * 1000);
        const wake = new AbortController();
        this.wake = wake;
        try {
          await this.sleep(Math.max(wait, 1), wake.signal);
        } catch {
          // woken early: recompute
        } finally {
          if (this.wake === wake) this.wake = null;
        }
      }
    } finally {
      this.pumping = false;
    }
  }
}
