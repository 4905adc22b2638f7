import { describe, expect, it } from 'vitest';
import type { ApiAlert } from '../../extension/src/api.js';
import {
  MAX_SEPARATE_NOTIFICATIONS,
  NOTIFIED_MEMORY,
  newAlerts,
  nextSince,
  SINCE_MARGIN_MS,
  updateUnseen,
} from '../../extension/src/new-alerts.js';

const T0 = Date.parse('2026-05-01T00:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();

function alert(id: number, openedMs: number, extra: Partial<ApiAlert> = {}): ApiAlert {
  return {
    id,
    type: 'script_failed',
    severity: 'warning',
    subject: `111/mysql/${3300 + id}`,
    business: '31',
    state: 'open',
    summary: 'backup failed',
    opened_at: iso(openedMs),
    acknowledged_at: null,
    acknowledged_by: null,
    last_event_at: iso(openedMs),
    followed: true,
    ...extra,
  };
}

describe('which alerts the extension notifies', () => {
  it('notifies nothing on the first check: what is open already is the baseline', () => {
    expect(newAlerts([alert(1, T0)], null, [])).toEqual({ fresh: [], plan: { kind: 'none' }, notified: [] });
  });

  it('notifies each followed alert opened since the last check, oldest first, once', () => {
    const since = iso(T0);
    const newest = [alert(3, T0 + 3000), alert(2, T0 + 2000), alert(1, T0 - 1000)];
    const first = newAlerts(newest, since, []);
    expect(first.fresh.map((a) => a.id)).toEqual([2, 3]);
    expect(first.plan).toEqual({ kind: 'each', alerts: [newest[1], newest[0]] });
    expect(first.notified).toEqual([2, 3]);
    // The next check's window overlaps this one: nothing twice.
    expect(newAlerts(newest, since, first.notified).plan).toEqual({ kind: 'none' });
  });

  it('leaves out alerts of businesses not followed, and ones already acknowledged or resolved', () => {
    const since = iso(T0);
    const newest = [
      alert(1, T0 + 1, { followed: false }),
      alert(2, T0 + 2, { state: 'acknowledged' }),
      alert(3, T0 + 3, { state: 'resolved' }),
      alert(4, T0 + 4),
    ];
    expect(newAlerts(newest, since, []).fresh.map((a) => a.id)).toEqual([4]);
  });

  it(`makes one summary when more than ${MAX_SEPARATE_NOTIFICATIONS} arrive at once`, () => {
    const since = iso(T0);
    const five = [1, 2, 3, 4, 5].map((i) => alert(i, T0 + i));
    expect(newAlerts(five, since, []).plan.kind).toBe('each');
    const six = [...five, alert(6, T0 + 6)];
    const outcome = newAlerts(six, since, []);
    expect(outcome.plan).toMatchObject({ kind: 'summary', count: 6 });
    expect(outcome.notified).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('remembers a bounded number of notified ids', () => {
    const old = Array.from({ length: NOTIFIED_MEMORY }, (_, i) => -i - 1);
    const outcome = newAlerts([alert(7, T0 + 7)], iso(T0), old);
    expect(outcome.notified).toHaveLength(NOTIFIED_MEMORY);
    expect(outcome.notified.at(-1)).toBe(7);
  });

  it('starts the next check a little before the server answered, never before the baseline', () => {
    expect(nextSince(iso(T0), null)).toBe(iso(T0 - SINCE_MARGIN_MS));
    expect(nextSince(iso(T0), iso(T0 - 60_000))).toBe(iso(T0 - SINCE_MARGIN_MS));
    expect(nextSince(iso(T0), iso(T0 - 1000))).toBe(iso(T0 - 1000));
  });
});

describe('what is new since the user last looked', () => {
  it('adds fresh alerts, drops ones acknowledged or resolved, and empties when nothing is open', () => {
    const fresh = [alert(5, T0)];
    const newest = [alert(2, T0, { state: 'acknowledged' }), alert(3, T0, { state: 'resolved' }), ...fresh];
    expect(updateUnseen([1, 2, 3], fresh, newest, 4)).toEqual([1, 5]);
    expect(updateUnseen([1, 2, 3], fresh, newest, 0)).toEqual([]);
  });
});
