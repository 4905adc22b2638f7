import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NewBackup } from '../../src/catalog/schema.js';
import { loadRestorePlan } from '../../src/server/restore/load-restore-plan.js';
import { applyRetention } from '../../src/server/retention/apply-retention.js';
import { retentionPlans } from '../../src/server/retention/load-retention-plans.js';
import { backupRow } from '../support/backup-row.js';
import { BACKENDS, type TestApp, testApp } from '../support/catalog-backends.js';
import { stopSharedPostgres } from '../support/postgres.js';
import { sampleReport } from '../support/report-fixture.js';
import { seedRetentionHistory } from '../support/retention-history.js';

/**
 * Retention applied, in process over a real catalog (SQLite file and
 * PostgreSQL): the round's requests, the heartbeat's deletes, the nodes'
 * confirmations, permanent marks, and how restore plans, ingest and the
 * registry see it.
 */

afterAll(stopSharedPostgres);

const DAY = 86_400_000;

describe.each(BACKENDS)('retention applied on %s', (backend) => {
  let t: TestApp;
  let now: number;
  const ids = new Map<string, number>();
  const id = (name: string) => {
    const found = ids.get(name);
    if (found === undefined) throw new Error(`no backup named ${name}`);
    return found;
  };

  const insert = async (name: string, row: NewBackup) => {
    const inserted = await t.catalog.db
      .insertInto('backups')
      .values(row)
      .returning('id')
      .executeTakeFirstOrThrow();
    ids.set(name, inserted.id);
    return inserted.id;
  };
  const call = (method: 'GET' | 'POST' | 'PUT' | 'PATCH', url: string, as: string, payload?: unknown) =>
    t.app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${as}` },
      ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
    });
  const enrollNode = async (name: string) => {
    const res = await call('POST', '/api/v1/nodes/enroll', t.tokens.enroll, {
      name,
      weight: 4,
      reserve_bytes: 0,
      version: '0.1.0',
    });
    expect(res.statusCode).toBe(201);
    return res.json<{ credential: string }>().credential;
  };
  const heartbeat = async (credential: string) => {
    const res = await call('POST', '/api/v1/nodes/heartbeat', credential, {
      disk_total_bytes: 1e12,
      disk_free_bytes: 5e11,
      reserve_bytes: 0,
      paused_reserve: false,
      in_flight: [],
      bytes_per_second: 0,
      version: '0.1.0',
    });
    expect(res.statusCode).toBe(200);
    return res.json<{ deletes?: Array<{ backup_id: number; path: string }> }>().deletes;
  };
  const requested = async () =>
    (
      await t.catalog.db
        .selectFrom('backups')
        .select('id')
        .where('delete_requested_at', 'is not', null)
        .orderBy('id')
        .execute()
    ).map((r) => r.id);
  const audits = (action: string) =>
    t.catalog.db.selectFrom('audit_log').selectAll().where('action', '=', action).orderBy('id').execute();

  beforeEach(async () => {
    now = Date.parse('2026-11-27T12:00:00Z');
    t = await testApp(backend, { clock: () => new Date(now) });
    ids.clear();
    await seedRetentionHistory(insert, now);
    // 111111/mysql/3307 keeps no fulls for their own sake: only a kept incremental keeps its base.
    await t.catalog.db
      .insertInto('instances')
      .values({
        server_id: '111111',
        type: 'mysql',
        instance: '3307',
        name: 'mysql3307',
        game_id: '31',
        cluster_id: 1,
        priority: 'normal',
        schedule: null,
        interval_seconds: 3600,
        timezone: 'UTC',
        grace_seconds: 3000,
        retention_days: null,
        keep_fulls: 0,
        next_due_at: null,
        last_success_at: null,
        last_report_at: null,
        created_at: now,
        updated_at: now,
      })
      .execute();
    const on3307 = (name: string, age: number, overrides: Partial<NewBackup> = {}) =>
      insert(
        name,
        backupRow(now - age * DAY, {
          instance: '3307',
          filename: `${name}.xb`,
          stored_path: `31/mysql/111111/3307/${name}.xb`,
          ...overrides,
        }),
      );
    const neededBase = await on3307('neededBase', 30);
    await on3307('neededInc', 2, { kind: 'incremental', base_backup_id: neededBase });
    await on3307('lonelyFull', 40);
  });
  afterEach(async () => {
    await t.cleanup();
  });

  it('requests the deletes of expired backups only, once, with one audit entry per round that wrote', async () => {
    const round = await applyRetention(t.catalog, now);
    expect(round).toEqual({
      instances: 2,
      kept: 7,
      to_delete: 3,
      requested: 3,
      requested_bytes: 3 * 1024,
      held_back: 0,
    });
    expect(await requested()).toEqual([id('oldFull'), id('oldInc'), id('lonelyFull')].sort((a, b) => a - b));
    const row = await t.catalog.db
      .selectFrom('backups')
      .select(['delete_requested_at', 'delete_reason', 'deleted_at'])
      .where('id', '=', id('oldFull'))
      .executeTakeFirstOrThrow();
    expect(row).toEqual({
      delete_requested_at: now,
      delete_reason: expect.stringMatching(/^older than 15 days, not one of the last 2 fulls/),
      deleted_at: null,
    });
    const lonely = await t.catalog.db
      .selectFrom('backups')
      .select('delete_reason')
      .where('id', '=', id('lonelyFull'))
      .executeTakeFirstOrThrow();
    expect(lonely.delete_reason).toMatch(/not one of the last 0 fulls/);
    const [entry, ...more] = await audits('retention.apply');
    expect(more).toEqual([]);
    expect(entry).toMatchObject({ actor: 'system', subject: 'retention', at: now });
    expect(JSON.parse(entry?.detail ?? '{}')).toMatchObject({ requested: 3, kept: 7 });

    // The pending deletes are neither decided again nor counted: the next round changes nothing.
    now += 60_000;
    const again = await applyRetention(t.catalog, now);
    expect(again).toMatchObject({ instances: 2, requested: 0, to_delete: 0, kept: 7 });
    expect(await requested()).toEqual([id('oldFull'), id('oldInc'), id('lonelyFull')].sort((a, b) => a - b));
    expect(await audits('retention.apply')).toHaveLength(1);
    const plans = await retentionPlans(t.catalog, {}, now);
    const decided = plans.flatMap((p) => p.decisions.map((d) => d.backup_id));
    expect(decided).not.toContain(id('oldFull'));
    expect(decided).toContain(id('neededBase'));
  });

  it('never requests a permanent backup, a kept one, or a base full a kept incremental needs', async () => {
    // One instance per page: the same round as in one page.
    expect(await applyRetention(t.catalog, now, { pageInstances: 1 })).toMatchObject({
      instances: 2,
      requested: 3,
    });
    const pending = await requested();
    for (const name of ['permanent', 'full30', 'full20', 'inc19', 'inc2', 'neededBase', 'neededInc']) {
      expect(pending, name).not.toContain(id(name));
    }
    const deleted = await t.catalog.db
      .selectFrom('backups')
      .select(['delete_requested_at'])
      .where('id', '=', id('deleted'))
      .executeTakeFirstOrThrow();
    expect(deleted.delete_requested_at).toBeNull();
  });

  it('holds back a base full while an incremental on it has just arrived, until the margin has passed', async () => {
    // Made long ago, received now (an agent catching up): the plan does not keep it, so not its base either.
    await insert(
      'lateInc',
      backupRow(now - 25 * DAY, {
        instance: '3307',
        kind: 'incremental',
        base_backup_id: id('lonelyFull'),
        filename: 'late.xb',
        stored_path: null,
        stored_node: null,
        received_at: now - 1000,
      }),
    );
    const round = await applyRetention(t.catalog, now);
    expect(round).toMatchObject({ to_delete: 3, requested: 2, held_back: 1 });
    expect(await requested()).not.toContain(id('lonelyFull'));
    const later = await applyRetention(t.catalog, now, { arrivalMarginMs: 0 });
    expect(later).toMatchObject({ requested: 1 });
    expect(await requested()).toContain(id('lonelyFull'));
  });

  it('sends a node its pending deletes in the heartbeat reply and records its confirmations', async () => {
    const nodeA = await enrollNode('node-a');
    const nodeB = await enrollNode('node-b');
    expect(await heartbeat(nodeA)).toEqual([]);
    await applyRetention(t.catalog, now);
    // One more pending delete, requested earlier: it comes first.
    await t.catalog.db
      .updateTable('backups')
      .set({ delete_requested_at: now - 1000, delete_reason: 'test' })
      .where('id', '=', id('full30'))
      .execute();
    const deletes = await heartbeat(nodeA);
    expect(deletes?.map((d) => d.backup_id)).toEqual([
      id('full30'),
      ...[id('oldFull'), id('oldInc'), id('lonelyFull')].sort((a, b) => a - b),
    ]);
    expect(deletes?.find((d) => d.backup_id === id('oldInc'))?.path).toBe('31/mysql/111111/3306/inc-old.xb');
    expect(await heartbeat(nodeB)).toEqual([]);

    // Another node cannot confirm node-a's deletes; viewers cannot confirm at all.
    const foreign = await call('POST', '/api/v1/nodes/deletions', nodeB, { deleted: [id('oldFull')] });
    expect(foreign.json()).toEqual({ confirmed: 0 });
    expect((await call('POST', '/api/v1/nodes/deletions', t.tokens.admin, { deleted: [] })).statusCode).toBe(
      403,
    );
    const bad = await call('POST', '/api/v1/nodes/deletions', nodeA, { deleted: ['x'] });
    expect(bad.statusCode).toBe(400);

    now += 5000;
    // Kept and unknown ids are ignored.
    const confirm = await call('POST', '/api/v1/nodes/deletions', nodeA, {
      deleted: [id('oldFull'), id('oldInc'), id('inc2'), 999_999],
    });
    expect(confirm.statusCode).toBe(200);
    expect(confirm.json()).toEqual({ confirmed: 2 });
    const rows = await t.catalog.db
      .selectFrom('backups')
      .select(['id', 'deleted_at', 'delete_requested_at', 'delete_reason'])
      .where('id', 'in', [id('oldFull'), id('oldInc'), id('inc2')])
      .orderBy('id')
      .execute();
    expect(rows).toEqual([
      {
        id: id('oldFull'),
        deleted_at: now,
        delete_requested_at: null,
        delete_reason: expect.stringMatching(/^older than/),
      },
      {
        id: id('oldInc'),
        deleted_at: now,
        delete_requested_at: null,
        delete_reason: expect.stringMatching(/^older than/),
      },
      { id: id('inc2'), deleted_at: null, delete_requested_at: null, delete_reason: null },
    ]);
    expect((await heartbeat(nodeA))?.map((d) => d.backup_id)).toEqual([id('full30'), id('lonelyFull')]);
    const [audit] = await audits('retention.deleted');
    expect(audit).toMatchObject({ actor: 'node:node-a', subject: 'node:node-a' });
    expect(JSON.parse(audit?.detail ?? '{}')).toEqual({ backups: [id('oldFull'), id('oldInc')] });
    // A repeated confirmation changes nothing.
    const repeat = await call('POST', '/api/v1/nodes/deletions', nodeA, { deleted: [id('oldFull')] });
    expect(repeat.json()).toEqual({ confirmed: 0 });
  });

  it('treats a backup whose delete is requested as deleted in restore plans', async () => {
    const identity = { server_id: '111111', type: 'mysql', instance: '3306' };
    const at = now - 39 * DAY + 1000;
    const before = await loadRestorePlan(t.catalog.db, identity, at);
    expect(before).toMatchObject({ ok: true, target: { id: id('oldInc') } });
    await applyRetention(t.catalog, now);
    // The chain is going: the plan falls back to the permanent full before it, and says why.
    const after = await loadRestorePlan(t.catalog.db, identity, at);
    expect(after).toMatchObject({ ok: true, target: { id: id('permanent') } });
    if (!after.ok) throw new Error('unreachable');
    expect(after.skipped[0]).toMatchObject({
      backup_id: id('oldInc'),
      missing: [{ backup_id: id('oldInc'), role: 'target', problem: 'deleted' }],
    });
    expect(after.skipped[0]?.reason).toMatch(/was deleted/);
    await t.catalog.db
      .updateTable('backups')
      .set({ delete_requested_at: now, delete_reason: 'test' })
      .where('id', '=', id('permanent'))
      .execute();
    const none = await loadRestorePlan(t.catalog.db, identity, at);
    expect(none).toMatchObject({ ok: false, code: 'chain_broken' });
    // What is kept still restores.
    const kept = await loadRestorePlan(t.catalog.db, identity, now);
    expect(kept).toMatchObject({ ok: true, target: { id: id('inc2') } });
  });

  it('marks a backup permanent and withdraws the pending deletes its restore needs', async () => {
    await applyRetention(t.catalog, now);
    const url = (name: string) => `/api/v1/backups/${id(name)}/permanent`;
    expect((await call('PUT', url('oldInc'), t.tokens.viewer, { permanent: true })).statusCode).toBe(403);
    expect(
      (await call('PUT', '/api/v1/backups/999999/permanent', t.tokens.operator, { permanent: true }))
        .statusCode,
    ).toBe(404);
    expect((await call('PUT', url('oldInc'), t.tokens.operator, { permanent: 'yes' })).statusCode).toBe(400);
    const gone = await call('PUT', url('deleted'), t.tokens.operator, { permanent: true });
    expect(gone.statusCode).toBe(409);
    expect(gone.json().error.code).toBe('deleted');

    const marked = await call('PUT', url('oldInc'), t.tokens.operator, { permanent: true });
    expect(marked.statusCode).toBe(200);
    expect(marked.json()).toEqual({
      id: id('oldInc'),
      permanent: true,
      delete_cancelled: [id('oldFull'), id('oldInc')].sort((a, b) => a - b),
      needs_deleted: [],
    });
    expect(await requested()).toEqual([id('lonelyFull')]);
    const [audit] = await audits('backup.permanent');
    expect(audit).toMatchObject({ actor: 'token:test-operator', subject: `backup:${id('oldInc')}` });
    // Kept from now on: its base full for it.
    expect(await applyRetention(t.catalog, now + 1000)).toMatchObject({ requested: 0 });
    const plans = await retentionPlans(
      t.catalog,
      { instance: { server_id: '111111', type: 'mysql', instance: '3306' } },
      now,
    );
    const rules = Object.fromEntries(plans[0]?.decisions.map((d) => [d.backup_id, d.rule]) ?? []);
    expect(rules[id('oldInc')]).toBe('permanent');
    expect(rules[id('oldFull')]).toBe('base_of_kept');

    // Unmarked: the next round requests them again.
    const unmarked = await call('PUT', url('oldInc'), t.tokens.operator, { permanent: false });
    expect(unmarked.json()).toMatchObject({ permanent: false, delete_cancelled: [] });
    expect(await applyRetention(t.catalog, now + 2000)).toMatchObject({ requested: 2 });
  });

  it('gives an incremental no base when the full it names is deleted or going', async () => {
    const enrolled = await call('POST', '/api/v1/agents/enroll', t.tokens.enroll, { server_id: '111111' });
    const host = enrolled.json<{ credential: string }>().credential;
    const report = async (filename: string, base: string) => {
      const time = new Date(now - DAY).toISOString();
      const res = await call(
        'POST',
        '/api/v1/reports',
        host,
        sampleReport({
          kind: 'incremental',
          filename,
          base_filename: base,
          base_created_at: new Date(now - 20 * DAY).toISOString(),
          created_at: time,
          finished_at: time,
          log: `ok\n${filename}\n`,
        }),
      );
      expect(res.statusCode).toBe(201);
      const backupId = res.json<{ backup_id: number }>().backup_id;
      const row = await t.catalog.db
        .selectFrom('backups')
        .select('base_backup_id')
        .where('id', '=', backupId)
        .executeTakeFirstOrThrow();
      return row.base_backup_id;
    };
    expect(await report('inc-a.xb', 'full-20.xb')).toBe(id('full20'));
    await applyRetention(t.catalog, now);
    expect(await report('inc-b.xb', 'full-old.xb')).toBeNull(); // delete requested
    expect(await report('inc-c.xb', 'gone.xb')).toBeNull(); // deleted
  });

  it('takes retention settings for businesses, types and instances, validated, null to unset', async () => {
    const business = await call('POST', '/api/v1/businesses', t.tokens.operator, {
      game_id: '31',
      name: 'Game',
      retention_days: 30,
      keep_fulls: 1,
    });
    expect(business.statusCode).toBe(201);
    expect(business.json()).toMatchObject({ game_id: '31', retention_days: 30, keep_fulls: 1 });
    const type = await call('POST', '/api/v1/backup-types', t.tokens.operator, { name: 'mysql' });
    expect(type.json()).toMatchObject({
      name: 'mysql',
      description: '',
      retention_days: null,
      keep_fulls: null,
    });
    const patchedType = await call('PATCH', '/api/v1/backup-types/mysql', t.tokens.operator, {
      keep_fulls: 3,
    });
    expect(patchedType.json()).toMatchObject({ retention_days: null, keep_fulls: 3 });
    const policyOf3306 = async () =>
      (
        await retentionPlans(
          t.catalog,
          { instance: { server_id: '111111', type: 'mysql', instance: '3306' } },
          now,
        )
      )[0]?.policy;
    expect(await policyOf3306()).toEqual({
      retentionDays: 30,
      keepFulls: 3,
      source: { retentionDays: 'business', keepFulls: 'type' },
    });
    const created = await call('POST', '/api/v1/instances', t.tokens.operator, {
      name: 'mysql3306',
      server_id: '111111',
      type: 'mysql',
      instance: '3306',
      game_id: '31',
      retention_days: 7,
    });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ retention_days: 7, keep_fulls: null });
    const instanceId = created.json<{ id: number }>().id;
    const patched = await call('PATCH', `/api/v1/instances/${instanceId}`, t.tokens.operator, {
      keep_fulls: 0,
    });
    expect(patched.json()).toMatchObject({ retention_days: 7, keep_fulls: 0 });
    expect(await policyOf3306()).toMatchObject({ retentionDays: 7, keepFulls: 0 });
    const unset = await call('PATCH', `/api/v1/instances/${instanceId}`, t.tokens.operator, {
      retention_days: null,
      keep_fulls: null,
    });
    expect(unset.json()).toMatchObject({ retention_days: null, keep_fulls: null });
    expect(
      (await call('PATCH', '/api/v1/businesses/31', t.tokens.operator, { retention_days: null })).json(),
    ).toMatchObject({
      retention_days: null,
      keep_fulls: 1,
    });
    expect(await policyOf3306()).toEqual({
      retentionDays: 15,
      keepFulls: 3,
      source: { retentionDays: 'default', keepFulls: 'type' },
    });

    for (const body of [
      { retention_days: 0 },
      { retention_days: 3651 },
      { keep_fulls: -1 },
      { keep_fulls: 1001 },
      { keep_fulls: 1.5 },
    ]) {
      for (const url of [
        '/api/v1/businesses/31',
        '/api/v1/backup-types/mysql',
        `/api/v1/instances/${instanceId}`,
      ]) {
        const res = await call('PATCH', url, t.tokens.operator, body);
        expect(res.statusCode, `${url} ${JSON.stringify(body)}`).toBe(400);
      }
    }
    const [audit] = await audits('backup_type.update');
    expect(JSON.parse(audit?.detail ?? '{}')).toEqual({ keep_fulls: { from: null, to: 3 } });
  });
});
