import { type CronExpression, CronExpressionParser } from 'cron-parser';
import { cronProblem } from '../../shared/cron-schedule.js';
import { timezoneProblem } from '../instance-fields.js';

/**
 * When an instance is due (DESIGN §10, `overdue`): a pure function of its
 * schedule and an anchor time.
 *
 * The anchor is the `created_at` of the instance's newest successful backup —
 * the time the backup was made, never the time the server processed it — so a
 * queue or ingest backlog can never make an instance look overdue. An instance
 * that has never sent a successful backup is anchored at its registration.
 *
 * - Interval schedules: `anchor + interval + grace`.
 * - Cron schedules: the first fire time strictly after the anchor, in the
 *   instance's time zone, `+ grace`. Fire times come from cron-parser 5, the
 *   library the agent schedules its runs with, so both sides agree across
 *   daylight-saving changes (a time skipped by a spring-forward fires an hour
 *   later on that day; a time repeated by a fall-back fires once).
 *
 * Due times grow with the anchor (a later success never makes an instance due
 * sooner), so an old backup replayed late never hides an overdue instance.
 */

export { DEFAULT_GRACE_SECONDS } from '../instance-fields.js';

/** What `nextDueAt` needs from an instance's registry row. */
export interface DueSchedule {
  /** A cron expression (the project's rule: 5 or 6 fields), or null for an interval schedule. */
  schedule: string | null;
  /** Period of an interval schedule, seconds; ignored for cron schedules. */
  intervalSeconds: number;
  /** IANA time zone the cron expression is read in; ignored for interval schedules. */
  timezone: string;
  /** How late a backup may be before the instance is overdue, seconds. */
  graceSeconds: number;
}

/** A schedule `nextDueAt` cannot use. The registry validates schedules, so this means a corrupt row. */
export class DueScheduleError extends Error {
  override name = 'DueScheduleError';
}

/**
 * The time (epoch ms) after which the instance is overdue, given `anchorMs`:
 * the newest successful backup's `created_at`, or the registration time.
 *
 * Throws `DueScheduleError` for an unusable schedule (a cron expression that
 * breaks the project's cron rule, an unknown time zone, a non-positive
 * interval, a negative grace) rather than guessing a due time, and
 * `RangeError` for a non-finite anchor.
 */
export function nextDueAt(s: DueSchedule, anchorMs: number): number {
  if (!Number.isFinite(anchorMs)) throw new RangeError(`anchor must be a finite time, got ${anchorMs}`);
  if (!(s.graceSeconds >= 0) || !Number.isFinite(s.graceSeconds)) {
    throw new DueScheduleError(`grace must be a non-negative number of seconds, got ${s.graceSeconds}`);
  }
  const graceMs = s.graceSeconds * 1000;
  if (s.schedule === null) {
    if (!(s.intervalSeconds > 0) || !Number.isFinite(s.intervalSeconds)) {
      throw new DueScheduleError(`interval must be a positive number of seconds, got ${s.intervalSeconds}`);
    }
    return anchorMs + s.intervalSeconds * 1000 + graceMs;
  }
  return nextFireAfter(s.schedule, s.timezone, anchorMs) + graceMs;
}

/**
 * Parsed expressions by time zone and text. A fleet shares a handful of
 * schedules, so each is checked and parsed once rather than on every success;
 * an expression is reset to the anchor before each use, which keeps the
 * answer a function of its inputs alone. Bounded: emptied when full.
 */
const parsed = new Map<string, CronExpression>();
const MAX_PARSED = 1024;

/** The first fire time of `expression` in `timezone` strictly after `afterMs`. */
function nextFireAfter(expression: string, timezone: string, afterMs: number): number {
  const cron = parsedExpression(expression, timezone);
  try {
    // next() is strictly after the current date, milliseconds included.
    cron.reset(new Date(afterMs));
    return cron.next().getTime();
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new DueScheduleError(
      `cannot tell when the instance is due: "${expression}" (time zone ${timezone}) has no fire time after ` +
        `${new Date(afterMs).toISOString()}: ${reason}`,
    );
  }
}

function parsedExpression(expression: string, timezone: string): CronExpression {
  const key = `${timezone}\u0000${expression}`;
  const known = parsed.get(key);
  if (known !== undefined) return known;
  const problem = timezoneProblem(timezone) ?? cronProblem(expression, timezone);
  if (problem !== null) throw new DueScheduleError(`cannot tell when the instance is due: ${problem}`);
  const cron = CronExpressionParser.parse(expression, { tz: timezone });
  if (parsed.size >= MAX_PARSED) parsed.clear();
  parsed.set(key, cron);
  return cron;
}
