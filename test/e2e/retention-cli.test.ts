import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CatalogLocation } from '../../src/catalog/catalog-url.js';
import type { NewBackup } from '../../src/catalog/schema.js';
import { backupRow } from '../support/backup-row.js';
import { BACKENDS, type FreshCatalog, freshCatalog } from '../support/catalog-backends.js';
import { runCli } from '../support/cli-process.js';
import { stopSharedPostgres } from '../support/postgres.js';
import { seedRetentionHistory } from '../support/retention-history.js';

afterAll(stopSharedPostgres);

const DAY = 86_400_000;

const dbFlag = (location: CatalogLocation) =>
  location.dialect === 'sqlite' ? `sqlite:${location.path}` : location.url;

interface JsonPlan {
  dry_run: boolean;
  instances: Array<{
    server_id: string;
    type: string;
    instance: string;
    game_id: string | null;
    policy: {
      retention_days: number;
      keep_fulls: number;
      source: { retention_days: string; keep_fulls: string };
    };
    summary: { keep: number; delete: number; delete_bytes: number };
    decisions: Array<{ backup_id: number; action: string; rule: string; reason: string; created_at: string }>;
  }>;
}

describe.each(BACKENDS)('ubackup admin retention plan on %s', (backend) => {
  let fresh: FreshCatalog;
  let db: string;
  const ids = new Map<string, number>();

  const insert = async (name: string, row: NewBackup) => {
    const { id } = await fresh.catalog.db
      .insertInto('backups')
      .values(row)
      .returning('id')
      .executeTakeFirstOrThrow();
    ids.set(name, id);
    return id;
  };

  beforeEach(async () => {
    fresh = await freshCatalog(backend);
    db = dbFlag(fresh.location);
    const now = Date.now();
    await seedRetentionHistory(insert, now);
    // 111111/redis/6379: singles, with the type's own policy (3 days, 2 fulls).
    await fresh.catalog.db
      .insertInto('backup_types')
      .values({ name: 'redis', description: 'Redis', created_at: now, retention_days: 3, keep_fulls: 2 })
      .execute();
    for (const age of [1, 5, 9]) {
      await insert(
        `redis${age}`,
        backupRow(now - age * DAY, {
          type: 'redis',
          instance: '6379',
          kind: 'single',
          filename: `dump-${age}.rdb`,
        }),
      );
    }
  });
  afterEach(async () => {
    await fresh.cleanup();
  });

  it('prints every decision with its reason as JSON, for every instance, and changes nothing', async () => {
    const res = await runCli(['admin', 'retention', 'plan', '--json', '--db', db]);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const plan = JSON.parse(res.stdout) as JsonPlan;
    expect(plan.dry_run).toBe(true);
    expect(plan.instances.map((i) => `${i.server_id}/${i.type}/${i.instance}`)).toEqual([
      '111111/mysql/3306',
      '111111/redis/6379',
    ]);
    const [mysql, redis] = plan.instances;
    expect(mysql?.policy).toEqual({
      retention_days: 15,
      keep_fulls: 2,
      source: { retention_days: 'default', keep_fulls: 'default' },
    });
    const decided = (p: JsonPlan['instances'][number] | undefined) =>
      Object.fromEntries((p?.decisions ?? []).map((d) => [d.backup_id, `${d.action}:${d.rule}`]));
    expect(decided(mysql)).toEqual({
      [ids.get('inc2') as number]: 'keep:recent',
      [ids.get('inc19') as number]: 'keep:chain_of_kept',
      [ids.get('full20') as number]: 'keep:last_fulls',
      [ids.get('full30') as number]: 'keep:last_fulls',
      [ids.get('oldInc') as number]: 'delete:expired',
      [ids.get('oldFull') as number]: 'delete:expired',
      [ids.get('permanent') as number]: 'keep:permanent',
    });
    expect(mysql?.summary).toEqual({ keep: 5, delete: 2, delete_bytes: 2048 });
    expect(redis?.policy.source).toEqual({ retention_days: 'type', keep_fulls: 'type' });
    expect(decided(redis)).toEqual({
      [ids.get('redis1') as number]: 'keep:recent',
      [ids.get('redis5') as number]: 'keep:last_fulls',
      [ids.get('redis9') as number]: 'delete:expired',
    });

    // A dry run: nothing was marked.
    const marked = await fresh.catalog.db
      .selectFrom('backups')
      .select('id')
      .where('deleted_at', 'is not', null)
      .execute();
    expect(marked.map((r) => r.id)).toEqual([ids.get('deleted')]);
  });

  it('prints one instance for people with --instance; refuses a malformed one', async () => {
    const res = await runCli(['admin', 'retention', 'plan', '--instance', '111111/mysql/3306', '--db', db]);
    expect(res.code).toBe(0);
    const out = res.stdout;
    expect(out).toContain(
      '111111/mysql/3306 (business 31): keep 15 days (default), at least 2 fulls (default)',
    );
    expect(out).toMatch(
      new RegExp(`delete\\s+#${ids.get('oldFull')}\\s+full .*full-old\\.xb\\s+older than 15 days`),
    );
    expect(out).toMatch(
      new RegExp(
        `keep\\s+#${ids.get('inc19')}\\s+incremental .*kept incremental #${ids.get('inc2')} is built on it`,
      ),
    );
    expect(out).toContain('marked permanent');
    expect(out).toContain('=> keep 5, delete 2 (2.0 KiB)');
    expect(out).toContain('dry run: nothing was changed');
    expect(out).not.toContain('redis');

    const bad = await runCli(['admin', 'retention', 'plan', '--instance', '111111/mysql', '--db', db]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--instance: expected server_id/type/instance');
  });
});
