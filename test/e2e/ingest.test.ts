import { sql } from 'kysely';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resetHost } from '../../src/admin/reset-host.js';
import { storeReports } from '../../src/server/ingest.js';
import type { Report } from '../../src/shared/report.js';
import { BACKENDS, type TestApp, testApp } from '../support/catalog-backends.js';
import { stopSharedPostgres } from '../support/postgres.js';
import { failedReport, sampleReport } from '../support/report-fixture.js';

afterAll(stopSharedPostgres);

describe.each(BACKENDS)('ingest on %s', (backend) => {
  let t: TestApp;
  let credential: string;

  const enroll = async (serverId: string): Promise<string> => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/agents/enroll',
      headers: { authorization: `Bearer ${t.tokens.enroll}` },
      payload: { server_id: serverId },
    });
    expect(res.statusCode).toBe(201);
    return res.json<{ credential: string }>().credential;
  };
  const post = (body: unknown, as = credential) =>
    t.app.inject({
      method: 'POST',
      url: '/api/v1/reports',
      headers: { authorization: `Bearer ${as}`, 'content-type': 'application/json' },
      payload: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const counts = async () => ({
    backups: Number(
      (
        await t.catalog.db
          .selectFrom('backups')
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    ),
    jobs: Number(
      (
        await t.catalog.db
          .selectFrom('transfer_jobs')
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    ),
  });
  const register = async () => {
    const db = t.catalog.db;
    await db.insertInto('businesses').values({ game_id: '31', name: 'Sample game', created_at: 0 }).execute();
    const cluster = await db
      .insertInto('clusters')
      .values({ name: 'east', description: '', created_at: 0 })
      .returning('id')
      .executeTakeFirstOrThrow();
    await db
      .insertInto('instances')
      .values({
        server_id: '111111',
        type: 'mysql',
        instance: '3306',
        name: 'mysql3306',
        game_id: '31',
        cluster_id: cluster.id,
        priority: 'high',
        schedule: null,
        interval_seconds: 3600,
        timezone: 'UTC',
        grace_seconds: 3000,
        retention_days: null,
        created_at: 0,
        updated_at: 0,
      })
      .execute();
    return cluster.id;
  };

  beforeEach(async () => {
    t = await testApp(backend);
    credential = await enroll('111111');
  });
  afterEach(async () => {
    await t.cleanup();
  });

  it('stores a report with its queued job, and a repeated report_id changes nothing', async () => {
    const report = sampleReport();
    const first = await post(report);
    expect(first.statusCode).toBe(201);
    const receipt = first.json();
    expect(receipt).toMatchObject({ duplicate: false, report_id: report.report_id });
    expect(receipt.job_id).toEqual(expect.any(Number));

    const again = await post({ ...report, filename: 'other.tar.gz', size: 5 });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({
      duplicate: true,
      backup_id: receipt.backup_id,
      job_id: receipt.job_id,
    });
    expect(await counts()).toEqual({ backups: 1, jobs: 1 });
    const row = await t.catalog.db.selectFrom('backups').selectAll().executeTakeFirstOrThrow();
    expect(row.filename).toBe(report.filename);
    expect(row.size).toBe(report.size);
  });

  it('stores a failed report without a transfer job', async () => {
    const res = await post(failedReport());
    expect(res.statusCode).toBe(201);
    expect(res.json().job_id).toBeNull();
    expect(await counts()).toEqual({ backups: 1, jobs: 0 });
  });

  it('flags an unregistered instance illegal and still queues it in the default cluster', async () => {
    const res = await post(sampleReport());
    expect(res.json()).toMatchObject({ legality: 'illegal' });
    expect(res.json().illegal_reason).toContain('111111/mysql/3306 is not registered');
    const job = await t.catalog.db
      .selectFrom('transfer_jobs')
      .innerJoin('clusters', 'clusters.id', 'transfer_jobs.cluster_id')
      .select(['clusters.name', 'transfer_jobs.state', 'transfer_jobs.priority'])
      .executeTakeFirstOrThrow();
    expect(job).toEqual({ name: 'default', state: 'queued', priority: 2 });
  });

  it('takes business, cluster and priority from the registry', async () => {
    const clusterId = await register();
    const res = await post(sampleReport());
    expect(res.json()).toMatchObject({ legality: 'legal', illegal_reason: null });
    const job = await t.catalog.db.selectFrom('transfer_jobs').selectAll().executeTakeFirstOrThrow();
    expect(job.cluster_id).toBe(clusterId);
    expect(job.priority).toBe(1); // high
    const instance = await t.catalog.db.selectFrom('instances').selectAll().executeTakeFirstOrThrow();
    expect(instance.last_success_at).toBe(Date.parse('2026-11-26T04:00:00.000Z'));
    // A run's own --priority wins over the registry's.
    await post(sampleReport({ priority: 'critical' }));
    const jobs = await t.catalog.db.selectFrom('transfer_jobs').select('priority').orderBy('id').execute();
    expect(jobs.map((j) => j.priority)).toEqual([1, 0]);
  });

  it('flags a business mismatch and an unknown business with reasons', async () => {
    await register();
    await t.catalog.db
      .insertInto('businesses')
      .values({ game_id: '40', name: 'Other', created_at: 0 })
      .execute();
    const mismatch = await post(sampleReport({ game_id: '40' }));
    expect(mismatch.json().legality).toBe('illegal');
    expect(mismatch.json().illegal_reason).toBe(
      'business mismatch: the agent reports game_id 40, the registry says 31',
    );
    const unknown = await post(sampleReport({ game_id: '99' }));
    expect(unknown.json().illegal_reason).toContain('unknown business: game_id 99 is not registered');
    const rows = await t.catalog.db
      .selectFrom('backups')
      .select(['game_id', 'reported_game_id'])
      .orderBy('id')
      .execute();
    expect(rows).toEqual([
      { game_id: '31', reported_game_id: '40' },
      { game_id: '31', reported_game_id: '99' },
    ]);
  });

  it('links an incremental to its base full', async () => {
    const full = await post(sampleReport({ filename: 'full.xb', kind: 'full' }));
    const inc = await post(
      sampleReport({
        filename: 'inc1.xb',
        kind: 'incremental',
        base_filename: 'full.xb',
        base_created_at: '2026-11-26T04:00:00.000Z',
        created_at: '2026-11-26T05:00:00.000Z',
        finished_at: '2026-11-26T05:01:00.000Z',
      }),
    );
    const row = await t.catalog.db
      .selectFrom('backups')
      .select(['base_backup_id', 'base_created_at'])
      .where('id', '=', inc.json().backup_id)
      .executeTakeFirstOrThrow();
    expect(row.base_backup_id).toBe(full.json().backup_id);
    expect(row.base_created_at).toBe(Date.parse('2026-11-26T04:00:00.000Z'));
  });

  it('refuses a credential whose host does not match server_id with 403, storing nothing', async () => {
    const res = await post(sampleReport({ server_id: '222222' }));
    expect(res.statusCode).toBe(403);
    expect(res.json().error.code).toBe('server_id_mismatch');
    expect(await counts()).toEqual({ backups: 0, jobs: 0 });
  });

  it('refuses a report_id already used by another host', async () => {
    const report = sampleReport();
    expect((await post(report)).statusCode).toBe(201);
    const other = await enroll('222222');
    const res = await post({ ...report, server_id: '222222' }, other);
    expect(res.statusCode).toBe(409);
    expect(res.json().error.code).toBe('report_id_conflict');
    expect(await counts()).toEqual({ backups: 1, jobs: 1 });
  });

  it('rejects unregistered instances under the reject policy', async () => {
    await t.cleanup();
    t = await testApp(backend, { policy: 'reject' });
    credential = await enroll('111111');
    const res = await post(sampleReport());
    expect(res.statusCode).toBe(403);
    expect(res.json().error).toEqual({
      code: 'instance_not_registered',
      message: 'instance 111111/mysql/3306 is not registered',
    });
    expect(await counts()).toEqual({ backups: 0, jobs: 0 });
  });

  it('answers many concurrent copies of one report with exactly one row', async () => {
    const report = sampleReport();
    const answers = await Promise.all(Array.from({ length: 20 }, () => post(report)));
    const codes = answers.map((a) => a.statusCode).sort();
    expect(codes.filter((c) => c === 201)).toHaveLength(1);
    expect(codes.filter((c) => c === 200)).toHaveLength(19);
    expect(new Set(answers.map((a) => a.json().backup_id)).size).toBe(1);
    expect(await counts()).toEqual({ backups: 1, jobs: 1 });
  });

  it('stores nothing when the transaction fails after the backup row, and the retry stores exactly one', async () => {
    if (backend === 'sqlite') {
      await sql`create trigger fail_jobs before insert on transfer_jobs begin select raise(abort, 'injected failure'); end`.execute(
        t.catalog.db,
      );
    } else {
      await sql`create function fail_jobs() returns trigger language plpgsql as $$ begin raise exception 'injected failure'; end $$`.execute(
        t.catalog.db,
      );
      await sql`create trigger fail_jobs before insert on transfer_jobs for each row execute function fail_jobs()`.execute(
        t.catalog.db,
      );
    }
    const report = sampleReport();
    const res = await post(report);
    expect(res.statusCode).toBe(500);
    expect(res.json().error.code).toBe('internal');
    expect(await counts()).toEqual({ backups: 0, jobs: 0 });
    await sql`drop trigger fail_jobs${backend === 'postgres' ? sql` on transfer_jobs` : sql``}`.execute(
      t.catalog.db,
    );
    expect((await post(report)).statusCode).toBe(201);
    expect(await counts()).toEqual({ backups: 1, jobs: 1 });
  });

  it('stores a burst of concurrent reports as one group, each answered for itself', async () => {
    await register();
    const full = sampleReport({ filename: 'burst-full.xb', kind: 'full' });
    const incremental = sampleReport({
      filename: 'burst-inc.xb',
      kind: 'incremental',
      base_filename: 'burst-full.xb',
      created_at: '2026-11-26T05:00:00.000Z',
      finished_at: '2026-11-26T05:00:10.000Z',
    });
    const repeated = sampleReport({ filename: 'repeated.xb' });
    const others = Array.from({ length: 20 }, (_, i) =>
      sampleReport({ instance: String(4000 + i), filename: `o${i}.xb` }),
    );
    const failed = failedReport({ instance: '3307' });
    const fullAnswer = await post(full);
    const answers = await Promise.all([
      fullAnswer,
      post(incremental),
      post(repeated),
      post(repeated),
      post(failed),
      post(sampleReport({ server_id: '999' })),
      ...others.map((r) => post(r)),
    ]);
    const codes = answers.map((a) => a.statusCode);
    expect(codes.slice(0, 6)).toEqual([201, 201, expect.any(Number), expect.any(Number), 201, 403]);
    expect([codes[2], codes[3]].sort()).toEqual([200, 201]);
    expect(codes.slice(6).every((c) => c === 201)).toBe(true);
    expect(await counts()).toEqual({ backups: 24, jobs: 23 });
    const inc = await t.catalog.db
      .selectFrom('backups')
      .select('base_backup_id')
      .where('report_id', '=', incremental.report_id)
      .executeTakeFirstOrThrow();
    expect(inc.base_backup_id).toBe(answers[0]?.json().backup_id);
    const instance = await t.catalog.db.selectFrom('instances').selectAll().executeTakeFirstOrThrow();
    expect(instance.last_success_at).toBe(Date.parse('2026-11-26T05:00:00.000Z'));
    const host = await t.catalog.db
      .selectFrom('hosts')
      .selectAll()
      .where('server_id', '=', '111111')
      .executeTakeFirstOrThrow();
    expect(host.ip).toBe('10.0.2.62');
    expect(host.last_seen_at).not.toBeNull();
  });

  it('links an incremental to a full stored in the same group', async () => {
    const hostId = (await t.catalog.db.selectFrom('hosts').select('id').executeTakeFirstOrThrow()).id;
    const host = { hostId, serverId: '111111' };
    const full = sampleReport({ filename: 'g-full.xb', kind: 'full' });
    const incremental = sampleReport({
      filename: 'g-inc.xb',
      kind: 'incremental',
      base_filename: 'g-full.xb',
      created_at: '2026-11-26T05:00:00.000Z',
      finished_at: '2026-11-26T05:00:10.000Z',
    });
    const settings = { policy: 'accept' as const, maxAttempts: 5, defaultClusterId: 1 };
    const outcomes = await t.catalog.db.transaction().execute((trx) =>
      storeReports(
        trx,
        [
          { report: full, host },
          { report: incremental, host },
        ],
        settings,
        Date.now(),
      ),
    );
    const ids = outcomes.map((o) => (o.ok ? o.result.receipt.backup_id : null));
    const row = await t.catalog.db
      .selectFrom('backups')
      .select('base_backup_id')
      .where('id', '=', ids[1] ?? -1)
      .executeTakeFirstOrThrow();
    expect(row.base_backup_id).toBe(ids[0]);
  });

  it('refuses a report_id sent by two hosts in the same group to the second host', async () => {
    const hosts = await t.catalog.db.selectFrom('hosts').select(['id', 'server_id']).execute();
    const first = { hostId: hosts[0]?.id ?? -1, serverId: '111111' };
    const other = { hostId: first.hostId, serverId: '222222' };
    const report = sampleReport();
    const settings = { policy: 'accept' as const, maxAttempts: 5, defaultClusterId: 1 };
    const outcomes = await t.catalog.db.transaction().execute((trx) =>
      storeReports(
        trx,
        [
          { report, host: first },
          { report: { ...report, server_id: '222222' }, host: other },
        ],
        settings,
        Date.now(),
      ),
    );
    expect(outcomes[0]?.ok).toBe(true);
    expect(outcomes[1]).toMatchObject({ ok: false, error: { status: 409, code: 'report_id_conflict' } });
    expect(await counts()).toEqual({ backups: 1, jobs: 1 });
  });

  it('keeps one poisoned report from failing the others stored with it', async () => {
    if (backend === 'sqlite') {
      await sql`create trigger poison before insert on backups when new.filename = 'poison.xb' begin select raise(abort, 'injected failure'); end`.execute(
        t.catalog.db,
      );
    } else {
      await sql`create function poison() returns trigger language plpgsql as $$ begin if new.filename = 'poison.xb' then raise exception 'injected failure'; end if; return new; end $$`.execute(
        t.catalog.db,
      );
      await sql`create trigger poison before insert on backups for each row execute function poison()`.execute(
        t.catalog.db,
      );
    }
    const good = Array.from({ length: 8 }, (_, i) =>
      sampleReport({ instance: String(5000 + i), filename: `g${i}.xb` }),
    );
    const answers = await Promise.all([
      ...good.map((r) => post(r)),
      post(sampleReport({ filename: 'poison.xb' })),
    ]);
    expect(answers.map((a) => a.statusCode)).toEqual([...good.map(() => 201), 500]);
    expect(await counts()).toEqual({ backups: 8, jobs: 8 });
  });

  const bad: Array<[string, (r: Report) => unknown, number, string]> = [
    ['malformed JSON', () => '{"report_id": ', 400, 'malformed_json'],
    ['an unknown field', (r) => ({ ...r, extra: 1 }), 400, 'invalid_request'],
    ['a wrong type', (r) => ({ ...r, size: '1024' }), 400, 'invalid_request'],
    ['a negative size', (r) => ({ ...r, size: -1 }), 400, 'invalid_request'],
    ['a file name with /', (r) => ({ ...r, filename: 'a/b.tar' }), 400, 'invalid_request'],
    ['a file name ..', (r) => ({ ...r, filename: '..' }), 400, 'invalid_request'],
    ['a file name with NUL', (r) => ({ ...r, filename: 'a\u0000b' }), 400, 'invalid_request'],
    ['a file name over 255 bytes', (r) => ({ ...r, filename: 'é'.repeat(128) }), 400, 'invalid_request'],
    ['a server_id with ..', (r) => ({ ...r, server_id: '..' }), 400, 'invalid_request'],
    ['a non-IP host_ip', (r) => ({ ...r, host_ip: '127.0.0.0.1' }), 400, 'invalid_request'],
    ['a report_id that is no UUID', (r) => ({ ...r, report_id: 'x' }), 400, 'invalid_request'],
    ['ok without a file name', (r) => ({ ...r, filename: null }), 400, 'invalid_request'],
    ['a bad blake3', (r) => ({ ...r, blake3: 'abc' }), 400, 'invalid_request'],
    ['an oversized body', (r) => ({ ...r, output_tail: 'x'.repeat(70_000) }), 413, 'body_too_large'],
    ['an array', () => [], 400, 'invalid_request'],
  ];

  it.each(bad)('refuses %s with a precise error and stores nothing', async (_what, mutate, status, code) => {
    const good = sampleReport();
    expect((await post(good)).statusCode).toBe(201);
    const res = await post(mutate(sampleReport()));
    expect(res.statusCode).toBe(status);
    const body = res.json();
    expect(body.error.code).toBe(code);
    expect(body.error.message.length).toBeGreaterThan(5);
    expect(await counts()).toEqual({ backups: 1, jobs: 1 });
    const row = await t.catalog.db.selectFrom('backups').select('report_id').executeTakeFirstOrThrow();
    expect(row.report_id).toBe(good.report_id);
  });

  it('names the offending field', async () => {
    const res = await post({ ...sampleReport(), filename: '../../etc/passwd' });
    expect(res.json().error.message).toMatch(/^body\.filename: /);
  });

  it('keeps each credential to its own role', async () => {
    const noAuth = await t.app.inject({ method: 'POST', url: '/api/v1/reports', payload: sampleReport() });
    expect(noAuth.statusCode).toBe(401);
    const asAdmin = await post(sampleReport(), t.tokens.admin);
    expect(asAdmin.statusCode).toBe(403);
    const enrollWithAdmin = await t.app.inject({
      method: 'POST',
      url: '/api/v1/agents/enroll',
      headers: { authorization: `Bearer ${t.tokens.admin}` },
      payload: { server_id: '3' },
    });
    expect(enrollWithAdmin.statusCode).toBe(403);
    const listAsHost = await t.app.inject({
      method: 'GET',
      url: '/api/v1/backups',
      headers: { authorization: `Bearer ${credential}` },
    });
    expect(listAsHost.statusCode).toBe(403);
    const forged = await post(sampleReport(), `ubc_${'A'.repeat(43)}`);
    expect(forged.statusCode).toBe(401);
    expect(await counts()).toEqual({ backups: 0, jobs: 0 });
  });

  it('refuses to enroll a server_id that has a credential until an admin resets it', async () => {
    const again = await t.app.inject({
      method: 'POST',
      url: '/api/v1/agents/enroll',
      headers: { authorization: `Bearer ${t.tokens.enroll}` },
      payload: { server_id: '111111' },
    });
    expect(again.statusCode).toBe(409);
    expect(again.json().error.code).toBe('already_enrolled');
    expect(again.json().error.message).toContain('ubackup admin host reset --server-id 111111');
    // The real host keeps working.
    expect((await post(sampleReport(), credential)).statusCode).toBe(201);

    await resetHost(t.catalog, '111111', Date.now());
    const fresh = await enroll('111111');
    expect((await post(sampleReport(), fresh)).statusCode).toBe(201);
    const audit = await t.catalog.db
      .selectFrom('audit_log')
      .select('action')
      .where('subject', '=', 'host:111111')
      .execute();
    expect(audit.map((a) => a.action)).toEqual(['host.enroll', 'host.reset', 'host.reenroll']);
  });

  it('lists backups newest first with the old columns', async () => {
    await post(sampleReport({ filename: 'full.xb', kind: 'full' }));
    await post(
      sampleReport({
        filename: 'inc.xb',
        kind: 'incremental',
        base_filename: 'full.xb',
        base_created_at: '2026-11-26T04:00:00.000Z',
        created_at: '2026-11-26T05:00:00.000Z',
        finished_at: '2026-11-26T05:00:30.000Z',
      }),
    );
    await post(sampleReport({ server_id: '111111', instance: '3307', filename: 'x.xb' }));
    const res = await t.app.inject({
      method: 'GET',
      url: '/api/v1/backups?server_id=111111&type=mysql&instance=3306&limit=10',
      headers: { authorization: `Bearer ${t.tokens.viewer}` },
    });
    expect(res.statusCode).toBe(200);
    const items = res.json().items;
    expect(items.map((i: { file_name: string }) => i.file_name)).toEqual(['inc.xb', 'full.xb']);
    expect(items[0]).toMatchObject({
      status: 'ok',
      kind: 'incremental',
      host_ip: '10.0.2.62',
      backup_time: '2026-11-26T05:00:00.000Z',
      full_name: 'full.xb',
      full_time: '2026-11-26T04:00:00.000Z',
      stored_time: null,
      storage_node: null,
      transfer_state: 'queued',
      legality: 'illegal',
    });
    const limited = await t.app.inject({
      method: 'GET',
      url: '/api/v1/backups?limit=1',
      headers: { authorization: `Bearer ${t.tokens.viewer}` },
    });
    expect(limited.json().items).toHaveLength(1);
  });
});
