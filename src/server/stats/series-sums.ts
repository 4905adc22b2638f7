import { addCounts, type RollupCounts, ZERO_COUNTS } from './rollup-increments.js';

/**
 * Sums of a per-bucket series' rows: over everything (the range's totals) and
 * per key (a business's share). Pure; the statistics API derives its totals
 * and shares from the same rows as its per-day series.
 */

export function sumRows(rows: ReadonlyArray<RollupCounts>): RollupCounts {
  const sum = { ...ZERO_COUNTS };
  for (const row of rows) addCounts(sum, row);
  return sum;
}

/** Per key, ordered by key (code unit order, as SQL's C collation and `<`). */
export function sumByKey(
  rows: ReadonlyArray<RollupCounts & { key: string }>,
): Array<RollupCounts & { key: string }> {
  const byKey = new Map<string, RollupCounts & { key: string }>();
  for (const row of rows) {
    let sum = byKey.get(row.key);
    if (sum === undefined) {
      sum = { key: row.key, ...ZERO_COUNTS };
      byKey.set(row.key, sum);
    }
    addCounts(sum, row);
  }
  return [...byKey.values()].sort((a, b) => byCodeUnits(a.key, b.key));
}

/** Text order by UTF-16 code units (as `<`, and SQL's C collation), whatever the locale. */
export function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
