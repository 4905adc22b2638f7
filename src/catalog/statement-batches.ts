/**
 * How many rows or values one statement carries: well under SQLite's and
 * PostgreSQL's bound-parameter limits, large enough to keep round trips few.
 */

/** Rows per multi-row INSERT. */
export const INSERT_BATCH = 200;
/** Values per IN (…) list. */
export const IN_LIST_BATCH = 500;

/** Splits `items` into consecutive batches of at most `size`. */
export function inBatches<T>(items: readonly T[], size: number): T[][] {
  if (!Number.isInteger(size) || size < 1)
    throw new RangeError(`batch size must be a positive integer, got ${size}`);
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
