/**
 * Restore plan benchmark: one instance with 10,000 stored backups (a full every
 * day at 00:00 and an incremental every hour after it, ≈ 417 days), among other
 * instances' backups, on SQLite and on PostgreSQL. Times, median of 20 calls
 * at times spread over the history (each plan is a chain of 1 to 24 files):
 *
 *   api       : GET /api/v1/restore-plan over loopback HTTP (auth, read, plan,
 *               one signed ticket per file, JSON)
 *   load+plan : the catalog reads and the pure plan, in process
 *   peer      : a plain indexed `select … order by created_at desc limit 1` on
 *               the same table for the same instance and time
 *
 * Target: the plan resolves in under 20 ms.
 *
 *   npm run bench:restore-plan -- [--backups 10000] [--others 40000] [--backend sqlite|postgres|both]
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import pino from 'pino';
import { Pool } from 'undici';
import { createToken } from '../src/admin/create-token.js';
import type { CatalogLocation } from '../src/catalog/catalog-url.js';
import { type Catalog, migrateCatalog, openCatalog } from '../src/catalog/database.js';
import type { NewBackup } from '../src/catalog/schema.js';
import { buildApp } from '../src/server/app.js';
import { createAppContext } from '../src/server/app-context.js';
import { loadRestorePlan } from '../src/server/restore/load-restore-plan.js';
import { backupRow } from '../test/support/backup-row.js';
import { startPostgres } from '../test/support/postgres.js';
import { makeTempDir } from '../test/support/temp-dir.js';

const { values } = parseArgs({
  options: {
    backups: { type: 'string', default: '10000' },
    others: { type: 'string', default: '40000' },
    backend: { type: 'string', default: 'both' },
  },
});
const BACKUPS = Number(values.backups);
const OTHERS = Number(values.others);
const CALLS = 20;
const WARMUP = 3;
const TARGET_MS = 20;
const HOUR = 3_600_000;
const START = Date.UTC(2025, 0, 1);
const IDENTITY = { server_id: '111111', type: 'mysql', instance: '3306' };
const INSERT_BATCH = 400;

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

async function insertAll(catalog: Catalog, rows: NewBackup[]): Promise<number[]> {
  const ids: number[] = [];
  for (let i = 0; i < rows.length; i += INSERT_BATCH) {
    const part = rows.slice(i, i + INSERT_BATCH);
    const inserted = await catalog.db
      .insertInto('backups')
      .values(part)
      .returning(['id', 'report_id'])
      .execute();
    const idOf = new Map(inserted.map((r) => [r.report_id, r.id]));
    for (const row of part) ids.push(idOf.get(row.report_id) as number);
  }
  return ids;
}

/** The instance under test: full at 00:00, incrementals at 01:00 … 23:00 (24 a day). */
async function seed(catalog: Catalog): Promise<{ first: number; last: number }> {
  const rows: NewBackup[] = [];
  const baseIndex: (number | null)[] = [];
  let lastFull = -1;
  for (let i = 0; i < BACKUPS; i += 1) {
    const created = START + i * HOUR;
    const isFull = i % 24 === 0;
    if (isFull) lastFull = i;
    baseIndex.push(isFull ? null : lastFull);
    rows.push(
      backupRow(created, {
        ...IDENTITY,
        kind: isFull ? 'full' : 'incremental',
        filename: `${isFull ? 'full' : 'inc'}-${created}.xb`,
        base_filename: isFull ? null : `full-${START + lastFull * HOUR}.xb`,
        base_created_at: isFull ? null : START + lastFull * HOUR,
      }),
    );
  }
  const ids = await insertAll(catalog, rows);
  // Link each incremental to its base, one statement per day.
  const byBase = new Map<number, number[]>();
  baseIndex.forEach((base, i) => {
    if (base === null) return;
    const list = byBase.get(base) ?? [];
    list.push(ids[i] as number);
    byBase.set(base, list);
  });
  await catalog.db.transaction().execute(async (trx) => {
    for (const [base, members] of byBase)
      await trx
        .updateTable('backups')
        .set({ base_backup_id: ids[base] as number })
        .where('id', 'in', members)
        .execute();
  });
  // Other instances on the same hosts and others: the index has to find ours among them.
  const others: NewBackup[] = [];
  for (let i = 0; i < OTHERS; i += 1) {
    others.push(
      backupRow(START + (i % 5000) * 2 * HOUR + 1000 * Math.floor(i / 5000), {
        server_id: `host${i % 50}`,
        instance: String(3306 + (i % 7)),
        kind: 'single',
        filename: `other-${i}.xb`,
      }),
    );
  }
  await insertAll(catalog, others);
  await catalog.db
    .insertInto('nodes')
    .values({
      name: 'node-a',
      cluster_id: 1,
      credential_hash: null,
      address: '10.0.9.1:8874',
      weight: 4,
      disk_total_bytes: null,
      disk_free_bytes: null,
      version: null,
      last_heartbeat_at: null,
      enrolled_at: null,
      created_at: Date.now(),
    })
    .execute();
  return { first: START, last: START + (BACKUPS - 1) * HOUR };
}

async function timeCalls(ats: readonly number[], call: (at: number) => Promise<unknown>): Promise<number[]> {
  for (const at of ats.slice(0, WARMUP)) await call(at);
  const samples: number[] = [];
  for (const at of ats) {
    const start = performance.now();
    await call(at);
    samples.push(performance.now() - start);
  }
  return samples;
}

async function benchBackend(name: 'sqlite' | 'postgres', location: CatalogLocation) {
  const catalog = openCatalog(location);
  try {
    await migrateCatalog(catalog);
    const seedStart = performance.now();
    const span = await seed(catalog);
    const seedSeconds = (performance.now() - seedStart) / 1000;
    if (name === 'postgres') await sql`analyze backups`.execute(catalog.db);

    // Times spread over the history, each at a different point of its day's chain.
    const ats = Array.from({ length: CALLS }, (_, k) => {
      const frac = (k + 0.5) / CALLS;
      // Day boundaries plus k hours: chains of 1 to 24 files.
      const day = Math.floor((frac * (span.last - span.first)) / (24 * HOUR));
      return span.first + day * 24 * HOUR + (k % 24) * HOUR + 60_000;
    }).map((at) => Math.min(at, span.last));

    const app = await buildApp(
      await createAppContext({
        catalog,
        clock: () => new Date(),
        log: pino({ level: 'silent' }),
        policy: 'accept',
        maxAttempts: 5,
      }),
    );
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const token = await createToken(
      catalog,
      { name: 'bench', role: 'viewer', expiresAtMs: null, userName: null },
      Date.now(),
    );
    const pool = new Pool(url, { connections: 1 });
    let chainFiles = 0;
    try {
      const api = await timeCalls(ats, async (at) => {
        const res = await pool.request({
          path: `/api/v1/restore-plan?server_id=111111&type=mysql&instance=3306&at=${new Date(at).toISOString()}`,
          method: 'GET',
          headers: { authorization: `Bearer ${token}` },
        });
        const body = (await res.body.json()) as { chain?: unknown[] };
        if (res.statusCode !== 200) throw new Error(`restore-plan answered ${res.statusCode}`);
        chainFiles += body.chain?.length ?? 0;
      });
      const plan = await timeCalls(ats, async (at) => {
        const result = await loadRestorePlan(catalog.db, IDENTITY, at);
        if (!result.ok) throw new Error(`no plan at ${new Date(at).toISOString()}`);
      });
      const peer = await timeCalls(ats, (at) =>
        catalog.db
          .selectFrom('backups')
          .select(['id', 'filename', 'stored_path'])
          .where('server_id', '=', IDENTITY.server_id)
          .where('type', '=', IDENTITY.type)
          .where('instance', '=', IDENTITY.instance)
          .where('created_at', '<=', at)
          .orderBy('created_at', 'desc')
          .limit(1)
          .executeTakeFirst(),
      );
      const m = { api: median(api), plan: median(plan), peer: median(peer) };
      console.log(
        `\n[${name}] ${BACKUPS} stored backups of 111111/mysql/3306 (+${OTHERS} of other instances), seeded in ${seedSeconds.toFixed(1)} s`,
      );
      console.log(
        `  api       : GET /api/v1/restore-plan median ${m.api.toFixed(2)} ms, max ${Math.max(...api).toFixed(2)} ms (${(chainFiles / (CALLS + WARMUP)).toFixed(1)} files per chain on average)`,
      );
      console.log(`  load+plan : median ${m.plan.toFixed(2)} ms, max ${Math.max(...plan).toFixed(2)} ms`);
      console.log(`  peer      : indexed select … limit 1 median ${m.peer.toFixed(2)} ms`);
      console.log(
        `  ratio     : load+plan / peer = ${(m.plan / m.peer).toFixed(1)}, api / peer = ${(m.api / m.peer).toFixed(1)}`,
      );
      const ok = m.api < TARGET_MS;
      console.log(`  target    : api median < ${TARGET_MS} ms -> ${ok ? 'met' : 'MISSED'}`);
      if (!ok) process.exitCode = 1;
    } finally {
      await pool.close();
      await app.close();
    }
  } finally {
    await catalog.close();
  }
}

if (values.backend === 'sqlite' || values.backend === 'both') {
  const dir = await makeTempDir('ubackup-bench-restore-plan');
  try {
    await benchBackend('sqlite', { dialect: 'sqlite', path: join(dir.path, 'catalog.db') });
  } finally {
    await dir.cleanup();
  }
}
if (values.backend === 'postgres' || values.backend === 'both') {
  const pg = await startPostgres();
  try {
    await benchBackend('postgres', { dialect: 'postgres', url: await pg.createDatabase() });
  } finally {
    await pg.stop();
  }
}
