import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Catalog } from '../../src/catalog/database.js';
import {
  FLEET_CLUSTERS,
  FLEET_TYPES,
  FleetFixtureError,
  type FleetOptions,
  type FleetReport,
  FULL_HOUR_UTC,
  fillFleet,
  OFFLINE_NODE,
} from '../../src/demo/fleet-fixture.js';
import { loadRestorePlan } from '../../src/server/restore/load-restore-plan.js';
import type { BackupListItem } from '../../src/server/routes/backups.js';
import { BACKENDS, freshCatalog, type TestApp, testApp } from '../support/catalog-backends.js';
import { stopSharedPostgres } from '../support/postgres.js';

afterAll(stopSharedPostgres);

const HOUR = 3_600_000;
/** 04:00 UTC sharp: every full of the three cycles before it and every incremental after them are in. */
const END = Date.parse('2026-05-04T04:00:00.000Z');
const FLEET: FleetOptions = { instances: 1000, days: 3, end: END, seed: 7 };
const BACKUPS = FLEET.instances * FLEET.days * 2;

async function count(catalog: Catalog, table: 'instances' | 'hosts' | 'businesses' | 'backups' | 'nodes') {
  const row = await catalog.db
    .selectFrom(table)
    .select((eb) => eb.fn.countAll<number | string>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** What identifies a fleet's backups, in id order. */
async function fingerprint(catalog: Catalog) {
  return catalog.db
    .selectFrom('backups')
    .select(['id', 'report_id', 'created_at', 'status', 'size', 'blake3', 'stored_node'])
    .orderBy('id')
    .execute();
}

/** Every index and constraint with its definition, sorted. */
async function schemaObjects(catalog: Catalog): Promise<string[]> {
  const { rows } =
    catalog.dialect === 'postgres'
      ? await sql<{ line: string }>`
          select indexname || ': ' || indexdef as line from pg_indexes where schemaname = 'public'
          union all
          select conname || ': ' || pg_get_constraintdef(oid) from pg_constraint
          where connamespace = 'public'::regnamespace`.execute(catalog.db)
      : await sql<{ line: string }>`
          select name || ': ' || coalesce(sql, '(automatic)') as line from sqlite_master where type = 'index'`.execute(
          catalog.db,
        );
  return rows.map((r) => r.line).sort();
}

describe.each(BACKENDS)('fleet fixture on %s', (backend) => {
  let env: TestApp;
  let report: FleetReport;

  beforeAll(async () => {
    env = await testApp(backend, { clock: () => new Date(END) });
    report = await fillFleet(env.catalog, FLEET);
  });
  afterAll(async () => {
    await env?.cleanup();
  });

  it('writes two backups a day for every instance, and the registry they belong to', async () => {
    const { catalog } = env;
    expect(await count(catalog, 'instances')).toBe(1000);
    expect(await count(catalog, 'hosts')).toBe(334);
    expect(await count(catalog, 'businesses')).toBe(200);
    expect(await count(catalog, 'backups')).toBe(BACKUPS);
    expect(report.rows.backups).toBe(BACKUPS);
    expect(await count(catalog, 'nodes')).toBe(8);
    const types = await catalog.db.selectFrom('backup_types').select('name').orderBy('name').execute();
    expect(types.map((t) => t.name)).toEqual([...FLEET_TYPES].sort());
    const clusters = await catalog.db.selectFrom('clusters').select('name').orderBy('name').execute();
    expect(clusters.map((c) => c.name)).toEqual(FLEET_CLUSTERS.map((c) => c.name).sort());
    const perInstance = await catalog.db
      .selectFrom('backups')
      .select((eb) => ['instance_id', eb.fn.countAll<number | string>().as('n')])
      .groupBy('instance_id')
      .execute();
    expect(perInstance).toHaveLength(1000);
    expect(perInstance.filter((r) => Number(r.n) !== 6)).toEqual([]);
    // Every instance's identity is unique and on a registered business, in a cluster with nodes.
    const orphans = await catalog.db
      .selectFrom('instances')
      .leftJoin('businesses', 'businesses.game_id', 'instances.game_id')
      .leftJoin('hosts', 'hosts.server_id', 'instances.server_id')
      .select('instances.id')
      .where((eb) => eb.or([eb('businesses.id', 'is', null), eb('hosts.id', 'is', null)]))
      .execute();
    expect(orphans).toEqual([]);
    const usedBusinesses = await catalog.db
      .selectFrom('instances')
      .select((eb) => eb.fn.count<number | string>('game_id').distinct().as('n'))
      .executeTakeFirstOrThrow();
    expect(Number(usedBusinesses.n)).toBeGreaterThan(50);
  });

  it('fails about 1 % of the runs, each with an error and no file', async () => {
    const rows = await env.catalog.db
      .selectFrom('backups')
      .select(['status', 'kind', 'filename', 'size', 'blake3', 'error', 'stored_node', 'log'])
      .execute();
    const failed = rows.filter((r) => r.status === 'failed');
    expect(failed.length / rows.length).toBeGreaterThan(0.005);
    expect(failed.length / rows.length).toBeLessThan(0.015);
    for (const r of failed) {
      expect(r.error).toMatch(/^(script |the last full backup failed)/);
      expect([r.kind, r.filename, r.size, r.blake3, r.stored_node]).toEqual([null, null, null, null, null]);
    }
    const ok = rows.filter((r) => r.status === 'ok');
    expect(ok.length + failed.length).toBe(rows.length);
    for (const r of ok) {
      expect(['full', 'incremental']).toContain(r.kind);
      expect(r.blake3).toMatch(/^[0-9a-f]{64}$/);
      expect(r.size).toBeGreaterThan(0);
      expect(r.log).toBe(`ok\n${r.filename}\n`);
      expect(r.error).toBeNull();
    }
  });

  it('runs the fulls at 04:xx UTC and the incrementals at every other hour', async () => {
    const rows = await env.catalog.db
      .selectFrom('backups')
      .select(['kind', 'created_at', 'received_at'])
      .execute();
    const hourOf = (ms: number) => new Date(ms).getUTCHours();
    const fulls = rows.filter((r) => r.kind === 'full');
    expect(fulls.length).toBeGreaterThan(2900);
    expect(fulls.filter((r) => hourOf(r.created_at) !== FULL_HOUR_UTC)).toEqual([]);
    // A run at 04:xx is a full (or a failed run, whose kind is unknown): 1000 instances × 3 days.
    expect(rows.filter((r) => hourOf(r.created_at) === FULL_HOUR_UTC)).toHaveLength(3000);
    const incrementalHours = new Set(
      rows.filter((r) => r.kind === 'incremental').map((r) => hourOf(r.created_at)),
    );
    expect([...incrementalHours].sort((a, b) => a - b)).toEqual(
      Array.from({ length: 24 }, (_, h) => h).filter((h) => h !== FULL_HOUR_UTC),
    );
    expect(Math.max(...rows.map((r) => r.received_at))).toBeLessThanOrEqual(END);
  });

  it('bases every incremental on a full of the same instance made before it', async () => {
    const links = await env.catalog.db
      .selectFrom('backups as i')
      .leftJoin('backups as f', 'f.id', 'i.base_backup_id')
      .select([
        'i.id',
        'i.instance_id',
        'i.created_at',
        'i.base_filename',
        'i.base_created_at',
        'f.kind as base_kind',
        'f.instance_id as base_instance_id',
        'f.created_at as base_time',
        'f.filename as base_name',
      ])
      .where('i.kind', '=', 'incremental')
      .execute();
    expect(links.length).toBeGreaterThan(2900);
    const broken = links.filter(
      (l) =>
        l.base_kind !== 'full' ||
        l.base_instance_id !== l.instance_id ||
        l.base_time === null ||
        l.base_time >= l.created_at ||
        l.base_filename !== l.base_name ||
        l.base_created_at !== l.base_time,
    );
    expect(broken).toEqual([]);
  });

  it('stores and verifies what succeeded on a node of its cluster, with a transfer job for each', async () => {
    const rows = await env.catalog.db
      .selectFrom('backups')
      .innerJoin('clusters', 'clusters.id', 'backups.cluster_id')
      .leftJoin('transfer_jobs', 'transfer_jobs.backup_id', 'backups.id')
      .select([
        'backups.status',
        'backups.game_id',
        'backups.type',
        'backups.server_id',
        'backups.instance',
        'backups.filename',
        'backups.received_at',
        'backups.stored_node',
        'backups.stored_path',
        'backups.stored_at',
        'backups.verified_at',
        'clusters.name as cluster',
        'transfer_jobs.state as job',
        'transfer_jobs.id as job_id',
      ])
      .execute();
    for (const r of rows.filter((b) => b.status === 'failed')) expect(r.job).toBeNull();
    const ok = rows.filter((b) => b.status === 'ok');
    const stored = ok.filter((b) => b.stored_at !== null);
    expect(stored.length).toBeGreaterThan(ok.length * 0.95);
    for (const r of stored) {
      expect(r.job).toBe('done');
      expect(r.stored_node).toMatch(new RegExp(`^node-${r.cluster}-[0-9]+$`));
      expect(r.stored_path).toBe(`${r.game_id}/${r.type}/${r.server_id}/${r.instance}/${r.filename}`);
      expect(r.verified_at).toBe(r.stored_at);
      expect(r.stored_at).toBeGreaterThan(r.received_at);
      expect(r.stored_at).toBeLessThanOrEqual(END);
    }
    const waiting = ok.filter((b) => b.stored_at === null);
    expect(waiting.length).toBeGreaterThan(0);
    for (const r of waiting) {
      expect(['queued', 'leased', 'dead']).toContain(r.job);
      expect(r.stored_node).toBeNull();
      if (r.job !== 'dead') expect(r.received_at).toBeGreaterThan(END - HOUR - 10 * 60_000);
    }
  });

  it("records each instance's newest success and report", async () => {
    const db = env.catalog.db;
    const newest = await db
      .selectFrom('backups')
      .select((eb) => [
        'instance_id',
        eb.fn.max(sql<number | null>`case when status = 'ok' then created_at end`).as('ok_at'),
        eb.fn.max('received_at').as('report_at'),
      ])
      .groupBy('instance_id')
      .execute();
    const expected = new Map(newest.map((r) => [Number(r.instance_id), [r.ok_at, r.report_at].map(Number)]));
    const instances = await db
      .selectFrom('instances')
      .select(['id', 'last_success_at', 'last_report_at'])
      .execute();
    const wrong = instances.filter((i) => {
      const [okAt, reportAt] = expected.get(i.id) ?? [];
      return i.last_success_at !== okAt || i.last_report_at !== reportAt;
    });
    expect(instances).toHaveLength(1000);
    expect(wrong).toEqual([]);
  });

  it('leaves an unresolved script_failed alert exactly for the instances whose newest run failed', async () => {
    const db = env.catalog.db;
    const newest = await db
      .selectFrom('backups as b')
      .select(['b.server_id', 'b.type', 'b.instance', 'b.status'])
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('backups as later')
              .select('later.id')
              .whereRef('later.instance_id', '=', 'b.instance_id')
              .whereRef('later.created_at', '>', 'b.created_at'),
          ),
        ),
      )
      .execute();
    const failing = newest
      .filter((b) => b.status === 'failed')
      .map((b) => `${b.server_id}/${b.type}/${b.instance}`)
      .sort();
    expect(failing.length).toBeGreaterThan(0);
    const unresolved = await db
      .selectFrom('alerts')
      .select(['subject', 'state'])
      .where('type', '=', 'script_failed')
      .where('state', '<>', 'resolved')
      .orderBy('subject')
      .execute();
    expect(unresolved.map((a) => a.subject)).toEqual(failing);
    const resolved = await db
      .selectFrom('alerts')
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .where('type', '=', 'script_failed')
      .where('state', '=', 'resolved')
      .executeTakeFirstOrThrow();
    expect(Number(resolved.n)).toBeGreaterThan(10);
    const offline = await db
      .selectFrom('alerts')
      .select('state')
      .where('type', '=', 'node_offline')
      .where('subject', '=', OFFLINE_NODE)
      .execute();
    expect(offline).toEqual([{ state: 'open' }]);
  });

  it('fills the statistics rollups as ingest and completion would have, and the stats API reads them', async () => {
    const db = env.catalog.db;
    const truth = await db
      .selectFrom('backups')
      .select((eb) => [
        eb.fn.countAll<number | string>().as('backups'),
        eb.fn
          .sum<number | string | null>(eb.case().when('status', '!=', 'ok').then(1).else(0).end())
          .as('failures'),
        eb.fn
          .sum<number | string | null>(
            eb.case().when('stored_at', 'is not', null).then(eb.ref('size')).else(0).end(),
          )
          .as('bytes'),
      ])
      .executeTakeFirstOrThrow();
    const rolled = await db
      .selectFrom('daily_stats')
      .select((eb) => [
        eb.fn.sum<number | string | null>('backups').as('backups'),
        eb.fn.sum<number | string | null>('failures').as('failures'),
        eb.fn.sum<number | string | null>('bytes').as('bytes'),
      ])
      .executeTakeFirstOrThrow();
    expect(Number(truth.backups)).toBe(report.rows.backups);
    expect(Number(rolled.backups)).toBe(Number(truth.backups));
    expect(Number(rolled.failures)).toBe(Number(truth.failures));
    expect(Number(rolled.bytes)).toBe(Number(truth.bytes));
    expect(report.rows.daily_stats).toBeGreaterThan(0);
    const totals = await env.app.inject({
      method: 'GET',
      url: `/api/v1/stats/totals?from=${new Date(END - 40 * 86_400_000).toISOString().slice(0, 10)}`,
      headers: { authorization: `Bearer ${env.tokens.viewer}` },
    });
    expect(totals.statusCode, totals.body).toBe(200);
    expect(totals.json()).toMatchObject({ backups: Number(truth.backups), failures: Number(truth.failures) });
  });

  it('answers the dashboard backup list and the restore plan', async () => {
    const db = env.catalog.db;
    // An instance whose newest run is a stored incremental on a stored full.
    const target = await db
      .selectFrom('backups as i')
      .innerJoin('backups as f', 'f.id', 'i.base_backup_id')
      .select(['i.id', 'i.server_id', 'i.type', 'i.instance', 'f.id as base_id'])
      .where('i.kind', '=', 'incremental')
      .where('i.stored_at', 'is not', null)
      .where('f.stored_at', 'is not', null)
      .where(
        sql<boolean>`i.created_at = (select max(o.created_at) from backups o where o.instance_id = i.instance_id)`,
      )
      .orderBy('i.id')
      .limit(1)
      .executeTakeFirstOrThrow();
    const identity = { server_id: target.server_id, type: target.type, instance: target.instance };
    const res = await env.app.inject({
      method: 'GET',
      url: `/api/v1/backups?server_id=${identity.server_id}&type=${identity.type}&instance=${identity.instance}`,
      headers: { authorization: `Bearer ${env.tokens.viewer}` },
    });
    expect(res.statusCode).toBe(200);
    const items = res.json<{ items: BackupListItem[] }>().items;
    expect(items).toHaveLength(6);
    expect(items[0]?.id).toBe(target.id);
    expect(items.map((b) => b.backup_time)).toEqual(
      items
        .map((b) => b.backup_time)
        .sort()
        .reverse(),
    );
    expect(items[0]?.transfer_state).toBe('done');

    const plan = await loadRestorePlan(db, identity, END);
    expect(plan.ok && plan.chain.map((link) => link.id)).toEqual([target.base_id, target.id]);
    const api = await env.app.inject({
      method: 'GET',
      url: `/api/v1/restore-plan?server_id=${identity.server_id}&type=${identity.type}&instance=${identity.instance}`,
      headers: { authorization: `Bearer ${env.tokens.viewer}` },
    });
    expect(api.statusCode).toBe(200);
    const chain = api.json<{ chain: Array<{ backup_id: number; download: { url: string | null } }> }>().chain;
    expect(chain.map((link) => link.backup_id)).toEqual([target.base_id, target.id]);
    expect(chain.every((link) => link.download.url?.startsWith('http://10.200.'))).toBe(true);
  });

  it('is the same fleet for the same seed, and another for another seed', async () => {
    const again = await freshCatalog(backend);
    const other = await freshCatalog(backend);
    try {
      await fillFleet(again.catalog, FLEET);
      await fillFleet(other.catalog, { ...FLEET, seed: FLEET.seed + 1 });
      const mine = await fingerprint(env.catalog);
      expect(await fingerprint(again.catalog)).toEqual(mine);
      const theirs = await fingerprint(other.catalog);
      expect(theirs).toHaveLength(mine.length);
      expect(theirs.filter((row, k) => row.created_at === mine[k]?.created_at).length).toBeLessThan(
        mine.length / 10,
      );
    } finally {
      await again.cleanup();
      await other.cleanup();
    }
  });

  it('leaves every index and constraint the migrations made, as they made them', async () => {
    const fresh = await freshCatalog(backend);
    try {
      const before = await schemaObjects(fresh.catalog);
      expect(before.some((o) => o.startsWith('backups_identity_created'))).toBe(true);
      await fillFleet(fresh.catalog, { ...FLEET, instances: 50, days: 2 });
      expect(await schemaObjects(fresh.catalog)).toEqual(before);
    } finally {
      await fresh.cleanup();
    }
  });

  it('refuses a catalog that already holds a fleet, and leaves it as it was', async () => {
    await expect(fillFleet(env.catalog, FLEET)).rejects.toThrow(FleetFixtureError);
    await expect(fillFleet(env.catalog, { ...FLEET, instances: 0 })).rejects.toThrow(/instances must be/);
    expect(await count(env.catalog, 'backups')).toBe(BACKUPS);
  });
});
