/**
 * Alert sweep benchmark: one catalog with N registered instances of which D
 * are overdue at a frozen `now`, on SQLite and on PostgreSQL. Times
 * `sweepAlerts` in-process: the first pass (opens D `overdue` alerts; the
 * alerts are deleted before each repetition) and the steady-state pass
 * (nothing changes), medians of R runs each. Peer measured in the same run, on
 * the same catalog: a plain `select count(*) from instances where next_due_at
 * < ?`, the cheapest read that finds the due rows. Then each catalog query the
 * sweep makes is timed on its own (same SQL shape, median of R), and the
 * first pass's writing of the D alerts with their events (on PostgreSQL beside
 * the same rows written by one statement), with the query plans of the two
 * instance scans, so a slow step shows where it is.
 *
 *   npm run bench:alerts -- [--instances 200000] [--due 2000] [--runs 5] [--backend sqlite|postgres|both]
 */
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import type { CatalogLocation } from '../src/catalog/catalog-url.js';
import { type Catalog, type CatalogDb, migrateCatalog, openCatalog } from '../src/catalog/database.js';
import type { NewInstance } from '../src/catalog/schema.js';
import { INSERT_BATCH } from '../src/catalog/statement-batches.js';
import { ALERT_SEVERITY } from '../src/server/alerts/alert-kind.js';
import { type AlertOpening, openAlerts, unresolvedAlerts } from '../src/server/alerts/alert-store.js';
import { type AlertSweepSettings, sweepAlerts } from '../src/server/alerts/alert-sweep.js';
import { startPostgres } from '../test/support/postgres.js';
import { makeTempDir } from '../test/support/temp-dir.js';

const { values } = parseArgs({
  options: {
    instances: { type: 'string', default: '200000' },
    due: { type: 'string', default: '2000' },
    runs: { type: 'string', default: '5' },
    backend: { type: 'string', default: 'both' },
  },
});
const INSTANCES = Number(values.instances);
const DUE = Number(values.due);
const RUNS = Number(values.runs);
if (!(Number.isInteger(INSTANCES) && Number.isInteger(DUE) && DUE > 0 && INSTANCES >= DUE * 2)) {
  throw new Error('--instances must be an integer of at least twice --due');
}
/** One overdue instance in each SLOT consecutive rows, spread over the id range. */
const SLOT = Math.floor(INSTANCES / DUE);
const NOW = Date.parse('2026-06-01T12:00:00.000Z');
const DAY = 86_400_000;
const INSERT_ROWS = 500;
const TARGET_MS = 200;
const SETTINGS: AlertSweepSettings = { heartbeatSeconds: 30, backlogSeconds: 3600 };

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

async function timeRuns(run: () => Promise<unknown>): Promise<number[]> {
  const samples: number[] = [];
  for (let r = 0; r < RUNS; r += 1) {
    const start = performance.now();
    await run();
    samples.push(performance.now() - start);
  }
  return samples;
}

const ms = (v: number): string => `${v.toFixed(1)} ms`;
const list = (samples: number[]): string => samples.map((s) => s.toFixed(1)).join(', ');

/** Row `i`: overdue (slot 0, D rows), silenced while past due or due exactly now (a few), or due later. */
function instanceRow(i: number, clusterId: number): NewInstance {
  const slot = i % SLOT;
  const group = Math.floor(i / SLOT);
  let nextDueAt = NOW + 1 + ((i * 7919) % 6_000_000);
  let paused = 0;
  let mutedUntil: number | null = null;
  if (slot === 0) nextDueAt = group % 2 === 0 ? NOW - 1 : NOW - (group % 60) * DAY - 1;
  else if (slot === 1 && group < 100) {
    nextDueAt = NOW - DAY;
    paused = 1;
  } else if (slot === 1 && group < 200) {
    nextDueAt = NOW - DAY;
    mutedUntil = NOW + DAY;
  } else if (slot === 1 && group < 210) nextDueAt = NOW;
  // Interval schedule (no cron), never reported: schedule, retention and last report stay null.
  return {
    server_id: `host${Math.floor(i / 8)}`,
    type: i % 16 < 8 ? 'mysql' : 'redis',
    instance: String(3306 + (i % 8)),
    name: `instance ${i}`,
    game_id: String(i % 40),
    cluster_id: clusterId,
    priority: 'normal',
    interval_seconds: 3600,
    timezone: 'UTC',
    grace_seconds: 3000,
    paused,
    muted_until: mutedUntil,
    next_due_at: nextDueAt,
    last_success_at: nextDueAt - 6_600_000,
    created_at: NOW - 90 * DAY,
    updated_at: NOW - 90 * DAY,
  };
}

async function seed(db: CatalogDb): Promise<number> {
  const start = performance.now();
  const cluster = await db
    .selectFrom('clusters')
    .select('id')
    .where('name', '=', 'default')
    .executeTakeFirstOrThrow();
  await db.transaction().execute(async (trx) => {
    await trx
      .insertInto('businesses')
      .values(Array.from({ length: 40 }, (_, n) => ({ game_id: String(n), name: `b${n}`, created_at: NOW })))
      .execute();
    for (let first = 0; first < INSTANCES; first += INSERT_ROWS) {
      const rows: NewInstance[] = [];
      for (let i = first; i < Math.min(INSTANCES, first + INSERT_ROWS); i += 1)
        rows.push(instanceRow(i, cluster.id));
      await trx.insertInto('instances').values(rows).execute();
    }
  });
  return performance.now() - start;
}

async function plan(catalog: Catalog, query: string): Promise<string> {
  const prefix = catalog.dialect === 'sqlite' ? 'explain query plan ' : 'explain ';
  const result = await sql.raw<Record<string, unknown>>(prefix + query).execute(catalog.db);
  return result.rows
    .map((r) => String(catalog.dialect === 'sqlite' ? r.detail : r['QUERY PLAN']))
    .join('\n      ');
}

/** The catalog queries of one steady-state pass, each on its own, in the sweep's order. */
async function steps(db: CatalogDb): Promise<[string, () => Promise<unknown>][]> {
  const columns = [
    'id',
    'server_id',
    'type',
    'instance',
    'game_id',
    'paused',
    'muted_until',
    'next_due_at',
    'last_success_at',
    'run_started_at',
    'run_deadline_at',
  ] as const;
  const clusters = await db.selectFrom('clusters').select('id').execute();
  return [
    [
      '1 reports pending (backups ⟕ instances)',
      () =>
        db
          .selectFrom('backups')
          .leftJoin('instances', 'instances.id', 'backups.instance_id')
          .select(['backups.id', 'instances.id as instance_id', 'instances.paused'])
          .where('backups.alert_pending', '=', 1)
          .orderBy('backups.id')
          .limit(2000)
          .execute(),
    ],
    [
      '2 instances without a due time',
      () =>
        db
          .selectFrom('instances')
          .select(['id', 'schedule', 'interval_seconds'])
          .where('next_due_at', 'is', null)
          .orderBy('id')
          .limit(2000)
          .execute(),
    ],
    [
      '3 instances past due (rows read)',
      () => db.selectFrom('instances').select(columns).where('next_due_at', '<', NOW).execute(),
    ],
    [
      '4 runs past deadline',
      () => db.selectFrom('instances').select(columns).where('run_deadline_at', '<', NOW).execute(),
    ],
    ['3+4 unresolved overdue/stuck alerts', () => unresolvedAlerts(db, ['overdue', 'stuck'])],
    ['5 nodes', () => db.selectFrom('nodes').selectAll().execute()],
    [
      '6 clusters + oldest queued job per priority',
      async () => {
        await db.selectFrom('clusters').select(['id', 'name']).execute();
        for (const c of clusters) {
          for (let rank = 0; rank < 4; rank += 1) {
            await db
              .selectFrom('transfer_jobs')
              .select('enqueued_at')
              .where('cluster_id', '=', c.id)
              .where('state', '=', 'queued')
              .where('priority', '=', rank)
              .orderBy('enqueued_at')
              .limit(1)
              .executeTakeFirst();
          }
        }
      },
    ],
  ];
}

/** Empties the alert tables; on PostgreSQL also vacuums them, so no pass meets the dead rows of the one before. */
type Reset = 'history' | 'stale' | 'empty';

/**
 * Makes the D overdue alerts openable again. `history`: resolves them, as recoveries would, so the
 * table keeps a growing resolved history (a catalog in service), then on PostgreSQL analyzes the alert
 * tables, as autovacuum does within a minute or so. `stale`: the same without the analyze, so plans
 * PostgreSQL cached while the tables were small are kept. `empty`: deletes every alert and event and,
 * on PostgreSQL, vacuums and analyzes the tables, as on a new catalog.
 */
async function resetAlerts(catalog: Catalog, reset: Reset): Promise<void> {
  const { db } = catalog;
  if (reset !== 'empty') {
    await db
      .updateTable('alerts')
      .set({ state: 'resolved', resolved_at: NOW, resolved_by: 'bench', notify_pending: 0 })
      .where('state', '<>', 'resolved')
      .execute();
    if (reset === 'history' && catalog.dialect === 'postgres')
      await sql`analyze alerts, alert_events`.execute(db);
    return;
  }
  await db.deleteFrom('alert_events').execute();
  await db.deleteFrom('alerts').execute();
  if (catalog.dialect === 'postgres') await sql`vacuum analyze alerts, alert_events`.execute(db);
}

/**
 * The first pass's extra work, on its own: `openAlerts` for the D openings the sweep made (one
 * multi-row INSERT per INSERT_BATCH alerts, then one per batch of events), on empty tables and
 * with a resolved history; on PostgreSQL also the same rows written by a single statement (`unnest` of
 * arrays, events in a data-modifying CTE) as a peer.
 */
async function alertWrites(catalog: Catalog, openings: AlertOpening[]): Promise<[string, number[]][]> {
  const { db } = catalog;
  const timed = async (reset: Reset, write: (trx: CatalogDb) => Promise<unknown>): Promise<number[]> => {
    const samples: number[] = [];
    for (let r = 0; r < RUNS; r += 1) {
      await resetAlerts(catalog, reset);
      const start = performance.now();
      await db.transaction().execute(write);
      samples.push(performance.now() - start);
    }
    return samples;
  };
  const statements = 2 * Math.ceil(openings.length / INSERT_BATCH);
  const viaStore = (trx: CatalogDb) => openAlerts(trx, openings, NOW);
  // In this order: the stale runs keep whatever plans the runs on empty tables left cached.
  const out: [string, number[]][] = [
    [`openAlerts (${statements} INSERTs), empty tables`, await timed('empty', viaStore)],
    [`openAlerts (${statements} INSERTs), history, stale plans`, await timed('stale', viaStore)],
    [`openAlerts (${statements} INSERTs), history, analyzed`, await timed('history', viaStore)],
  ];
  if (catalog.dialect === 'postgres') {
    const column = (pick: (o: AlertOpening) => string) => openings.map(pick);
    const oneStatement = (trx: CatalogDb) =>
      sql`
        with opened as (
          insert into alerts (type, subject, game_id, severity, state, summary, opened_at, last_event_at, notify_pending)
          select t, s, g, ${ALERT_SEVERITY.overdue}, 'open', m, cast(${NOW} as bigint), cast(${NOW} as bigint), 1
          from unnest(cast(${column((o) => o.type)} as text[]), cast(${column((o) => o.subject)} as text[]),
                      cast(${column((o) => o.gameId)} as text[]), cast(${column((o) => o.summary)} as text[])) as v(t, s, g, m)
          on conflict (type, subject) where state <> 'resolved' do nothing
          returning id, summary),
        events as (
          insert into alert_events (alert_id, at, kind, actor, detail)
          select id, cast(${NOW} as bigint), 'opened', 'system', summary from opened)
        select count(*) as n from opened`.execute(trx);
    out.push(['peer: one INSERT … unnest + CTE, empty tables', await timed('empty', oneStatement)]);
    out.push(['peer: one INSERT … unnest + CTE, history, analyzed', await timed('history', oneStatement)]);
  }
  return out;
}

async function benchBackend(name: 'sqlite' | 'postgres', location: CatalogLocation): Promise<boolean> {
  const catalog = openCatalog(location);
  try {
    await migrateCatalog(catalog);
    const { db } = catalog;
    const seedMs = await seed(db);
    // PostgreSQL's autovacuum analyzes a table this changed within a minute; do it now so the plans are the settled ones.
    if (name === 'postgres') await sql`analyze`.execute(db);

    let ok = true;
    // The very first pass runs cold (statement caches, JIT, buffer cache) on empty alert tables; it is printed but
    // not in the median. Before each counted pass the open alerts are resolved, as recoveries would (`history`).
    const first: number[] = [];
    let cold = 0;
    for (let r = 0; r <= RUNS; r += 1) {
      await resetAlerts(catalog, 'history');
      const start = performance.now();
      const outcome = await sweepAlerts(db, NOW, SETTINGS);
      const took = performance.now() - start;
      if (r === 0) cold = took;
      else first.push(took);
      if (outcome.opened !== DUE || outcome.resolved !== 0) ok = false;
    }
    const steady = await timeRuns(async () => {
      const outcome = await sweepAlerts(db, NOW, SETTINGS);
      if (outcome.opened !== 0 || outcome.resolved !== 0 || outcome.dueTimesComputed !== 0) ok = false;
    });
    let dueCount = 0;
    const peer = await timeRuns(async () => {
      const row = await sql<{
        n: number | string;
      }>`select count(*) as n from instances where next_due_at < ${NOW}`.execute(db);
      dueCount = Number(row.rows[0]?.n);
    });
    const open = await db
      .selectFrom('alerts')
      .select(['type', 'subject', 'game_id', 'summary'])
      .where('state', '=', 'open')
      .execute();
    if (open.length !== DUE || open.some((a) => a.type !== 'overdue')) ok = false;
    const openings: AlertOpening[] = open.map((a) => ({
      type: 'overdue',
      subject: a.subject,
      gameId: a.game_id,
      summary: a.summary,
    }));

    const firstMs = median(first);
    const steadyMs = median(steady);
    const peerMs = median(peer);
    console.log(
      `\n[${name}] ${INSTANCES} instances, ${DUE} overdue (+${dueCount - DUE} past due but silenced), ${RUNS} runs each; seeded in ${(seedMs / 1000).toFixed(1)} s`,
    );
    console.log(
      `  first pass  : median ${ms(firstMs)} (${list(first)}) -> opened ${DUE} (cold, not counted: ${ms(cold)}); target < ${TARGET_MS} ms: ${firstMs < TARGET_MS ? 'met' : 'MISSED'}`,
    );
    console.log(
      `  steady pass : median ${ms(steadyMs)} (${list(steady)}) -> nothing changed; target < ${TARGET_MS} ms: ${steadyMs < TARGET_MS ? 'met' : 'MISSED'}`,
    );
    console.log(`  peer        : count(*) where next_due_at < now: median ${ms(peerMs)} (${list(peer)})`);
    console.log(
      `  ratios      : first / peer = ${(firstMs / peerMs).toFixed(1)}, steady / peer = ${(steadyMs / peerMs).toFixed(1)}, first - steady = ${ms(firstMs - steadyMs)} (writing ${DUE} alerts + events)`,
    );
    console.log('  steady pass, query by query (median):');
    let sum = 0;
    for (const [label, run] of await steps(db)) {
      const t = median(await timeRuns(run));
      sum += t;
      console.log(`    ${label.padEnd(52)} ${ms(t)}`);
    }
    console.log(
      `    ${'sum of the queries'.padEnd(52)} ${ms(sum)} (the rest of the steady pass, ${ms(steadyMs - sum)}, is transactions and JS)`,
    );
    console.log(`  first pass, writing the ${DUE} alerts and their events (median):`);
    for (const [label, samples] of await alertWrites(catalog, openings)) {
      console.log(`    ${label.padEnd(52)} ${ms(median(samples))} (${list(samples)})`);
    }
    console.log(
      `  plan, past due : ${await plan(catalog, `select id from instances where next_due_at < ${NOW}`)}`,
    );
    console.log(
      `  plan, no due   : ${await plan(catalog, 'select id from instances where next_due_at is null order by id limit 2000')}`,
    );
    console.log(`  checks      : ${ok ? 'every pass did what it should' : 'MISMATCH'}`);
    return ok;
  } finally {
    await catalog.close();
  }
}

let allOk = true;
if (values.backend === 'sqlite' || values.backend === 'both') {
  const dir = await makeTempDir('ubackup-bench-alerts');
  try {
    allOk = (await benchBackend('sqlite', { dialect: 'sqlite', path: `${dir.path}/catalog.db` })) && allOk;
  } finally {
    await dir.cleanup();
  }
}
if (values.backend === 'postgres' || values.backend === 'both') {
  const pg = await startPostgres();
  try {
    allOk =
      (await benchBackend('postgres', { dialect: 'postgres', url: await pg.createDatabase() })) && allOk;
  } finally {
    await pg.stop();
  }
}
if (!allOk) process.exitCode = 1;
