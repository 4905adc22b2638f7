import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Catalog } from '../../src/catalog/database.js';
import { writeNodeState } from '../../src/node/node-state.js';
import { formatReindexSummary, reindexNode } from '../../src/node/reindex.js';
import { type Sidecar, storedRelativePath } from '../../src/node/storage-layout.js';
import { RESTORED_ILLEGAL_REASON } from '../../src/server/routes/reindex.js';
import { blake3File } from '../../src/shared/blake3.js';
import type { LeasedJob } from '../../src/shared/node-protocol.js';
import type { Report } from '../../src/shared/report.js';
import { BACKENDS, type BackendName, type TestApp, testApp } from '../support/catalog-backends.js';
import {
  type CliDaemon,
  runCli,
  type ServerProcess,
  startCli,
  startServerProcess,
} from '../support/cli-process.js';
import { type Cluster, startCluster } from '../support/cluster.js';
import { sharedPostgres, stopSharedPostgres } from '../support/postgres.js';
import { createEnrollToken, readCatalog } from '../support/process-catalog.js';
import { sampleReport } from '../support/report-fixture.js';
import { makeTempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait-for.js';

afterAll(stopSharedPostgres);

const GiB = 1024 ** 3;
const B3 = (c: string) => c.repeat(64);

/** What the catalog says of every backup, oldest first. */
async function backupRows(catalog: Catalog) {
  return catalog.db
    .selectFrom('backups')
    .select([
      'id',
      'report_id',
      'stored_node',
      'stored_path',
      'stored_at',
      'verified_at',
      'blake3',
      'filename',
      'created_at',
      'legality',
      'illegal_reason',
      'game_id',
      'cluster_id',
      'instance_id',
      'base_backup_id',
      'base_filename',
    ])
    .orderBy('id')
    .execute();
}

async function jobRows(catalog: Catalog) {
  return catalog.db
    .selectFrom('transfer_jobs')
    .select(['id', 'backup_id', 'state', 'lease_node', 'lease_expires_at', 'bytes_done'])
    .orderBy('id')
    .execute();
}

describe.each(BACKENDS)('POST /api/v1/nodes/reindex on %s', (backend) => {
  let t: TestApp;
  let host: string;
  let nodeA: string;
  let nodeB: string;

  const call = (url: string, as: string, payload?: unknown, method: 'GET' | 'POST' = 'POST') =>
    t.app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${as}` },
      ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
    });
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
  const report = async (overrides: Partial<Report>) => {
    const r = sampleReport(overrides);
    const res = await call('/api/v1/reports', host, r);
    expect(res.statusCode).toBe(201);
    return { report: r, backupId: res.json<{ backup_id: number }>().backup_id };
  };
  /** The sidecar a node writes for a backup (as src/node/http-pull.ts sidecarForJob does). */
  const sidecarOf = (r: Report, backupId: number, overrides: Partial<Sidecar> = {}): Sidecar => ({
    backup_id: backupId,
    report_id: r.report_id,
    blake3: r.blake3 ?? '',
    size: r.size ?? 0,
    created_at: r.created_at,
    kind: r.kind,
    base_backup_id: null,
    game_id: r.game_id,
    type: r.type,
    server_id: r.server_id,
    instance: r.instance,
    filename: r.filename ?? '',
    stored_at: '2026-11-26T12:00:01.000Z',
    ...overrides,
  });
  const entry = (sidecar: Sidecar) => ({ path: storedRelativePath(sidecar), sidecar });
  const reindex = (as: string, entries: unknown[], verified?: boolean) =>
    call('/api/v1/nodes/reindex', as, { entries, ...(verified === undefined ? {} : { verified }) });
  const snapshot = async () => ({ backups: await backupRows(t.catalog), jobs: await jobRows(t.catalog) });

  beforeEach(async () => {
    t = await testApp(backend);
    const enrolled = await call('/api/v1/agents/enroll', t.tokens.enroll, { server_id: '111111' });
    host = enrolled.json().credential;
    nodeA = await enrollNode('node-a');
    nodeB = await enrollNode('node-b');
  });
  afterEach(async () => {
    await t.cleanup();
  });

  it('refuses forged entries and moves no backup off another node', async () => {
    const first = await report({ filename: 'full-1.tar.gz', blake3: B3('1') });
    const second = await report({ filename: 'full-2.tar.gz', blake3: B3('2') });
    // node-b stores the first backup the normal way.
    const leased = await call('/api/v1/nodes/lease', nodeB, { slots: 1, free_bytes: 100 * GiB });
    const [job] = leased.json<{ jobs: LeasedJob[] }>().jobs;
    expect(job?.backup_id).toBe(first.backupId);
    const stored = storedRelativePath(sidecarOf(first.report, first.backupId));
    const done = await call(`/api/v1/jobs/${job?.job_id}/complete`, nodeB, {
      path: stored,
      blake3: first.report.blake3,
      size: first.report.size,
    });
    expect(done.statusCode).toBe(200);
    const before = await snapshot();

    const good = entry(sidecarOf(second.report, second.backupId));
    const refusals: Array<[unknown[], number, string]> = [
      // The path is not where the sidecar's fields put the file.
      [[{ ...good, path: '31/mysql/111111/3306/other.tar.gz' }], 400, 'path_mismatch'],
      [[good, { ...good, path: `../${good.path}` }], 400, 'path_mismatch'],
      // `..`, separators and reserved names in a field.
      [
        [{ path: '31/mysql/111111/../x', sidecar: { ...good.sidecar, instance: '..', filename: 'x' } }],
        400,
        'invalid_request',
      ],
      [
        [{ path: '31/mysql/111111/3306/a/b', sidecar: { ...good.sidecar, filename: 'a/b' } }],
        400,
        'invalid_request',
      ],
      [
        [
          {
            path: '.incoming/mysql/111111/3306/x',
            sidecar: { ...good.sidecar, game_id: '.incoming', filename: 'x' },
          },
        ],
        400,
        'invalid_sidecar',
      ],
      [
        [
          {
            path: '31/mysql/111111/3306/x.ubmeta.json',
            sidecar: { ...good.sidecar, filename: 'x.ubmeta.json' },
          },
        ],
        400,
        'invalid_sidecar',
      ],
      // A sidecar that is not one.
      [[{ path: good.path, sidecar: { ...good.sidecar, blake3: 'nope' } }], 400, 'invalid_request'],
      [[{ path: good.path, sidecar: { ...good.sidecar, created_at: 'yesterday' } }], 400, 'invalid_request'],
      [[], 400, 'invalid_request'],
      [Array.from({ length: 1001 }, () => good), 400, 'invalid_request'],
    ];
    for (const [entries, status, code] of refusals) {
      const res = await reindex(nodeA, entries);
      expect(res.statusCode, JSON.stringify(entries).slice(0, 200)).toBe(status);
      expect(res.json().error.code).toBe(code);
    }
    // Only a node credential may call it.
    for (const token of [t.tokens.admin, t.tokens.viewer, host]) {
      expect((await reindex(token, [good])).statusCode).toBe(403);
    }
    expect(await snapshot()).toEqual(before);

    // Another node's backup, and a sidecar whose content is not the catalog's: conflicts, nothing moves.
    const theirs = entry(sidecarOf(first.report, first.backupId));
    const forged = entry(sidecarOf(second.report, second.backupId, { blake3: B3('f') }));
    const res = await reindex(nodeA, [theirs, forged]);
    expect(res.statusCode).toBe(200);
    const answer = res.json();
    expect(answer).toMatchObject({ updated: 0, inserted: 0, unchanged: 0 });
    expect(answer.conflicts).toEqual([
      expect.objectContaining({
        path: theirs.path,
        backup_id: first.backupId,
        reason: 'stored_on_another_node',
        stored_node: 'node-b',
        stored_path: stored,
      }),
      expect.objectContaining({ path: forged.path, backup_id: second.backupId, reason: 'content_mismatch' }),
    ]);
    expect(await snapshot()).toEqual(before);
    const audit = await t.catalog.db
      .selectFrom('audit_log')
      .selectAll()
      .where('action', '=', 'node.reindex')
      .execute();
    expect(audit).toHaveLength(1);
    expect(audit[0]?.actor).toBe('node:node-a');
    expect(JSON.parse(audit[0]?.detail ?? '{}')).toEqual({
      entries: 2,
      verified: false,
      updated: 0,
      inserted: 0,
      unchanged: 0,
      conflicts: 2,
    });
  });

  it("takes a job another node holds: that node's complete is then refused", async () => {
    const r = await report({ filename: 'full-1.tar.gz' });
    const leased = await call('/api/v1/nodes/lease', nodeA, { slots: 1, free_bytes: 100 * GiB });
    const [job] = leased.json<{ jobs: LeasedJob[] }>().jobs;
    expect(job?.backup_id).toBe(r.backupId);
    // node-b already has the file (e.g. the catalog lost that it stored it there).
    const res = await reindex(nodeB, [entry(sidecarOf(r.report, r.backupId))], true);
    expect(res.json()).toEqual({ updated: 1, inserted: 0, unchanged: 0, conflicts: [] });
    const [row] = await backupRows(t.catalog);
    expect(row).toMatchObject({ stored_node: 'node-b', stored_at: Date.parse('2026-11-26T12:00:01.000Z') });
    expect(row?.verified_at).toBeGreaterThan(Date.now() - 60_000);
    expect(await jobRows(t.catalog)).toEqual([
      expect.objectContaining({ state: 'done', lease_node: 'node-b', lease_expires_at: null }),
    ]);
    const late = await call(`/api/v1/jobs/${job?.job_id}/complete`, nodeA, {
      path: storedRelativePath(sidecarOf(r.report, r.backupId)),
      blake3: r.report.blake3,
      size: r.report.size,
    });
    expect(late.statusCode).toBe(409);
    expect(late.json().error.code).toBe('lease_lost');
    // The same sidecar again changes nothing.
    expect((await reindex(nodeB, [entry(sidecarOf(r.report, r.backupId))])).json()).toEqual({
      updated: 0,
      inserted: 0,
      unchanged: 1,
      conflicts: [],
    });
  });

  it('leaves a copy the scrub found damaged unverified, with or without --verify', async () => {
    const r = await report({ filename: 'full-1.tar.gz' });
    const sidecar = sidecarOf(r.report, r.backupId);
    expect((await reindex(nodeA, [entry(sidecar)], true)).json()).toMatchObject({ updated: 1 });
    await t.catalog.db
      .updateTable('backups')
      .set({ verified_at: null, scrubbed_at: 1_000, scrub_error: 'BLAKE3 mismatch' })
      .where('id', '=', r.backupId)
      .execute();
    for (const verified of [false, true]) {
      const res = await reindex(nodeA, [entry(sidecar)], verified);
      expect(res.json(), `verified=${verified}`).toEqual({
        updated: 0,
        inserted: 0,
        unchanged: 1,
        conflicts: [],
      });
      const row = await t.catalog.db
        .selectFrom('backups')
        .select(['verified_at', 'scrubbed_at', 'scrub_error', 'stored_node'])
        .where('id', '=', r.backupId)
        .executeTakeFirstOrThrow();
      expect(row).toEqual({
        verified_at: null,
        scrubbed_at: 1_000,
        scrub_error: 'BLAKE3 mismatch',
        stored_node: 'node-a',
      });
    }
  });

  it('takes 1000 entries with long names in one call', async () => {
    const long = 'x'.repeat(200);
    const entries = Array.from({ length: 1000 }, (_, i) =>
      entry(
        sidecarOf(
          sampleReport({ instance: `3306-${long.slice(0, 100)}`, filename: `${i}-${long}.tar.gz` }),
          i + 1,
        ),
      ),
    );
    expect(JSON.stringify({ entries }).length).toBeGreaterThan(900 * 1024);
    const res = await reindex(nodeA, entries);
    expect(res.statusCode, res.body.slice(0, 300)).toBe(200);
    expect(res.json()).toEqual({ updated: 0, inserted: 1000, unchanged: 0, conflicts: [] });
    expect((await reindex(nodeA, entries)).json()).toMatchObject({ inserted: 0, unchanged: 1000 });
  });

  it('takes a report_id sent twice in one call once; the second place is a conflict', async () => {
    const lost = sampleReport({ filename: 'full.tar.gz' });
    const here = entry(sidecarOf(lost, 7));
    const elsewhere = entry(sidecarOf(lost, 7, { game_id: '32' }));
    const res = await reindex(nodeA, [here, here, elsewhere]);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ inserted: 1, unchanged: 1, updated: 0 });
    expect(res.json().conflicts).toEqual([
      expect.objectContaining({
        path: elsewhere.path,
        reason: 'stored_at_another_path',
        stored_path: here.path,
      }),
    ]);
    expect((await backupRows(t.catalog)).map((r) => r.stored_path)).toEqual([here.path]);
    expect(await jobRows(t.catalog)).toHaveLength(1);
  });

  it('reindexNode walks a root in batches and reports what it does not send', async () => {
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    const address = t.app.server.address();
    if (address === null || typeof address === 'string') throw new Error('no address');
    const dir = await makeTempDir('ubackup-reindex');
    try {
      const root = join(dir.path, 'root');
      const leaf = join(root, '31', 'mysql', '111111', '3306');
      await mkdir(leaf, { recursive: true });
      const place = async (name: string, content: Buffer, overrides: Partial<Sidecar> = {}, at = leaf) => {
        await mkdir(at, { recursive: true });
        await writeFile(join(at, name), content);
        const digest = await blake3File(join(at, name));
        const sidecar = sidecarOf(
          sampleReport({ filename: name, blake3: digest.blake3, size: digest.size }),
          1,
          {
            ...overrides,
          },
        );
        await writeFile(join(at, `${name}.ubmeta.json`), JSON.stringify(sidecar));
        return sidecar;
      };
      const sent = [];
      for (let i = 0; i < 5; i += 1) sent.push(await place(`f${i}.bin`, randomBytes(1000 + i)));
      // Its sidecar says 3306, the file is under 3307.
      await place(
        'moved.bin',
        randomBytes(10),
        { instance: '3306' },
        join(root, '31', 'mysql', '111111', '3307'),
      );
      const short = await place('short.bin', randomBytes(100));
      await writeFile(join(leaf, 'short.bin'), randomBytes(99));
      await writeFile(join(leaf, 'bad.bin'), 'x');
      await writeFile(join(leaf, 'bad.bin.ubmeta.json'), '{"backup_id": "one"}');
      await writeFile(join(root, '31', 'stray.txt'), 'x');
      await symlink(join(leaf, 'f0.bin'), join(leaf, 'link.bin'));
      await mkdir(join(root, '.incoming'), { recursive: true });
      await writeFile(join(root, '.incoming', '5.part'), 'x');

      const stateDir = join(dir.path, 'state');
      await writeNodeState(stateDir, {
        node_id: 1,
        name: 'node-a',
        cluster: 'default',
        credential: nodeA,
        server_url: `http://127.0.0.1:${address.port}`,
        enrolled_at: new Date().toISOString(),
      });
      const configPath = join(dir.path, 'node.conf');
      await writeFile(
        configPath,
        [
          '[global]',
          `server_url = http://127.0.0.1:${address.port}`,
          `state_dir = ${stateDir}`,
          'name = node-a',
          `server_root_path = ${root}`,
          '',
        ].join('\n'),
      );
      const lines: string[] = [];
      const log = {
        info: (m: string) => lines.push(m),
        warn: (m: string) => lines.push(m),
        error: (m: string) => lines.push(m),
      };
      const summary = await reindexNode({ configPath, log, verify: false, batchSize: 2 });
      expect(summary).toMatchObject({
        node: 'node-a',
        files: 9,
        sent: 5,
        inserted: 5,
        updated: 0,
        unchanged: 0,
      });
      expect(summary.conflicts).toEqual([]);
      // In walk order: names sorted, a directory's entries before its subdirectories' next siblings.
      expect(summary.problems.map((p) => [p.kind, p.path])).toEqual([
        ['not_a_file', '31/mysql/111111/3306/link.bin'],
        ['invalid_sidecar', '31/mysql/111111/3306/bad.bin'],
        ['size_mismatch', '31/mysql/111111/3306/short.bin'],
        ['misplaced', '31/mysql/111111/3307/moved.bin'],
        ['outside_layout', '31/stray.txt'],
      ]);
      expect(lines.filter((l) => l.includes('sent so far'))).toHaveLength(3);
      const rows = await backupRows(t.catalog);
      expect(rows.map((r) => r.filename).sort()).toEqual(['f0.bin', 'f1.bin', 'f2.bin', 'f3.bin', 'f4.bin']);
      expect(rows.every((r) => r.stored_node === 'node-a')).toBe(true);
      expect(rows.map((r) => r.report_id).sort()).toEqual(sent.map((x) => x.report_id).sort());
      expect(rows.some((r) => r.report_id === short.report_id)).toBe(false);
      expect(formatReindexSummary(summary)).toContain('node node-a: 9 file(s) under');
    } finally {
      await dir.cleanup();
    }
  });

  it('inserts lost backups: from the registry when registered, and links an incremental to its full', async () => {
    const admin = t.tokens.admin;
    expect((await call('/api/v1/businesses', admin, { game_id: '31', name: 'Game 31' })).statusCode).toBe(
      201,
    );
    expect((await call('/api/v1/backup-types', admin, { name: 'mysql' })).statusCode).toBe(201);
    expect((await call('/api/v1/clusters', admin, { name: 'eu' })).statusCode).toBe(201);
    const instance = await call('/api/v1/instances', admin, {
      name: 'mysql3306',
      server_id: '111111',
      type: 'mysql',
      instance: '3306',
      game_id: '31',
      cluster: 'eu',
    });
    expect(instance.statusCode, instance.body).toBe(201);
    const cluster = await t.catalog.db
      .selectFrom('clusters')
      .select('id')
      .where('name', '=', 'eu')
      .executeTakeFirstOrThrow();

    // Sidecars written under the lost catalog: ids 900 (full) and 901 (its incremental).
    const full = sampleReport({ filename: 'full.tar.gz', blake3: B3('a'), kind: 'full' });
    const incremental = sampleReport({
      filename: 'incr.tar.gz',
      blake3: B3('b'),
      kind: 'incremental',
      created_at: '2026-11-26T05:00:00.000Z',
    });
    const unregistered = sampleReport({ instance: '3307', filename: 'full.tar.gz', blake3: B3('c') });
    const res = await reindex(nodeA, [
      entry(sidecarOf(incremental, 901, { base_backup_id: 900 })),
      entry(sidecarOf(full, 900)),
      entry(sidecarOf(unregistered, 902)),
    ]);
    expect(res.json()).toEqual({ updated: 0, inserted: 3, unchanged: 0, conflicts: [] });
    const rows = await backupRows(t.catalog);
    const byReport = new Map(rows.map((row) => [row.report_id, row]));
    const fullRow = byReport.get(full.report_id);
    expect(fullRow).toMatchObject({
      stored_node: 'node-a',
      legality: 'legal',
      illegal_reason: null,
      cluster_id: cluster.id,
      game_id: '31',
      instance_id: instance.json().id,
    });
    expect(byReport.get(incremental.report_id)).toMatchObject({
      base_backup_id: fullRow?.id,
      base_filename: 'full.tar.gz',
      legality: 'legal',
    });
    expect(byReport.get(unregistered.report_id)).toMatchObject({
      legality: 'illegal',
      illegal_reason: RESTORED_ILLEGAL_REASON,
      stored_path: '31/mysql/111111/3307/full.tar.gz',
    });
    expect((await jobRows(t.catalog)).map((j) => j.state)).toEqual(['done', 'done', 'done']);
  });
});

// ---------------------------------------------------------------------------------------------------
// A real node's files

/** `ubackup node reindex`, as an operator runs it. */
function runReindex(config: string, verify = false) {
  return runCli([
    'node',
    'reindex',
    '--config',
    config,
    '--log-level',
    'warn',
    ...(verify ? ['--verify'] : []),
  ]);
}

interface Stored {
  report_id: string;
  stored_node: string | null;
  stored_path: string | null;
  stored_at: number | null;
  blake3: string | null;
  filename: string | null;
  created_at: number;
}

describe.each(BACKENDS)('ubackup node reindex on %s', (backend: BackendName) => {
  let c: Cluster;
  let config: string;
  let original: Stored[];
  let server: ServerProcess | undefined;
  let daemon: CliDaemon | undefined;

  const catalogRows = () => readCatalog(c.pc.location, backupRows);
  const catalogJobs = () => readCatalog(c.pc.location, jobRows);
  const wipeLocations = () =>
    readCatalog(c.pc.location, async (catalog) => {
      await catalog.db
        .updateTable('backups')
        .set({ stored_node: null, stored_path: null, stored_at: null, verified_at: null })
        .execute();
    });

  beforeAll(async () => {
    c = await startCluster(backend, { instances: 3, fileBytes: 64 * 1024 });
    await c.runOnce();
    await c.serveFiles();
    const node = await c.startNode('node-a');
    await waitFor(async () => (await c.jobs()).every((j) => j.state === 'done'), {
      timeoutMs: 60_000,
      intervalMs: 200,
      what: 'the node to store all 3 files',
    }).catch((error: unknown) => {
      throw new Error(`${String(error)}\n--- node-a ---\n${node.output()}`);
    });
    await node.stop();
    config = join(c.dir.path, 'node-a.conf');
    original = (await catalogRows()).map((r) => ({
      report_id: r.report_id,
      stored_node: r.stored_node,
      stored_path: r.stored_path,
      stored_at: r.stored_at,
      blake3: r.blake3,
      filename: r.filename,
      created_at: r.created_at,
    }));
    expect(original).toHaveLength(3);
    for (const row of original) expect(row.stored_node).toBe('node-a');
  });
  afterAll(async () => {
    await daemon?.stop('SIGKILL');
    await server?.stop('SIGKILL');
    await c?.stop();
  });

  it('(a) restores the stored locations wiped from the catalog, and marks the jobs done', async () => {
    await wipeLocations();
    await readCatalog(c.pc.location, async (catalog) => {
      const [first, second] = await jobRows(catalog);
      await catalog.db
        .updateTable('transfer_jobs')
        .set({ state: 'queued', lease_node: null })
        .where('id', '=', first?.id ?? 0)
        .execute();
      await catalog.db
        .updateTable('transfer_jobs')
        .set({ state: 'dead', lease_node: null })
        .where('id', '=', second?.id ?? 0)
        .execute();
    });
    const run = await runReindex(config);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain(
      '3 sent: 3 updated, 0 inserted, 0 unchanged, 0 conflict(s); 0 problem(s), not indexed',
    );
    const rows = await catalogRows();
    for (const row of rows) {
      const before = original.find((o) => o.report_id === row.report_id);
      expect(row.stored_node).toBe(before?.stored_node);
      expect(row.stored_path).toBe(before?.stored_path);
      // stored_at comes back from the sidecar: the node's clock when it moved the file into place,
      // a moment before the server recorded `complete`.
      const sidecar = JSON.parse(
        await readFile(join(c.nodeRoot('node-a'), `${row.stored_path}.ubmeta.json`), 'utf8'),
      ) as Sidecar;
      expect(row.stored_at).toBe(Date.parse(sidecar.stored_at));
      expect(Math.abs((row.stored_at ?? 0) - (before?.stored_at ?? 0))).toBeLessThan(5000);
      expect(row.verified_at).toBe(row.stored_at);
    }
    expect((await catalogJobs()).map((j) => [j.state, j.lease_node])).toEqual([
      ['done', 'node-a'],
      ['done', 'node-a'],
      ['done', 'node-a'],
    ]);
    const again = await runReindex(config);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain('3 sent: 0 updated, 0 inserted, 3 unchanged');
  });

  it('(d) with --verify, a file with a flipped bit is reported and not indexed; strays are reported', async () => {
    const root = c.nodeRoot('node-a');
    const damaged = original[1]?.stored_path ?? '';
    const damagedPath = join(root, damaged);
    const bytes = await readFile(damagedPath);
    const flipped = Buffer.from(bytes);
    flipped[1000] = (flipped[1000] ?? 0) ^ 0x01;
    await writeFile(damagedPath, flipped);
    const dir = join(root, damaged, '..');
    await writeFile(join(dir, 'leftover.bin'), 'no sidecar');
    await writeFile(join(dir, 'gone.bin.ubmeta.json'), '{}');
    await mkdir(join(root, '.incoming'), { recursive: true });
    await writeFile(join(root, '.incoming', '77.part'), 'in progress');
    await wipeLocations();
    const started = Date.now();
    try {
      const run = await runReindex(config, true);
      expect(run.code, run.stderr).toBe(1);
      // 3 stored files and leftover.bin; not the lone sidecar, not what is in .incoming.
      expect(run.stderr).toContain('node node-a: 4 file(s) under');
      expect(run.stderr).toContain('2 sent: 2 updated, 0 inserted, 0 unchanged, 0 conflict(s); 3 problem(s)');
      expect(run.stderr).toMatch(new RegExp(`checksum_mismatch: ${damaged.replace(/[.]/g, '\\.')}: BLAKE3`));
      expect(run.stderr).toContain('no_sidecar: ');
      expect(run.stderr).toContain('leftover.bin');
      expect(run.stderr).toContain('no_file: ');
      expect(run.stderr).not.toContain('.incoming');
      for (const row of await catalogRows()) {
        if (row.stored_path === null) {
          expect(row.report_id).toBe(original[1]?.report_id);
          continue;
        }
        expect(row.stored_node).toBe('node-a');
        expect(row.verified_at).toBeGreaterThanOrEqual(started);
      }
      expect((await catalogRows()).filter((r) => r.stored_node === null)).toHaveLength(1);
    } finally {
      await writeFile(damagedPath, bytes);
      await rm(join(dir, 'leftover.bin'));
      await rm(join(dir, 'gone.bin.ubmeta.json'));
    }
  });

  it('(b) rebuilds a dropped and recreated catalog from the sidecars', async () => {
    await c.server.stop();
    if (c.pc.location.dialect === 'sqlite') {
      const path = c.pc.location.path;
      for (const suffix of ['', '-wal', '-shm']) await rm(`${path}${suffix}`, { force: true });
    } else {
      const url = new URL(c.pc.location.url);
      const name = url.pathname.slice(1);
      const postgres = await sharedPostgres();
      const client = new pg.Client({ connectionString: postgres.url });
      await client.connect();
      try {
        await client.query(`DROP DATABASE "${name}"`);
      } finally {
        await client.end();
      }
      await postgres.createDatabase(name);
    }
    server = await startServerProcess({
      dataDir: c.pc.dataDir,
      ...(c.pc.db === undefined ? {} : { db: c.pc.db }),
      port: c.server.port,
    });
    expect(await catalogRows()).toEqual([]);

    // The new catalog knows neither the node's credential nor the old enrollment token.
    const enrollToken = await createEnrollToken(c.pc);
    const text = await readFile(config, 'utf8');
    await writeFile(config, text.replace(/^enroll_token = .*$/m, `enroll_token = ${enrollToken}`));
    const refused = await runReindex(config);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("the server does not know this node's credential");
    await rm(join(c.dir.path, 'node-a-state'), { recursive: true, force: true });
    const unenrolled = await runReindex(config);
    expect(unenrolled.code).toBe(2);
    expect(unenrolled.stderr).toContain('has no credential');
    // The operator re-enrolls the node (its daemon), then reindexes while it runs.
    daemon = startCli(['node', '--config', config, '--log-level', 'info']);
    await waitFor(
      () =>
        readFile(join(c.dir.path, 'node-a-state', 'node-state.json'), 'utf8')
          .then(() => true)
          .catch(() => false),
      { timeoutMs: 30_000, what: 'node-a to enroll again' },
    );

    const run = await runReindex(config);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain('3 sent: 0 updated, 3 inserted, 0 unchanged, 0 conflict(s); 0 problem(s)');

    const viewer = await runCli([
      'admin',
      'token',
      'create',
      '--role',
      'viewer',
      '--name',
      'ops',
      '--data-dir',
      c.pc.dataDir,
      ...c.pc.dbArgs,
    ]);
    expect(viewer.code).toBe(0);
    const res = await fetch(`${server.url}/api/v1/backups`, {
      headers: { authorization: `Bearer ${viewer.stdout.trim()}` },
    });
    expect(res.status).toBe(200);
    const { items } = (await res.json()) as {
      items: Array<Record<string, unknown>>;
    };
    expect(items).toHaveLength(3);
    for (const before of original) {
      const item = items.find((i) => i.report_id === before.report_id);
      expect(item).toMatchObject({
        server_id: '5001',
        type: 'mysql',
        status: 'ok',
        storage_node: 'node-a',
        file_name: before.filename,
        blake3: before.blake3,
        backup_time: new Date(before.created_at).toISOString(),
        legality: 'illegal',
        illegal_reason: RESTORED_ILLEGAL_REASON,
        transfer_state: 'done',
      });
      expect((await catalogRows()).find((r) => r.report_id === before.report_id)?.stored_path).toBe(
        before.stored_path,
      );
    }
    const again = await runReindex(config);
    expect(again.stderr).toContain('3 sent: 0 updated, 0 inserted, 3 unchanged');
  });
});
