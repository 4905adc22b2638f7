import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ALERT_SEVERITY,
  ALERT_TYPES,
  type AlertNotice,
  type AlertType,
  SEVERITIES,
  type Severity,
} from '../../src/server/alerts/alert-kind.js';
import type { ChannelFilter } from '../../src/server/notify/channel-config.js';
import { channelWants } from '../../src/server/notify/channel-filter.js';

function notice(type: AlertType, severity: Severity, gameId: string): AlertNotice {
  return {
    id: 1,
    type,
    severity,
    subject: gameId === '' ? 'node-a' : 'db01/mysql/3306',
    gameId,
    state: 'open',
    summary: 'something happened',
    openedAt: 1_700_000_000_000,
    resolvedAt: null,
  };
}

describe('channelWants', () => {
  // Every combination of a small world: 3 businesses (one empty = a node alert), 3 types, 3 severities,
  // against every filter built from them. The expectation is written out independently of the code.
  const businesses = ['g1', 'g2', ''];
  const types: AlertType[] = ['overdue', 'transfer_failed', 'illegal'];
  const businessLists: string[][] = [[], ['g1'], ['g2'], ['g1', 'g2']];
  const typeLists: AlertType[][] = [[], ['overdue'], ['transfer_failed', 'illegal']];

  const table: { filter: ChannelFilter; n: AlertNotice; want: boolean }[] = [];
  for (const bs of businessLists) {
    for (const ts of typeLists) {
      for (const min of SEVERITIES) {
        for (const b of businesses) {
          for (const t of types) {
            for (const s of SEVERITIES) {
              const businessOk = bs.length === 0 || bs.includes(b);
              const typeOk = ts.length === 0 || ts.includes(t);
              const severityOk =
                min === 'info' ||
                (min === 'warning' && s !== 'info') ||
                (min === 'critical' && s === 'critical');
              table.push({
                filter: { businesses: bs, types: ts, minSeverity: min },
                n: notice(t, s, b),
                want: businessOk && typeOk && severityOk,
              });
            }
          }
        }
      }
    }
  }

  it(`matches the exhaustive table (${table.length} cases)`, () => {
    expect(table.length).toBe(4 * 3 * 3 * 3 * 3 * 3);
    for (const { filter, n, want } of table) {
      expect(channelWants(filter, n), JSON.stringify({ filter, n: [n.gameId, n.type, n.severity] })).toBe(
        want,
      );
    }
  });

  it('spot checks: empty lists pass all, business lists drop node alerts, severity is a floor', () => {
    const all: ChannelFilter = { businesses: [], types: [], minSeverity: 'info' };
    expect(channelWants(all, notice('node_offline', 'critical', ''))).toBe(true);
    expect(channelWants({ ...all, businesses: ['g1'] }, notice('node_offline', 'critical', ''))).toBe(false);
    expect(channelWants({ ...all, minSeverity: 'critical' }, notice('overdue', 'warning', 'g1'))).toBe(false);
    expect(channelWants({ ...all, minSeverity: 'warning' }, notice('integrity', 'critical', 'g1'))).toBe(
      true,
    );
  });

  const noticeArb = fc
    .record({
      type: fc.constantFrom(...ALERT_TYPES),
      gameId: fc.constantFrom('', 'g1', 'g2', 'g3'),
    })
    .map(({ type, gameId }) => notice(type, ALERT_SEVERITY[type], gameId));
  const filterArb = fc.record({
    businesses: fc.subarray(['g1', 'g2', 'g3']),
    types: fc.subarray([...ALERT_TYPES]),
    minSeverity: fc.constantFrom(...SEVERITIES),
  });

  it('is monotone: widening any part of a filter never drops a notice (property)', () => {
    fc.assert(
      fc.property(
        filterArb,
        noticeArb,
        fc.constantFrom('businesses', 'types', 'severity'),
        (filter, n, part) => {
          const wider: ChannelFilter =
            part === 'businesses'
              ? { ...filter, businesses: [] }
              : part === 'types'
                ? { ...filter, types: [] }
                : { ...filter, minSeverity: 'info' };
          if (channelWants(filter, n)) expect(channelWants(wider, n)).toBe(true);
        },
      ),
    );
  });

  it('equals the conjunction of its three parts (property)', () => {
    fc.assert(
      fc.property(filterArb, noticeArb, (filter, n) => {
        const onlyBusinesses = channelWants(
          { businesses: filter.businesses, types: [], minSeverity: 'info' },
          n,
        );
        const onlyTypes = channelWants({ businesses: [], types: filter.types, minSeverity: 'info' }, n);
        const onlySeverity = channelWants({ businesses: [], types: [], minSeverity: filter.minSeverity }, n);
        expect(channelWants(filter, n)).toBe(onlyBusinesses && onlyTypes && onlySeverity);
      }),
    );
  });
});
