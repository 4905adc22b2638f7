import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  daysOf,
  pivotFolded,
  pivotSeries,
  pivotTable,
  type SeriesPoint,
} from '../../web/src/stats-series.js';

const day = (n: number) => new Date(Date.UTC(2026, 10, 1 + n)).toISOString();

describe('daysOf', () => {
  it('lists every UTC day start from the first day to before the end', () => {
    expect(daysOf('2026-11-01T00:00:00.000Z', '2026-11-04T00:00:00.000Z')).toEqual([day(0), day(1), day(2)]);
    expect(daysOf('2026-11-01T13:00:00.000Z', '2026-11-02T00:00:01.000Z')).toEqual([day(0), day(1)]);
    expect(daysOf('2026-11-04T00:00:00.000Z', '2026-11-04T00:00:00.000Z')).toEqual([]);
  });
});

describe('pivotSeries', () => {
  it('fills missing days with 0, ranks keys by total and folds the rest', () => {
    const points: SeriesPoint[] = [
      { at: day(0), key: 'a', value: 5 },
      { at: day(2), key: 'a', value: 1 },
      { at: day(1), key: 'b', value: 10 },
      { at: day(1), key: 'c', value: 2 },
      { at: day(2), key: 'd', value: 3 },
      { at: day(9), key: 'a', value: 100 }, // outside the range
    ];
    const pivot = pivotSeries(points, [day(0), day(1), day(2)], 2, 'other');
    expect(pivot.keys).toEqual(['a', 'b', 'other']);
    expect(pivot.values).toEqual([
      [5, 0, 1],
      [0, 10, 0],
      [0, 2, 3],
    ]);
    expect(pivotTable(pivot, 'day')).toEqual({
      header: ['day', 'a', 'b', 'other'],
      rows: [
        [day(0), 5, 0, 0],
        [day(1), 0, 10, 2],
        [day(2), 1, 0, 3],
      ],
    });
  });

  it('keeps every total: what is drawn adds up to what was given inside the range', () => {
    const point = fc.record({
      at: fc.integer({ min: 0, max: 12 }).map(day),
      key: fc.constantFrom('31', '32', '33', '34', '35', '36'),
      value: fc.integer({ min: 0, max: 1_000_000 }),
    });
    fc.assert(
      fc.property(fc.array(point, { maxLength: 60 }), fc.integer({ min: 0, max: 7 }), (points, top) => {
        const buckets = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map(day);
        const pivot = pivotSeries(points, buckets, top, 'other');
        const inside = points.filter((p) => buckets.includes(p.at));
        const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
        expect(sum(pivot.values.map(sum))).toBe(sum(inside.map((p) => p.value)));
        expect(pivot.keys.length).toBeLessThanOrEqual(top + 1);
        for (const series of pivot.values) expect(series).toHaveLength(buckets.length);
        const distinct = new Set(points.map((p) => p.key)).size;
        expect(pivot.keys.includes('other')).toBe(distinct > top);
      }),
    );
  });
});

describe('pivotFolded', () => {
  it('draws every kept key, then the server\'s "other" sums, without folding again', () => {
    const days = [day(0), day(1), day(2)];
    const kept: SeriesPoint[] = [
      { at: day(0), key: 'a', value: 1 },
      { at: day(1), key: 'b', value: 9 },
      { at: day(2), key: 'c', value: 4 },
    ];
    const pivot = pivotFolded(
      kept,
      [
        { at: day(1), value: 7 },
        { at: day(9), value: 100 },
      ],
      days,
      'other',
    );
    expect(pivot.keys).toEqual(['b', 'c', 'a', 'other']);
    expect(pivot.values).toEqual([
      [0, 9, 0],
      [0, 0, 4],
      [1, 0, 0],
      [0, 7, 0],
    ]);
    // Nothing folded: no "other" series.
    expect(pivotFolded(kept, [], days, 'other').keys).toEqual(['b', 'c', 'a']);
  });
});
