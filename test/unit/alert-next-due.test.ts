import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { nextPlannedRun } from '../../src/agent/schedule.js';
import {
  DEFAULT_GRACE_SECONDS,
  type DueSchedule,
  DueScheduleError,
  nextDueAt,
} from '../../src/server/alerts/next-due.js';

// Frozen time: every due time is computed from an anchor the test chooses.
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

function interval(seconds: number, graceSeconds = DEFAULT_GRACE_SECONDS): DueSchedule {
  return { schedule: null, intervalSeconds: seconds, timezone: 'UTC', graceSeconds };
}

function cron(expression: string, timezone: string, graceSeconds = DEFAULT_GRACE_SECONDS): DueSchedule {
  return { schedule: expression, intervalSeconds: 3600, timezone, graceSeconds };
}

/** Successive fire times (grace 0) starting from `anchor`. */
function fires(expression: string, timezone: string, anchor: number, count: number): number[] {
  const out: number[] = [];
  let t = anchor;
  for (let i = 0; i < count; i++) {
    t = nextDueAt(cron(expression, timezone, 0), t);
    out.push(t);
  }
  return out;
}

describe('default grace', () => {
  it('is the old system’s 50 minutes', () => {
    expect(DEFAULT_GRACE_SECONDS).toBe(3000);
  });
});

describe('interval schedules', () => {
  it('are due one period plus grace after the anchor', () => {
    const made = Date.UTC(2026, 10, 25, 4, 0, 0);
    expect(nextDueAt(interval(86_400), made)).toBe(Date.UTC(2026, 10, 26, 4, 50, 0));
    expect(nextDueAt(interval(3600, 0), made)).toBe(made + HOUR);
  });

  it('keep the anchor’s seconds and milliseconds', () => {
    const made = Date.UTC(2026, 10, 25, 4, 0, 37, 250);
    expect(nextDueAt(interval(3600, 120), made)).toBe(made + HOUR + 2 * MINUTE);
  });

  it('ignore the time zone: a day is 24 hours even across a daylight-saving change', () => {
    const s: DueSchedule = { ...interval(86_400, 0), timezone: 'America/New_York' };
    const beforeSpring = Date.UTC(2026, 2, 7, 12, 0, 0);
    expect(nextDueAt(s, beforeSpring) - beforeSpring).toBe(DAY);
    const beforeFall = Date.UTC(2026, 9, 31, 12, 0, 0);
    expect(nextDueAt(s, beforeFall) - beforeFall).toBe(DAY);
  });

  it('property: due − anchor = (interval + grace) s', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 60, max: 366 * 86_400 }),
        fc.integer({ min: 0, max: 30 * 86_400 }),
        fc.integer({ min: 0, max: 4_102_444_800_000 }),
        (seconds, grace, anchor) => {
          expect(nextDueAt(interval(seconds, grace), anchor) - anchor).toBe((seconds + grace) * SECOND);
        },
      ),
    );
  });
});

describe('cron schedules', () => {
  it('are due at the first fire time strictly after the anchor, plus grace', () => {
    const s = cron('0 4 * * *', 'UTC');
    // A backup made exactly at a fire time is that run's: the next one is due tomorrow.
    expect(nextDueAt(s, Date.UTC(2026, 10, 25, 4, 0, 0))).toBe(Date.UTC(2026, 10, 26, 4, 50, 0));
    expect(nextDueAt(s, Date.UTC(2026, 10, 25, 4, 0, 0, 1))).toBe(Date.UTC(2026, 10, 26, 4, 50, 0));
    expect(nextDueAt(s, Date.UTC(2026, 10, 25, 4, 7, 12))).toBe(Date.UTC(2026, 10, 26, 4, 50, 0));
    // A millisecond before today's fire time: today's run is the next one.
    expect(nextDueAt(s, Date.UTC(2026, 10, 25, 3, 59, 59, 999))).toBe(Date.UTC(2026, 10, 25, 4, 50, 0));
  });

  it('accept six fields (seconds first) and honour sub-second anchors', () => {
    const s = cron('30 0 4 * * *', 'UTC', 0);
    expect(nextDueAt(s, Date.UTC(2026, 10, 25, 4, 0, 30))).toBe(Date.UTC(2026, 10, 26, 4, 0, 30));
    expect(nextDueAt(s, Date.UTC(2026, 10, 25, 4, 0, 29, 999))).toBe(Date.UTC(2026, 10, 25, 4, 0, 30));
    expect(nextDueAt(cron('* * * * * *', 'UTC', 0), Date.UTC(2026, 0, 1, 4, 0, 0, 500))).toBe(
      Date.UTC(2026, 0, 1, 4, 0, 1),
    );
  });

  it('are read in the instance’s time zone: Asia/Shanghai (UTC+8, no daylight saving)', () => {
    const s = cron('0 4 * * *', 'Asia/Shanghai');
    // Made 2026-11-25 04:05 in Shanghai = 2026-11-24 20:05 UTC; next run 2026-11-26 04:00 CST.
    expect(nextDueAt(s, Date.UTC(2026, 10, 24, 20, 5, 0))).toBe(Date.UTC(2026, 10, 25, 20, 50, 0));
    // Made 2026-11-25 03:59 in Shanghai: today's 04:00 run is next.
    expect(nextDueAt(s, Date.UTC(2026, 10, 24, 19, 59, 0))).toBe(Date.UTC(2026, 10, 24, 20, 50, 0));
  });

  it('are read in the instance’s time zone: America/New_York in winter (UTC−5) and summer (UTC−4)', () => {
    const s = cron('0 4 * * *', 'America/New_York', 0);
    expect(nextDueAt(s, Date.UTC(2026, 0, 15, 12, 0, 0))).toBe(Date.UTC(2026, 0, 16, 9, 0, 0));
    expect(nextDueAt(s, Date.UTC(2026, 6, 15, 12, 0, 0))).toBe(Date.UTC(2026, 6, 16, 8, 0, 0));
  });

  describe('across America/New_York’s daylight-saving changes', () => {
    it('daily 02:30 on spring-forward day (2026-03-08, 02:00 → 03:00): the skipped time fires at 03:30 EDT', () => {
      const s = cron('30 2 * * *', 'America/New_York', 0);
      // Made 2026-03-07 02:35 EST = 07:35 UTC.
      const sunday = nextDueAt(s, Date.UTC(2026, 2, 7, 7, 35, 0));
      expect(sunday).toBe(Date.UTC(2026, 2, 8, 7, 30, 0)); // 03:30 EDT
      // The day after is back at 02:30, now EDT (UTC−4).
      expect(nextDueAt(s, sunday)).toBe(Date.UTC(2026, 2, 9, 6, 30, 0));
      // With the default grace, the instance is due 50 minutes after each.
      expect(nextDueAt(cron('30 2 * * *', 'America/New_York'), Date.UTC(2026, 2, 7, 7, 35, 0))).toBe(
        Date.UTC(2026, 2, 8, 8, 20, 0),
      );
    });

    it('daily 02:30 on fall-back day (2026-11-01, 02:00 → 01:00): 25 hours after the previous run', () => {
      const s = cron('30 2 * * *', 'America/New_York', 0);
      const saturday = Date.UTC(2026, 9, 31, 6, 30, 0); // 02:30 EDT
      const sunday = nextDueAt(s, saturday);
      expect(sunday).toBe(Date.UTC(2026, 10, 1, 7, 30, 0)); // 02:30 EST
      expect(sunday - saturday).toBe(25 * HOUR);
    });

    it('daily 01:30 on fall-back day fires once, not again in the repeated hour', () => {
      const s = cron('30 1 * * *', 'America/New_York', 0);
      const first = nextDueAt(s, Date.UTC(2026, 9, 31, 5, 35, 0));
      expect(first).toBe(Date.UTC(2026, 10, 1, 5, 30, 0)); // 01:30 EDT
      // A backup made at 01:35 EDT: the next run is tomorrow's 01:30 EST, not 01:30 EST today.
      expect(nextDueAt(s, first + 5 * MINUTE)).toBe(Date.UTC(2026, 10, 2, 6, 30, 0));
    });

    it('hourly across spring-forward: runs stay one real hour apart', () => {
      const got = fires('0 * * * *', 'America/New_York', Date.UTC(2026, 2, 8, 5, 30, 0), 4);
      // 01:00 EST, 03:00 EDT, 04:00 EDT, 05:00 EDT
      expect(got).toEqual([
        Date.UTC(2026, 2, 8, 6, 0, 0),
        Date.UTC(2026, 2, 8, 7, 0, 0),
        Date.UTC(2026, 2, 8, 8, 0, 0),
        Date.UTC(2026, 2, 8, 9, 0, 0),
      ]);
    });

    it('hourly across fall-back: the repeated hour is run in both its occurrences', () => {
      const got = fires('0 * * * *', 'America/New_York', Date.UTC(2026, 10, 1, 4, 30, 0), 4);
      // 01:00 EDT, 01:00 EST, 02:00 EST, 03:00 EST
      expect(got).toEqual([
        Date.UTC(2026, 10, 1, 5, 0, 0),
        Date.UTC(2026, 10, 1, 6, 0, 0),
        Date.UTC(2026, 10, 1, 7, 0, 0),
        Date.UTC(2026, 10, 1, 8, 0, 0),
      ]);
      // A backup made in the second 01:xx (01:10 EST) is due at 02:00 EST, not earlier.
      expect(nextDueAt(cron('0 * * * *', 'America/New_York', 0), Date.UTC(2026, 10, 1, 6, 10, 0))).toBe(
        Date.UTC(2026, 10, 1, 7, 0, 0),
      );
    });
  });

  const EXPRESSIONS = ['0 4 * * *', '30 2 * * *', '0 * * * *', '*/15 * * * *', '0 3 * * 1', '15 10 1 * *'];
  const ZONES = ['UTC', 'Asia/Shanghai', 'America/New_York', 'Europe/London', 'America/Santiago'];
  const anchors = fc.integer({ min: Date.UTC(2020, 0, 1), max: Date.UTC(2035, 0, 1) });

  it('property: the due time is the agent’s next planned run after the anchor, plus grace', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...EXPRESSIONS),
        fc.constantFrom(...ZONES),
        fc.integer({ min: 0, max: 86_400 }),
        anchors,
        (expression, timezone, grace, anchor) => {
          const due = nextDueAt(cron(expression, timezone, grace), anchor);
          const planned = nextPlannedRun({ kind: 'cron', expression, timezone }, anchor);
          expect(due).toBe(planned + grace * SECOND);
          expect(due - grace * SECOND).toBeGreaterThan(anchor);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('property: a later anchor is never due sooner', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...EXPRESSIONS),
        fc.constantFrom(...ZONES),
        anchors,
        fc.integer({ min: 0, max: 40 * DAY }),
        (expression, timezone, anchor, later) => {
          const s = cron(expression, timezone);
          expect(nextDueAt(s, anchor + later)).toBeGreaterThanOrEqual(nextDueAt(s, anchor));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('unusable schedules are refused, never guessed', () => {
  const anchor = Date.UTC(2026, 10, 25, 4, 0, 0);

  it.each([
    ['0 25 * * *', 'UTC', 'is not a valid cron expression'],
    ['@daily', 'UTC', 'has 1 field'],
    ['0 4 * *', 'UTC', 'has 4 fields'],
    ['0 0 30 2 *', 'UTC', 'is not a valid cron expression'],
    ['0 4 * * *', 'Mars/Olympus_Mons', 'is not a known IANA time zone'],
    ['0 4 * * *', '../etc', 'is not an IANA time zone name'],
  ])('%s in %s', (expression, timezone, message) => {
    const attempt = () => nextDueAt(cron(expression, timezone), anchor);
    expect(attempt).toThrow(DueScheduleError);
    expect(attempt).toThrow(message);
  });

  it('a non-positive interval or a negative grace', () => {
    expect(() => nextDueAt(interval(0), anchor)).toThrow(DueScheduleError);
    expect(() => nextDueAt(interval(-60), anchor)).toThrow(DueScheduleError);
    expect(() => nextDueAt(interval(3600, -1), anchor)).toThrow(DueScheduleError);
    expect(() => nextDueAt(interval(Number.NaN), anchor)).toThrow(DueScheduleError);
  });

  it('a non-finite anchor', () => {
    expect(() => nextDueAt(interval(3600), Number.NaN)).toThrow(RangeError);
  });
});
