/**
 * Statistics as charts draw them: the API's rows (one per day and key)
 * turned into one series per key over every day of the range, the biggest
 * keys kept and the rest summed as one. Pure, so the CSV a chart exports is
 * exactly what it draws.
 */

export interface SeriesPoint {
  /** ISO time of the day's (or minute's) start. */
  at: string;
  key: string;
  value: number;
}

export interface Pivot {
  /** Every bucket of the range, in order (ISO). */
  buckets: string[];
  /** Series names, biggest total first; `other` last when some were folded. */
  keys: string[];
  /** values[k][b]: series k at bucket b (0 where there is no row). */
  values: number[][];
}

const DAY_MS = 86_400_000;

/** The UTC day starts from `fromIso` (inclusive) to `toIso` (exclusive). */
export function daysOf(fromIso: string, toIso: string): string[] {
  const days: string[] = [];
  const first = Math.floor(Date.parse(fromIso) / DAY_MS) * DAY_MS;
  const end = Date.parse(toIso);
  for (let t = first; t < end && days.length <= 1000; t += DAY_MS) days.push(new Date(t).toISOString());
  return days;
}

/**
 * One series per key over `buckets`; keys beyond the `top` biggest (by total)
 * are summed into `otherKey`. Points outside `buckets` are ignored.
 */
export function pivotSeries(
  points: readonly SeriesPoint[],
  buckets: readonly string[],
  top: number,
  otherKey: string,
): Pivot {
  const index = new Map(buckets.map((b, i) => [Date.parse(b), i]));
  const totals = new Map<string, number>();
  for (const p of points) totals.set(p.key, (totals.get(p.key) ?? 0) + p.value);
  const ranked = [...totals.entries()]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([k]) => k);
  const kept = ranked.length > top ? ranked.slice(0, Math.max(0, top)) : ranked;
  const folded = ranked.length > kept.length;
  const keys = folded ? [...kept, otherKey] : kept;
  const row = new Map(kept.map((k, i) => [k, i]));
  const values = keys.map(() => buckets.map(() => 0));
  for (const p of points) {
    const b = index.get(Date.parse(p.at));
    if (b === undefined) continue;
    const k = row.get(p.key) ?? (folded ? keys.length - 1 : undefined);
    if (k === undefined) continue;
    const series = values[k];
    if (series) series[b] = (series[b] ?? 0) + p.value;
  }
  return { buckets: [...buckets], keys, values };
}

/** The pivot as a table: a header (`first`, then the keys) and one row per bucket. */
export function pivotTable(pivot: Pivot, first: string): { header: string[]; rows: (string | number)[][] } {
  return {
    header: [first, ...pivot.keys],
    rows: pivot.buckets.map((b, i) => [b, ...pivot.values.map((series) => series[i] ?? 0)]),
  };
}

/**
 * A series the server already folded (`top`): one series per key of `points`
 * (none folded again), then `otherKey` from the server's per-bucket sums of
 * the rest, when there were any.
 */
export function pivotFolded(
  points: readonly SeriesPoint[],
  other: ReadonlyArray<{ at: string; value: number }>,
  buckets: readonly string[],
  otherKey: string,
): Pivot {
  const pivot = pivotSeries(points, buckets, Number.POSITIVE_INFINITY, otherKey);
  if (other.length === 0) return pivot;
  const rest = pivotSeries(
    other.map((o) => ({ ...o, key: otherKey })),
    buckets,
    1,
    otherKey,
  ).values[0];
  return {
    ...pivot,
    keys: [...pivot.keys, otherKey],
    values: [...pivot.values, rest ?? buckets.map(() => 0)],
  };
}
