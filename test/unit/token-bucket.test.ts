import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../src/node/token-bucket.js';

/**
 * A clock whose sleeps only end when the test advances time. Every requested
 * sleep is recorded, so the bucket's computed waits can be asserted exactly.
 */
class ManualClock {
  time = 0;
  readonly sleeps: number[] = [];
  private timers: { at: number; resolve: () => void }[] = [];

  readonly now = (): number => this.time;

  readonly sleep = (ms: number, signal: AbortSignal): Promise<void> => {
    this.sleeps.push(ms);
    return new Promise<void>((resolve, reject) => {
      const timer = { at: this.time + ms, resolve };
      this.timers.push(timer);
      signal.addEventListener(
        'abort',
        () => {
          this.timers = this.timers.filter((t) => t !== timer);
          reject(signal.reason);
        },
        { once: true },
      );
    });
  };

  /** Moves time forward by `ms`, firing due sleeps, and lets the bucket react. */
  async advance(ms: number): Promise<void> {
    this.time += ms;
    const due = this.timers.filter((t) => t.at <= this.time);
    this.timers = this.timers.filter((t) => t.at > this.time);
    for (const t of due) t.resolve();
    await settle();
  }

  /** Advances to each pending sleep's deadline in turn until none is left. */
  async runAll(limit = 10_000): Promise<void> {
    for (let i = 0; i < limit; i++) {
      await settle();
      const next = this.timers.reduce<number | null>(
        (min, t) => (min === null || t.at < min ? t.at : min),
        null,
      );
      if (next === null) return;
      await this.advance(next - this.time);
    }
    throw new Error('sleeps never ended');
  }
}

/** Lets pending promise callbacks run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

function bucket(clock: ManualClock, bytesPerSecond: number, burstBytes?: number): TokenBucket {
  return new TokenBucket({
    bytesPerSecond,
    now: clock.now,
    sleep: clock.sleep,
    ...(burstBytes !== undefined ? { burstBytes } : {}),
  });
}

describe('TokenBucket (injected clock)', () => {
  it('waits size/rate for each burst-sized piece, starting empty', async () => {
    const clock = new ManualClock();
    const b = bucket(clock, 1000, 100);
    let done = false;
    const taken = b.take(250).then(() => {
      done = true;
    });
    await clock.runAll();
    await taken;
    expect(done).toBe(true);
    // 250 bytes at 1000 B/s in pieces of at most 100: 100 ms + 100 ms + 50 ms.
    expect(clock.sleeps).toEqual([100, 100, 50]);
    expect(clock.time).toBe(250);
  });

  it('lets bytes through without waiting when tokens accumulated, up to the burst', async () => {
    const clock = new ManualClock();
    const b = bucket(clock, 1000, 100);
    await clock.advance(10_000); // idle for 10 s: the bucket holds only the burst
    await b.take(100);
    expect(clock.sleeps).toEqual([]);
    expect(b.waitMs(100)).toBe(100);
    const next = b.take(100);
    await clock.runAll();
    await next;
    expect(clock.sleeps).toEqual([100]);
  });

  it('is unlimited at rate 0', async () => {
    const clock = new ManualClock();
    const b = bucket(clock, 0);
    await b.take(10 * 1024 ** 3);
    expect(clock.sleeps).toEqual([]);
    expect(b.waitMs(1024 ** 3)).toBe(0);
  });

  it('serves concurrent takers first come, first served', async () => {
    const clock = new ManualClock();
    const b = bucket(clock, 1000, 100);
    const order: string[] = [];
    const a = b.take(100).then(() => order.push(`a@${clock.time}`));
    const c = b.take(100).then(() => order.push(`c@${clock.time}`));
    await clock.runAll();
    await Promise.all([a, c]);
    expect(order).toEqual(['a@100', 'c@200']);
  });

  it('applies setRate to a waiter at once', async () => {
    const clock = new ManualClock();
    const b = bucket(clock, 100, 100);
    let doneAt: number | null = null;
    const taken = b.take(100).then(() => {
      doneAt = clock.time;
    });
    await settle();
    expect(clock.sleeps).toEqual([1000]); // 100 bytes at 100 B/s
    await clock.advance(500); // 50 tokens so far
    b.setRate(1000); // the remaining 50 bytes now take 50 ms
    await settle();
    expect(clock.sleeps).toEqual([1000, 50]);
    await clock.advance(50);
    await taken;
    expect(doneAt).toBe(550);
  });

  it('releases waiters when the rate becomes unlimited, and limits again when it is set back', async () => {
    const clock = new ManualClock();
    const b = bucket(clock, 10, 100);
    const taken = b.take(100);
    await settle();
    b.setRate(0);
    await taken;
    b.setRate(1000);
    const again = b.take(100);
    await clock.runAll();
    await again;
    expect(clock.sleeps.at(-1)).toBe(100);
  });

  it('follows the rate with its default burst (an eighth of a second, at least 64 KiB)', () => {
    const clock = new ManualClock();
    const b = bucket(clock, 8 * 1024 * 1024);
    expect(b.burstBytes).toBe(1024 * 1024);
    b.setRate(1000);
    expect(b.burstBytes).toBe(64 * 1024);
  });

  it('drops an aborted waiter from the queue', async () => {
    const clock = new ManualClock();
    const b = bucket(clock, 1000, 100);
    const controller = new AbortController();
    const first = b.take(100, controller.signal);
    const second = b.take(100);
    await settle();
    controller.abort(new Error('cancelled'));
    await expect(first).rejects.toThrow('cancelled');
    await clock.runAll();
    await second;
    // The second waiter only needed its own 100 bytes.
    expect(clock.time).toBe(100);
  });

  it('refuses a negative or non-finite rate', () => {
    const clock = new ManualClock();
    expect(() => bucket(clock, -1)).toThrow(RangeError);
    expect(() => bucket(clock, Number.POSITIVE_INFINITY)).toThrow(RangeError);
    expect(() => bucket(clock, 100).setRate(Number.NaN)).toThrow(RangeError);
  });
});

describe('TokenBucket (real clock)', () => {
  it('passes 1 MiB at 4 MiB/s in no less than 200 ms', async () => {
    const b = new TokenBucket({ bytesPerSecond: 4 * 1024 * 1024 });
    const started = performance.now();
    for (let sent = 0; sent < 1024 * 1024; sent += 64 * 1024) await b.take(64 * 1024);
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(200);
    expect(elapsed).toBeLessThan(5000);
  });
});
