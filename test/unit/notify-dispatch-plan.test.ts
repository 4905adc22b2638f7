import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ALERT_SEVERITY,
  ALERT_STATES,
  ALERT_TYPES,
  type AlertNotice,
  SEVERITIES,
  severityRank,
} from '../../src/server/alerts/alert-kind.js';
import type { ChannelFilter } from '../../src/server/notify/channel-config.js';
import { DIGEST_THRESHOLD, planDispatch } from '../../src/server/notify/dispatch-plan.js';

/**
 * Invariants of one dispatch round, for every channel C:
 *
 *  (1) The items of C's messages, taken together, are exactly C's wanted items, each once: the batch
 *      notices C's filter passes (opened, or resolved when they carry resolvedAt), plus C's due
 *      reminders that pass the filter, are still `open`, and whose alert id is not among C's batch
 *      items (one reminder per alert).
 *  (2) C gets no message when it wants nothing; ONE digest when it wants more than the threshold;
 *      otherwise one single message per item. So C never gets more than max(threshold, 1) messages.
 */

const OPENED = Date.UTC(2026, 0, 2, 3, 0, 0);

/** Written separately from channel-filter.ts on purpose. */
function passes(filter: ChannelFilter, n: AlertNotice): boolean {
  return (
    (filter.businesses.length === 0 || filter.businesses.includes(n.gameId)) &&
    (filter.types.length === 0 || filter.types.includes(n.type)) &&
    severityRank(n.severity) >= severityRank(filter.minSeverity)
  );
}

const noticeArb = fc
  .record({
    id: fc.integer({ min: 1, max: 30 }),
    type: fc.constantFrom(...ALERT_TYPES),
    gameId: fc.constantFrom('', 'g1', 'g2'),
    state: fc.constantFrom(...ALERT_STATES),
    age: fc.nat({ max: 86_400_000 }),
  })
  .map(
    ({ id, type, gameId, state, age }): AlertNotice => ({
      id,
      type,
      severity: ALERT_SEVERITY[type],
      subject: gameId === '' ? `node-${id}` : `db${id}/mysql/3306`,
      gameId,
      state,
      summary: `summary of ${id}`,
      openedAt: OPENED - age,
      resolvedAt: state === 'resolved' ? OPENED : null,
    }),
  );

const filterArb = fc.record({
  businesses: fc.subarray(['g1', 'g2']),
  types: fc.subarray([...ALERT_TYPES], { maxLength: 3 }),
  minSeverity: fc.constantFrom(...SEVERITIES),
});

const roundArb = fc
  .uniqueArray(fc.integer({ min: 1, max: 1000 }), { minLength: 1, maxLength: 4 })
  .chain((ids) =>
    fc.record({
      channels: fc.tuple(...ids.map((id) => filterArb.map((filter) => ({ id, filter })))),
      notices: fc.array(noticeArb, { maxLength: 40 }),
      reminders: fc.tuple(
        ...ids.map((id) => fc.tuple(fc.constant(id), fc.array(noticeArb, { maxLength: 12 }))),
      ),
      threshold: fc.integer({ min: 0, max: 8 }),
    }),
  );

function key(event: string, n: AlertNotice): string {
  return `${event}|${JSON.stringify(n)}`;
}

describe('planDispatch', () => {
  it('delivers every wanted item exactly once, within max(threshold, 1) messages per channel (property)', () => {
    fc.assert(
      fc.property(roundArb, ({ channels, notices, reminders, threshold }) => {
        const reminderMap = new Map(reminders);
        const plan = planDispatch(
          { channels, notices, reminders: reminderMap },
          { nowMs: OPENED + 1000, digestThreshold: threshold },
        );
        for (const channel of channels) {
          const expected: string[] = [];
          const batchIds = new Set<number>();
          for (const n of notices) {
            if (!passes(channel.filter, n)) continue;
            expected.push(key(n.resolvedAt === null ? 'opened' : 'resolved', n));
            batchIds.add(n.id);
          }
          const reminded = new Set<number>();
          for (const n of reminderMap.get(channel.id) ?? []) {
            if (
              n.state !== 'open' ||
              !passes(channel.filter, n) ||
              batchIds.has(n.id) ||
              reminded.has(n.id)
            ) {
              continue;
            }
            expected.push(key('reminder', n));
            reminded.add(n.id);
          }

          const messages = plan.filter((p) => p.channel === channel).map((p) => p.message);
          const got = messages.flatMap((m) => m.items.map((item) => key(item.event, item.notice)));
          expect(got.sort()).toEqual(expected.sort());

          if (expected.length === 0) expect(messages).toHaveLength(0);
          else if (expected.length > threshold) expect(messages.map((m) => m.form)).toEqual(['digest']);
          else {
            expect(messages).toHaveLength(expected.length);
            expect(messages.every((m) => m.form === 'single' && m.items.length === 1)).toBe(true);
          }
          expect(messages.length).toBeLessThanOrEqual(Math.max(threshold, 1));
        }
        // Nothing is planned for a channel that was not given.
        expect(plan.every((p) => channels.includes(p.channel))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('2,000 notices in one round: one digest per channel, each with its own notices', () => {
    const notices: AlertNotice[] = Array.from({ length: 2000 }, (_, i) => {
      const type = i % 2 === 0 ? 'transfer_failed' : 'overdue';
      return {
        id: i + 1,
        type,
        severity: ALERT_SEVERITY[type],
        subject: `db${i}/mysql/3306`,
        gameId: i % 4 < 2 ? 'g1' : 'g2',
        state: 'open',
        summary: 'x',
        openedAt: OPENED,
        resolvedAt: null,
      };
    });
    const channels = [
      { id: 1, filter: { businesses: [], types: [], minSeverity: 'info' as const } },
      { id: 2, filter: { businesses: ['g1'], types: [], minSeverity: 'info' as const } },
      { id: 3, filter: { businesses: [], types: [], minSeverity: 'critical' as const } },
      { id: 4, filter: { businesses: ['g3'], types: [], minSeverity: 'info' as const } },
    ];
    const plan = planDispatch({ channels, notices }, { nowMs: OPENED });
    expect(plan.map((p) => [p.channel.id, p.message.form, p.message.items.length])).toEqual([
      [1, 'digest', 2000],
      [2, 'digest', 1000],
      [3, 'digest', 1000],
    ]);
    expect(plan[0]!.message.title).toBe('[CRITICAL] 2000 alerts: 2000 opened');
    expect(plan[0]!.message.lines[0]).toBe('By type: transfer_failed 1000, overdue 1000');
    expect(plan[1]!.message.lines[1]).toBe('By business: g1 1000');
  });

  it(`up to ${DIGEST_THRESHOLD} items are single messages; a reminder yields to the same alert's news`, () => {
    const base: AlertNotice = {
      id: 7,
      type: 'overdue',
      severity: 'warning',
      subject: 'db7/mysql/3306',
      gameId: 'g1',
      state: 'open',
      summary: 'no successful backup for 26h',
      openedAt: OPENED,
      resolvedAt: null,
    };
    const resolved: AlertNotice = { ...base, state: 'resolved', resolvedAt: OPENED + 1 };
    const other: AlertNotice = { ...base, id: 8, subject: 'db8/mysql/3306' };
    const acknowledged: AlertNotice = { ...base, id: 9, state: 'acknowledged' };
    const channel = { id: 1, filter: { businesses: [], types: [], minSeverity: 'info' as const } };
    const plan = planDispatch(
      {
        channels: [channel],
        notices: [resolved],
        reminders: new Map([[1, [base, other, other, acknowledged]]]),
      },
      { nowMs: OPENED + 7_200_000 },
    );
    expect(plan.map((p) => p.message.title)).toEqual([
      '[RESOLVED] overdue: db7/mysql/3306',
      '[WARNING] still open: overdue: db8/mysql/3306',
    ]);
  });
});
