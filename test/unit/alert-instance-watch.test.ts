import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type InstanceWatch,
  isOverdue,
  isSilenced,
  isStuck,
  stuckDeadline,
} from '../../src/server/alerts/instance-watch.js';
import { DEFAULT_GRACE_SECONDS, nextDueAt } from '../../src/server/alerts/next-due.js';

// Frozen time: `now` is always passed in.
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const T = Date.UTC(2026, 10, 25, 4, 0, 0);

function watch(fields: Partial<InstanceWatch> = {}): InstanceWatch {
  return {
    paused: false,
    mutedUntil: null,
    nextDueAt: null,
    runStartedAt: null,
    runDeadlineAt: null,
    ...fields,
  };
}

describe('overdue', () => {
  const due = nextDueAt(
    { schedule: null, intervalSeconds: 86_400, timezone: 'UTC', graceSeconds: DEFAULT_GRACE_SECONDS },
    T,
  );

  it('only strictly after the due time: exactly due and one second before are not overdue', () => {
    expect(due).toBe(Date.UTC(2026, 10, 26, 4, 50, 0));
    const w = watch({ nextDueAt: due });
    expect(isOverdue(w, due - SECOND)).toBe(false);
    expect(isOverdue(w, due)).toBe(false);
    expect(isOverdue(w, due + 1)).toBe(true);
    expect(isOverdue(w, due + SECOND)).toBe(true);
  });

  it('the grace is what separates the scheduled time from overdue', () => {
    const w = watch({ nextDueAt: due });
    const scheduled = T + 24 * HOUR;
    expect(isOverdue(w, scheduled + 1)).toBe(false);
    expect(isOverdue(w, scheduled + DEFAULT_GRACE_SECONDS * SECOND)).toBe(false);
    expect(isOverdue(w, scheduled + DEFAULT_GRACE_SECONDS * SECOND + SECOND)).toBe(true);
  });

  it('never for an instance without a due time', () => {
    expect(isOverdue(watch(), T + 365 * 24 * HOUR)).toBe(false);
  });

  it('a never-seen instance is due one period plus grace after its registration', () => {
    const registeredAt = Date.UTC(2026, 10, 20, 9, 13, 0);
    const w = watch({
      nextDueAt: nextDueAt(
        { schedule: null, intervalSeconds: 3600, timezone: 'UTC', graceSeconds: 3000 },
        registeredAt,
      ),
    });
    const dueAt = registeredAt + HOUR + 50 * MINUTE;
    expect(w.nextDueAt).toBe(dueAt);
    expect(isOverdue(w, dueAt - SECOND)).toBe(false);
    expect(isOverdue(w, dueAt)).toBe(false);
    expect(isOverdue(w, dueAt + SECOND)).toBe(true);
  });

  it('never while paused', () => {
    expect(isOverdue(watch({ nextDueAt: due, paused: true }), due + 30 * 24 * HOUR)).toBe(false);
  });

  it('not while muted; again once the mute expires (muted exactly until now is no longer muted)', () => {
    const mutedUntil = due + 2 * HOUR;
    const w = watch({ nextDueAt: due, mutedUntil });
    expect(isOverdue(w, due + SECOND)).toBe(false);
    expect(isOverdue(w, mutedUntil - 1)).toBe(false);
    expect(isOverdue(w, mutedUntil)).toBe(true);
    expect(isOverdue(w, mutedUntil + SECOND)).toBe(true);
  });

  it('a mute that expired before the due time changes nothing', () => {
    const w = watch({ nextDueAt: due, mutedUntil: due - HOUR });
    expect(isOverdue(w, due + SECOND)).toBe(true);
  });
});

describe('silenced', () => {
  it('paused, or muted until a time still in the future', () => {
    expect(isSilenced(watch(), T)).toBe(false);
    expect(isSilenced(watch({ paused: true }), T)).toBe(true);
    expect(isSilenced(watch({ mutedUntil: T + 1 }), T)).toBe(true);
    expect(isSilenced(watch({ mutedUntil: T }), T)).toBe(false);
    expect(isSilenced(watch({ mutedUntil: T - 1 }), T)).toBe(false);
    expect(isSilenced(watch({ paused: true, mutedUntil: T - HOUR }), T)).toBe(true);
  });

  it('property: a silenced instance raises nothing', () => {
    fc.assert(
      fc.property(
        fc.record({
          paused: fc.boolean(),
          mutedUntil: fc.option(fc.integer({ min: T - 10 * HOUR, max: T + 10 * HOUR })),
          nextDueAt: fc.option(fc.integer({ min: T - 10 * HOUR, max: T + 10 * HOUR })),
          runStartedAt: fc.option(fc.integer({ min: T - 10 * HOUR, max: T })),
          runDeadlineAt: fc.option(fc.integer({ min: T - 10 * HOUR, max: T + 10 * HOUR })),
        }),
        fc.integer({ min: T - 10 * HOUR, max: T + 10 * HOUR }),
        (w, now) => {
          if (isSilenced(w, now)) {
            expect(isOverdue(w, now)).toBe(false);
            expect(isStuck(w, now)).toBe(false);
          } else {
            expect(isOverdue(w, now)).toBe(w.nextDueAt !== null && now > w.nextDueAt);
            expect(isStuck(w, now)).toBe(
              w.runStartedAt !== null && w.runDeadlineAt !== null && now > w.runDeadlineAt,
            );
          }
        },
      ),
    );
  });
});

describe('stuck', () => {
  const startedAt = Date.UTC(2026, 10, 25, 4, 0, 0);
  const deadline = stuckDeadline(startedAt, 7200, 3000);

  it('the deadline is start + timeout + grace', () => {
    expect(deadline).toBe(Date.UTC(2026, 10, 25, 6, 50, 0));
    expect(stuckDeadline(startedAt, 60, 0)).toBe(startedAt + MINUTE);
  });

  it('only strictly after the deadline: exactly at it and one second before are not stuck', () => {
    const w = watch({ runStartedAt: startedAt, runDeadlineAt: deadline });
    expect(isStuck(w, deadline - SECOND)).toBe(false);
    expect(isStuck(w, deadline)).toBe(false);
    expect(isStuck(w, deadline + SECOND)).toBe(true);
  });

  it('the grace is what separates the timeout from stuck', () => {
    const w = watch({ runStartedAt: startedAt, runDeadlineAt: deadline });
    expect(isStuck(w, startedAt + 7200 * SECOND + SECOND)).toBe(false);
  });

  it('a finished run (no start recorded) is never stuck: finishing resolves the alert', () => {
    expect(isStuck(watch({ runStartedAt: null, runDeadlineAt: deadline }), deadline + HOUR)).toBe(false);
  });

  it('a run without a deadline is never stuck', () => {
    expect(isStuck(watch({ runStartedAt: startedAt, runDeadlineAt: null }), deadline + HOUR)).toBe(false);
  });

  it('not while paused or muted; again after the mute expires', () => {
    const running = { runStartedAt: startedAt, runDeadlineAt: deadline };
    expect(isStuck(watch({ ...running, paused: true }), deadline + SECOND)).toBe(false);
    const w = watch({ ...running, mutedUntil: deadline + HOUR });
    expect(isStuck(w, deadline + SECOND)).toBe(false);
    expect(isStuck(w, deadline + HOUR)).toBe(true);
  });

  it('refuses a timeout that is not positive or a negative grace', () => {
    expect(() => stuckDeadline(startedAt, 0, 0)).toThrow(RangeError);
    expect(() => stuckDeadline(startedAt, 60, -1)).toThrow(RangeError);
    expect(() => stuckDeadline(Number.NaN, 60, 0)).toThrow(RangeError);
  });
});
