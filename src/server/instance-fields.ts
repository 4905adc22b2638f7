import { z } from 'zod';
import { cronProblem } from '../shared/cron-schedule.js';

/**
 * Validation of an instance's registry fields that are not part of its identity
 * (identity fields use the report's schemas: serverIdSchema, typeNameSchema, …).
 */

export const DEFAULT_INTERVAL_SECONDS = 3600;
export const DEFAULT_GRACE_SECONDS = 3000;
export const DEFAULT_TIMEZONE = 'UTC';
export const MAX_NAME_CHARS = 128;
export const MAX_SCHEDULE_CHARS = 256;
/** Interval between runs: one minute to one year. */
export const MIN_INTERVAL_SECONDS = 60;
export const MAX_INTERVAL_SECONDS = 366 * 86_400;
/** Grace after a missed run before it is late: up to 30 days. */
export const MAX_GRACE_SECONDS = 30 * 86_400;
/** Retention, at any level (instance, type, business): keep up to ten years, at least up to 1000 fulls. */
export const MAX_RETENTION_DAYS = 3650;
export const MAX_KEEP_FULLS = 1000;

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we reject
const CONTROL = /[\u0000-\u001f\u007f]/;

/** The display name (the agent config's section name): 1-128 characters, no control characters, trimmed. */
export const instanceDisplayNameSchema = z
  .string()
  .min(1, 'name is empty')
  .max(MAX_NAME_CHARS, `name is longer than ${MAX_NAME_CHARS} characters`)
  .refine((v) => !CONTROL.test(v), 'name contains a control character')
  .refine((v) => v.trim() === v, 'name has leading or trailing whitespace');

/** Why `timezone` is not a usable IANA time zone, or null. */
export function timezoneProblem(timezone: string): string | null {
  if (!/^[A-Za-z][A-Za-z0-9_+-]*(?:\/[A-Za-z0-9_+-]+)*$/.test(timezone)) {
    return `timezone "${timezone}" is not an IANA time zone name (e.g. UTC, Asia/Shanghai)`;
  }
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
  } catch {
    return `timezone "${timezone}" is not a known IANA time zone`;
  }
  return null;
}

/** Why `expression` is not a usable cron expression in `timezone`, or null. */
export function scheduleProblem(expression: string, timezone: string): string | null {
  const problem = cronProblem(expression, timezone);
  return problem === null ? null : `schedule ${problem}`;
}

export const timezoneSchema = z.string().superRefine((value, ctx) => {
  const problem = timezoneProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** A cron expression (5 or 6 fields); checked against the time zone separately. */
export const scheduleSchema = z
  .string()
  .min(1, 'schedule is empty; send null for "every interval_seconds"')
  .max(MAX_SCHEDULE_CHARS)
  .refine((v) => v.trim().length > 0, 'schedule is blank; send null for "every interval_seconds"')
  .refine((v) => !CONTROL.test(v), 'schedule contains a control character');

export const intervalSecondsSchema = z.number().int().min(MIN_INTERVAL_SECONDS).max(MAX_INTERVAL_SECONDS);
export const graceSecondsSchema = z.number().int().min(0).max(MAX_GRACE_SECONDS);
export const retentionDaysSchema = z.number().int().min(1).max(MAX_RETENTION_DAYS);
export const keepFullsSchema = z.number().int().min(0).max(MAX_KEEP_FULLS);
