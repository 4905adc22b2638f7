import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NewBackup } from '../../src/catalog/schema.js';
import { backupRow } from '../support/backup-row.js';
import { BACKENDS, type TestApp, testApp } from '../support/catalog-backends.js';
import { stopSharedPostgres } from '../support/postgres.js';

afterAll(stopSharedPostgres);

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const HASH = 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262';
const OTHER_HASH = '0'.repeat(64);

/** The scrub's API in-process on both catalogs: what a node is leased, and what its findings do. */
describe.each(BACKENDS)('scrub API on %s', (backend) => {
  let t: TestApp;
  let now: number;
  let nodeA: string;

  const call = (url: string, as: string, payload: Record<string, unknown>) =>
    t.app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${as}` }, payload });
  const lease = (as: string, periodSeconds: number, limit = 256) =>
    call('/api/v1/nodes/scrub/lease', as, { period_seconds: periodSeconds, limit });
  const leasedIds = async (as: string, periodSeconds: number, limit = 256) => {
    const res = await lease(as, periodSeconds, limit);
    expect(res.statusCode, res.body).toBe(200);
    return res.json<{ files: { backup_id: number }[] }>().files.map((f) => f.backup_id);
  };
  const report = (as: string, results: Record<string, unknown>[]) =>
    call('/api/v1/nodes/scrub/results', as, { results });

  const enrollNode = async (name: string) => {
    const res = await call('/api/v1/nodes/enroll', t.tokens.enroll, {
      name,
      cluster: 'default',
      address: null,
      weight: 4,
      reserve_bytes: 0,
      version: '0.1.0',
    });
    expect(res.statusCode).toBe(201);
    return res.json<{ credential: string }>().credential;
  };
  const insert = async (createdAt: number, overrides: Partial<NewBackup> = {}) => {
    const row = await t.catalog.db
      .insertInto('backups')
      .values(backupRow(createdAt, { scrubbed_at: createdAt + 120_000, ...overrides }))
      .returning('id')
      .executeTakeFirstOrThrow();
    return row.id;
  };
  const copy = (id: number) =>
    t.catalog.db
      .selectFrom('backups')
      .select(['verified_at', 'scrubbed_at', 'scrub_error'])
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
  const integrityAlerts = () =>
    t.catalog.db
      .selectFrom('alerts')
      .select(['subject', 'state', 'summary'])
      .where('type', '=', 'integrity')
      .execute();

  beforeEach(async () => {
    now = Date.parse('2026-11-27T12:00:00Z');
    t = await testApp(backend, { clock: () => new Date(now) });
    nodeA = await enrollNode('node-a');
  });
  afterEach(async () => {
    await t.cleanup();
  });

  it("leases the node's own live copies that are due, never checked first, then the oldest check", async () => {
    const base = now - 30 * DAY;
    const old = await insert(base, { filename: 'old.xb', scrubbed_at: now - 20 * DAY });
    const older = await insert(base + HOUR, { filename: 'older.xb', scrubbed_at: now - 25 * DAY });
    const never = await insert(base + 2 * HOUR, { filename: 'never.xb', scrubbed_at: null });
    await insert(base + 3 * HOUR, { filename: 'fresh.xb', scrubbed_at: now - DAY });
    await insert(base + 4 * HOUR, { filename: 'deleted.xb', scrubbed_at: null, deleted_at: now - DAY });
    await insert(base + 5 * HOUR, {
      filename: 'going.xb',
      scrubbed_at: null,
      delete_requested_at: now - HOUR,
    });
    const elsewhere = await insert(base + 6 * HOUR, {
      filename: 'b.xb',
      stored_node: 'node-b',
      scrubbed_at: null,
    });
    await insert(base + 7 * HOUR, {
      filename: 'pending.xb',
      stored_node: null,
      stored_path: null,
      scrubbed_at: null,
    });

    const week = 7 * 86_400;
    expect(await leasedIds(nodeA, week)).toEqual([never, older, old]);
    expect(await leasedIds(nodeA, week, 2)).toEqual([never, older]);
    expect(await leasedIds(nodeA, 22 * 86_400)).toEqual([never, older]);
    const res = await lease(nodeA, week, 1);
    expect(res.json().files).toEqual([
      { backup_id: never, path: '31/mysql/111111/3306/never.xb', size: 1024, blake3: HASH },
    ]);
    // Another node is leased only its own.
    expect(await leasedIds(await enrollNode('node-b'), week)).toEqual([elsewhere]);
  });

  it('needs a node credential and a bounded lease', async () => {
    expect((await lease(t.tokens.admin, 60)).statusCode).toBe(403);
    expect((await lease(nodeA, 60, 257)).statusCode).toBe(400);
    expect((await lease(nodeA, 0)).statusCode).toBe(400);
    expect((await report(t.tokens.operator, [])).statusCode).toBe(403);
    expect((await report(nodeA, [{ backup_id: 1, outcome: 'gone' }])).statusCode).toBe(400);
  });

  it('a damaged copy becomes unverified with the finding and an integrity alert; whole again, it is verified', async () => {
    const full = await insert(now - 3 * DAY, { filename: 'full.xb' });
    const inc = await insert(now - 2 * DAY, {
      filename: 'inc.xb',
      kind: 'incremental',
      base_backup_id: full,
    });
    const whole = await insert(now - DAY, { filename: 'whole.xb' });
    const before = await copy(whole);

    now += HOUR;
    const found = `BLAKE3 differs (found ${OTHER_HASH}, expected ${HASH})`;
    const res = await report(nodeA, [
      { backup_id: full, outcome: 'missing', detail: '"31/mysql/111111/3306/full.xb" is missing' },
      { backup_id: inc, outcome: 'mismatch', detail: `${found}\nsecond line` },
      { backup_id: whole, outcome: 'ok' },
    ]);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({ recorded: 3 });
    const at = new Date(now).toISOString();
    expect(await copy(full)).toEqual({
      verified_at: null,
      scrubbed_at: now,
      scrub_error: `scrub on node node-a at ${at}: "31/mysql/111111/3306/full.xb" is missing`,
    });
    expect(await copy(inc)).toEqual({
      verified_at: null,
      scrubbed_at: now,
      scrub_error: `scrub on node node-a at ${at}: ${found} second line`,
    });
    // A whole copy only records the check.
    expect(await copy(whole)).toEqual({ ...before, scrubbed_at: now });
    expect(await integrityAlerts()).toEqual([
      { subject: '111111/mysql/3306', state: 'open', summary: expect.stringContaining('scrub of') },
    ]);
    // The backup list shows the finding to anyone who reads it.
    const listed = await t.app.inject({
      method: 'GET',
      url: '/api/v1/backups?server_id=111111&type=mysql&instance=3306',
      headers: { authorization: `Bearer ${t.tokens.viewer}` },
    });
    expect(listed.statusCode, listed.body).toBe(200);
    const byId = new Map(
      listed
        .json<{ items: { id: number; verified_at: string | null; scrub_error: string | null }[] }>()
        .items.map((i) => [i.id, i]),
    );
    expect(byId.get(inc)).toMatchObject({ verified_at: null, scrub_error: expect.stringContaining(found) });
    expect(byId.get(whole)).toMatchObject({
      verified_at: before.verified_at === null ? null : new Date(before.verified_at).toISOString(),
      scrub_error: null,
    });

    // The full is put back: verified again, but the alert stays while the incremental is damaged.
    now += HOUR;
    expect((await report(nodeA, [{ backup_id: full, outcome: 'ok' }])).json()).toEqual({ recorded: 1 });
    expect(await copy(full)).toEqual({ verified_at: now, scrubbed_at: now, scrub_error: null });
    expect((await integrityAlerts())[0]?.state).toBe('open');
    // A finding without a detail gets the outcome's words.
    expect((await report(nodeA, [{ backup_id: inc, outcome: 'size_mismatch' }])).statusCode).toBe(200);
    expect((await copy(inc)).scrub_error).toBe(
      `scrub on node node-a at ${new Date(now).toISOString()}: the size differs from the catalog's`,
    );
    now += HOUR;
    await report(nodeA, [{ backup_id: inc, outcome: 'ok' }]);
    expect(await copy(inc)).toEqual({ verified_at: now, scrubbed_at: now, scrub_error: null });
    expect(await integrityAlerts()).toEqual([expect.objectContaining({ state: 'resolved' })]);
  });

  it('ignores results about copies not on this node, or being deleted', async () => {
    const onB = await insert(now - DAY, { filename: 'b.xb', stored_node: 'node-b' });
    const going = await insert(now - DAY, { filename: 'going.xb', delete_requested_at: now - HOUR });
    const gone = await insert(now - DAY, { filename: 'gone.xb', deleted_at: now - HOUR });
    const before = await Promise.all([onB, going, gone].map(copy));
    const res = await report(nodeA, [
      { backup_id: onB, outcome: 'missing' },
      { backup_id: going, outcome: 'missing' },
      { backup_id: gone, outcome: 'mismatch' },
      { backup_id: 999_999, outcome: 'missing' },
    ]);
    expect(res.json()).toEqual({ recorded: 0 });
    expect(await Promise.all([onB, going, gone].map(copy))).toEqual(before);
    expect(await integrityAlerts()).toEqual([]);
  });
});
