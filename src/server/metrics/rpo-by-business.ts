import type { CatalogDb } from '../../catalog/database.js';

/**
 * The recovery point objective each business is at now: the age, in seconds,
 * of the oldest "latest good backup" among its instances, i.e. the largest
 * `now − last_success_at` over them. An instance that never had a good backup
 * counts from when it was registered or first reported (`created_at`): its
 * data has been unprotected that long. Paused instances are left out (they
 * are expected not to back up). A business with no unpaused instance has no
 * value.
 */

export interface BusinessRpo {
  /** The business's game_id. */
  business: string;
  seconds: number;
}

/** The RPO from the oldest protection time of a business; never negative (clock skew). */
export function rpoSeconds(oldestProtectedAtMs: number, nowMs: number): number {
  return Math.max(0, (nowMs - oldestProtectedAtMs) / 1000);
}

/** One grouped query over the instances (on the business index). */
export async function rpoByBusiness(db: CatalogDb, nowMs: number): Promise<BusinessRpo[]> {
  const rows = await db
    .selectFrom('instances')
    .select((eb) => [
      'game_id',
      eb.fn.min<number | string>(eb.fn.coalesce('last_success_at', 'created_at')).as('oldest'),
    ])
    .where('paused', '=', 0)
    .groupBy('game_id')
    .orderBy('game_id')
    .execute();
  return rows.map((r) => ({ business: r.game_id, seconds: rpoSeconds(Number(r.oldest), nowMs) }));
}
