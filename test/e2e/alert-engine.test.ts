import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sweepAlerts } from '../../src/server/alerts/alert-sweep.js';
import { runDeliveryRound } from '../../src/server/alerts/delivery-round.js';
import { runNotificationRound } from '../../src/server/alerts/notification-round.js';
import { BACKENDS, type TestApp, testApp } from '../support/catalog-backends.js';
import { stopSharedPostgres } from '../support/postgres.js';
import { failedReport, sampleReport } from '../support/report-fixture.js';

afterAll(stopSharedPostgres);

const HOUR = 3600_000;
const SETTINGS = { heartbeatSeconds: 5, backlogSeconds: 3600 };

interface Receiver {
  url: string;
  bodies: unknown[];
  status: number;
  close(): Promise<void>;
}

/** A webhook receiver on loopback that records every body and answers `status`. */
async function startReceiver(): Promise<Receiver> {
  const receiver: Receiver = {
    url: '',
    bodies: [],
    status: 200,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (c: Buffer) => chunks.push(c));
    request.on('end', () => {
      receiver.bodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      response.writeHead(receiver.status, { 'content-type': 'application/json' });
      response.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return receiver;
}

describe.each(BACKENDS)('alert engine on %s', (backend) => {
  let t: TestApp;
  let now: number;
  let host: string;
  let receiver: Receiver;

  const call = async (method: 'GET' | 'POST' | 'PATCH' | 'PUT', url: string, as: string, payload?: unknown) =>
    t.app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${as}` },
      ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
    });
  const sweep = () => sweepAlerts(t.catalog.db, now, SETTINGS);
  const alerts = async (type?: string) => {
    let q = t.catalog.db.selectFrom('alerts').selectAll().orderBy('id');
    if (type !== undefined) q = q.where('type', '=', type);
    return q.execute();
  };
  const report = async (overrides: Parameters<typeof sampleReport>[0], failed = false) => {
    const body = failed ? failedReport(overrides) : sampleReport(overrides);
    const res = await call('POST', '/api/v1/reports', host, body);
    expect(res.statusCode, res.body).toBe(201);
  };
  const register = async (body: Record<string, unknown>) => {
    const res = await call('POST', '/api/v1/instances', t.tokens.admin, {
      name: 'db',
      server_id: '111111',
      type: 'mysql',
      instance: '3306',
      game_id: '31',
      ...body,
    });
    expect(res.statusCode, res.body).toBe(201);
    return res.json<{ id: number }>().id;
  };

  beforeEach(async () => {
    now = Date.parse('2026-11-26T12:00:00Z');
    t = await testApp(backend, { clock: () => new Date(now) });
    receiver = await startReceiver();
    expect(
      (await call('POST', '/api/v1/businesses', t.tokens.admin, { game_id: '31', name: 'G31' })).statusCode,
    ).toBe(201);
    expect(
      (await call('POST', '/api/v1/businesses', t.tokens.admin, { game_id: '32', name: 'G32' })).statusCode,
    ).toBe(201);
    const typeRes = await call('POST', '/api/v1/backup-types', t.tokens.admin, { name: 'mysql' });
    expect([201, 409]).toContain(typeRes.statusCode);
    const enrolled = await call('POST', '/api/v1/agents/enroll', t.tokens.enroll, { server_id: '111111' });
    host = enrolled.json().credential;
  });
  afterEach(async () => {
    await receiver.close();
    await t.cleanup();
  });

  it('opens script_failed for a failed run and resolves it on the next success', async () => {
    await register({});
    await report({ created_at: '2026-11-26T11:00:00Z', finished_at: '2026-11-26T11:01:00Z' }, true);
    expect((await sweep()).opened).toBe(1);
    const [opened] = await alerts('script_failed');
    expect(opened).toMatchObject({
      subject: '111111/mysql/3306',
      state: 'open',
      game_id: '31',
      severity: 'warning',
    });
    expect(opened?.summary).toContain('script exited with code 1');
    // A second pass changes nothing.
    expect(await sweep()).toMatchObject({ opened: 0, resolved: 0, reportsSeen: 0 });

    await report({ created_at: '2026-11-26T11:30:00Z', finished_at: '2026-11-26T11:31:00Z' });
    await sweep();
    const [resolved] = await alerts('script_failed');
    expect(resolved).toMatchObject({ id: opened?.id, state: 'resolved', resolved_by: 'system' });
    const events = await t.catalog.db
      .selectFrom('alert_events')
      .select('kind')
      .where('alert_id', '=', opened?.id ?? 0)
      .orderBy('id')
      .execute();
    expect(events.map((e) => e.kind)).toEqual(['opened', 'resolved']);
  });

  it('ignores a failure older than a success already on record, and stays quiet for a muted instance', async () => {
    const id = await register({});
    await report({ created_at: '2026-11-26T11:30:00Z', finished_at: '2026-11-26T11:31:00Z' });
    await sweep();
    // A spooled failure from before that success arrives late.
    await report({ created_at: '2026-11-26T10:00:00Z', finished_at: '2026-11-26T10:01:00Z' }, true);
    await sweep();
    expect(await alerts('script_failed')).toEqual([]);

    const muted = await call('POST', `/api/v1/instances/${id}/mute`, t.tokens.operator, {
      until: new Date(now + HOUR).toISOString(),
      comment: 'maintenance',
    });
    expect(muted.statusCode, muted.body).toBe(200);
    await report({ created_at: '2026-11-26T11:50:00Z', finished_at: '2026-11-26T11:51:00Z' }, true);
    await sweep();
    expect(await alerts('script_failed')).toEqual([]);
  });

  it('opens illegal for an unregistered instance, with the reason', async () => {
    await report({ instance: '9999', section: 'mysql9999' });
    await sweep();
    const [illegal] = await alerts('illegal');
    expect(illegal).toMatchObject({ subject: '111111/mysql/9999', state: 'open', severity: 'info' });
    expect(illegal?.summary.length).toBeGreaterThan(10);
    expect(await alerts('overdue')).toEqual([]);
    // Registering the instance settles it.
    await register({ instance: '9999' });
    expect((await alerts('illegal')).map((a) => [a.state, a.resolved_by])).toEqual([
      ['resolved', 'token:test-admin'],
    ]);
    // Bulk import does the same.
    await report({ instance: '8888', section: 'mysql8888' });
    await sweep();
    const imported = await call('POST', '/api/v1/instances/import', t.tokens.admin, {
      text: 'db 111111 mysql 8888 31',
    });
    expect(imported.statusCode, imported.body).toBe(200);
    expect((await alerts('illegal')).map((a) => a.state)).toEqual(['resolved', 'resolved']);
  });

  it("opens illegal when a host reports with another host's credential, and stores nothing", async () => {
    const other = await call('POST', '/api/v1/agents/enroll', t.tokens.enroll, { server_id: '222222' });
    const res = await call(
      'POST',
      '/api/v1/reports',
      other.json().credential,
      sampleReport({ host_ip: '10.9.9.9' }),
    );
    expect(res.statusCode).toBe(403);
    const [illegal] = await alerts('illegal');
    expect(illegal).toMatchObject({ subject: '111111/mysql/3306', state: 'open', game_id: '31' });
    expect(illegal?.summary).toContain('10.9.9.9');
    expect(illegal?.summary).toContain('222222');
    expect(await t.catalog.db.selectFrom('backups').select('id').execute()).toEqual([]);
  });

  it('measures overdue from the backup time, not the processing time, with grace boundaries', async () => {
    // Every hour, 50 min grace.
    await register({ interval_seconds: 3600, grace_seconds: 3000 });
    // Never seen: due one period + grace after registration.
    const registeredAt = now;
    now = registeredAt + HOUR + 3000_000;
    await sweep();
    expect(await alerts('overdue')).toEqual([]);
    now += 1;
    await sweep();
    expect((await alerts('overdue')).map((a) => a.state)).toEqual(['open']);

    // A backup made 30 min ago, processed only now (a backlog): it is what counts.
    await report({
      created_at: new Date(now - 30 * 60_000).toISOString(),
      finished_at: new Date(now - 29 * 60_000).toISOString(),
    });
    await sweep();
    expect((await alerts('overdue')).map((a) => a.state)).toEqual(['resolved']);
    const instance = await t.catalog.db
      .selectFrom('instances')
      .select('next_due_at')
      .executeTakeFirstOrThrow();
    expect(instance.next_due_at).toBe(now - 30 * 60_000 + HOUR + 3000_000);

    // A backup made long ago and processed late does not hide lateness.
    now = (instance.next_due_at ?? 0) + 1;
    await report({
      created_at: new Date(now - 5 * HOUR).toISOString(),
      finished_at: new Date(now - 5 * HOUR + 60_000).toISOString(),
    });
    await sweep();
    expect((await alerts('overdue')).map((a) => a.state)).toEqual(['resolved', 'open']);
  });

  it('raises nothing for a paused instance and resolves its open overdue alert', async () => {
    const id = await register({ interval_seconds: 3600, grace_seconds: 60 });
    now += 2 * HOUR;
    await sweep();
    expect((await alerts('overdue')).map((a) => a.state)).toEqual(['open']);
    const paused = await call('PATCH', `/api/v1/instances/${id}`, t.tokens.admin, { paused: true });
    expect(paused.statusCode, paused.body).toBe(200);
    await sweep();
    expect((await alerts('overdue')).map((a) => a.state)).toEqual(['resolved']);
    now += 10 * HOUR;
    await sweep();
    expect((await alerts('overdue')).map((a) => a.state)).toEqual(['resolved']);
  });

  it('opens stuck for an announced run past its timeout plus grace, resolved by its report', async () => {
    await register({ grace_seconds: 600 });
    const started = now;
    const run = await call('POST', '/api/v1/runs', host, {
      server_id: '111111',
      type: 'mysql',
      instance: '3306',
      started_at: new Date(started).toISOString(),
      timeout_seconds: 3600,
    });
    expect(run.statusCode, run.body).toBe(200);
    expect(run.json()).toEqual({
      registered: true,
      deadline_at: new Date(started + HOUR + 600_000).toISOString(),
    });
    now = started + HOUR + 600_000;
    await sweep();
    expect(await alerts('stuck')).toEqual([]);
    now += 1000;
    await sweep();
    expect((await alerts('stuck')).map((a) => [a.subject, a.state])).toEqual([['111111/mysql/3306', 'open']]);
    await report({ created_at: new Date(started).toISOString(), finished_at: new Date(now).toISOString() });
    await sweep();
    expect((await alerts('stuck')).map((a) => a.state)).toEqual(['resolved']);

    // Another host's credential cannot announce this host's runs.
    const other = await call('POST', '/api/v1/agents/enroll', t.tokens.enroll, { server_id: '222222' });
    const forged = await call('POST', '/api/v1/runs', other.json().credential, {
      server_id: '111111',
      type: 'mysql',
      instance: '3306',
      started_at: new Date(now).toISOString(),
      timeout_seconds: 60,
    });
    expect(forged.statusCode).toBe(403);
    expect(forged.json().error.code).toBe('server_id_mismatch');
  });

  it('opens node_offline and node_paused from node state, and queue_backlog from the oldest queued job', async () => {
    const enrolled = await call('POST', '/api/v1/nodes/enroll', t.tokens.enroll, {
      name: 'node-a',
      cluster: 'default',
      address: null,
      weight: 2,
      reserve_bytes: 0,
      version: '0.1.0',
    });
    expect(enrolled.statusCode).toBe(201);
    await report({});
    await sweep();
    expect(await alerts('node_offline')).toEqual([]);
    // Enrolled and silent for more than 3 heartbeats.
    now += 3 * 5000 + 1;
    await sweep();
    expect((await alerts('node_offline')).map((a) => [a.subject, a.state, a.severity])).toEqual([
      ['node-a', 'open', 'critical'],
    ]);
    const paused = await call('PATCH', `/api/v1/nodes/${enrolled.json().node_id}`, t.tokens.admin, {
      paused_by_admin: true,
    });
    expect(paused.statusCode, paused.body).toBe(200);
    await sweep();
    const [nodePaused] = await alerts('node_paused');
    expect(nodePaused?.subject).toBe('node-a');
    expect(nodePaused?.summary).toContain('paused by an administrator');

    // The report's job waits in the queue for more than the backlog threshold.
    now += HOUR;
    await sweep();
    const [backlog] = await alerts('queue_backlog');
    expect(backlog).toMatchObject({ subject: 'default', state: 'open' });
    expect(backlog?.summary).toContain('default');
  });

  it('opens transfer_failed and integrity from the queue, resolved by the next verified copy', async () => {
    const enrolled = await call('POST', '/api/v1/nodes/enroll', t.tokens.enroll, {
      name: 'node-a',
      cluster: 'default',
      address: null,
      weight: 2,
      reserve_bytes: 0,
      version: '0.1.0',
    });
    const node = enrolled.json().credential as string;
    await report({ filename: 'a.tar.gz' });
    let dead = false;
    for (let attempt = 0; !dead && attempt < 10; attempt += 1) {
      const leased = await call('POST', '/api/v1/nodes/lease', node, { slots: 1, free_bytes: 1e12 });
      const [job] = leased.json().jobs as { job_id: number }[];
      expect(job).toBeDefined();
      const failed = await call('POST', `/api/v1/jobs/${job?.job_id}/fail`, node, {
        code: 'checksum_mismatch',
        error: 'blake3 differs',
      });
      expect(failed.statusCode, failed.body).toBe(200);
      dead = failed.json().state === 'dead';
      now += 2 * HOUR;
    }
    expect(dead).toBe(true);
    const [transfer] = await alerts('transfer_failed');
    expect(transfer).toMatchObject({ subject: '111111/mysql/3306', state: 'open', severity: 'critical' });
    expect(transfer?.summary).toContain('a.tar.gz');
    expect((await alerts('integrity')).map((a) => a.state)).toEqual(['open']);

    await report({
      filename: 'b.tar.gz',
      created_at: '2026-11-26T13:00:00Z',
      finished_at: '2026-11-26T13:01:00Z',
    });
    const leased = await call('POST', '/api/v1/nodes/lease', node, { slots: 1, free_bytes: 1e12 });
    const [job] = leased.json().jobs as { job_id: number; size: number; blake3: string }[];
    const done = await call('POST', `/api/v1/jobs/${job?.job_id}/complete`, node, {
      path: '31/mysql/111111/3306/b.tar.gz',
      blake3: job?.blake3,
      size: job?.size,
    });
    expect(done.statusCode, done.body).toBe(200);
    expect(
      (await alerts())
        .filter((a) => a.type === 'transfer_failed' || a.type === 'integrity')
        .map((a) => a.state),
    ).toEqual(['resolved', 'resolved']);
  });

  it('notifies a channel once per alert, digests a burst, tells resolutions only to channels told the opening, and retries', async () => {
    const channel = await call('POST', '/api/v1/notification-channels', t.tokens.admin, {
      kind: 'webhook',
      name: 'ops',
      filter: { businesses: ['31'], types: [], minSeverity: 'info' },
      repeatSeconds: 3600,
      settings: { url: receiver.url, secret: 'shh-its-a-secret' },
    });
    expect(channel.statusCode, channel.body).toBe(201);
    expect(channel.body).not.toContain('shh-its-a-secret');
    expect(channel.json().settings).toEqual({
      url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+\/…$/),
      secretSet: true,
    });
    const notify = async () => {
      await runNotificationRound(t.catalog.db, now, {
        dashboardUrl: null,
        onInvalidChannel: () => undefined,
      });
      return runDeliveryRound(t.catalog.db, () => now);
    };

    // One failure of business 31, one of 32 (filtered out).
    await register({});
    await report({}, true);
    await report({ server_id: '111111', game_id: '32', instance: '3307', section: 'mysql3307' }, true);
    await sweep();
    expect((await notify()).sent).toBe(1);
    expect(receiver.bodies).toHaveLength(1);
    expect(JSON.stringify(receiver.bodies[0])).toContain('111111/mysql/3306');
    expect(JSON.stringify(receiver.bodies[0])).not.toContain('3307');
    // Nothing new: nothing sent.
    expect((await notify()).sent).toBe(0);

    // A burst of 40 illegal reports for business 31: one digest.
    for (let i = 0; i < 40; i += 1) await report({ instance: `9${i}`, section: `s${i}` });
    await sweep();
    expect((await notify()).sent).toBe(1);
    const digest = receiver.bodies[1] as { alerts: unknown[]; title: string };
    expect(digest.alerts).toHaveLength(40);

    // The failure resolves: the channel that heard of it hears it resolved.
    await report({ created_at: '2026-11-26T11:59:00Z', finished_at: '2026-11-26T11:59:30Z' });
    await sweep();
    expect((await notify()).sent).toBe(1);
    expect(JSON.stringify(receiver.bodies[2])).toContain('resolved');

    // After the repeat interval, the still-open alerts are reminded (in one digest); the receiver fails: retried.
    receiver.status = 500;
    now += HOUR + 1000;
    const failing = await notify();
    expect(failing).toMatchObject({ sent: 0, retrying: 1 });
    const [pending] = await t.catalog.db
      .selectFrom('notification_deliveries')
      .selectAll()
      .where('state', '=', 'pending')
      .execute();
    expect(pending?.attempts).toBe(1);
    expect(pending?.last_error).toContain('500');
    receiver.status = 200;
    now = (pending?.next_attempt_at ?? 0) + 1;
    expect((await runDeliveryRound(t.catalog.db, () => now)).sent).toBe(1);

    // The test action sends at once and records the attempt.
    const test = await call(
      'POST',
      `/api/v1/notification-channels/${channel.json().id}/test`,
      t.tokens.admin,
    );
    expect(test.json()).toEqual({ ok: true, error: null });
    const deliveries = await call('GET', '/api/v1/notification-deliveries', t.tokens.operator);
    expect(deliveries.json().items.map((d: { state: string }) => d.state)).toEqual([
      'sent',
      'sent',
      'sent',
      'sent',
      'sent',
    ]);
    // Replacing the channel without its secret keeps the secret.
    const replaced = await call('PUT', `/api/v1/notification-channels/${channel.json().id}`, t.tokens.admin, {
      kind: 'webhook',
      name: 'ops',
      settings: { url: receiver.url },
    });
    expect(replaced.json().settings.secretSet).toBe(true);
  });
});
