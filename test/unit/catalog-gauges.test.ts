import { describe, expect, it } from 'vitest';
import { alertSeries, nodeSeries, queueSeries } from '../../src/server/metrics/catalog-gauges.js';
import { LeaseStarts } from '../../src/server/metrics/lease-starts.js';
import { rpoSeconds } from '../../src/server/metrics/rpo-by-business.js';

const NOW = 1_800_000_000_000;

describe('queueSeries', () => {
  const series = queueSeries(
    ['default', 'east'],
    [
      { cluster: 'east', priority: 1, state: 'queued', jobs: 3, oldestEnqueuedAt: NOW - 90_000 },
      { cluster: 'east', priority: 1, state: 'leased', jobs: 2, oldestEnqueuedAt: NOW - 900_000 },
      { cluster: 'east', priority: 3, state: 'leased', jobs: 1, oldestEnqueuedAt: NOW - 5000 },
    ],
    NOW,
  );

  it('has a series for every cluster × priority × state, 0 when empty', () => {
    expect(series.jobs).toHaveLength(2 * 4 * 2);
    expect(
      series.jobs.find((j) => j.cluster === 'east' && j.priority === 'high' && j.state === 'queued')?.value,
    ).toBe(3);
    expect(
      series.jobs.find((j) => j.cluster === 'east' && j.priority === 'low' && j.state === 'leased')?.value,
    ).toBe(1);
    expect(series.jobs.filter((j) => j.cluster === 'default').every((j) => j.value === 0)).toBe(true);
  });

  it('ages only queued jobs, and sums leases per cluster', () => {
    expect(series.oldestAgeSeconds.find((a) => a.cluster === 'east' && a.priority === 'high')?.value).toBe(
      90,
    );
    expect(series.oldestAgeSeconds.find((a) => a.cluster === 'east' && a.priority === 'low')?.value).toBe(0);
    expect(series.leasesActive).toEqual([
      { cluster: 'default', value: 0 },
      { cluster: 'east', value: 3 },
    ]);
  });

  it('never shows a negative age (a clock behind the enqueue time)', () => {
    const ahead = queueSeries(
      ['c'],
      [{ cluster: 'c', priority: 0, state: 'queued', jobs: 1, oldestEnqueuedAt: NOW + 5000 }],
      NOW,
    );
    expect(ahead.oldestAgeSeconds[0]).toEqual({ cluster: 'c', priority: 'critical', value: 0 });
  });
});

describe('alertSeries and nodeSeries', () => {
  it('gives every alert type a series, and keeps an unknown type', () => {
    const series = alertSeries(
      new Map([
        ['overdue', 4],
        ['future_type', 1],
      ]),
    );
    expect(series.find((s) => s.type === 'overdue')?.value).toBe(4);
    expect(series.find((s) => s.type === 'stuck')?.value).toBe(0);
    expect(series.find((s) => s.type === 'future_type')?.value).toBe(1);
  });

  it('marks one state per node (offline after three heartbeats) and skips an unknown free space', () => {
    const series = nodeSeries(
      [
        {
          name: 'a',
          cluster: 'c',
          state: 'active',
          last_heartbeat_at: NOW - 16_000,
          disk_free_bytes: 10,
          reserve_bytes: 5,
        },
        {
          name: 'b',
          cluster: 'c',
          state: 'new',
          last_heartbeat_at: null,
          disk_free_bytes: null,
          reserve_bytes: 0,
        },
      ],
      NOW,
      5,
    );
    expect(series.state.filter((s) => s.value === 1)).toEqual([
      { node: 'a', cluster: 'c', state: 'offline', value: 1 },
      { node: 'b', cluster: 'c', state: 'new', value: 1 },
    ]);
    expect(series.freeBytes).toEqual([{ node: 'a', cluster: 'c', value: 10 }]);
    expect(series.reserveBytes.map((r) => r.value)).toEqual([5, 0]);
  });
});

describe('LeaseStarts and rpoSeconds', () => {
  it('remembers lease starts up to its capacity, the newest first, and forgets a taken one', () => {
    const starts = new LeaseStarts(2);
    starts.leased(1, 100);
    starts.leased(2, 200);
    starts.leased(1, 150); // re-leased: now the newest
    starts.leased(3, 300); // pushes out 2
    expect(starts.size).toBe(2);
    expect(starts.take(2)).toBeNull();
    expect(starts.take(1)).toBe(150);
    expect(starts.take(1)).toBeNull();
    expect(starts.take(3)).toBe(300);
  });

  it('is never negative', () => {
    expect(rpoSeconds(NOW - 90_000, NOW)).toBe(90);
    expect(rpoSeconds(NOW + 1000, NOW)).toBe(0);
  });
});
