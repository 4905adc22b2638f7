import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openAlerts } from '../../src/server/alerts/alert-store.js';
import { runDeliveryRound } from '../../src/server/alerts/delivery-round.js';
import { rpoByBusiness } from '../../src/server/metrics/rpo-by-business.js';
import { createServerMetrics } from '../../src/server/metrics/server-metrics.js';
import type { LeasedJob } from '../../src/shared/node-protocol.js';
import { PRIORITIES } from '../../src/shared/priority.js';
import { BACKENDS, type BackendName, type TestApp, testApp } from '../support/catalog-backends.js';
import { startServerProcess } from '../support/cli-process.js';
import { freePort } from '../support/free-port.js';
import { stopSharedPostgres } from '../support/postgres.js';
import { createToken, processCatalog } from '../support/process-catalog.js';
import { type PromText, parsePrometheusText, sampleValue, seriesOf } from '../support/prometheus-text.js';
import { failedReport, sampleReport } from '../support/report-fixture.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';

afterAll(stopSharedPostgres);

const NOW = Date.parse('2026-11-26T12:00:00.000Z');
const DAY = 86_400_000;
const GiB = 1024 ** 3;
const iso = (ms: number) => new Date(ms).toISOString();
/** A run that started at `ms` and took a second. */
const ranAt = (ms: number) => ({ created_at: iso(ms), finished_at: iso(ms + 1000) });

describe.each<BackendName>(BACKENDS)('server /metrics on %s', (backend) => {
  let t: TestApp;
  let now = NOW;
  let hostCredential: string;

  const call = (method: 'GET' | 'POST', url: string, as: string | null, payload?: Record<string, unknown>) =>
    t.app.inject({
      method,
      url,
      headers: as === null ? {} : { authorization: `Bearer ${as}` },
      ...(payload === undefined ? {} : { payload }),
    });
  const scrape = async (): Promise<PromText> => {
    const res = await call('GET', '/metrics', t.tokens.viewer);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    return parsePrometheusText(res.body);
  };
  const report = async (body: ReturnType<typeof sampleReport>, status = 201) => {
    const res = await call('POST', '/api/v1/reports', hostCredential, body);
    expect(res.statusCode, res.body).toBe(status);
    return res.json<{ job_id: number | null; legality: string }>();
  };
  const enrollNode = async (name: string, cluster: string, reserve: number) => {
    const res = await call('POST', '/api/v1/nodes/enroll', t.tokens.enroll, {
      name,
      cluster,
      address: null,
      weight: 4,
      reserve_bytes: reserve,
      version: '0.1.0',
    });
    expect(res.statusCode, res.body).toBe(201);
    return res.json<{ credential: string }>().credential;
  };
  const heartbeat = async (credential: string, free: number, reserve: number, pausedReserve: boolean) => {
    const res = await call('POST', '/api/v1/nodes/heartbeat', credential, {
      disk_total_bytes: 10 * free,
      disk_free_bytes: free,
      reserve_bytes: reserve,
      paused_reserve: pausedReserve,
      in_flight: [],
      bytes_per_second: 0,
      version: '0.1.0',
    });
    expect(res.statusCode, res.body).toBe(200);
  };
  const lease = async (credential: string, slots: number): Promise<LeasedJob[]> => {
    const res = await call('POST', '/api/v1/nodes/lease', credential, { slots, free_bytes: 100 * GiB });
    expect(res.statusCode, res.body).toBe(200);
    return res.json<{ jobs: LeasedJob[] }>().jobs;
  };

  beforeEach(async () => {
    now = NOW;
    t = await testApp(backend, { clock: () => new Date(now) });
    const db = t.catalog.db;
    await db
      .insertInto('businesses')
      .values([
        { game_id: '31', name: 'Sample game', created_at: 0 },
        { game_id: '42', name: 'Other game', created_at: 0 },
      ])
      .execute();
    const east = await db
      .insertInto('clusters')
      .values({ name: 'east', description: '', created_at: 0 })
      .returning('id')
      .executeTakeFirstOrThrow();
    const defaultCluster = await db
      .selectFrom('clusters')
      .select('id')
      .where('name', '=', 'default')
      .executeTakeFirstOrThrow();
    const instance = (
      server_id: string,
      inst: string,
      game_id: string,
      fields: {
        cluster?: number;
        priority?: string;
        created?: number;
        success?: number | null;
        paused?: number;
        due?: number | null;
        muted?: number | null;
      },
    ) => ({
      server_id,
      type: 'mysql',
      instance: inst,
      name: `mysql${inst}`,
      game_id,
      cluster_id: fields.cluster ?? defaultCluster.id,
      priority: fields.priority ?? 'normal',
      schedule: null,
      interval_seconds: 3600,
      timezone: 'UTC',
      grace_seconds: 600,
      retention_days: null,
      paused: fields.paused ?? 0,
      next_due_at: fields.due ?? null,
      last_success_at: fields.success ?? null,
      muted_until: fields.muted ?? null,
      created_at: fields.created ?? NOW - 30 * DAY,
      updated_at: 0,
    });
    await db
      .insertInto('instances')
      .values([
        // business 31: one backed up by the reports below, one never good for 3 days, one paused for a year
        instance('111111', '3306', '31', { cluster: east.id, priority: 'high' }),
        instance('111111', '3307', '31', { created: NOW - 3 * DAY, due: NOW + 3_600_000 }),
        instance('111111', '3308', '31', { created: NOW - 365 * DAY, paused: 1 }),
        // business 42: good 5 h ago and overdue; paused for 100 days; muted while overdue
        instance('222222', '3306', '42', { success: NOW - 5 * 3_600_000, due: NOW - 60_000 }),
        instance('222222', '3307', '42', { success: NOW - 100 * DAY, paused: 1, due: NOW - 60_000 }),
        instance('222222', '3308', '42', {
          success: NOW - 3_600_000,
          due: NOW - 1000,
          muted: NOW + 3_600_000,
        }),
      ])
      .execute();
    const enrolled = await call('POST', '/api/v1/agents/enroll', t.tokens.enroll, { server_id: '111111' });
    expect(enrolled.statusCode).toBe(201);
    hostCredential = enrolled.json<{ credential: string }>().credential;
  });
  afterEach(async () => {
    await t.cleanup();
  });

  it('refuses a scrape without a token (401) or with an enrollment token (403); any role may scrape', async () => {
    expect((await call('GET', '/metrics', null)).statusCode).toBe(401);
    expect((await call('GET', '/metrics', 'ubt_not-a-real-token')).statusCode).toBe(401);
    expect((await call('GET', '/metrics', t.tokens.enroll)).statusCode).toBe(403);
    expect((await call('GET', '/metrics', hostCredential)).statusCode).toBe(403);
    for (const role of ['viewer', 'operator', 'admin'] as const) {
      const res = await call('GET', '/metrics', t.tokens[role]);
      expect(res.statusCode).toBe(200);
      expect(res.body).toContain('# TYPE ubackup_queue_jobs gauge');
      // prom-client's default process metrics are there too
      expect(res.body).toContain('process_cpu_user_seconds_total');
    }
  });

  it('shows the catalog: queue, leases, transfers, nodes, alerts, overdue instances, reports and RPO', async () => {
    const first = sampleReport({ instance: '3306', ...ranAt(NOW - 700_000) });
    now = NOW - 600_000;
    expect((await report(first)).legality).toBe('legal');
    await report(failedReport({ instance: '3307', ...ranAt(NOW - 650_000) }));
    const unregistered = await report(
      sampleReport({ type: 'redis', instance: '6379', section: 'redis6379', ...ranAt(NOW - 640_000) }),
    );
    expect(unregistered.legality).toBe('illegal');
    // a repeat of a stored report counts for nothing
    await report(first, 200);

    const east = await enrollNode('node-e', 'east', 1000);
    const reserveBound = await enrollNode('node-d', 'default', 7000);
    await enrollNode('node-new', 'default', 0);
    // an early heartbeat: by the scrape it is long past, and the node would be offline without a later one
    await heartbeat(east, 5000, 1000, false);

    now = NOW - 300_000;
    const leased = await lease(east, 4);
    expect(leased.map((j) => j.report_id)).toEqual([first.report_id]);
    now = NOW - 240_000;
    const done = await call('POST', `/api/v1/jobs/${leased[0]?.job_id}/complete`, east, {
      path: '31/mysql/111111/3306/x.tar.gz',
      blake3: first.blake3,
      size: first.size,
    });
    expect(done.statusCode, done.body).toBe(200);

    now = NOW - 200_000;
    await report(sampleReport({ instance: '3306', ...ranAt(NOW - 210_000) }));
    now = NOW - 100_000;
    await report(sampleReport({ instance: '3306', ...ranAt(NOW - 110_000) }));
    expect(await lease(east, 1)).toHaveLength(1);

    await openAlerts(
      t.catalog.db,
      [
        { type: 'overdue', subject: 'instance:222222/mysql/3306', gameId: '42', summary: 'late' },
        { type: 'overdue', subject: 'instance:111111/mysql/3307', gameId: '31', summary: 'late' },
        { type: 'node_paused', subject: 'node:node-d', gameId: '', summary: 'reserve' },
        { type: 'integrity', subject: 'backup:1', gameId: '31', summary: 'acknowledged below' },
      ],
      NOW - 50_000,
    );
    await t.catalog.db
      .updateTable('alerts')
      .set({ state: 'acknowledged', acknowledged_at: NOW - 40_000, acknowledged_by: 'admin' })
      .where('type', '=', 'integrity')
      .execute();

    now = NOW;
    expect(
      sampleValue(await scrape(), 'ubackup_node_state', {
        node: 'node-e',
        cluster: 'east',
        state: 'offline',
      }),
    ).toBe(1);
    await heartbeat(east, 5000, 1000, false);
    await heartbeat(reserveBound, 6000, 7000, true);
    const m = await scrape();

    // Reports: counted once each at ingest, by status and legality.
    expect(seriesOf(m, 'ubackup_reports_received_total', ['status', 'legality'])).toEqual(
      new Map([
        ['status=ok,legality=legal', 3],
        ['status=failed,legality=legal', 1],
        ['status=ok,legality=illegal', 1],
      ]),
    );

    // The queue, checked against the catalog's own rows.
    const jobs = await t.catalog.db
      .selectFrom('transfer_jobs')
      .innerJoin('clusters', 'clusters.id', 'transfer_jobs.cluster_id')
      .select(['clusters.name as cluster', 'transfer_jobs.priority', 'transfer_jobs.state', 'enqueued_at'])
      .execute();
    const expectedJobs = new Map<string, number>();
    const expectedAge = new Map<string, number>();
    for (const cluster of ['default', 'east']) {
      for (const priority of PRIORITIES) {
        for (const state of ['queued', 'leased']) expectedJobs.set(`${cluster},${priority},${state}`, 0);
        expectedAge.set(`${cluster},${priority}`, 0);
      }
    }
    for (const job of jobs) {
      const priority = PRIORITIES[Number(job.priority)] as string;
      if (job.state === 'queued' || job.state === 'leased') {
        const key = `${job.cluster},${priority},${job.state}`;
        expectedJobs.set(key, (expectedJobs.get(key) ?? 0) + 1);
      }
      if (job.state === 'queued') {
        const key = `${job.cluster},${priority}`;
        expectedAge.set(key, Math.max(expectedAge.get(key) ?? 0, (NOW - Number(job.enqueued_at)) / 1000));
      }
    }
    const queueJobs = new Map(
      [...seriesOf(m, 'ubackup_queue_jobs', ['cluster', 'priority', 'state'])].map(([k, v]) => [
        k.replace(/cluster=|priority=|state=/g, ''),
        v,
      ]),
    );
    expect(queueJobs).toEqual(expectedJobs);
    expect(sampleValue(m, 'ubackup_queue_jobs', { cluster: 'east', priority: 'high', state: 'queued' })).toBe(
      1,
    );
    expect(sampleValue(m, 'ubackup_queue_jobs', { cluster: 'east', priority: 'high', state: 'leased' })).toBe(
      1,
    );
    const ages = new Map(
      [...seriesOf(m, 'ubackup_queue_oldest_job_age_seconds', ['cluster', 'priority'])].map(([k, v]) => [
        k.replace(/cluster=|priority=/g, ''),
        v,
      ]),
    );
    expect(ages).toEqual(expectedAge);
    expect(
      sampleValue(m, 'ubackup_queue_oldest_job_age_seconds', { cluster: 'east', priority: 'high' }),
    ).toBe(100);
    expect([...ages.values()].filter((v) => v === 600)).toHaveLength(1); // the unregistered report's job
    expect(seriesOf(m, 'ubackup_leases_active', ['cluster'])).toEqual(
      new Map([
        ['cluster=default', 0],
        ['cluster=east', 1],
      ]),
    );

    // The completed transfer: its bytes, and 60 s from lease to complete.
    expect(sampleValue(m, 'ubackup_transfer_bytes_total', { node: 'node-e' })).toBe(first.size);
    expect(sampleValue(m, 'ubackup_transfer_duration_seconds_count', { node: 'node-e' })).toBe(1);
    expect(sampleValue(m, 'ubackup_transfer_duration_seconds_sum', { node: 'node-e' })).toBe(60);
    expect(sampleValue(m, 'ubackup_transfer_duration_seconds_bucket', { node: 'node-e', le: '30' })).toBe(0);
    expect(sampleValue(m, 'ubackup_transfer_duration_seconds_bucket', { node: 'node-e', le: '60' })).toBe(1);

    // Nodes, as they reported.
    expect(seriesOf(m, 'ubackup_node_free_bytes', ['node', 'cluster'])).toEqual(
      new Map([
        ['node=node-d,cluster=default', 6000],
        ['node=node-e,cluster=east', 5000],
      ]),
    );
    expect(sampleValue(m, 'ubackup_node_reserve_bytes', { node: 'node-d', cluster: 'default' })).toBe(7000);
    expect(sampleValue(m, 'ubackup_node_reserve_bytes', { node: 'node-new', cluster: 'default' })).toBe(0);
    const states = seriesOf(m, 'ubackup_node_state', ['node', 'state']);
    expect(states.get('node=node-e,state=active')).toBe(1);
    expect(states.get('node=node-e,state=paused_reserve')).toBe(0);
    expect(states.get('node=node-d,state=paused_reserve')).toBe(1);
    expect(states.get('node=node-d,state=active')).toBe(0);
    expect(states.get('node=node-new,state=new')).toBe(1);
    expect([...states.values()].reduce((a, b) => a + b, 0)).toBe(3); // one current state per node

    // Open alerts by type: acknowledged ones are not open; every type has a series.
    const alerts = seriesOf(m, 'ubackup_alerts_open', ['type']);
    expect(alerts.get('type=overdue')).toBe(2);
    expect(alerts.get('type=node_paused')).toBe(1);
    expect(alerts.get('type=integrity')).toBe(0);
    expect(alerts.get('type=queue_backlog')).toBe(0);
    expect(alerts.size).toBe(9);

    // Overdue: 222222/3306 only (3307 is paused, 3308 muted, 111111/3307 not due yet).
    expect(sampleValue(m, 'ubackup_instances_overdue')).toBe(1);

    // RPO: 31 is held back by 3307, never good in its 3 days (3308 is paused); 42 by its 5 h old backup.
    expect(seriesOf(m, 'ubackup_rpo_seconds', ['business'])).toEqual(
      new Map([
        ['business=31', 3 * 86_400],
        ['business=42', 5 * 3600],
      ]),
    );
  });

  it('computes the RPO per business with one query', async () => {
    // 3306 never had a good backup in its 30 days: it holds 31 back
    expect(await rpoByBusiness(t.catalog.db, NOW)).toEqual([
      { business: '31', seconds: 30 * 86_400 },
      { business: '42', seconds: 5 * 3600 },
    ]);
    // once 3306 has one, 3307 (never good, 3 days old) does
    await t.catalog.db
      .updateTable('instances')
      .set({ last_success_at: NOW - 1000 })
      .where('server_id', '=', '111111')
      .where('instance', '=', '3306')
      .execute();
    expect(await rpoByBusiness(t.catalog.db, NOW)).toEqual([
      { business: '31', seconds: 3 * 86_400 },
      { business: '42', seconds: 5 * 3600 },
    ]);
    // a business whose every instance is paused has no RPO
    await t.catalog.db.updateTable('instances').set({ paused: 1 }).where('game_id', '=', '42').execute();
    expect((await rpoByBusiness(t.catalog.db, NOW)).map((r) => r.business)).toEqual(['31']);
  });

  it('counts notification deliveries by channel type and outcome', async () => {
    const hook = await answering([200, 400]);
    try {
      const db = t.catalog.db;
      const channel = await db
        .insertInto('notification_channels')
        .values({
          name: 'ops-hook',
          kind: 'webhook',
          config: JSON.stringify({ kind: 'webhook', name: 'ops-hook', settings: { url: hook.url } }),
          created_at: NOW,
          updated_at: NOW,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      const message = JSON.stringify({
        form: 'single',
        title: 'UBackup test',
        lines: ['a line'],
        severity: 'warning',
        link: null,
        items: [],
      });
      await db
        .insertInto('notification_deliveries')
        .values(
          [1, 2].map(() => ({
            channel_id: channel.id,
            created_at: NOW,
            state: 'pending',
            next_attempt_at: NOW,
            alert_count: 1,
            message,
          })),
        )
        .execute();
      const metrics = createServerMetrics({ db, clock: () => new Date(NOW), heartbeatSeconds: 5 });
      const round = await runDeliveryRound(
        db,
        () => NOW,
        (kind, outcome) => metrics.notificationAttempt(kind, outcome),
      );
      expect(round.sent + round.retrying + round.failed.length).toBe(2);
      const m = parsePrometheusText(await metrics.registry.metrics());
      const counted = seriesOf(m, 'ubackup_notifications_total', ['channel_type', 'outcome']);
      expect([...counted.values()].reduce((a, b) => a + b, 0)).toBe(2);
      expect(counted.get('channel_type=webhook,outcome=sent')).toBe(round.sent);
      expect(counted.get('channel_type=webhook,outcome=failed') ?? 0).toBe(round.failed.length);
      expect(round.sent).toBe(1);
      expect(round.failed).toHaveLength(1);
    } finally {
      await hook.close();
    }
  });
});

/** An HTTP endpoint answering each request with the next status of `statuses`. */
async function answering(statuses: number[]): Promise<{ url: string; close(): Promise<void> }> {
  let next = 0;
  const server: Server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      response.writeHead(statuses[next++ % statuses.length] ?? 500, { 'content-type': 'application/json' });
      response.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe.each<BackendName>(BACKENDS)('ubackup server --metrics-listen on %s', (backend) => {
  let dir: TempDir;
  beforeEach(async () => {
    dir = await makeTempDir('ubackup-metrics');
  });
  afterEach(async () => {
    await dir.cleanup();
  });

  it('serves /metrics with a token on the API address, and without one on the metrics address only', async () => {
    const pc = await processCatalog(backend, dir.path);
    const metricsPort = await freePort();
    // The catalog must exist for the token: the server migrates it, then the token is made beside it.
    const server = await startServerProcess({
      dataDir: pc.dataDir,
      db: pc.db,
      extraArgs: ['--metrics-listen', `127.0.0.1:${metricsPort}`],
    });
    try {
      const viewer = await createToken(pc, 'viewer', 'prometheus');
      expect((await fetch(`${server.url}/metrics`)).status).toBe(401);
      const authed = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${viewer}` } });
      expect(authed.status).toBe(200);
      const text = parsePrometheusText(await authed.text());
      expect(sampleValue(text, 'ubackup_leases_active', { cluster: 'default' })).toBe(0);
      expect(text.types.get('ubackup_transfer_duration_seconds')).toBe('histogram');

      const open = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      expect(open.status).toBe(200);
      expect(open.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      const openText = parsePrometheusText(await open.text());
      expect(
        sampleValue(openText, 'ubackup_queue_jobs', {
          cluster: 'default',
          priority: 'normal',
          state: 'queued',
        }),
      ).toBe(0);
      expect(sampleValue(openText, 'ubackup_instances_overdue')).toBe(0);
      for (const path of ['/healthz', '/api/v1/overview', '/', '/metrics/x']) {
        expect((await fetch(`http://127.0.0.1:${metricsPort}${path}`)).status, path).toBe(404);
      }
      expect((await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { method: 'POST' })).status).toBe(405);
    } finally {
      await server.stop();
    }
  });
});
