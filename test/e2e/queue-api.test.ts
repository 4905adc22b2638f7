import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resetNode } from '../../src/admin/reset-host.js';
import { sweepExpiredLeases } from '../../src/server/queue/sweep-leases.js';
import type { LeasedJob } from '../../src/shared/node-protocol.js';
import type { Priority } from '../../src/shared/priority.js';
import { importPublicKey, verifyTicket } from '../../src/shared/ticket.js';
import { BACKENDS, type TestApp, testApp } from '../support/catalog-backends.js';
import { stopSharedPostgres } from '../support/postgres.js';
import { sampleReport } from '../support/report-fixture.js';

afterAll(stopSharedPostgres);

const GiB = 1024 ** 3;

describe.each(BACKENDS)('transfer queue API on %s', (backend) => {
  let t: TestApp;
  let now: number;
  let hostCredential: string;
  let publicKey: string;

  const call = async (
    method: 'GET' | 'POST' | 'PATCH',
    url: string,
    as: string,
    payload?: Record<string, unknown>,
  ) =>
    t.app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${as}` },
      ...(payload === undefined ? {} : { payload }),
    });

  const enrollNode = async (
    name: string,
    options: { cluster?: string; reserve?: number; weight?: number } = {},
  ) => {
    const res = await call('POST', '/api/v1/nodes/enroll', t.tokens.enroll, {
      name,
      cluster: options.cluster ?? 'default',
      address: null,
      weight: options.weight ?? 4,
      reserve_bytes: options.reserve ?? 0,
      version: '0.1.0',
    });
    expect(res.statusCode).toBe(201);
    return res.json<{ node_id: number; credential: string }>();
  };
  const report = async (overrides: Parameters<typeof sampleReport>[0]) => {
    const res = await call('POST', '/api/v1/reports', hostCredential, sampleReport(overrides));
    expect(res.statusCode).toBe(201);
    return res.json<{ job_id: number; backup_id: number }>();
  };
  const lease = async (credential: string, slots: number, freeBytes = 100 * GiB): Promise<LeasedJob[]> => {
    const res = await call('POST', '/api/v1/nodes/lease', credential, { slots, free_bytes: freeBytes });
    expect(res.statusCode).toBe(200);
    return res.json<{ jobs: LeasedJob[] }>().jobs;
  };

  beforeEach(async () => {
    now = Date.parse('2026-11-26T12:00:00Z');
    t = await testApp(backend, {
      clock: () => new Date(now),
      queue: { leaseSeconds: 60, agingSeconds: 600 },
    });
    const enrolled = await call('POST', '/api/v1/agents/enroll', t.tokens.enroll, { server_id: '111111' });
    hostCredential = enrolled.json().credential;
    publicKey = enrolled.json().ticket_public_key;
  });
  afterEach(async () => {
    await t.cleanup();
  });

  it('enrolls nodes into a cluster, refuses an unknown cluster and a second enrollment', async () => {
    await enrollNode('node-a');
    const again = await call('POST', '/api/v1/nodes/enroll', t.tokens.enroll, {
      name: 'node-a',
      cluster: 'default',
      address: null,
      weight: 4,
      reserve_bytes: 0,
      version: '0.1.0',
    });
    expect(again.statusCode).toBe(409);
    expect(again.json().error.code).toBe('already_enrolled');
    expect(again.json().error.message).toContain('ubackup admin node reset --name node-a');
    await resetNode(t.catalog, 'node-a', now);
    await enrollNode('node-a');
    const unknown = await call('POST', '/api/v1/nodes/enroll', t.tokens.enroll, {
      name: 'node-b',
      cluster: 'mars',
      address: null,
      weight: 4,
      reserve_bytes: 0,
      version: '0.1.0',
    });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().error.code).toBe('unknown_cluster');
  });

  it('sends the central settings in each heartbeat reply; an operator changes them', async () => {
    const node = await enrollNode('node-a', { weight: 4 });
    const beat = () =>
      call('POST', '/api/v1/nodes/heartbeat', node.credential, {
        disk_total_bytes: 10 * GiB,
        disk_free_bytes: 5 * GiB,
        reserve_bytes: GiB,
        paused_reserve: false,
        in_flight: [],
        bytes_per_second: 0,
        version: '0.1.0',
      });
    expect((await beat()).json()).toMatchObject({
      weight: 4,
      max_bandwidth: 0,
      paused_by_admin: false,
      lease_seconds: 60,
    });
    const viewer = await call('PATCH', `/api/v1/nodes/${node.node_id}`, t.tokens.viewer, { weight: 9 });
    expect(viewer.statusCode).toBe(403);
    const patched = await call('PATCH', `/api/v1/nodes/${node.node_id}`, t.tokens.operator, {
      weight: 9,
      max_bandwidth: 50_000_000,
      paused_by_admin: true,
    });
    expect(patched.statusCode).toBe(200);
    expect((await beat()).json()).toMatchObject({
      weight: 9,
      max_bandwidth: 50_000_000,
      paused_by_admin: true,
    });
    const listed = await call('GET', '/api/v1/nodes', t.tokens.viewer);
    expect(listed.json().items[0]).toMatchObject({
      name: 'node-a',
      cluster: 'default',
      state: 'paused_admin',
      disk_free_bytes: 5 * GiB,
    });
    now += 16_000;
    expect((await call('GET', '/api/v1/nodes', t.tokens.viewer)).json().items[0].state).toBe('offline');
  });

  it('leases by priority, then age, with signed tickets for the agent', async () => {
    const node = await enrollNode('node-a');
    const made: Array<[Priority, number]> = [];
    for (const [i, priority] of (['low', 'normal', 'critical', 'high', 'normal'] as Priority[]).entries()) {
      const r = await report({ priority, instance: String(3300 + i), filename: `f${i}.xb`, size: 100 + i });
      made.push([priority, r.job_id]);
      now += 1000;
    }
    const jobs = await lease(node.credential, 10);
    expect(jobs.map((j) => j.job_id)).toEqual([
      made[2]?.[1],
      made[3]?.[1],
      made[1]?.[1],
      made[4]?.[1],
      made[0]?.[1],
    ]);
    const first = jobs[0] as LeasedJob;
    expect(first.source).toEqual({
      transport: 'http',
      url: 'http://10.0.2.62:8873/v1/files/111111/mysql/3302/f2.xb',
    });
    const check = verifyTicket(first.ticket, importPublicKey(publicKey), now);
    expect(check).toMatchObject({
      ok: true,
      claims: { filename: 'f2.xb', node: 'node-a', server_id: '111111', job_id: first.job_id },
    });
    // Nothing left to lease.
    expect(await lease(node.credential, 10)).toEqual([]);
  });

  it('ages a waiting low job above newer high ones', async () => {
    const node = await enrollNode('node-a');
    const low = await report({ priority: 'low', instance: '1', filename: 'low.xb' });
    now += 3 * 600_000;
    const high = await report({ priority: 'high', instance: '2', filename: 'high.xb' });
    const jobs = await lease(node.credential, 1);
    expect(jobs.map((j) => j.job_id)).toEqual([low.job_id]);
    expect((await lease(node.credential, 1)).map((j) => j.job_id)).toEqual([high.job_id]);
  });

  it('leases only what fits in free space minus reserve minus bytes already leased', async () => {
    const node = await enrollNode('node-a', { reserve: 1000 });
    await report({ instance: '1', filename: 'a.xb', size: 600 });
    await report({ instance: '2', filename: 'b.xb', size: 600 });
    await report({ instance: '3', filename: 'c.xb', size: 300 });
    // 2,500 free − 1,000 reserve = 1,500: a (600) and b (600) fit, c (300) fits too.
    expect((await lease(node.credential, 10, 2500)).map((j) => j.filename)).toEqual(['a.xb', 'b.xb', 'c.xb']);
    await report({ instance: '4', filename: 'd.xb', size: 600 });
    // 3,000 free − 1,000 reserve − 1,500 leased = 500: d does not fit.
    expect(await lease(node.credential, 10, 3000)).toEqual([]);
    expect((await lease(node.credential, 10, 3100)).map((j) => j.filename)).toEqual(['d.xb']);
  });

  it('never gives one job to two nodes, however they race', async () => {
    const nodes = await Promise.all(['n1', 'n2', 'n3'].map((n) => enrollNode(n)));
    for (let i = 0; i < 60; i += 1) await report({ instance: String(i), filename: `r${i}.xb` });
    const rounds = await Promise.all(
      Array.from({ length: 12 }, (_, i) => lease((nodes[i % 3] as { credential: string }).credential, 7)),
    );
    const ids = rounds.flat().map((j) => j.job_id);
    const leased = await t.catalog.db
      .selectFrom('transfer_jobs')
      .select(['id'])
      .where('state', '=', 'leased')
      .execute();
    expect(leased).toHaveLength(ids.length);
    // A racing lease may come back short (rows another node is taking are skipped); the rest drains after.
    for (let i = 0; i < 20 && ids.length < 60; i += 1) {
      ids.push(...(await lease((nodes[i % 3] as { credential: string }).credential, 7)).map((j) => j.job_id));
    }
    expect(ids).toHaveLength(60);
    expect(new Set(ids).size).toBe(60);
  });

  it('renews a lease on progress, records completion, and refuses another node', async () => {
    const a = await enrollNode('node-a');
    const b = await enrollNode('node-b');
    const r = await report({ filename: 'x.xb', size: 1024 });
    const [job] = await lease(a.credential, 1);
    now += 50_000;
    const progress = await call('POST', `/api/v1/jobs/${r.job_id}/progress`, a.credential, {
      bytes_done: 512,
    });
    expect(progress.json().lease_expires_at).toBe(new Date(now + 60_000).toISOString());
    const stolen = await call('POST', `/api/v1/jobs/${r.job_id}/progress`, b.credential, { bytes_done: 1 });
    expect(stolen.statusCode).toBe(409);
    expect(stolen.json().error.code).toBe('lease_lost');
    const wrong = await call('POST', `/api/v1/jobs/${r.job_id}/complete`, a.credential, {
      path: 'p',
      blake3: 'b'.repeat(64),
      size: 1024,
    });
    expect(wrong.json().error.code).toBe('checksum_mismatch');
    const done = await call('POST', `/api/v1/jobs/${r.job_id}/complete`, a.credential, {
      path: '31/mysql/111111/3306/x.xb',
      blake3: job?.blake3,
      size: 1024,
    });
    expect(done.statusCode).toBe(200);
    const again = await call('POST', `/api/v1/jobs/${r.job_id}/complete`, a.credential, {
      path: '31/mysql/111111/3306/x.xb',
      blake3: job?.blake3,
      size: 1024,
    });
    expect(again.statusCode).toBe(200);
    const backups = await call('GET', '/api/v1/backups', t.tokens.viewer);
    expect(backups.json().items[0]).toMatchObject({
      storage_node: 'node-a',
      transfer_state: 'done',
      stored_time: new Date(now).toISOString(),
    });
    const byOther = await call('POST', `/api/v1/jobs/${r.job_id}/complete`, b.credential, {
      path: 'p',
      blake3: job?.blake3,
      size: 1024,
    });
    expect(byOther.json().error.code).toBe('lease_lost');
  });

  it('retries a failed job with backoff and marks it dead after max_attempts, visible in the API', async () => {
    const node = await enrollNode('node-a');
    const r = await report({ filename: 'bad.xb' });
    for (let attempt = 1; attempt <= 5; attempt += 1) {
      const [job] = await lease(node.credential, 1);
      expect(job?.attempt).toBe(attempt);
      const failed = await call('POST', `/api/v1/jobs/${r.job_id}/fail`, node.credential, {
        code: 'checksum_mismatch',
        error: 'blake3 differs',
      });
      if (attempt < 5) {
        expect(failed.json().state).toBe('queued');
        expect(await lease(node.credential, 1)).toEqual([]);
        now = Date.parse(failed.json().next_attempt_at);
      } else {
        expect(failed.json()).toEqual({ state: 'dead', next_attempt_at: null });
      }
    }
    const dead = await call('GET', '/api/v1/jobs?state=dead', t.tokens.viewer);
    expect(dead.json().items).toHaveLength(1);
    expect(dead.json().items[0]).toMatchObject({ id: r.job_id, attempts: 5, filename: 'bad.xb' });
    expect(dead.json().items[0].last_error).toContain('checksum_mismatch on node node-a: blake3 differs');
  });

  it('returns an expired lease to the queue for another node, and kills it on the last attempt', async () => {
    const a = await enrollNode('node-a');
    const b = await enrollNode('node-b');
    const r = await report({ filename: 'y.xb' });
    await lease(a.credential, 1);
    now += 61_000;
    expect(await sweepExpiredLeases(t.catalog.db, now)).toEqual({ requeued: 1, dead: 0 });
    const [taken] = await lease(b.credential, 1);
    expect(taken?.job_id).toBe(r.job_id);
    const late = await call('POST', `/api/v1/jobs/${r.job_id}/progress`, a.credential, { bytes_done: 5 });
    expect(late.json().error.code).toBe('lease_lost');
    await t.catalog.db.updateTable('transfer_jobs').set({ attempts: 5 }).where('id', '=', r.job_id).execute();
    now += 61_000;
    expect(await sweepExpiredLeases(t.catalog.db, now)).toEqual({ requeued: 0, dead: 1 });
  });

  it('leases nothing to a node paused by an admin, and only its own cluster', async () => {
    await t.catalog.db
      .insertInto('clusters')
      .values({ name: 'east', description: '', created_at: 0 })
      .execute();
    const east = await enrollNode('east-1', { cluster: 'east' });
    const main = await enrollNode('main-1');
    await report({ filename: 'z.xb' }); // unregistered: the default cluster
    expect(await lease(east.credential, 5)).toEqual([]);
    await call('PATCH', `/api/v1/nodes/${main.node_id}`, t.tokens.operator, { paused_by_admin: true });
    expect(await lease(main.credential, 5)).toEqual([]);
    await call('PATCH', `/api/v1/nodes/${main.node_id}`, t.tokens.operator, { paused_by_admin: false });
    expect(await lease(main.credential, 5)).toHaveLength(1);
  });
});
