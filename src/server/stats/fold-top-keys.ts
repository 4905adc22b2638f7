import { addCounts, type RollupCounts, ZERO_COUNTS } from './rollup-increments.js';
import { byCodeUnits } from './series-sums.js';

/**
 * A per-bucket series folded to its biggest keys: the rows of the `top` keys
 * with the largest total of one counter over the whole range are kept as they
 * are, and the rows of every other key are summed per bucket into one "other"
 * row. The row of the empty key (a backup not stored on any node) is never
 * ranked nor folded: it is kept as it is. Pure; the statistics API's `top`.
 */

/** The most keys a fold may keep. */
export const MAX_TOP_KEYS = 100;

export type SeriesRow = RollupCounts & { day: number; key: string };

/** The counter keys are ranked by. */
export type RankCounter = 'backups' | 'bytes' | 'failures';

export interface FoldedSeries {
  /** The kept keys' rows (and the empty key's), in the input's order. */
  items: SeriesRow[];
  /** Per bucket, the sums of the folded keys' rows and how many keys they were; ordered by bucket. */
  other: Array<RollupCounts & { day: number; keys: number }>;
  /** The kept keys, biggest total first (ties by key). */
  kept: string[];
}

export function foldTopKeys(rows: readonly SeriesRow[], top: number, rank: RankCounter): FoldedSeries {
  const totals = new Map<string, number>();
  for (const row of rows) {
    if (row.key !== '') totals.set(row.key, (totals.get(row.key) ?? 0) + row[rank]);
  }
  const kept = [...totals.entries()]
    .sort(([ka, a], [kb, b]) => b - a || byCodeUnits(ka, kb))
    .slice(0, Math.max(0, top))
    .map(([key]) => key);
  const keep = new Set(kept);
  const items: SeriesRow[] = [];
  const other = new Map<number, RollupCounts & { day: number; keys: Set<string> }>();
  for (const row of rows) {
    if (row.key === '' || keep.has(row.key)) {
      items.push(row);
      continue;
    }
    let sum = other.get(row.day);
    if (sum === undefined) {
      sum = { day: row.day, keys: new Set(), ...ZERO_COUNTS };
      other.set(row.day, sum);
    }
    sum.keys.add(row.key);
    addCounts(sum, row);
  }
  return {
    items,
    other: [...other.values()]
      .sort((a, b) => a.day - b.day)
      .map(({ keys, ...sums }) => ({ ...sums, keys: keys.size })),
    kept,
  };
}
