import { CronExpressionParser } from 'cron-parser';
import type { Schedule } from './config.js';

/**
 * When an instance runs next: pure functions of the schedule and a time.
 *
 * Interval schedules run on a fixed grid, `anchorMs + k × period` (the anchor
 * defaults to the Unix epoch, so `interval = 3600` runs at the top of every
 * hour, like the old client's hourly crontab line). The next slot after the
 * previous planned slot is exactly one period later, whatever the run's
 * duration or the timer's lateness: runs never drift, and a restart of the
 * agent does not move them. Cron schedules run at the expression's times in
 * its time zone (cron-parser 5; 5 fields, or 6 with seconds first).
 *
 * `jitterMs` is added to the planned slot (the agent spreads a fleet's runs
 * with it); keep the planned slot, not the jittered time, as the next anchor.
 */

/** The first planned slot strictly after `afterMs`. */
export function nextPlannedRun(schedule: Schedule, afterMs: number, anchorMs = 0): number {
  if (schedule.kind === 'interval') {
    const period = schedule.seconds * 1000;
    if (!(period > 0) || !Number.isFinite(period)) {
      throw new RangeError(`interval must be a positive number of seconds, got ${schedule.seconds}`);
    }
    const k = Math.floor((afterMs - anchorMs) / period) + 1;
    return anchorMs + k * period;
  }
  const expression = CronExpressionParser.parse(schedule.expression, {
    currentDate: new Date(afterMs),
    tz: schedule.timezone,
  });
  // cron-parser's next() is strictly after currentDate.
  return expression.next().getTime();
}

/** The planned slot strictly after `afterMs`, plus `jitterMs`. */
export function nextRunAt(schedule: Schedule, afterMs: number, jitterMs: number, anchorMs = 0): number {
  return nextPlannedRun(schedule, afterMs, anchorMs) + jitterMs;
}

/**
 * A stable jitter in [0, maxMs) for one instance of one host: the same
 * instance always runs at the same offset (its runs stay exactly one period
 * apart), and a fleet's instances spread over the window. FNV-1a of the key.
 */
export function stableJitterMs(key: string, maxMs: number): number {
  if (!(maxMs > 0)) return 0;
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(key, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return Math.floor((hash / 0x1_0000_0000) * maxMs);
}

/**
 * The most jitter a schedule tolerates: a tenth of an interval's period, or of
 * the time between a cron schedule's next two slots after `afterMs`, so a
 * jittered run never reaches the next slot.
 */
export function maxJitterFor(schedule: Schedule, afterMs: number): number {
  if (schedule.kind === 'interval') return Math.floor((schedule.seconds * 1000) / 10);
  const first = nextPlannedRun(schedule, afterMs);
  const second = nextPlannedRun(schedule, first);
  return Math.floor((second - first) / 10);
}
