import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { foldTopKeys, type RankCounter, type SeriesRow } from '../../src/server/stats/fold-top-keys.js';
import { ROLLUP_COUNTERS } from '../../src/server/stats/rollup-increments.js';

const DAY = 86_400_000;
const row = (day: number, key: string, backups: number, bytes = 0): SeriesRow => ({
  day: day * DAY,
  key,
  backups,
  failures: 0,
  bytes,
  transfer_ms: 0,
  transfers: 0,
  deleted: 0,
  deleted_bytes: 0,
});

const rows: fc.Arbitrary<SeriesRow[]> = fc
  .uniqueArray(
    fc.record({
      day: fc.integer({ min: 0, max: 6 }),
      key: fc.constantFrom('', 'a', 'b', 'c', 'd', 'e', 'f', '10', '9'),
      backups: fc.nat(1000),
      failures: fc.nat(50),
      bytes: fc.nat(1e12),
      transfer_ms: fc.nat(1e7),
      transfers: fc.nat(1000),
      deleted: fc.nat(10),
      deleted_bytes: fc.nat(1e9),
    }),
    { selector: (r) => `${r.day}/${r.key}` },
  )
  .map((list) => list.map((r) => ({ ...r, day: r.day * DAY })));
const rank = fc.constantFrom<RankCounter>('backups', 'bytes', 'failures');

describe('foldTopKeys', () => {
  it('keeps the biggest keys by the ranked counter and sums the others per day', () => {
    const input = [
      row(0, 'a', 5, 100),
      row(0, 'b', 1, 900),
      row(1, 'c', 3, 1),
      row(1, 'b', 1, 0),
      row(1, '', 7),
    ];
    const byBackups = foldTopKeys(input, 1, 'backups');
    expect(byBackups.kept).toEqual(['a']);
    expect(byBackups.items.map((r) => r.key)).toEqual(['a', '']);
    expect(byBackups.other.map((o) => [o.day, o.keys, o.backups, o.bytes])).toEqual([
      [0, 1, 1, 900],
      [DAY, 2, 4, 1],
    ]);
    expect(foldTopKeys(input, 1, 'bytes').kept).toEqual(['b']);
    // Ties go to the smaller key; top 0 folds everything but the empty key.
    expect(foldTopKeys([row(0, 'y', 2), row(0, 'x', 2)], 1, 'backups').kept).toEqual(['x']);
    const none = foldTopKeys(input, 0, 'backups');
    expect(none.items).toEqual([row(1, '', 7)]);
    expect(none.other.map((o) => o.backups)).toEqual([6, 4]);
  });

  it('loses nothing, keeps at most `top` keys, and never folds a key bigger than a kept one', () => {
    fc.assert(
      fc.property(rows, fc.nat(10), rank, (input, top, by) => {
        const fold = foldTopKeys(input, top, by);
        const keys = new Set(input.filter((r) => r.key !== '').map((r) => r.key));
        expect(fold.kept.length).toBe(Math.min(top, keys.size));
        const total = (key: string) => input.filter((r) => r.key === key).reduce((n, r) => n + r[by], 0);
        const folded = [...keys].filter((k) => !fold.kept.includes(k));
        for (const k of fold.kept) for (const f of folded) expect(total(k)).toBeGreaterThanOrEqual(total(f));
        // Kept rows are the input's own, in order; the empty key is always kept.
        expect(fold.items).toEqual(input.filter((r) => r.key === '' || fold.kept.includes(r.key)));
        const days = [...new Set(input.map((r) => r.day))];
        for (const day of days) {
          const other = fold.other.find((o) => o.day === day);
          const foldedRows = input.filter((r) => r.day === day && folded.includes(r.key));
          expect(other?.keys ?? 0).toBe(foldedRows.length);
          for (const c of ROLLUP_COUNTERS) {
            const sum = (list: SeriesRow[]) => list.reduce((n, r) => n + r[c], 0);
            expect((other?.[c] ?? 0) + sum(fold.items.filter((r) => r.day === day))).toBe(
              sum(input.filter((r) => r.day === day)),
            );
          }
        }
        expect(fold.other.map((o) => o.day)).toEqual([...fold.other.map((o) => o.day)].sort((a, b) => a - b));
      }),
      { numRuns: 300 },
    );
  });
});
