import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ALERT_TYPES, type AlertType } from '../../src/server/alerts/alert-kind.js';
import {
  alertKey,
  type OpenAlertRef,
  type ReconcilePlan,
  reconcile,
  type WantedAlert,
} from '../../src/server/alerts/alert-reconcile.js';

const CONDITIONS: ReadonlySet<AlertType> = new Set([
  'overdue',
  'stuck',
  'node_paused',
  'node_offline',
  'queue_backlog',
]);

function want(type: AlertType, subject: string, summary = `${type} of ${subject}`): WantedAlert {
  return { type, subject, summary, gameId: subject.startsWith('node') ? '' : 'g1' };
}

function wantedMap(alerts: WantedAlert[]): Map<string, WantedAlert> {
  return new Map(alerts.map((a) => [alertKey(a.type, a.subject), a]));
}

/** The store after carrying out a plan: resolved alerts leave, new ones get fresh ids. */
function apply(open: ReadonlyArray<OpenAlertRef>, plan: ReconcilePlan): OpenAlertRef[] {
  const resolved = new Set(plan.toResolve);
  let nextId = Math.max(0, ...open.map((a) => a.id)) + 1;
  return [
    ...open.filter((a) => !resolved.has(a.id)),
    ...plan.toOpen.map((a) => ({ id: nextId++, type: a.type, subject: a.subject })),
  ];
}

describe('reconcile, by example', () => {
  it('opens what is wanted and not open, resolves what is open and no longer wanted', () => {
    const open: OpenAlertRef[] = [
      { id: 1, type: 'overdue', subject: 's1/mysql/3306' },
      { id: 2, type: 'overdue', subject: 's2/mysql/3306' },
      { id: 3, type: 'node_offline', subject: 'node-a' },
    ];
    const wanted = wantedMap([want('overdue', 's1/mysql/3306'), want('overdue', 's3/redis/6379')]);
    const plan = reconcile(open, wanted, CONDITIONS);
    expect(plan.toOpen).toEqual([want('overdue', 's3/redis/6379')]);
    expect(plan.toResolve).toEqual([2, 3]);
  });

  it('never touches types outside the scope', () => {
    const open: OpenAlertRef[] = [
      { id: 1, type: 'script_failed', subject: 's1/mysql/3306' },
      { id: 2, type: 'node_offline', subject: 'node-a' },
    ];
    const wanted = wantedMap([want('illegal', 's9/mysql/3306'), want('overdue', 's1/mysql/3306')]);
    const plan = reconcile(open, wanted, new Set<AlertType>(['overdue']));
    expect(plan).toEqual({ toOpen: [want('overdue', 's1/mysql/3306')], toResolve: [] });
  });

  it('keeps one alert per (type, subject): the oldest stays, duplicates are resolved', () => {
    const open: OpenAlertRef[] = [
      { id: 9, type: 'stuck', subject: 's1/mysql/3306' },
      { id: 4, type: 'stuck', subject: 's1/mysql/3306' },
      { id: 7, type: 'stuck', subject: 's1/mysql/3306' },
      { id: 5, type: 'stuck', subject: 's2/mysql/3306' },
      { id: 6, type: 'stuck', subject: 's2/mysql/3306' },
    ];
    const plan = reconcile(open, wantedMap([want('stuck', 's1/mysql/3306')]), CONDITIONS);
    expect(plan).toEqual({ toOpen: [], toResolve: [5, 6, 7, 9] });
  });

  it('the same subject under two types is two alerts', () => {
    const open: OpenAlertRef[] = [{ id: 1, type: 'node_paused', subject: 'node-a' }];
    const plan = reconcile(
      open,
      wantedMap([want('node_paused', 'node-a'), want('node_offline', 'node-a')]),
      CONDITIONS,
    );
    expect(plan).toEqual({ toOpen: [want('node_offline', 'node-a')], toResolve: [] });
  });

  it('an empty scope does nothing', () => {
    const open: OpenAlertRef[] = [{ id: 1, type: 'overdue', subject: 'a/b/c' }];
    expect(reconcile(open, wantedMap([want('stuck', 'a/b/c')]), new Set())).toEqual({
      toOpen: [],
      toResolve: [],
    });
  });

  it('keys do not collide however subjects are spelled', () => {
    expect(alertKey('overdue', 'a/b/c')).toBe('overdue\u0000a/b/c');
    expect(alertKey('node_paused', 'x')).not.toBe(alertKey('node_offline', 'x'));
  });
});

describe('reconcile, by property', () => {
  const types = fc.constantFrom(...ALERT_TYPES);
  const subjects = fc.constantFrom(
    's1/mysql/3306',
    's2/mysql/3306',
    's3/redis/6379',
    'node-a',
    'node-b',
    'default',
  );
  const openAlerts = fc
    .array(fc.record({ type: types, subject: subjects }), { maxLength: 30 })
    .chain((alerts) =>
      fc
        .shuffledSubarray(
          Array.from({ length: 200 }, (_, i) => i + 1),
          { minLength: alerts.length, maxLength: alerts.length },
        )
        .map((ids) => alerts.map((a, i) => ({ ...a, id: ids[i] ?? 0 }))),
    );
  const wantedAlerts = fc
    .array(
      fc.record({ type: types, subject: subjects, summary: fc.string(), gameId: fc.constantFrom('', 'g1') }),
      {
        maxLength: 30,
      },
    )
    .map((alerts) => wantedMap(alerts));
  const scopes = fc.subarray([...ALERT_TYPES]).map((s) => new Set<AlertType>(s));

  const keysOf = (alerts: Iterable<{ type: AlertType; subject: string }>, scope: ReadonlySet<AlertType>) =>
    [...alerts]
      .filter((a) => scope.has(a.type))
      .map((a) => alertKey(a.type, a.subject))
      .sort();

  it('after applying the plan, the open set of scoped types is exactly the wanted set, once each', () => {
    fc.assert(
      fc.property(openAlerts, wantedAlerts, scopes, (open, wanted, scope) => {
        const after = apply(open, reconcile(open, wanted, scope));
        const afterKeys = keysOf(after, scope);
        expect(afterKeys).toEqual([...new Set(keysOf(wanted.values(), scope))]);
        expect(new Set(afterKeys).size).toBe(afterKeys.length);
      }),
    );
  });

  it('types outside the scope are untouched', () => {
    fc.assert(
      fc.property(openAlerts, wantedAlerts, scopes, (open, wanted, scope) => {
        const plan = reconcile(open, wanted, scope);
        const unscoped = open.filter((a) => !scope.has(a.type));
        const after = apply(open, plan);
        expect(after.filter((a) => !scope.has(a.type))).toEqual(unscoped);
        expect(plan.toOpen.every((a) => scope.has(a.type))).toBe(true);
      }),
    );
  });

  it('idempotent: reconciling the result again leaves nothing to do', () => {
    fc.assert(
      fc.property(openAlerts, wantedAlerts, scopes, (open, wanted, scope) => {
        const after = apply(open, reconcile(open, wanted, scope));
        expect(reconcile(after, wanted, scope)).toEqual({ toOpen: [], toResolve: [] });
      }),
    );
  });

  it('resolves only open alerts, each once, and opens only what is not open', () => {
    fc.assert(
      fc.property(openAlerts, wantedAlerts, scopes, (open, wanted, scope) => {
        const plan = reconcile(open, wanted, scope);
        const openIds = new Set(open.map((a) => a.id));
        expect(plan.toResolve.every((id) => openIds.has(id))).toBe(true);
        expect(new Set(plan.toResolve).size).toBe(plan.toResolve.length);
        expect([...plan.toResolve].sort((a, b) => a - b)).toEqual(plan.toResolve);
        const openKeys = new Set(keysOf(open, scope));
        expect(plan.toOpen.every((a) => !openKeys.has(alertKey(a.type, a.subject)))).toBe(true);
        // A still-wanted alert is kept, not resolved and opened again.
        const wantedKeys = new Set(keysOf(wanted.values(), scope));
        const kept = open.filter((a) => wantedKeys.has(alertKey(a.type, a.subject)));
        for (const key of new Set(kept.map((a) => alertKey(a.type, a.subject)))) {
          const oldest = Math.min(
            ...kept.filter((a) => alertKey(a.type, a.subject) === key).map((a) => a.id),
          );
          expect(plan.toResolve).not.toContain(oldest);
        }
      }),
    );
  });
});
