import { describe, expect, it } from 'vitest';
import { cronExpression } from '../../src/agent/config.js';
import { scheduleProblem } from '../../src/server/instance-fields.js';
import { cronProblem } from '../../src/shared/cron-schedule.js';

describe('one cron rule for agent configs and the registry', () => {
  it.each([
    ['0 4 * * *', null],
    ['*/5 * * * *', null],
    ['30 0 4 * * *', null],
    ['@daily', 'has 1 field'],
    ['0 4 * *', 'has 4 fields'],
    ['0 25 * * *', 'is not a valid cron expression'],
    ['1 2 3 4 5 6 7', 'has 7 fields'],
  ])('%s', (expression, problem) => {
    const seen = cronProblem(expression, 'Asia/Shanghai');
    if (problem === null) expect(seen).toBeNull();
    else expect(seen).toContain(problem);
    // The agent's config and the registry say the same.
    expect(cronExpression(expression, 'Asia/Shanghai').ok).toBe(problem === null);
    expect(scheduleProblem(expression, 'Asia/Shanghai') === null).toBe(problem === null);
  });
});
