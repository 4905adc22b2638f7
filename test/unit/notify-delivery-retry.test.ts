import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DELIVERY_MAX_ATTEMPTS,
  DELIVERY_RETRY_BASE_MS,
  DELIVERY_RETRY_MAX_DELAY_MS,
  nextDeliveryAttempt,
} from '../../src/server/notify/delivery-retry.js';

describe('nextDeliveryAttempt', () => {
  const now = 1_700_000_000_000;

  it('backs off 30 s, 1 m, 2 m, 4 m, 8 m, 16 m, 30 m, then gives up at the 8th failure', () => {
    const delays = [1, 2, 3, 4, 5, 6, 7].map((attempts) => {
      const next = nextDeliveryAttempt(attempts, now);
      if (next.state !== 'retry') throw new Error(`attempt ${attempts} gave up`);
      return (next.at - now) / 1000;
    });
    expect(delays).toEqual([30, 60, 120, 240, 480, 960, 1800]);
    expect(nextDeliveryAttempt(8, now)).toEqual({ state: 'failed' });
    expect(nextDeliveryAttempt(9, now)).toEqual({ state: 'failed' });
    expect(DELIVERY_MAX_ATTEMPTS).toBe(8);
  });

  it('never waits less than the base or more than the cap, and never less than the previous wait (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: DELIVERY_MAX_ATTEMPTS - 2 }), fc.nat(), (attempts, t) => {
        const a = nextDeliveryAttempt(attempts, t);
        const b = nextDeliveryAttempt(attempts + 1, t);
        if (a.state !== 'retry' || b.state !== 'retry') throw new Error('gave up too early');
        expect(a.at - t).toBeGreaterThanOrEqual(DELIVERY_RETRY_BASE_MS);
        expect(b.at - t).toBeLessThanOrEqual(DELIVERY_RETRY_MAX_DELAY_MS);
        expect(b.at).toBeGreaterThanOrEqual(a.at);
      }),
    );
  });
});
