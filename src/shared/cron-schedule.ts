import { CronExpressionParser } from 'cron-parser';

/**
 * The one rule for cron schedules, shared by agent configs and the registry:
 * 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first),
 * parsed in the instance's time zone. `@daily` and the other macros are not
 * accepted, so a schedule means the same thing wherever it is written.
 * Returns why the expression is unusable, or null.
 */
export function cronProblem(expression: string, timezone: string): string | null {
  const fields = expression.trim().split(/\s+/).length;
  if (fields !== 5 && fields !== 6) {
    return (
      `"${expression}" has ${fields} field${fields === 1 ? '' : 's'}; a cron schedule has 5 ` +
      '(minute hour day-of-month month day-of-week) or 6 (seconds first)'
    );
  }
  try {
    // A fixed start keeps the check independent of the clock.
    CronExpressionParser.parse(expression, { tz: timezone, currentDate: '2000-01-01T00:00:00Z' }).next();
    return null;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return `"${expression}" is not a valid cron expression: ${reason}`;
  }
}
