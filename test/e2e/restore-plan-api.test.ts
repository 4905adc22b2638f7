import fc from 'fast-check';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Catalog } from '../../src/catalog/database.js';
import type { NewBackup } from '../../src/catalog/schema.js';
import { FIRST_PAGE_ROWS, loadRestorePlan } from '../../src/server/restore/load-restore-plan.js';
import { planRestore } from '../../src/server/restore/restore-plan.js';
import type { LeasedJob } from '../../src/shared/node-protocol.js';
import { importPublicKey, verifyTicket } from '../../src/shared/ticket.js';
import { backupRow } from '../support/backup-row.js';
import {
  BACKENDS,
  type FreshCatalog,
  freshCatalog,
  type TestApp,
  testApp,
} from '../support/catalog-backends.js';
import { stopSharedPostgres } from '../support/postgres.js';
import { failedReport, sampleReport } from '../support/report-fixture.js';

afterAll(stopSharedPostgres);

const GiB = 1024 ** 3;
const HASH = 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262';
const IDENTITY = 'server_id=111111&type=mysql&instance=3306';

describe.each(BACKENDS)('restore plan API on %s', (backend) => {
  let t: TestApp;
  let now: number;
  let hostCredential: string;
  let publicKey: string;

  const call = async (method: 'GET' | 'POST', url: string, as: string, payload?: Record<string, unknown>) =>
    t.app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${as}` },
      ...(payload === undefined ? {} : { payload }),
    });
  const plan = (query: string) => call('GET', `/api/v1/restore-plan?${query}`, t.tokens.viewer);

  const enrollNode = async (name: string, address: string | null) => {
    const res = await call('POST', '/api/v1/nodes/enroll', t.tokens.enroll, {
      name,
      cluster: 'default',
      address,
      weight: 8,
      reserve_bytes: 0,
      version: '0.1.0',
    });
    expect(res.statusCode).toBe(201);
    return res.json<{ credential: string }>().credential;
  };

  /** Reports a backup through the API; returns its id. */
  const report = async (overrides: Parameters<typeof sampleReport>[0]) => {
    const res = await call('POST', '/api/v1/reports', hostCredential, sampleReport(overrides));
    expect(res.statusCode).toBe(201);
    return res.json<{ job_id: number | null; backup_id: number }>();
  };
  /** The node leases every queued job and stores it. */
  const storeAll = async (nodeCredential: string) => {
    const res = await call('POST', '/api/v1/nodes/lease', nodeCredential, {
      slots: 50,
      free_bytes: 100 * GiB,
    });
    const jobs = res.json<{ jobs: LeasedJob[] }>().jobs;
    for (const job of jobs) {
      const done = await call('POST', `/api/v1/jobs/${job.job_id}/complete`, nodeCredential, {
        path: `31/mysql/111111/3306/${job.filename}`,
        blake3: job.blake3,
        size: job.size,
      });
      expect(done.statusCode).toBe(200);
    }
    return jobs.length;
  };
  const fullAt = (time: string, filename: string) =>
    report({ kind: 'full', filename, created_at: time, finished_at: time, log: `ok\n${filename}\n` });
  const incrementalAt = (time: string, filename: string, base: string, baseTime: string) =>
    report({
      kind: 'incremental',
      filename,
      base_filename: base,
      base_created_at: baseTime,
      created_at: time,
      finished_at: time,
      log: `ok\n${filename}\n`,
    });

  beforeEach(async () => {
    now = Date.parse('2026-11-27T12:00:00Z');
    t = await testApp(backend, { clock: () => new Date(now) });
    const enrolled = await call('POST', '/api/v1/agents/enroll', t.tokens.enroll, { server_id: '111111' });
    hostCredential = enrolled.json().credential;
    publicKey = enrolled.json().ticket_public_key;
  });
  afterEach(async () => {
    await t.cleanup();
  });

  it('answers the full and every incremental up to the time asked for, with download URLs and tickets', async () => {
    const node = await enrollNode('node-a', '10.0.9.1:8874');
    const full = await fullAt('2026-11-26T04:00:00Z', 'full-1.xb');
    const inc1 = await incrementalAt('2026-11-26T05:00:00Z', 'inc-1.xb', 'full-1.xb', '2026-11-26T04:00:00Z');
    const inc2 = await incrementalAt('2026-11-26T06:00:00Z', 'inc-2.xb', 'full-1.xb', '2026-11-26T04:00:00Z');
    await incrementalAt('2026-11-26T07:00:00Z', 'inc-3.xb', 'full-1.xb', '2026-11-26T04:00:00Z');
    expect(await storeAll(node)).toBe(4);

    const res = await plan(`${IDENTITY}&at=2026-11-26T06:30:00Z`);
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.at).toBe('2026-11-26T06:30:00.000Z');
    expect(body.target).toEqual({
      backup_id: inc2.backup_id,
      kind: 'incremental',
      created_at: '2026-11-26T06:00:00.000Z',
      filename: 'inc-2.xb',
    });
    expect(body.skipped).toEqual([]);
    expect(body.chain.map((l: { backup_id: number }) => l.backup_id)).toEqual([
      full.backup_id,
      inc1.backup_id,
      inc2.backup_id,
    ]);
    const first = body.chain[0];
    expect(first).toMatchObject({
      kind: 'full',
      filename: 'full-1.xb',
      size: 1024,
      blake3: HASH,
      node: 'node-a',
      path: '31/mysql/111111/3306/full-1.xb',
      download: { url: `http://10.0.9.1:8874/v1/stored/${full.backup_id}` },
    });
    const check = verifyTicket(first.download.ticket, importPublicKey(publicKey), now);
    expect(check).toEqual({
      ok: true,
      claims: {
        v: 1,
        purpose: 'restore',
        job_id: null,
        backup_id: full.backup_id,
        server_id: '111111',
        type: 'mysql',
        instance: '3306',
        filename: 'full-1.xb',
        size: 1024,
        blake3: HASH,
        node: 'node-a',
        exp: now + 6 * 3_600_000,
      },
    });
    expect(verifyTicket(first.download.ticket, importPublicKey(publicKey), now + 6 * 3_600_000).ok).toBe(
      false,
    );

    // Without `at`: now, so the newest incremental.
    const latest = (await plan(IDENTITY)).json();
    expect(latest.chain).toHaveLength(4);
    expect(latest.chain.at(-1).filename).toBe('inc-3.xb');
  });

  it('answers url null while the node has announced no address', async () => {
    const node = await enrollNode('node-b', null);
    await fullAt('2026-11-26T04:00:00Z', 'full-1.xb');
    await storeAll(node);
    const body = (await plan(IDENTITY)).json();
    expect(body.chain[0].download.url).toBeNull();
    expect(body.chain[0].download.ticket).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
  });

  it('falls back to an older whole chain and says why the newer ones were skipped', async () => {
    const node = await enrollNode('node-a', '10.0.9.1:8874');
    const full = await fullAt('2026-11-26T04:00:00Z', 'full-1.xb');
    const inc1 = await incrementalAt('2026-11-26T05:00:00Z', 'inc-1.xb', 'full-1.xb', '2026-11-26T04:00:00Z');
    await storeAll(node);
    // Not stored yet: its transfer is still queued.
    const pending = await incrementalAt(
      '2026-11-26T06:00:00Z',
      'inc-2.xb',
      'full-1.xb',
      '2026-11-26T04:00:00Z',
    );
    // Stored, but the chain runs through the pending one.
    const failed = await report(
      failedReport({ created_at: '2026-11-26T06:30:00Z', finished_at: '2026-11-26T06:30:00Z' }),
    );
    const res = await plan(IDENTITY);
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.target.backup_id).toBe(inc1.backup_id);
    expect(body.chain.map((l: { backup_id: number }) => l.backup_id)).toEqual([
      full.backup_id,
      inc1.backup_id,
    ]);
    expect(body.skipped.map((s: { backup_id: number }) => s.backup_id)).toEqual([
      failed.backup_id,
      pending.backup_id,
    ]);
    expect(body.skipped[1].reason).toContain('not stored');
    expect(body.skipped[1].missing[0]).toMatchObject({ backup_id: pending.backup_id, problem: 'not_stored' });
  });

  it('409 chain_broken names the deleted base full; 404 plan_not_found before the first backup', async () => {
    const node = await enrollNode('node-a', '10.0.9.1:8874');
    const full = await fullAt('2026-11-26T04:00:00Z', 'full-1.xb');
    await incrementalAt('2026-11-26T05:00:00Z', 'inc-1.xb', 'full-1.xb', '2026-11-26T04:00:00Z');
    await storeAll(node);
    await t.catalog.db
      .updateTable('backups')
      .set({ deleted_at: now })
      .where('id', '=', full.backup_id)
      .execute();

    const broken = await plan(IDENTITY);
    expect(broken.statusCode).toBe(409);
    const error = broken.json().error;
    expect(error.code).toBe('chain_broken');
    expect(error.message).toContain(`full #${full.backup_id}`);
    expect(error.message).toContain('was deleted');
    expect(error.details.missing).toEqual([
      expect.objectContaining({ backup_id: full.backup_id, role: 'base', problem: 'deleted' }),
    ]);

    const none = await plan(`${IDENTITY}&at=2026-11-26T03:00:00Z`);
    expect(none.statusCode).toBe(404);
    expect(none.json().error.code).toBe('plan_not_found');
    const other = await plan('server_id=222222&type=mysql&instance=3306');
    expect(other.statusCode).toBe(404);
  });

  it('skips an unverified incremental (a failed scrub) for the chain before it', async () => {
    const node = await enrollNode('node-a', '10.0.9.1:8874');
    const full = await fullAt('2026-11-26T04:00:00Z', 'full-1.xb');
    const inc1 = await incrementalAt('2026-11-26T05:00:00Z', 'inc-1.xb', 'full-1.xb', '2026-11-26T04:00:00Z');
    await incrementalAt('2026-11-26T06:00:00Z', 'inc-2.xb', 'full-1.xb', '2026-11-26T04:00:00Z');
    await storeAll(node);
    await t.catalog.db
      .updateTable('backups')
      .set({ verified_at: null })
      .where('id', '=', inc1.backup_id)
      .execute();
    const body = (await plan(IDENTITY)).json();
    expect(body.chain.map((l: { backup_id: number }) => l.backup_id)).toEqual([full.backup_id]);
    expect(body.skipped).toHaveLength(2);
    expect(body.skipped[0].reason).toContain('not verified');
  });

  it('finds the target past a long run of unrestorable backups (paged reads)', async () => {
    const node = await enrollNode('node-a', '10.0.9.1:8874');
    const base = Date.parse('2026-11-20T00:00:00Z');
    const at = (h: number) => new Date(base + h * 3_600_000).toISOString();
    const old = await fullAt(at(0), 'full-0.xb');
    await storeAll(node);
    // 150 newer fulls that never reached a node.
    for (let h = 1; h <= 150; h += 1) await fullAt(at(h), `full-${h}.xb`);
    const body = (await plan(IDENTITY)).json();
    expect(body.target.backup_id).toBe(old.backup_id);
    expect(body.skipped).toHaveLength(150);
  });

  it('needs the viewer role and the whole identity; refuses a time without a zone', async () => {
    const anonymous = await t.app.inject({ method: 'GET', url: `/api/v1/restore-plan?${IDENTITY}` });
    expect(anonymous.statusCode).toBe(401);
    expect((await plan('server_id=111111&type=mysql')).statusCode).toBe(400);
    const local = await plan(`${IDENTITY}&at=2026-11-26T04:00:00`);
    expect(local.statusCode).toBe(400);
    expect(local.json().error.message).toContain('zone');
    expect((await plan(`${IDENTITY}&instance=../x`)).statusCode).toBe(400);
  });
});

// The route reads a window of the history, not all of it: the plan from that
// window must be the plan from the whole history, whatever the history is.
describe.each(BACKENDS)('restore plan reads on %s', (backend) => {
  let fresh: FreshCatalog;
  beforeEach(async () => {
    fresh = await freshCatalog(backend);
  });
  afterEach(async () => {
    await fresh.cleanup();
  });

  interface Run {
    kind: 'full' | 'incremental' | 'single' | 'failed';
    gapMinutes: number;
    state: 'good' | 'pending' | 'unverified' | 'deleted';
  }
  /** Histories with long chains (more than a page) and short ones, mostly good or often bad. */
  const historyArb: fc.Arbitrary<Run[]> = fc
    .record({ fullPercent: fc.constantFrom(1, 10, 30), badPercent: fc.constantFrom(0, 1, 10, 30) })
    .chain(({ fullPercent, badPercent }) =>
      fc.array(
        fc
          .record({
            kindRoll: fc.integer({ min: 0, max: 99 }),
            badRoll: fc.integer({ min: 0, max: 99 }),
            bad: fc.constantFrom<Run['state']>('pending', 'unverified', 'deleted'),
            failed: fc.integer({ min: 0, max: 19 }),
            gapMinutes: fc.constantFrom(0, 30, 60, 60, 60),
          })
          .map(
            (r): Run => ({
              kind:
                r.failed === 0
                  ? 'failed'
                  : r.kindRoll < fullPercent
                    ? 'full'
                    : r.kindRoll < fullPercent + 2
                      ? 'single'
                      : 'incremental',
              gapMinutes: r.gapMinutes,
              state: r.badRoll < badPercent ? r.bad : 'good',
            }),
          ),
        { minLength: 0, maxLength: FIRST_PAGE_ROWS * 4, size: 'max' },
      ),
    );

  /** Inserts the runs in one statement, then links each incremental to the newest full before it. */
  async function insertHistory(catalog: Catalog, instance: string, runs: readonly Run[]): Promise<void> {
    if (runs.length === 0) return;
    let at = Date.parse('2026-11-01T00:00:00Z');
    let lastFull: { index: number; filename: string; created_at: number } | null = null;
    const rows: NewBackup[] = [];
    /** For each row, the index of its base full (incrementals only). */
    const baseIndex: (number | null)[] = [];
    for (const [i, run] of runs.entries()) {
      at += run.gapMinutes * 60_000;
      const filename = `b${i}.xb`;
      baseIndex.push(run.kind === 'incremental' ? (lastFull?.index ?? null) : null);
      if (run.kind === 'failed') {
        rows.push(
          backupRow(at, {
            instance,
            status: 'failed',
            kind: null,
            filename: null,
            size: null,
            blake3: null,
            stored_node: null,
            stored_path: null,
            verified_at: null,
          }),
        );
        continue;
      }
      rows.push(
        backupRow(at, {
          instance,
          kind: run.kind,
          filename,
          stored_node: run.state === 'pending' ? null : 'node-a',
          stored_path: run.state === 'pending' ? null : `31/mysql/111111/${instance}/${filename}`,
          verified_at: run.state === 'good' || run.state === 'deleted' ? at : null,
          deleted_at: run.state === 'deleted' ? at + 1 : null,
          ...(run.kind === 'incremental'
            ? {
                base_filename: lastFull?.filename ?? 'lost.xb',
                base_created_at: lastFull?.created_at ?? null,
              }
            : {}),
        }),
      );
      if (run.kind === 'full') lastFull = { index: i, filename, created_at: at };
    }
    await catalog.db.transaction().execute(async (trx) => {
      const inserted = await trx.insertInto('backups').values(rows).returning(['id', 'report_id']).execute();
      const idOf = new Map(inserted.map((r) => [r.report_id, r.id]));
      const ids = rows.map((r) => idOf.get(r.report_id) as number);
      const byBase = new Map<number, number[]>();
      baseIndex.forEach((base, i) => {
        if (base === null) return;
        const list = byBase.get(base) ?? [];
        list.push(ids[i] as number);
        byBase.set(base, list);
      });
      for (const [base, members] of byBase) {
        await trx
          .updateTable('backups')
          .set({ base_backup_id: ids[base] as number })
          .where('id', 'in', members)
          .execute();
      }
    });
  }

  it('plans from its reads exactly what it would plan from the whole history', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(historyArb, fc.integer({ min: -10, max: 110 }), async (runs, atPercent) => {
        const instance = `i${n++}`;
        await insertHistory(fresh.catalog, instance, runs);
        const span = runs.reduce((sum, r) => sum + r.gapMinutes, 0) * 60_000;
        const at = Date.parse('2026-11-01T00:00:00Z') + Math.round((span * atPercent) / 100);
        const all = await fresh.catalog.db
          .selectFrom('backups')
          .selectAll()
          .where('instance', '=', instance)
          .execute();
        const identity = { server_id: '111111', type: 'mysql', instance };
        expect(await loadRestorePlan(fresh.catalog.db, identity, at)).toEqual(planRestore(all, at));
      }),
      // Each run writes a history: report the first counterexample as it is rather than shrink it.
      { numRuns: backend === 'sqlite' ? 40 : 15, endOnFailure: true },
    );
  });
});
