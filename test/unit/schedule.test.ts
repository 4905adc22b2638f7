import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Schedule } from '../../src/agent/config.js';
import { maxJitterFor, nextPlannedRun, nextRunAt, stableJitterMs } from '../../src/agent/schedule.js';

const HOUR = 3_600_000;
const T = Date.UTC(2026, 0, 15, 3, 8, 20, 123);

describe('interval schedules', () => {
  const hourly: Schedule = { kind: 'interval', seconds: 3600 };

  it('run on a fixed grid: the top of every hour for interval = 3600', () => {
    expect(nextRunAt(hourly, T, 0)).toBe(Date.UTC(2026, 0, 15, 4, 0, 0));
    expect(nextRunAt(hourly, Date.UTC(2026, 0, 15, 4, 0, 0), 0)).toBe(Date.UTC(2026, 0, 15, 5, 0, 0));
  });

  it('are anchored to the previous planned run: late timers and long runs do not drift', () => {
    let planned = nextPlannedRun(hourly, T);
    const slots: number[] = [];
    for (let i = 0; i < 5; i++) {
      slots.push(planned);
      // The timer fired 37 s late and the run took 20 minutes; neither moves the next slot.
      const firedAt = planned + 37_000;
      const finishedAt = firedAt + 20 * 60_000;
      expect(nextPlannedRun(hourly, firedAt)).toBe(planned + HOUR);
      expect(nextPlannedRun(hourly, finishedAt)).toBe(planned + HOUR);
      planned = nextPlannedRun(hourly, planned);
    }
    expect(slots.map((t, i) => t - (slots[0] ?? 0) - i * HOUR)).toEqual([0, 0, 0, 0, 0]);
  });

  it('add the jitter to the planned slot', () => {
    expect(nextRunAt(hourly, T, 1234)).toBe(Date.UTC(2026, 0, 15, 4, 0, 0) + 1234);
  });

  it('respect an explicit anchor', () => {
    const anchor = Date.UTC(2026, 0, 1, 0, 17, 0);
    expect(nextRunAt(hourly, T, 0, anchor)).toBe(Date.UTC(2026, 0, 15, 3, 17, 0));
  });

  it('property: the next run is after t and within one period', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 7 * 86_400 }),
        fc.integer({ min: 0, max: 4_102_444_800_000 }),
        (seconds, t) => {
          const schedule: Schedule = { kind: 'interval', seconds };
          const next = nextRunAt(schedule, t, 0);
          expect(next).toBeGreaterThan(t);
          expect(next).toBeLessThanOrEqual(t + seconds * 1000);
          // and it is on the grid
          expect(next % (seconds * 1000)).toBe(0);
        },
      ),
    );
  });

  it('refuse a non-positive period', () => {
    expect(() => nextPlannedRun({ kind: 'interval', seconds: 0 }, T)).toThrow(RangeError);
  });
});

describe('cron schedules', () => {
  it('0 4 * * * in Asia/Shanghai runs at 20:00 UTC', () => {
    const daily: Schedule = { kind: 'cron', expression: '0 4 * * *', timezone: 'Asia/Shanghai' };
    expect(new Date(nextRunAt(daily, T, 0)).toISOString()).toBe('2026-01-15T20:00:00.000Z');
    // strictly after: at the slot itself, the next one is a day later
    expect(new Date(nextRunAt(daily, Date.UTC(2026, 0, 15, 20), 0)).toISOString()).toBe(
      '2026-01-16T20:00:00.000Z',
    );
  });

  it('8 * * * * runs at minute 8 of every hour, with jitter added', () => {
    const hourly: Schedule = { kind: 'cron', expression: '8 * * * *', timezone: 'UTC' };
    expect(nextRunAt(hourly, T, 0)).toBe(Date.UTC(2026, 0, 15, 4, 8, 0));
    expect(nextRunAt(hourly, Date.UTC(2026, 0, 15, 3, 7, 59, 999), 5000)).toBe(
      Date.UTC(2026, 0, 15, 3, 8, 5),
    );
  });

  it('follows daylight saving time in the schedule time zone', () => {
    const daily: Schedule = { kind: 'cron', expression: '0 3 * * *', timezone: 'Europe/Berlin' };
    expect(new Date(nextRunAt(daily, Date.UTC(2026, 0, 10), 0)).toISOString()).toBe(
      '2026-01-10T02:00:00.000Z',
    );
    expect(new Date(nextRunAt(daily, Date.UTC(2026, 6, 10), 0)).toISOString()).toBe(
      '2026-07-10T01:00:00.000Z',
    );
  });

  it('property: the next run is after t and is a slot of the expression', () => {
    const every15: Schedule = { kind: 'cron', expression: '*/15 * * * *', timezone: 'Asia/Shanghai' };
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4_102_444_800_000 }), (t) => {
        const next = nextRunAt(every15, t, 0);
        expect(next).toBeGreaterThan(t);
        expect(next - t).toBeLessThanOrEqual(15 * 60_000);
        expect(next % (15 * 60_000)).toBe(0);
      }),
    );
  });
});

describe('jitter', () => {
  it('is stable per key and within [0, max)', () => {
    expect(stableJitterMs('111111/mysql/3306', 30_000)).toBe(stableJitterMs('111111/mysql/3306', 30_000));
    fc.assert(
      fc.property(fc.string(), fc.integer({ min: 1, max: 3_600_000 }), (key, max) => {
        const j = stableJitterMs(key, max);
        expect(j).toBeGreaterThanOrEqual(0);
        expect(j).toBeLessThan(max);
      }),
    );
    expect(stableJitterMs('x', 0)).toBe(0);
  });

  it('is limited to a tenth of the period', () => {
    expect(maxJitterFor({ kind: 'interval', seconds: 60 }, T)).toBe(6_000);
    expect(maxJitterFor({ kind: 'cron', expression: '*/5 * * * *', timezone: 'UTC' }, T)).toBe(30_000);
  });
});
