/**
 * Dashboard page-time benchmark: the fleet fixture (default 200,000 instances × 30
 * days = 12 M backups) in a real PostgreSQL, the real server app on loopback HTTP,
 * and every dashboard page's first data requests, made as the page makes them
 * (in parallel) with an admin's personal token. Median and p95 of `--calls` page
 * loads after `--warmup` loads, per page and per request.
 *
 * Targets: a page's data in 300 ms; an instance's backup list in 50 ms. Peers
 * measured in the same run: `GET /api/v1/me` (the cheapest authenticated call: auth
 * plus one primary-key read) and `GET /healthz` (no auth, `select 1`).
 *
 * For every request whose median is over `--explain-over` ms (default 50), the bench
 * calls it once more with its SQL captured (Kysely's statement log) and prints every
 * statement's time and `EXPLAIN (ANALYZE, BUFFERS)` of the slowest. A missed target
 * sets the exit code.
 *
 * The server's clock is the fleet's end (default: the latest 22:00 UTC, when "today"
 * holds most of a day's 400 k backups). With `--keep DIR` the PostgreSQL cluster lives in
 * DIR and the fleet is reused by later runs with the same instances, days and seed (new
 * migrations are applied to it); without it, a throwaway server is started as in the
 * other benches.
 *
 *   npm run bench:pages -- [--instances 200000] [--days 30] [--calls 20] [--warmup 3]
 *                          [--end <ISO time>] [--seed 1] [--keep DIR] [--explain-over 50]
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chown, mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { CompiledQuery, Kysely, type LogEvent, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import pino from 'pino';
import { Pool } from 'undici';
import { createToken } from '../src/admin/create-token.js';
import { type Catalog, migrateCatalog, openCatalog } from '../src/catalog/database.js';
import type { CatalogSchema } from '../src/catalog/schema.js';
import { fillFleet } from '../src/demo/fleet-fixture.js';
import { buildApp } from '../src/server/app.js';
import { createAppContext } from '../src/server/app-context.js';
import { hashPassword } from '../src/server/auth/password.js';
import { freePort } from '../test/support/free-port.js';
import { startPostgres } from '../test/support/postgres.js';
import { INSTALL_HINTS, requireTool } from '../test/support/required-tool.js';

const { values } = parseArgs({
  options: {
    instances: { type: 'string', default: '200000' },
    days: { type: 'string', default: '30' },
    calls: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '3' },
    end: { type: 'string' },
    seed: { type: 'string', default: '1' },
    keep: { type: 'string' },
    'explain-over': { type: 'string', default: '50' },
  },
});
const INSTANCES = Number(values.instances);
const DAYS = Number(values.days);
const CALLS = Number(values.calls);
const WARMUP = Number(values.warmup);
const SEED = Number(values.seed);
const PAGE_TARGET_MS = 300;
const BACKUP_LIST_TARGET_MS = 50;
/** Requests slower than this (median) get their slowest statement explained. */
const EXPLAIN_OVER_MS = Number(values['explain-over']);
const DAY_MS = 86_400_000;
const BENCH_USER = 'bench-admin';
const OTHER_USERS = 30;
const FOLLOWED = ['100', '101', '102', '103', '104'];

/** The latest 22:00 UTC before now. */
function defaultEnd(): number {
  const now = Date.now();
  const today = Math.floor(now / DAY_MS) * DAY_MS + 22 * 3_600_000;
  return today <= now ? today : today - DAY_MS;
}
const END = values.end === undefined ? defaultEnd() : Date.parse(values.end);
if (Number.isNaN(END)) throw new Error(`--end: not an ISO time: ${values.end}`);

// ---------------------------------------------------------------------------------------------------
// PostgreSQL: throwaway (as the other benches) or kept in a directory between runs

interface Server {
  /** The URL of a database on it. */
  url(database: string): string;
  stop(): Promise<void>;
}

function run(argv: string[]): Promise<string> {
  const [command, ...args] = argv as [string, ...string[]];
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('PG')));
  return new Promise((resolveRun, reject) => {
    const child = spawn(command, args, { env: { ...env, LC_ALL: 'C' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0
        ? resolveRun(output)
        : reject(new Error(`${argv.join(' ')} exited with ${code}:\n${output}`)),
    );
  });
}

/** The same durability settings as test/support/postgres.ts: a bench server, not a production one. */
const SERVER_SETTINGS = [
  'listen_addresses=127.0.0.1',
  'fsync=off',
  'synchronous_commit=off',
  'full_page_writes=off',
  'max_connections=200',
];

async function keptPostgres(dir: string): Promise<Server> {
  const initdb = requireTool('initdb', INSTALL_HINTS.postgres);
  const pgCtl = requireTool('pg_ctl', INSTALL_HINTS.postgres);
  const root = process.getuid?.() === 0;
  const asPostgres = root
    ? [requireTool('runuser', 'apt-get install -y util-linux'), '-u', 'postgres', '--']
    : [];
  const data = join(dir, 'data');
  await mkdir(dir, { recursive: true });
  if (root) {
    const uid = Number((await run(['id', '-u', 'postgres'])).trim());
    const gid = Number((await run(['id', '-g', 'postgres'])).trim());
    await chown(dir, uid, gid);
  }
  if (!existsSync(join(data, 'PG_VERSION'))) {
    await run([
      ...asPostgres,
      initdb,
      '-D',
      data,
      '-A',
      'trust',
      '-U',
      'postgres',
      '--no-sync',
      '-E',
      'UTF8',
      '--locale=C',
    ]);
  }
  // A server left running by an interrupted run: stop it, so it starts on a port of ours.
  const status = await run([...asPostgres, pgCtl, '-D', data, 'status']).catch(() => '');
  if (status.includes('server is running'))
    await run([...asPostgres, pgCtl, '-D', data, '-m', 'fast', '-w', 'stop']);
  const port = await freePort();
  const options = [`-p ${port}`, `-k ${dir}`, ...SERVER_SETTINGS.map((s) => `-c ${s}`)].join(' ');
  await run([
    ...asPostgres,
    pgCtl,
    '-D',
    data,
    '-l',
    join(dir, 'server.log'),
    '-w',
    '-t',
    '120',
    '-o',
    options,
    'start',
  ]);
  return {
    url: (database) => `postgres://postgres@127.0.0.1:${port}/${database}`,
    stop: async () => {
      await run([...asPostgres, pgCtl, '-D', data, '-m', 'fast', '-w', 'stop']);
    },
  };
}

async function throwawayPostgres(): Promise<Server> {
  const pg = await startPostgres();
  return { url: (database) => `postgres://postgres@127.0.0.1:${pg.port}/${database}`, stop: () => pg.stop() };
}

// ---------------------------------------------------------------------------------------------------
// The fleet: built once per database, described in the database's comment

interface FleetNote {
  instances: number;
  days: number;
  end: number;
  seed: number;
  buildSeconds: number;
}

async function databaseNote(server: Server, name: string): Promise<FleetNote | null> {
  const admin = openCatalog({ dialect: 'postgres', url: server.url('postgres') }, { poolSize: 1 });
  try {
    const { rows } = await sql<{ note: string | null }>`
      select shobj_description(oid, 'pg_database') as note from pg_database where datname = ${name}`.execute(
      admin.db,
    );
    const note = rows[0]?.note;
    return note ? (JSON.parse(note) as FleetNote) : null;
  } finally {
    await admin.close();
  }
}

async function adminStatement(server: Server, statement: string): Promise<void> {
  const admin = openCatalog({ dialect: 'postgres', url: server.url('postgres') }, { poolSize: 1 });
  try {
    await sql.raw(statement).execute(admin.db);
  } finally {
    await admin.close();
  }
}

/** The fleet's database: reused when its note matches, else built (under another name until it is whole). */
async function fleetDatabase(server: Server): Promise<{ name: string; note: FleetNote; built: boolean }> {
  const name = `fleet_${INSTANCES}_${DAYS}_${SEED}`;
  const existing = await databaseNote(server, name);
  if (existing && (values.end === undefined || existing.end === END))
    return { name, note: existing, built: false };
  if (existing) await adminStatement(server, `drop database ${name}`);
  const building = `${name}_building`;
  await adminStatement(server, `drop database if exists ${building}`);
  await adminStatement(server, `create database ${building}`);
  // Loading settings of this bench's own server: fewer checkpoints while 12 M rows go in.
  await adminStatement(server, `alter system set max_wal_size = '16GB'`);
  await adminStatement(server, `alter system set checkpoint_timeout = '30min'`);
  await adminStatement(server, 'select pg_reload_conf()');
  const catalog = openCatalog({ dialect: 'postgres', url: server.url(building) });
  const started = performance.now();
  try {
    await migrateCatalog(catalog);
    console.log(
      `building the fleet: ${INSTANCES} instances × ${DAYS} days, end ${new Date(END).toISOString()}`,
    );
    await fillFleet(catalog, {
      instances: INSTANCES,
      days: DAYS,
      end: END,
      seed: SEED,
      onStep: (step) =>
        console.log(
          `  ${step.name.padEnd(28)} ${String(step.rows).padStart(10)} rows ${(step.ms / 1000).toFixed(1).padStart(7)} s`,
        ),
      onIndex: (index, ms) =>
        console.log(`      ${index.padEnd(44)} ${(ms / 1000).toFixed(1).padStart(7)} s`),
    });
  } finally {
    await catalog.close();
  }
  const note: FleetNote = {
    instances: INSTANCES,
    days: DAYS,
    end: END,
    seed: SEED,
    buildSeconds: (performance.now() - started) / 1000,
  };
  // Back to the defaults, and the load's WAL recycled (a kept directory would hold it).
  await adminStatement(server, 'alter system reset max_wal_size');
  await adminStatement(server, 'alter system reset checkpoint_timeout');
  await adminStatement(server, 'select pg_reload_conf()');
  await adminStatement(server, 'checkpoint');
  await adminStatement(server, `alter database ${building} rename to ${name}`);
  await adminStatement(server, `comment on database ${name} is '${JSON.stringify(note)}'`);
  return { name, note, built: true };
}

// ---------------------------------------------------------------------------------------------------
// Statement capture, for the plans

interface Captured {
  sql: string;
  parameters: readonly unknown[];
  ms: number;
}

/** Records the SQL and duration of every statement the server runs while `on`. */
class StatementCapture {
  on = false;
  readonly captured: Captured[] = [];
  record(event: LogEvent): void {
    if (!this.on || event.level !== 'query') return;
    this.captured.push({
      sql: event.query.sql,
      parameters: event.query.parameters,
      ms: event.queryDurationMillis,
    });
  }
}

const PG_INT8 = 20;

/**
 * The server's catalog: as `openCatalog` opens PostgreSQL (BIGINT as numbers), plus Kysely's
 * statement log, which gives each statement's SQL and duration.
 */
function capturedCatalog(url: string, capture: StatementCapture): Catalog {
  const pool = new pg.Pool({
    connectionString: url,
    max: 10,
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === PG_INT8
          ? (v: string) => Number(v)
          : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // An idle connection closed by the server (its stop at the end of the run) is not an error here.
  pool.on('error', (error) => console.error(`statement-capture pool: ${error.message}`));
  const db = new Kysely<CatalogSchema>({
    dialect: new PostgresDialect({ pool }),
    log: (event) => capture.record(event),
  });
  return { db, dialect: 'postgres', close: () => db.destroy() };
}

// ---------------------------------------------------------------------------------------------------
// Pages

interface Page {
  name: string;
  target: number;
  /** The requests of the k-th load, made in parallel. */
  requests(k: number): string[];
}

interface Samples {
  page: number[];
  requests: Map<string, number[]>;
}

function percentile(samples: readonly number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

/** A label per request kind: the path with the values that change between loads left out. */
function labelOf(path: string): string {
  return path
    .replace(/server_id=[^&]*/g, (m) =>
      m.includes('%2C') || m.includes(',') ? 'server_id=<20 ids>' : 'server_id=…',
    )
    .replace(/instance=[^&]*/g, 'instance=…')
    .replace(/type=[^&]*/g, 'type=…');
}

async function seedPeople(catalog: Catalog): Promise<string> {
  const db = catalog.db;
  const now = Date.now();
  if (!(await db.selectFrom('users').select('id').where('name', '=', BENCH_USER).executeTakeFirst())) {
    const passwordHash = await hashPassword('bench password, not used');
    await db
      .insertInto('users')
      .values([
        { name: BENCH_USER, role: 'admin', password_hash: passwordHash, created_at: now },
        ...Array.from({ length: OTHER_USERS }, (_, k) => ({
          name: `person-${String(k).padStart(2, '0')}`,
          role: ['admin', 'operator', 'viewer'][k % 3] as string,
          password_hash: passwordHash,
          created_at: now,
        })),
      ])
      .execute();
    const user = await db
      .selectFrom('users')
      .select('id')
      .where('name', '=', BENCH_USER)
      .executeTakeFirstOrThrow();
    await db
      .insertInto('user_focus')
      .values(FOLLOWED.map((game_id) => ({ user_id: user.id, game_id })))
      .execute();
    for (const name of ['laptop', 'extension', 'ci', 'grafana'])
      await createToken(catalog, { name, role: 'viewer', expiresAtMs: null, userName: BENCH_USER }, now);
  }
  return createToken(catalog, { name: 'bench', role: 'admin', expiresAtMs: null, userName: BENCH_USER }, now);
}

/** Seeded picks, so runs compare: mulberry32. */
function picker(seed: number): (n: number) => number {
  let state = seed >>> 0;
  return (n) => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

async function pagesOf(catalog: Catalog, endMs: number): Promise<Page[]> {
  const db = catalog.db;
  /** The UTC day `days - 1` days before the fleet's end, as the dashboard's charts ask for it. */
  const statsFrom = (days: number) => new Date(endMs - (days - 1) * DAY_MS).toISOString().slice(0, 10);
  const loads = WARMUP + CALLS + 1;
  const pick = picker(SEED);
  const total = Number(
    (
      await db
        .selectFrom('instances')
        .select((eb) => eb.fn.max('id').as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  );
  const identities = await db
    .selectFrom('instances')
    .select(['server_id', 'type', 'instance'])
    .where(
      'id',
      'in',
      Array.from({ length: loads }, () => 1 + pick(total)),
    )
    .execute();
  const servers = Array.from({ length: loads }, () =>
    Array.from({ length: 20 }, () => String(100000 + pick(Math.ceil(total / 3)))).join(','),
  );
  const biggest = await db
    .selectFrom('instances')
    .select((eb) => ['game_id', eb.fn.countAll<number | string>().as('n')])
    .groupBy('game_id')
    .orderBy('n', 'desc')
    .limit(1)
    .executeTakeFirstOrThrow();
  console.log(
    `instance pages: the biggest business ${biggest.game_id} has ${biggest.n} instances; backup lists of ${identities.length} random instances`,
  );
  const at = <T>(list: readonly T[], k: number): T => list[k % list.length] as T;
  const backups = (k: number) => {
    const i = at(identities, k);
    return `/api/v1/backups?server_id=${i.server_id}&type=${i.type}&instance=${encodeURIComponent(i.instance)}&limit=480`;
  };
  const page = (name: string, requests: (k: number) => string[], target = PAGE_TARGET_MS): Page => ({
    name,
    target,
    requests,
  });
  return [
    page('floor: /api/v1/me', () => ['/api/v1/me']),
    page('floor: /healthz', () => ['/healthz']),
    page('overview', () => [
      '/api/v1/overview?tz=UTC',
      '/api/v1/clusters/summary',
      // The 14-day chart, as the page asks for it (from the rollups).
      `/api/v1/stats/daily?by=business&from=${statsFrom(14)}&top=0`,
    ]),
    page('statistics (30 days)', () => [
      '/api/v1/stats/totals',
      '/api/v1/stats/daily?by=business&top=8&rank=backups',
      '/api/v1/stats/daily?by=business&top=8&rank=bytes',
      '/api/v1/stats/daily?by=node&top=8&rank=bytes',
      '/api/v1/stats/share',
      '/api/v1/stats/throughput',
      '/api/v1/stats/queue',
      '/api/v1/stats/top-failing',
      '/api/v1/stats/slowest',
    ]),
    page('statistics: one business by type', () => [
      `/api/v1/stats/totals?business=${biggest.game_id}`,
      `/api/v1/stats/daily?by=type&business=${biggest.game_id}&top=8&rank=backups`,
    ]),
    page('alerts', () => [
      '/api/v1/alerts?page=1&page_size=20&followed=true',
      '/api/v1/alerts?page=1&page_size=20&followed=false',
      '/api/v1/alerts/summary',
      '/api/v1/businesses?page_size=1000',
      '/api/v1/me/focus',
    ]),
    page('instances', () => ['/api/v1/instances?page=1&page_size=50']),
    page('instances: 20 server_ids', (k) => [
      `/api/v1/instances?page=1&page_size=50&server_id=${at(servers, k)}`,
    ]),
    page('instances: one business', () => [
      `/api/v1/instances?page=1&page_size=50&game_id=${biggest.game_id}`,
    ]),
    page('backup list (480)', (k) => [backups(k)], BACKUP_LIST_TARGET_MS),
    page('clusters & nodes', () => ['/api/v1/clusters/summary', '/api/v1/nodes']),
    page('businesses', () => ['/api/v1/businesses?page=1&page_size=50']),
    page('backup types', () => ['/api/v1/backup-types?page=1&page_size=50']),
    page('users', () => ['/api/v1/users?page=1&page_size=50']),
    page('tokens', () => ['/api/v1/me/tokens']),
    page('audit', () => ['/api/v1/audit?page=1&page_size=50']),
  ];
}

async function measure(pool: Pool, token: string, pages: readonly Page[]): Promise<Map<string, Samples>> {
  const get = async (path: string): Promise<number> => {
    const started = performance.now();
    const res = await pool.request({ path, method: 'GET', headers: { authorization: `Bearer ${token}` } });
    const body = await res.body.text();
    if (res.statusCode !== 200)
      throw new Error(`GET ${path} answered ${res.statusCode}: ${body.slice(0, 300)}`);
    return performance.now() - started;
  };
  const results = new Map<string, Samples>();
  for (const page of pages) {
    const samples: Samples = { page: [], requests: new Map() };
    for (let k = 0; k < WARMUP + CALLS; k += 1) {
      const paths = page.requests(k);
      const started = performance.now();
      const times = await Promise.all(paths.map(get));
      const elapsed = performance.now() - started;
      if (k < WARMUP) continue;
      samples.page.push(elapsed);
      paths.forEach((path, j) => {
        const label = labelOf(path);
        const list = samples.requests.get(label) ?? [];
        list.push(times[j] as number);
        samples.requests.set(label, list);
      });
    }
    results.set(page.name, samples);
  }
  return results;
}

function ms(value: number): string {
  return `${value.toFixed(1)} ms`.padStart(10);
}

function report(pages: readonly Page[], results: Map<string, Samples>): string[] {
  const slow: string[] = [];
  console.log(
    `\n${'page / request'.padEnd(66)} ${'median'.padStart(10)} ${'p95'.padStart(10)} ${'target'.padStart(8)}`,
  );
  for (const page of pages) {
    const samples = results.get(page.name);
    if (!samples) continue;
    const median = percentile(samples.page, 50);
    const floor = page.name.startsWith('floor');
    const verdict = floor ? '(peer)' : median <= page.target ? 'met' : 'MISSED';
    if (!floor && median > page.target) process.exitCode = 1;
    console.log(
      `${page.name.padEnd(66)} ${ms(median)} ${ms(percentile(samples.page, 95))} ${`${page.target} ms`.padStart(8)} ${verdict}`,
    );
    if (floor) continue;
    for (const [label, times] of samples.requests) {
      const m = percentile(times, 50);
      if (m > EXPLAIN_OVER_MS && !slow.includes(label)) slow.push(label);
      if (samples.requests.size === 1 && label === page.requests(0)[0]) continue;
      console.log(`  ${label.slice(0, 64).padEnd(64)} ${ms(m)} ${ms(percentile(times, 95))}`);
    }
  }
  return slow;
}

/** Calls each slow request once with its statements captured; explains the slowest. */
async function explainSlow(
  pool: Pool,
  token: string,
  pages: readonly Page[],
  slow: readonly string[],
  capture: StatementCapture,
  catalog: Catalog,
): Promise<void> {
  for (const label of slow) {
    const path = pages.flatMap((p) => p.requests(WARMUP + CALLS)).find((p) => labelOf(p) === label);
    if (path === undefined) continue;
    capture.captured.length = 0;
    capture.on = true;
    const res = await pool.request({ path, method: 'GET', headers: { authorization: `Bearer ${token}` } });
    await res.body.text();
    capture.on = false;
    const statements = capture.captured
      .filter((c) => /^\s*(select|with)\b/i.test(c.sql))
      .sort((a, b) => b.ms - a.ms);
    console.log(`\n=== ${label} — ${statements.length} statements:`);
    for (const s of statements) console.log(`  ${ms(s.ms)}  ${s.sql.replace(/\s+/g, ' ').slice(0, 150)}`);
    const main = statements[0];
    if (!main) continue;
    console.log(
      `--- EXPLAIN (ANALYZE, BUFFERS) of the slowest, parameters ${JSON.stringify(main.parameters).slice(0, 200)}:`,
    );
    const plan = await catalog.db.executeQuery<{ 'QUERY PLAN': string }>(
      CompiledQuery.raw(`explain (analyze, buffers) ${main.sql}`, [...main.parameters]),
    );
    for (const row of plan.rows) console.log(`  ${row['QUERY PLAN']}`);
  }
}

async function sizes(catalog: Catalog): Promise<void> {
  const { rows } = await sql<{ what: string; size: string }>`
    select 'database' as what, pg_size_pretty(pg_database_size(current_database())) as size
    union all select 'backups (heap)', pg_size_pretty(pg_relation_size('backups'))
    union all select 'backups (indexes)', pg_size_pretty(pg_indexes_size('backups'))
    union all select 'transfer_jobs (heap + indexes)', pg_size_pretty(pg_total_relation_size('transfer_jobs'))
    union all select 'instances (heap + indexes)', pg_size_pretty(pg_total_relation_size('instances'))`.execute(
    catalog.db,
  );
  console.log(rows.map((r) => `${r.what} ${r.size}`).join(', '));
}

async function main(): Promise<void> {
  const server =
    values.keep === undefined ? await throwawayPostgres() : await keptPostgres(resolve(values.keep));
  try {
    const fleet = await fleetDatabase(server);
    const catalog = openCatalog({ dialect: 'postgres', url: server.url(fleet.name) });
    try {
      const migrateStarted = performance.now();
      const migrated = await migrateCatalog(catalog);
      console.log(
        `fleet ${fleet.name}: ${fleet.note.instances} instances × ${fleet.note.days} days, end ${new Date(fleet.note.end).toISOString()}, ` +
          `${fleet.built ? 'built' : 'reused; it was built'} in ${fleet.note.buildSeconds.toFixed(0)} s; ` +
          `migrations applied now: ${migrated.applied.join(', ') || 'none'} (${((performance.now() - migrateStarted) / 1000).toFixed(1)} s)`,
      );
      if (migrated.applied.length > 0) await sql`analyze`.execute(catalog.db);
      await sizes(catalog);
      const token = await seedPeople(catalog);
      const capture = new StatementCapture();
      const served = capturedCatalog(server.url(fleet.name), capture);
      const app = await buildApp(
        await createAppContext({
          catalog: served,
          clock: () => new Date(fleet.note.end),
          log: pino({ level: 'silent' }),
          policy: 'accept',
          maxAttempts: 5,
        }),
      );
      const url = await app.listen({ host: '127.0.0.1', port: 0 });
      // A browser opens up to six connections to a host.
      const pool = new Pool(url, { connections: 6 });
      try {
        const pages = await pagesOf(catalog, fleet.note.end);
        const results = await measure(pool, token, pages);
        console.log(
          `\n${CALLS} loads per page after ${WARMUP} warm-ups; a page's time is its requests made in parallel, as the dashboard makes them.`,
        );
        const slow = report(pages, results);
        await explainSlow(pool, token, pages, slow, capture, catalog);
      } finally {
        await pool.close();
        await app.close();
        await served.close();
      }
    } finally {
      await catalog.close();
    }
  } finally {
    await server.stop();
  }
}

await main();
