import { afterAll, describe, expect, it } from 'vitest';
import { FINE_ROLLUP_KEEP_DAYS, pruneFineRollups } from '../../src/server/stats/prune-rollups.js';
import { DAY_MS, HOUR_MS } from '../../src/server/stats/rollup-increments.js';
import { BACKENDS, freshCatalog } from '../support/catalog-backends.js';
import { stopSharedPostgres } from '../support/postgres.js';

afterAll(() => stopSharedPostgres());

const NOW = Date.parse('2026-11-27T08:30:00Z');
const TODAY = Date.parse('2026-11-27T00:00:00Z');
const counts = {
  backups: 1,
  failures: 0,
  bytes: 5,
  transfer_ms: 0,
  transfers: 0,
  deleted: 0,
  deleted_bytes: 0,
};

describe.each(BACKENDS)('pruning the fine-grained rollups on %s', (backend) => {
  it(`keeps the last ${FINE_ROLLUP_KEEP_DAYS} UTC days of hourly and per-minute rows, and every daily row`, async () => {
    const fresh = await freshCatalog(backend);
    try {
      const db = fresh.catalog.db;
      const firstKept = TODAY - (FINE_ROLLUP_KEEP_DAYS - 1) * DAY_MS;
      const buckets = [
        firstKept - 400 * DAY_MS,
        firstKept - HOUR_MS,
        firstKept,
        firstKept + 5 * HOUR_MS,
        TODAY,
      ];
      for (const bucket of buckets) {
        const key = { bucket, game_id: '31', type: 'mysql', node: '', shard: 0, ...counts };
        await db.insertInto('hourly_stats').values(key).execute();
        await db.insertInto('daily_stats').values(key).execute();
        await db
          .insertInto('queue_stats')
          .values({ minute: bucket, cluster_id: 1, shard: 0, enqueued: 1, done: 0, dead: 0 })
          .execute();
      }
      expect(await pruneFineRollups(db, NOW)).toEqual({ hourly: 2, queue: 2 });
      const left = async (table: 'hourly_stats' | 'daily_stats') =>
        (await db.selectFrom(table).select('bucket').orderBy('bucket').execute()).map((r) =>
          Number(r.bucket),
        );
      expect(await left('hourly_stats')).toEqual(buckets.slice(2));
      expect(await left('daily_stats')).toEqual(buckets);
      const minutes = await db.selectFrom('queue_stats').select('minute').orderBy('minute').execute();
      expect(minutes.map((r) => Number(r.minute))).toEqual(buckets.slice(2));
      // Nothing more to delete the same day.
      expect(await pruneFineRollups(db, NOW + HOUR_MS)).toEqual({ hourly: 0, queue: 0 });
    } finally {
      await fresh.cleanup();
    }
  });
});
