import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CatalogLocation } from '../../src/catalog/catalog-url.js';
import { backupRow } from '../support/backup-row.js';
import { BACKENDS, type FreshCatalog, freshCatalog } from '../support/catalog-backends.js';
import { runCli } from '../support/cli-process.js';
import { stopSharedPostgres } from '../support/postgres.js';

afterAll(stopSharedPostgres);

const DAY = 86_400_000;
const dbFlag = (location: CatalogLocation) =>
  location.dialect === 'sqlite' ? `sqlite:${location.path}` : location.url;

describe.each(BACKENDS)('ubackup admin stats rebuild on %s', (backend) => {
  let fresh: FreshCatalog;
  let db: string;

  beforeEach(async () => {
    fresh = await freshCatalog(backend);
    db = dbFlag(fresh.location);
    // A history written straight into the catalog: the rollups know nothing of it.
    const day0 = Date.parse('2026-11-01T00:00:00Z');
    await fresh.catalog.db
      .insertInto('backups')
      .values([
        backupRow(day0 + 3_600_000, { stored_node: 'node-a', stored_at: day0 + 2 * 3_600_000, size: 100 }),
        backupRow(day0 + 5_400_000, { stored_node: 'node-a', stored_at: day0 + 2 * 3_600_000, size: 50 }),
        backupRow(day0 + DAY + 60_000, {
          status: 'failed',
          kind: null,
          filename: null,
          size: null,
          stored_node: null,
          stored_at: null,
        }),
        backupRow(day0 + 2 * DAY, {
          game_id: '32',
          stored_node: 'node-b',
          stored_at: day0 + 2 * DAY,
          size: 7,
        }),
      ])
      .execute();
  });
  afterEach(async () => {
    await fresh.cleanup();
  });

  const daily = () =>
    fresh.catalog.db
      .selectFrom('daily_stats')
      .select(['bucket', 'game_id', 'node', 'backups', 'failures', 'bytes', 'transfers'])
      .orderBy('bucket')
      .orderBy('node')
      .execute();

  it('recomputes the rollups of the whole history, then of a range, and prints what it wrote', async () => {
    const res = await runCli(['admin', 'stats', 'rebuild', '--db', db]);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^rebuilt statistics for the oldest \.\. the newest in \d+ ms\n/);
    expect(res.stdout).toContain('daily_stats:  3 rows');
    expect(res.stdout).toContain('hourly_stats: 3 rows');
    const d0 = Date.parse('2026-11-01T00:00:00Z');
    const rows = (await daily()).map((r) =>
      Object.fromEntries(
        Object.entries(r).map(([k, v]) => [k, k === 'game_id' || k === 'node' ? v : Number(v)]),
      ),
    );
    expect(rows).toEqual([
      { bucket: d0, game_id: '31', node: 'node-a', backups: 2, failures: 0, bytes: 150, transfers: 2 },
      { bucket: d0 + DAY, game_id: '31', node: '', backups: 1, failures: 1, bytes: 0, transfers: 0 },
      {
        bucket: d0 + 2 * DAY,
        game_id: '32',
        node: 'node-b',
        backups: 1,
        failures: 0,
        bytes: 7,
        transfers: 1,
      },
    ]);

    await fresh.catalog.db.deleteFrom('daily_stats').execute();
    const ranged = await runCli([
      'admin',
      'stats',
      'rebuild',
      '--from',
      '2026-11-02',
      '--to',
      '2026-11-02',
      '--db',
      db,
    ]);
    expect(ranged.code).toBe(0);
    expect(ranged.stdout).toContain('2026-11-02T00:00:00.000Z .. 2026-11-03T00:00:00.000Z');
    expect(ranged.stdout).toContain('daily_stats:  1 rows');
    expect((await daily()).map((r) => Number(r.bucket))).toEqual([d0 + DAY]);
  });

  it('refuses a day that does not exist and a reversed range', async () => {
    const bad = await runCli(['admin', 'stats', 'rebuild', '--from', '2026-02-30', '--db', db]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--from: expected a UTC date YYYY-MM-DD, got "2026-02-30"');
    const reversed = await runCli([
      'admin',
      'stats',
      'rebuild',
      '--from',
      '2026-11-10',
      '--to',
      '2026-11-01',
      '--db',
      db,
    ]);
    expect(reversed.code).toBe(2);
    expect(reversed.stderr).toContain('--to (2026-11-01) is before --from (2026-11-10)');
  });
});
