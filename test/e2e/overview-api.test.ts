import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openAlerts } from '../../src/server/alerts/alert-store.js';
import type { ClusterSummary } from '../../src/server/routes/cluster-summary.js';
import type { Overview } from '../../src/server/routes/overview.js';
import { backupRow } from '../support/backup-row.js';
import { BACKENDS, type BackendName, type TestApp, testApp } from '../support/catalog-backends.js';
import { addPerson, asBrowser, logIn } from '../support/dashboard-login.js';
import { stopSharedPostgres } from '../support/postgres.js';

afterAll(stopSharedPostgres);

/** 03:00 UTC = 11:00 in Shanghai: Shanghai's day began at 16:00 UTC the day before. */
const NOW = Date.parse('2026-05-01T03:00:00.000Z');
const UTC_MIDNIGHT = Date.parse('2026-05-01T00:00:00.000Z');
const SHANGHAI_MIDNIGHT = Date.parse('2026-04-30T16:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();

describe.each<BackendName>(BACKENDS)('overview and cluster summary on %s', (backend) => {
  let env: TestApp;
  let defaultCluster: number;
  let eastCluster: number;
  let backupIds: number[];

  beforeEach(async () => {
    env = await testApp(backend, { clock: () => new Date(NOW) });
    const db = env.catalog.db;
    defaultCluster = (
      await db.selectFrom('clusters').select('id').where('name', '=', 'default').executeTakeFirstOrThrow()
    ).id;
    eastCluster = (
      await db
        .insertInto('clusters')
        .values({ name: 'east', description: 'the east room', created_at: NOW })
        .returning('id')
        .executeTakeFirstOrThrow()
    ).id;
    // Three nodes: two fresh (one in each cluster), one not seen for 6 minutes.
    const node = (name: string, cluster: number, seenAgoMs: number, total: number, free: number) => ({
      name,
      cluster_id: cluster,
      weight: 1,
      disk_total_bytes: total,
      disk_free_bytes: free,
      last_heartbeat_at: NOW - seenAgoMs,
      created_at: NOW - 86_400_000,
    });
    await db
      .insertInto('nodes')
      .values([
        node('node-a', defaultCluster, 10_000, 1000, 400),
        node('node-b', defaultCluster, 6 * 60_000, 5000, 5000),
        node('node-c', eastCluster, 0, 300, 100),
        node('node-d', defaultCluster, 200_000, 2000, 1000),
      ])
      .execute();
    const rows = [
      // before Shanghai's midnight: counts for nothing today
      backupRow(SHANGHAI_MIDNIGHT - 1, { size: 7 }),
      // between Shanghai's and UTC's midnight
      backupRow(SHANGHAI_MIDNIGHT + 60_000, { size: 100 }),
      backupRow(SHANGHAI_MIDNIGHT + 120_000, {
        status: 'failed',
        filename: null,
        size: null,
        blake3: null,
        kind: null,
        stored_node: null,
        stored_path: null,
        stored_at: null,
        verified_at: null,
        error: 'disk full',
        log: 'failed\n',
      }),
      // after UTC's midnight
      backupRow(UTC_MIDNIGHT + 60_000, { size: 1000 }),
      backupRow(UTC_MIDNIGHT + 120_000, {
        size: 20,
        stored_node: null,
        stored_path: null,
        stored_at: null,
        verified_at: null,
      }),
      backupRow(UTC_MIDNIGHT + 180_000, {
        status: 'failed',
        filename: null,
        size: null,
        blake3: null,
        kind: null,
        stored_node: null,
        stored_path: null,
        stored_at: null,
        verified_at: null,
        error: 'oops',
        log: 'failed\n',
      }),
    ];
    backupIds = [];
    for (const row of rows) {
      backupIds.push(
        (await db.insertInto('backups').values(row).returning('id').executeTakeFirstOrThrow()).id,
      );
    }
    const job = (backupId: number, cluster: number, priority: number, state: string, enqueuedAt: number) => ({
      backup_id: backupId,
      cluster_id: cluster,
      priority,
      state,
      attempts: 0,
      max_attempts: 5,
      size: 20,
      enqueued_at: enqueuedAt,
      next_attempt_at: enqueuedAt,
      bytes_done: 0,
      updated_at: enqueuedAt,
    });
    await db
      .insertInto('transfer_jobs')
      .values([
        job(backupIds[4] ?? 0, defaultCluster, 2, 'queued', NOW - 90_000),
        job(backupIds[1] ?? 0, eastCluster, 0, 'queued', NOW - 30_000),
        job(backupIds[3] ?? 0, defaultCluster, 3, 'leased', NOW - 500_000),
        job(backupIds[0] ?? 0, defaultCluster, 3, 'queued', NOW - 10_000),
      ])
      .execute();
    await openAlerts(
      db,
      [
        { type: 'overdue', subject: '111111/mysql/3306', gameId: '31', summary: 'late' },
        { type: 'script_failed', subject: '111111/mysql/3306', gameId: '31', summary: 'failed' },
      ],
      NOW,
    );
    await db.updateTable('alerts').set({ state: 'acknowledged' }).where('type', '=', 'overdue').execute();
  });
  afterEach(async () => {
    await env.cleanup();
  });

  const get = async <T>(url: string, as: 'viewer' | 'operator' = 'viewer') => {
    const res = await env.app.inject({
      method: 'GET',
      url,
      headers: { authorization: `Bearer ${env.tokens[as]}` },
    });
    expect(res.statusCode, res.body).toBe(200);
    return res.json() as T;
  };

  it("counts today's backups, bytes and failures from midnight in the asked zone", async () => {
    const utc = await get<Overview>('/api/v1/overview');
    expect(utc).toMatchObject({
      since: iso(UTC_MIDNIGHT),
      backups_today: 3,
      bytes_today: 1000,
      failures_today: 1,
    });
    const shanghai = await get<Overview>('/api/v1/overview?tz=Asia/Shanghai');
    expect(shanghai).toMatchObject({
      since: iso(SHANGHAI_MIDNIGHT),
      backups_today: 5,
      bytes_today: 1100,
      failures_today: 2,
    });
  });

  it('shows open alerts, the queue, space per cluster from fresh nodes, and the newest backups', async () => {
    const o = await get<Overview>('/api/v1/overview');
    expect(o.open_alerts).toBe(1);
    expect(o.queue).toEqual({ depth: 3, oldest_queued_at: iso(NOW - 90_000), oldest_wait_seconds: 90 });
    expect(o.clusters).toEqual([
      { id: defaultCluster, name: 'default', total_bytes: 3000, free_bytes: 1400 },
      { id: eastCluster, name: 'east', total_bytes: 300, free_bytes: 100 },
    ]);
    expect(o.latest.map((b) => b.id)).toEqual([...backupIds].reverse());
    expect(o.latest[0]).toEqual({
      id: backupIds[5],
      status: 'failed',
      game_id: '31',
      type: 'mysql',
      instance: '3306',
      server_id: '111111',
      host_ip: '10.0.2.62',
      filename: null,
      size: null,
      log: 'failed\n',
      created_at: iso(UTC_MIDNIGHT + 180_000),
    });
  });

  it('lists at most 20 newest backups, and an empty queue as nulls', async () => {
    const db = env.catalog.db;
    await db.deleteFrom('transfer_jobs').execute();
    for (let i = 0; i < 25; i++)
      await db
        .insertInto('backups')
        .values(backupRow(NOW - 1000 - i))
        .execute();
    const o = await get<Overview>('/api/v1/overview');
    expect(o.latest).toHaveLength(20);
    expect(o.latest[0]?.created_at).toBe(iso(NOW - 1000));
    expect(o.queue).toEqual({ depth: 0, oldest_queued_at: null, oldest_wait_seconds: null });
  });

  it('refuses an unknown time zone', async () => {
    const res = await env.app.inject({
      method: 'GET',
      url: '/api/v1/overview?tz=Mars/Base',
      headers: { authorization: `Bearer ${env.tokens.viewer}` },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: { code: 'invalid_request' } });
  });

  it('summarises every cluster: nodes, queued jobs by priority, the oldest, and space', async () => {
    const summary = await get<{ items: ClusterSummary[] }>('/api/v1/clusters/summary');
    expect(summary.items).toEqual([
      {
        id: defaultCluster,
        name: 'default',
        description: expect.any(String),
        node_count: 3,
        queue: { critical: 0, high: 0, normal: 1, low: 1 },
        oldest_queued_at: iso(NOW - 90_000),
        total_bytes: 3000,
        free_bytes: 1400,
      },
      {
        id: eastCluster,
        name: 'east',
        description: 'the east room',
        node_count: 1,
        queue: { critical: 1, high: 0, normal: 0, low: 0 },
        oldest_queued_at: iso(NOW - 30_000),
        total_bytes: 300,
        free_bytes: 100,
      },
    ]);
  });

  it('answers a viewer session, and nobody anonymous', async () => {
    await addPerson(env.catalog, 'vic', 'viewer');
    const vic = await logIn(env.app, 'vic');
    expect((await asBrowser(env.app, vic, { method: 'GET', url: '/api/v1/overview' })).statusCode).toBe(200);
    expect(
      (await asBrowser(env.app, vic, { method: 'GET', url: '/api/v1/clusters/summary' })).statusCode,
    ).toBe(200);
    expect((await env.app.inject({ method: 'GET', url: '/api/v1/overview' })).statusCode).toBe(401);
    expect((await env.app.inject({ method: 'GET', url: '/api/v1/clusters/summary' })).statusCode).toBe(401);
  });
});
