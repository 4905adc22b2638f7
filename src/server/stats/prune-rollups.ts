import type { CatalogDb } from '../../catalog/database.js';
import { bucketStart, DAY_MS } from './rollup-increments.js';

/**
 * The fine-grained rollups are for recent days: `hourly_stats` (the API reads
 * at most 14 days of it at once) and `queue_stats` (per minute; at most 7
 * days at once) keep this many UTC days, so they stop growing at a few weeks
 * of rows. `daily_stats` is kept as long as the catalog: a few thousand rows
 * a day.
 */
export const FINE_ROLLUP_KEEP_DAYS = 35;

/** Deletes the hourly and per-minute rollup rows of days older than the kept ones. */
export async function pruneFineRollups(
  db: CatalogDb,
  nowMs: number,
  keepDays = FINE_ROLLUP_KEEP_DAYS,
): Promise<{ hourly: number; queue: number }> {
  const cutoff = bucketStart(nowMs, DAY_MS) - (keepDays - 1) * DAY_MS;
  const hourly = await db.deleteFrom('hourly_stats').where('bucket', '<', cutoff).executeTakeFirst();
  const queue = await db.deleteFrom('queue_stats').where('minute', '<', cutoff).executeTakeFirst();
  return { hourly: Number(hourly.numDeletedRows), queue: Number(queue.numDeletedRows) };
}
