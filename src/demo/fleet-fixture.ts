import { createHash } from 'node:crypto';
import { type Insertable, type RawBuilder, sql, type Transaction } from 'kysely';
import { setAsideIndexes } from '../catalog/bulk-load-indexes.js';
import type { Catalog } from '../catalog/database.js';
import type { CatalogDialect } from '../catalog/dialect.js';
import type { AlertEventTable, AlertTable, AuditLogTable, CatalogSchema } from '../catalog/schema.js';
import { alertSummary } from '../server/alerts/alert-summary.js';
import { rebuildRollups } from '../server/stats/rebuild-rollups.js';

/**
 * A synthetic fleet written straight into a migrated catalog, for benchmarks
 * and tests that need the catalog as it looks after weeks of production
 * (DESIGN §7: 200 k instances, 400 k backups a day, 12 M rows over 30 days).
 *
 * Shape, all of it a fixed function of the options, the seed included (for one back
 * end: PostgreSQL and SQLite draw with different functions, so their fleets differ):
 *
 * - businesses (`game_id` 100, 101, …; a few big ones, many small), the backup types
 *   mysql / redis / postgres, clusters `default`, `east`, `west` with 4 + 2 + 2 nodes
 *   (one of them offline), hosts with {@link INSTANCES_PER_HOST} instances each.
 * - Every instance runs a full at 04:00 UTC plus up to 30 minutes and one incremental
 *   at another hour (05:00 … 03:00, given by blocks of instances, so a host's instances
 *   mostly share it), so every hour has its cron burst. Incrementals name that full as
 *   their base.
 * - About 1 % of the reports failed (no file, an error text); an incremental whose
 *   full failed fails too ("the last full backup failed"), as the script contract says.
 * - Successful backups are stored and verified on a node of their cluster, with a `done`
 *   transfer job; about half of those received in the last hour still wait (`queued`,
 *   some `leased`), and one in 50,000 went `dead`. Nothing is received after `end`.
 * - Alerts as the engine would have left them: a `script_failed` per run of failures,
 *   resolved by the next success, open (some acknowledged) when none came yet;
 *   `transfer_failed` for dead jobs; `node_offline` for the offline node. With events
 *   and audit entries.
 *
 * Rows are written set-based: one `INSERT … SELECT` per cycle and table over a plan
 * of the instances (PostgreSQL reads it from `generate_series`, SQLite from a
 * recursive CTE), in one transaction, with the big tables' secondary indexes
 * dropped during the load and rebuilt after it.
 */

export const FLEET_TYPES = ['mysql', 'redis', 'postgres'] as const;
/** Fulls start at this UTC hour, plus 1 s to 30 min. */
export const FULL_HOUR_UTC = 4;
export const INSTANCES_PER_HOST = 3;
export const DEFAULT_FLEET_BUSINESSES = 200;
/** The clusters and how many nodes each has; node names are `node-<cluster>-<n>`. */
export const FLEET_CLUSTERS = [
  { name: 'default', nodes: 4 },
  { name: 'east', nodes: 2 },
  { name: 'west', nodes: 2 },
] as const;
/** The node whose heartbeats stopped two hours before the end. */
export const OFFLINE_NODE = 'node-west-2';
/** Transfer jobs never give up more often than this: one in … of the successful backups. */
export const DEAD_JOB_ONE_IN = 50_000;
export const MAX_FLEET_INSTANCES = 10_000_000;
export const MAX_FLEET_DAYS = 400;

/** Per mille of fulls that fail, and of incrementals that fail by themselves (about 1 % of all runs). */
const FULL_FAIL_PER_MILLE = 7;
const INCREMENTAL_FAIL_PER_MILLE = 6;
const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
const AGENT_VERSION = '0.1.0';
const MAX_ATTEMPTS = 5;
/** Rows per multi-row insert of the small derived tables (well under both back ends' parameter limits). */
const INSERT_BATCH = 1000;

/** The kinds of failure the fleet's scripts have, chosen by a per-run draw. */
const FAILURES = [
  {
    error: 'script exited with code 2; back_log says wrong: dump: Lost connection to server during query',
    exit: 2,
    log: 'wrong\ndump: Lost connection to server during query\n',
  },
  {
    error: 'script exited with code 1; back_log says wrong: No space left on device',
    exit: 1,
    log: 'wrong\nNo space left on device\n',
  },
  { error: 'script timed out after 7200 seconds; its process group was killed', exit: null, log: '' },
  { error: 'script did not write back_log: the file does not exist', exit: 0, log: '' },
] as const;
const LAST_FULL_FAILED = {
  error:
    'the last full backup failed: dump incomplete (from last_all_log); this incremental has no good base full',
  exit: 0,
  log: 'wrong\nlast full failed\n',
} as const;

export interface FleetOptions {
  instances: number;
  days: number;
  /** Epoch ms: the fleet's "now". Every backup was received by then. */
  end: number;
  seed: number;
  /** Default: {@link DEFAULT_FLEET_BUSINESSES}, at most one per instance. */
  businesses?: number;
  /** Told about each step as it finishes. */
  onStep?: (step: FleetStep) => void;
  /** Told how long each index (or constraint) of the big tables took to build again. */
  onIndex?: (name: string, ms: number) => void;
}

export interface FleetStep {
  /** A table, or what the step did (`indexes`, `vacuum analyze`). */
  name: string;
  rows: number;
  ms: number;
}

export interface FleetReport {
  steps: FleetStep[];
  /** Rows per table written. */
  rows: Record<string, number>;
  /** The UTC midnight of the first and the last cycle (a full and its incremental). */
  firstCycle: number;
  lastCycle: number;
  ms: number;
}

export class FleetFixtureError extends Error {
  override name = 'FleetFixtureError';
}

/** The first cycle's day is `days - 1` before the last; the last is the newest whose 04:00 is before `end`. */
export function fleetCycles(end: number, days: number): { first: number; last: number } {
  const last = Math.floor((end - FULL_HOUR_UTC * HOUR_MS - 1) / DAY_MS) * DAY_MS;
  return { first: last - (days - 1) * DAY_MS, last };
}

type Trx = Transaction<CatalogSchema>;
type Expr = RawBuilder<unknown>;

const lit = (value: number | string): Expr => sql.lit(value);
const MIX_PRIME = 2147483647;

/**
 * SQLite's draws (it has no hash function): a pseudo-random value in [0, 2^31 − 1)
 * from an integer key, by two rounds of a quadratic map modulo the Mersenne prime
 * 2^31 − 1. Plain integer arithmetic in which no intermediate exceeds 2^63.
 */
function mix(key: Expr, seedOffset: number): Expr {
  const p = lit(MIX_PRIME);
  const x = sql`((${key}) + ${lit(seedOffset)}) % ${p}`;
  const y = sql`((((${x}) * (${x})) % ${p}) * 16807 + (${x}) * 48271 + 12345) % ${p}`;
  return sql`((((${y}) * (${y})) % ${p}) * 69621 + (${y}) * 40692 + 54321) % ${p}`;
}

/** What differs between the back ends in the generating SQL. */
interface FleetSql {
  /** Integers 0 … n − 1 as `s(i)`: the WITH clause it needs (SQLite) and the FROM item. */
  series(n: number): { with: Expr; from: Expr };
  /** Ends a derived table so it is not merged into the outer query: its values are computed once per row. */
  keepRow: Expr;
  /** A pseudo-random draw in [0, 2^31) from a whole-number key (the same key, the same draw). */
  draw(key: Expr): Expr;
  /** 64 lowercase hex characters, unique per key and tag. */
  hex64(key: Expr, tag: number): Expr;
  /** A UUID-shaped text, unique per key. */
  uuid(key: Expr): Expr;
}

/**
 * PostgreSQL draws with its own 64-bit integer hash (`hashint8extended`, seeded; it is
 * what hash partitioning relies on, so it is stable), SQLite with {@link mix}: each back
 * end's fleet is a fixed function of the seed, though the two differ.
 */
function fleetSql(dialect: CatalogDialect, seedOffset: number): FleetSql {
  if (dialect === 'postgres') {
    const hash = (key: Expr, salt: number) =>
      sql`hashint8extended(cast(${key} as bigint), ${lit(seedOffset * 16 + salt)})`;
    const bytes = (key: Expr, salt: number) => sql`int8send(${hash(key, salt)})`;
    return {
      series: (n) => ({
        with: sql``,
        from: sql`generate_series(cast(0 as bigint), cast(${lit(n - 1)} as bigint)) as s(i)`,
      }),
      keepRow: sql`offset 0`,
      draw: (key) => sql`(${hash(key, 0)} & 2147483647)`,
      hex64: (key, tag) =>
        sql`encode(${bytes(key, tag * 4 + 1)} || ${bytes(key, tag * 4 + 2)} || ${bytes(key, tag * 4 + 3)} || int8send(cast(${key} as bigint)), 'hex')`,
      uuid: (key) =>
        sql`cast(cast(encode(${bytes(key, 15)} || int8send(cast(${key} as bigint)), 'hex') as uuid) as text)`,
    };
  }
  const draw = (key: Expr, n: number) => mix(sql`(${key}) * 16 + ${lit(n)}`, seedOffset);
  return {
    series: (n) => ({
      with: sql`with recursive s(i) as (select 0 union all select i + 1 from s where i < ${lit(n - 1)})`,
      from: sql`s`,
    }),
    keepRow: sql`limit -1 offset 0`,
    draw: (key) => mix(key, seedOffset),
    hex64: (key, tag) =>
      sql`printf('%08x%08x%08x%08x%08x%08x%016x', ${sql.join(
        [0, 1, 2, 3, 4, 5].map((n) => draw(key, tag * 8 + n)),
      )}, ${key})`,
    uuid: (key) =>
      sql`printf('%08x-%04x-4%03x-%04x-%012x', ${draw(key, 12)}, ${draw(key, 13)} % 65536, ${draw(key, 14)} % 4096, 32768 + ${draw(key, 15)} % 16384, ${key})`,
  };
}

interface Plan {
  trx: Trx;
  dialect: CatalogDialect;
  f: FleetSql;
  n: number;
  days: number;
  end: number;
  seed: number;
  seedOffset: number;
  businesses: number;
  firstCycle: number;
  lastCycle: number;
  registeredAt: number;
  clusterIds: Map<string, number>;
}

/** Fills a migrated, fleet-free catalog. Throws {@link FleetFixtureError} for bad options or a catalog in use. */
export async function fillFleet(catalog: Catalog, options: FleetOptions): Promise<FleetReport> {
  const n = checkedInteger('instances', options.instances, 1, MAX_FLEET_INSTANCES);
  const days = checkedInteger('days', options.days, 1, MAX_FLEET_DAYS);
  const seed = checkedInteger('seed', options.seed, 0, MIX_PRIME - 1);
  const businesses = checkedInteger(
    'businesses',
    options.businesses ?? Math.min(DEFAULT_FLEET_BUSINESSES, n),
    1,
    n,
  );
  if (!Number.isFinite(options.end)) throw new FleetFixtureError('end must be a time');
  const end = Math.floor(options.end);
  const cycles = fleetCycles(end, days);
  const started = performance.now();
  const steps: FleetStep[] = [];
  const rows: Record<string, number> = {};
  const step = async (name: string, run: () => Promise<number>): Promise<void> => {
    const t0 = performance.now();
    const count = await run();
    const done = { name, rows: count, ms: performance.now() - t0 };
    steps.push(done);
    options.onStep?.(done);
  };
  const counted = (table: string, count: number): number => {
    rows[table] = (rows[table] ?? 0) + count;
    return count;
  };

  const db = catalog.db;
  await refuseFleetTables(catalog);
  if (catalog.dialect === 'sqlite') {
    // Cannot change inside a transaction; the load checks its own references (the e2e test proves it).
    await sql`pragma foreign_keys = off`.execute(db);
    await sql`pragma synchronous = off`.execute(db);
  }
  try {
    await db.transaction().execute(async (trx) => {
      if (catalog.dialect === 'postgres') {
        await sql`set local maintenance_work_mem = '1GB'`.execute(trx);
        await sql`set local work_mem = '64MB'`.execute(trx);
        await sql`set local synchronous_commit = off`.execute(trx);
      }
      const plan: Plan = {
        trx,
        dialect: catalog.dialect,
        f: fleetSql(catalog.dialect, seedOffsetOf(seed)),
        n,
        days,
        end,
        seed,
        seedOffset: seedOffsetOf(seed),
        businesses,
        firstCycle: cycles.first,
        lastCycle: cycles.last,
        registeredAt: cycles.first - 7 * DAY_MS,
        clusterIds: new Map(),
      };
      await step('registry', async () => counted('registry', await writeRegistry(plan)));
      await step('nodes', async () => counted('nodes', await writeNodes(plan)));
      await step('fleet plan', () => writeFleetPlan(plan));
      await step('hosts', async () => counted('hosts', await writeHosts(plan)));
      await step('instances', async () => counted('instances', await writeInstances(plan)));
      const aside = await setAsideIndexes(trx, catalog.dialect, ['backups', 'transfer_jobs']);
      await step('backups', async () => counted('backups', await writeBackups(plan)));
      await step('transfer_jobs', async () => counted('transfer_jobs', await writeJobs(plan)));
      await step(`indexes (${aside.names.length} rebuilt)`, async () => {
        await aside.restore((name, ms) => options.onIndex?.(name, ms));
        // Statistics for the queries below: the tables were empty when last analyzed.
        for (const table of ['backups', 'transfer_jobs', 'instances'])
          await sql`analyze ${sql.table(table)}`.execute(trx);
        return aside.names.length;
      });
      await step('instances: last success', () => writeLastSuccess(plan));
      await step('alerts', async () => {
        const written = await writeAlerts(plan);
        counted('alert_events', written.events);
        counted('audit_log', written.audit);
        return counted('alerts', written.alerts);
      });
      await sql`drop table fleet_plan`.execute(trx);
      if (catalog.dialect === 'postgres') {
        for (const table of ['backups', 'transfer_jobs', 'instances', 'hosts', 'alerts'])
          await sql`select setval(pg_get_serial_sequence(${table}, 'id'), max(id)) from ${sql.table(table)}`.execute(
            trx,
          );
      }
    });
  } finally {
    if (catalog.dialect === 'sqlite') {
      await sql`pragma synchronous = full`.execute(db);
      await sql`pragma foreign_keys = on`.execute(db);
    }
  }
  // The statistics as ingest and completion would have kept them, recounted from what was loaded.
  await step('statistics rollups', async () => {
    const rebuilt = await rebuildRollups(catalog, { fromMs: null, toMs: null });
    let total = 0;
    for (const [table, count] of Object.entries(rebuilt.rows)) total += counted(table, count);
    return total;
  });
  await step(catalog.dialect === 'postgres' ? 'vacuum analyze' : 'analyze', async () => {
    if (catalog.dialect === 'postgres') await sql`vacuum (analyze)`.execute(db);
    else {
      await sql`analyze`.execute(db);
      await sql`pragma wal_checkpoint(truncate)`.execute(db);
    }
    return 0;
  });
  return {
    steps,
    rows,
    firstCycle: cycles.first,
    lastCycle: cycles.last,
    ms: performance.now() - started,
  };
}

function checkedInteger(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max)
    throw new FleetFixtureError(`${name} must be a whole number from ${min} to ${max} (got ${value})`);
  return value;
}

function seedOffsetOf(seed: number): number {
  return (seed * 7919 + 104_729) % MIX_PRIME;
}

/** The fleet takes whole tables: it refuses a catalog that already has any of them filled. */
async function refuseFleetTables(catalog: Catalog): Promise<void> {
  const tables = ['businesses', 'instances', 'hosts', 'backups', 'transfer_jobs', 'alerts'] as const;
  for (const table of tables) {
    const row = await catalog.db.selectFrom(table).select('id').limit(1).executeTakeFirst();
    if (row)
      throw new FleetFixtureError(
        `the catalog already has ${table}: the fleet fixture fills a new catalog (migrated, no fleet yet)`,
      );
  }
}

/** A seeded generator for the few draws made in JavaScript (mulberry32). */
function jsRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gameIdOf(business: number): string {
  return String(100 + business);
}

/** Which cluster a business's instances go to: 5 of 8 businesses `default`, 2 `east`, 1 `west`. */
function clusterCase(business: Expr, pick: (c: (typeof FLEET_CLUSTERS)[number]) => Expr): Expr {
  const [dflt, east, west] = FLEET_CLUSTERS;
  return sql`case when ${business} % 8 < 5 then ${pick(dflt)} when ${business} % 8 < 7 then ${pick(east)} else ${pick(west)} end`;
}

async function writeRegistry(plan: Plan): Promise<number> {
  const { trx, registeredAt } = plan;
  const types = await trx
    .insertInto('backup_types')
    .values(FLEET_TYPES.map((name) => ({ name, description: `${name} instances`, created_at: registeredAt })))
    .onConflict((oc) => oc.column('name').doNothing())
    .executeTakeFirst();
  const clusters = await trx
    .insertInto('clusters')
    .values(
      FLEET_CLUSTERS.filter((c) => c.name !== 'default').map((c) => ({
        name: c.name,
        description: `the ${c.name} storage room`,
        created_at: registeredAt,
      })),
    )
    .onConflict((oc) => oc.column('name').doNothing())
    .executeTakeFirst();
  for (const c of await trx.selectFrom('clusters').select(['id', 'name']).execute())
    plan.clusterIds.set(c.name, c.id);
  let businesses = 0;
  for (let first = 0; first < plan.businesses; first += INSERT_BATCH) {
    const batch = Array.from({ length: Math.min(INSERT_BATCH, plan.businesses - first) }, (_, k) => {
      const b = first + k;
      return {
        game_id: gameIdOf(b),
        name: `Business ${gameIdOf(b)}`,
        created_at: registeredAt + b * 1000,
        // Keeps the whole history: nothing is due for deletion.
        retention_days: plan.days + 1,
      };
    });
    await trx.insertInto('businesses').values(batch).execute();
    businesses += batch.length;
  }
  return (
    Number(types.numInsertedOrUpdatedRows ?? 0n) +
    Number(clusters.numInsertedOrUpdatedRows ?? 0n) +
    businesses
  );
}

async function writeNodes(plan: Plan): Promise<number> {
  const { trx, end, registeredAt } = plan;
  const random = jsRandom(plan.seed + 1);
  const nodes = FLEET_CLUSTERS.flatMap((cluster, ci) =>
    Array.from({ length: cluster.nodes }, (_, j) => {
      const name = `node-${cluster.name}-${j + 1}`;
      const total = 200_000_000_000_000;
      return {
        name,
        cluster_id: clusterIdOf(plan, cluster.name),
        credential_hash: createHash('sha256').update(`${plan.seed}:node:${name}`).digest('hex'),
        address: `10.200.${ci}.${j + 1}:8874`,
        weight: 4,
        max_bandwidth: 0,
        reserve_bytes: 2_000_000_000_000,
        disk_total_bytes: total,
        disk_free_bytes: Math.round(total * (0.3 + 0.4 * random())),
        in_flight: Math.floor(random() * 4),
        bytes_per_second: Math.round(200_000_000 * random()),
        state: 'active',
        version: AGENT_VERSION,
        last_heartbeat_at: name === OFFLINE_NODE ? end - 2 * HOUR_MS : end - Math.round(random() * 5000),
        enrolled_at: registeredAt,
        created_at: registeredAt,
      };
    }),
  );
  await trx
    .insertInto('nodes')
    .values(nodes)
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
  return nodes.length;
}

function clusterIdOf(plan: Plan, name: string): number {
  const id = plan.clusterIds.get(name);
  if (id === undefined) throw new Error(`cluster ${name} is missing after it was written`);
  return id;
}

/**
 * One row per instance with everything the other tables derive from it, in a temporary
 * table: host, identity, business, cluster, priority, sizes, its incremental's hour.
 */
async function writeFleetPlan(plan: Plan): Promise<number> {
  const { trx, f, n } = plan;
  await sql`create temporary table fleet_plan (
    idx bigint primary key, host bigint not null, server_id text not null, type text not null,
    instance text not null, section text not null, game_id text not null, cluster_id bigint not null,
    priority text not null, host_ip text not null, path_prefix text not null, file_prefix text not null,
    ext text not null, base_size bigint not null, inc_hour integer not null, node_prefix text not null,
    node_count integer not null)`.execute(trx);
  const s = f.series(n);
  const draw = f.draw;
  const hostOf = sql`(i / ${lit(INSTANCES_PER_HOST)})`;
  const result = await sql`
    insert into fleet_plan (idx, host, server_id, type, instance, section, game_id, cluster_id, priority,
      host_ip, path_prefix, file_prefix, ext, base_size, inc_hour, node_prefix, node_count)
    ${s.with}
    select idx, host, server_id, type, cast(port as text), type || cast(port as text), game_id, cluster_id,
      priority, host_ip,
      game_id || '/' || type || '/' || server_id || '/' || cast(port as text) || '/',
      type || cast(port as text) || '_',
      case type when 'mysql' then '.xb.zst' when 'redis' then '.rdb.gz' else '.tar.zst' end,
      case type when 'mysql' then 200000000 when 'redis' then 20000000 else 100000000 end
        * (1 + r_size % 64) + (r_size / 64) % 1000000,
      5 + idx * 23 / ${lit(n)},
      'node-' || cluster_name || '-', node_count
    from (
      select q.*,
        ${clusterCase(sql`q.b`, (c) => lit(clusterIdOf(plan, c.name)))} as cluster_id,
        ${clusterCase(sql`q.b`, (c) => lit(c.name))} as cluster_name,
        ${clusterCase(sql`q.b`, (c) => lit(c.nodes))} as node_count,
        cast(100 + q.b as text) as game_id,
        case q.type when 'mysql' then 3306 when 'redis' then 6379 else 5432 end
          + q.idx % ${lit(INSTANCES_PER_HOST)} as port
      from (
        select i as idx, ${hostOf} as host,
          cast(100000 + ${hostOf} as text) as server_id,
          '10.' || cast((${hostOf} + 1) / 65536 % 256 as text) || '.' || cast((${hostOf} + 1) / 256 % 256 as text)
            || '.' || cast((${hostOf} + 1) % 256 as text) as host_ip,
          case when r_type % 100 < 60 then 'mysql' when r_type % 100 < 85 then 'redis' else 'postgres' end as type,
          case when r_prio % 100 < 5 then 'critical' when r_prio % 100 < 20 then 'high'
            when r_prio % 100 < 95 then 'normal' else 'low' end as priority,
          ((r_biz * r_biz) / 1000000) * ${lit(plan.businesses)} / 1000000 as b,
          r_size
        from (
          select i, ${draw(sql`i * 7 + 1`)} as r_type, ${draw(sql`i * 7 + 2`)} as r_prio,
            ${draw(sql`${hostOf} * 7 + 3`)} % 1000000 as r_biz, ${draw(sql`i * 7 + 4`)} as r_size
          from ${s.from} ${f.keepRow}
        ) m
      ) q
    ) t`.execute(trx);
  return Number(result.numAffectedRows ?? 0n);
}

async function writeHosts(plan: Plan): Promise<number> {
  const { trx, f, registeredAt, end } = plan;
  const result = await sql`
    insert into hosts (id, server_id, ip, agent_version, credential_hash, enrolled_at, last_seen_at,
      created_at, pull_port, pull_tls)
    select host + 1, server_id, host_ip, ${lit(AGENT_VERSION)}, ${f.hex64(sql`host`, 1)}, ${lit(registeredAt)},
      ${lit(end)} - (${f.draw(sql`host * 7 + 5`)} % 300) * 1000, ${lit(registeredAt)}, 8873, 0
    from fleet_plan where idx % ${lit(INSTANCES_PER_HOST)} = 0
    order by idx`.execute(trx);
  return Number(result.numAffectedRows ?? 0n);
}

async function writeInstances(plan: Plan): Promise<number> {
  const { trx, registeredAt } = plan;
  const result = await sql`
    insert into instances (id, server_id, type, instance, name, game_id, cluster_id, priority, schedule,
      interval_seconds, timezone, grace_seconds, retention_days, keep_fulls, paused, next_due_at,
      last_success_at, muted_until, run_started_at, run_deadline_at, last_report_at, created_at, updated_at)
    select idx + 1, server_id, type, instance, game_id || '-' || server_id || '-' || section, game_id,
      cluster_id, priority,
      case when inc_hour >= 24 then '0 ' || cast(inc_hour - 24 as text) || ',4 * * *'
        else '0 4,' || cast(inc_hour as text) || ' * * *' end,
      43200, 'UTC', 3000, null, null, 0, null, null, null, null, null, null,
      ${lit(registeredAt)}, ${lit(registeredAt)}
    from fleet_plan order by idx`.execute(trx);
  return Number(result.numAffectedRows ?? 0n);
}

/** `YYYYMMDD` of a UTC day. */
function ymd(dayMs: number): string {
  return new Date(dayMs).toISOString().slice(0, 10).replaceAll('-', '');
}

/** `HHMMSS` of a second of the day. */
function hhmmss(secondOfDay: Expr): Expr {
  const s = sql`(${secondOfDay})`;
  return sql`substr(cast(1000000 + (${s} / 3600) * 10000 + ((${s} / 60) % 60) * 100 + ${s} % 60 as text), 2)`;
}

/** Draw keys: an instance's per cycle, and a backup's by id (which the jobs' step draws again). */
const DRAW = { fullMain: 1, fullSize: 2, incMain: 3, incSize: 4 } as const;
const BACKUP_DRAW = 5;

function failureCase(
  failed: Expr,
  err: Expr,
  pick: (f: { error: string; exit: number | null; log: string }) => Expr,
) {
  return sql`case when ${failed} = 2 then ${pick(LAST_FULL_FAILED)} ${sql.join(
    FAILURES.map((f, k) => sql`when ${err} = ${lit(k)} then ${pick(f)}`),
    sql` `,
  )} end`;
}

/**
 * The backups of one cycle's fulls or incrementals, ids `(2 × cycle + slot) × n + idx + 1`,
 * so ids grow with time as ingest would give them, and an incremental's base id is known.
 */
function backupInsert(plan: Plan, cycle: number, kind: 'full' | 'incremental'): Expr | null {
  const { f, n, end } = plan;
  const day = plan.firstCycle + cycle * DAY_MS;
  const full = kind === 'full';
  // The earliest a run of this cycle can start.
  if (day + (full ? FULL_HOUR_UTC : FULL_HOUR_UTC + 1) * HOUR_MS > end) return null;
  const fullBase = 2 * cycle * n + 1;
  const firstId = (2 * cycle + (full ? 0 : 1)) * n + 1;
  const key = (purpose: number) => sql`p.idx * 1000003 + ${lit(cycle * 64 + purpose)}`;
  const draw = f.draw;
  const date = lit(ymd(day));
  const fullSod = (m0: Expr) => sql`${lit(FULL_HOUR_UTC * 3600 + 1)} + ${m0} % 1800`;

  const level1 = full
    ? sql`select p.*, p.idx + ${lit(firstId)} as id, ${draw(key(DRAW.fullMain))} as m1,
        ${draw(key(DRAW.fullSize))} as m2, 0 as m0
      from fleet_plan p ${f.keepRow}`
    : sql`select p.*, p.idx + ${lit(firstId)} as id, ${draw(key(DRAW.incMain))} as m1,
        ${draw(key(DRAW.incSize))} as m2, ${draw(key(DRAW.fullMain))} as m0
      from fleet_plan p ${f.keepRow}`;
  const level2 = full
    ? sql`select r.*, ${fullSod(sql`r.m1`)} as sod,
        case when (r.m1 / 1800) % 1000 < ${lit(FULL_FAIL_PER_MILLE)} then 1 else 0 end as failed,
        (r.m1 / 1800000) % ${lit(FAILURES.length)} as err,
        r.base_size * (950 + r.m2 % 100) / 1000 as size,
        ${draw(sql`r.id * 16 + ${lit(BACKUP_DRAW)}`)} as m3
      from (${level1}) r ${f.keepRow}`
    : sql`select r.*, r.inc_hour * 3600 + r.m1 % 900 as sod,
        case when (r.m0 / 1800) % 1000 < ${lit(FULL_FAIL_PER_MILLE)} then 2
          when (r.m1 / 900) % 1000 < ${lit(INCREMENTAL_FAIL_PER_MILLE)} then 1 else 0 end as failed,
        (r.m1 / 900000) % ${lit(FAILURES.length)} as err,
        r.base_size * (20 + r.m2 % 60) / 1000 as size,
        ${draw(sql`r.id * 16 + ${lit(BACKUP_DRAW)}`)} as m3
      from (${level1}) r ${f.keepRow}`;
  const duration = full
    ? sql`60 + d.size / 50000000 + (d.m2 / 100) % 120`
    : sql`10 + d.size / 50000000 + (d.m2 / 100) % 30`;
  const runDate = full
    ? date
    : sql`case when d.inc_hour >= 24 then ${lit(ymd(day + DAY_MS))} else ${date} end`;
  const level3 = sql`select d.*, ${lit(day)} + d.sod * 1000 as created_at,
      ${lit(day)} + (d.sod + ${duration}) * 1000 as finished_at,
      ${lit(day)} + (d.sod + ${duration} + 1 + (d.m2 / 12000) % 4) * 1000 as received_at,
      ${lit(day)} + (d.sod + ${duration} + 1 + (d.m2 / 12000) % 4 + 2 + (d.m2 / 48000) % 60
        + d.size / 200000000) * 1000 as stored_planned,
      d.file_prefix || ${lit(full ? 'full_' : 'inc_')} || ${runDate} || ${hhmmss(sql`d.sod % 86400`)} || d.ext as filename,
      d.node_prefix || cast(1 + (d.idx + (d.m2 / 2880000) % 2) % d.node_count as text) as node
    from (${level2}) d ${f.keepRow}`;
  // Stored unless it failed, its job went dead, it is in the last hour's backlog, or its transfer is not over.
  const level4 = sql`select z.*,
      case when z.failed = 0 and z.m3 % ${lit(DEAD_JOB_ONE_IN)} <> 0 and z.stored_planned <= ${lit(end)}
        and not (z.received_at > ${lit(end - HOUR_MS)} and (z.m3 / ${lit(DEAD_JOB_ONE_IN)}) % 2 = 0)
        then 1 else 0 end as stored
    from (${level3}) z ${f.keepRow}`;

  const ok = sql`w.failed = 0`;
  const baseColumns = full
    ? sql`null, null, null`
    : sql`case when ${ok} then w.file_prefix || 'full_' || ${date} || ${hhmmss(fullSod(sql`w.m0`))} || w.ext end,
        case when ${ok} then ${lit(day)} + (${fullSod(sql`w.m0`)}) * 1000 end,
        case when ${ok} then w.idx + ${lit(fullBase)} end`;
  const stored = (value: Expr) => sql`case when w.stored = 1 then ${value} end`;
  return sql`
    insert into backups (id, report_id, instance_id, server_id, type, instance, section, reported_game_id,
      game_id, cluster_id, host_ip, created_at, finished_at, received_at, status, kind, filename, size, blake3,
      base_filename, base_created_at, base_backup_id, log, error, exit_code, output_tail, legality,
      illegal_reason, priority, agent_version, stored_node, stored_path, stored_at, verified_at, deleted_at,
      permanent, transport, rsync_model, alert_pending, delete_requested_at, delete_reason, scrubbed_at,
      scrub_error)
    select w.id, ${f.uuid(sql`w.id`)}, w.idx + 1, w.server_id, w.type, w.instance, w.section, w.game_id,
      w.game_id, w.cluster_id, w.host_ip, w.created_at, w.finished_at, w.received_at,
      case when ${ok} then 'ok' else 'failed' end,
      case when ${ok} then ${lit(kind)} end,
      case when ${ok} then w.filename end,
      case when ${ok} then w.size end,
      case when ${ok} then ${f.hex64(sql`w.id`, 2)} end,
      ${baseColumns},
      case when ${ok} then 'ok' || ${lit('\n')} || w.filename || ${lit('\n')}
        else ${failureCase(sql`w.failed`, sql`w.err`, (x) => lit(x.log))} end,
      case when ${ok} then null else ${failureCase(sql`w.failed`, sql`w.err`, (x) => lit(x.error))} end,
      case when ${ok} then 0 else ${failureCase(sql`w.failed`, sql`w.err`, (x) => (x.exit === null ? sql`null` : lit(x.exit)))} end,
      case when ${ok} then '' else ${failureCase(sql`w.failed`, sql`w.err`, (x) => lit(x.error.slice(0, 200)))} end,
      'legal', null, w.priority, ${lit(AGENT_VERSION)},
      ${stored(sql`w.node`)}, ${stored(sql`w.path_prefix || w.filename`)}, ${stored(sql`w.stored_planned`)},
      ${stored(sql`w.stored_planned`)}, null, 0, 'http', null, 0, null, null, ${stored(sql`w.stored_planned`)}, null
    from (${level4}) w
    where w.received_at <= ${lit(end)}`;
}

async function writeBackups(plan: Plan): Promise<number> {
  let written = 0;
  for (let cycle = 0; cycle < plan.days; cycle += 1) {
    for (const kind of ['full', 'incremental'] as const) {
      const insert = backupInsert(plan, cycle, kind);
      if (insert === null) continue;
      const result = await insert.execute(plan.trx);
      written += Number(result.numAffectedRows ?? 0n);
    }
  }
  return written;
}

/** A transfer job per successful backup, id = the backup's; the same draw decides dead and leased. */
async function writeJobs(plan: Plan): Promise<number> {
  const { trx, f, n, end } = plan;
  let written = 0;
  for (let cycle = 0; cycle < plan.days; cycle += 1) {
    const first = 2 * cycle * n + 1;
    const last = (2 * cycle + 2) * n;
    const result = await sql`
      insert into transfer_jobs (id, backup_id, cluster_id, priority, state, attempts, max_attempts, size,
        enqueued_at, next_attempt_at, lease_node, lease_expires_at, bytes_done, last_error, updated_at)
      select j.id, j.id, j.cluster_id,
        case j.priority when 'critical' then 0 when 'high' then 1 when 'low' then 3 else 2 end,
        j.state,
        case j.state when 'done' then 1 when 'dead' then ${lit(MAX_ATTEMPTS)} when 'leased' then 1 else 0 end,
        ${lit(MAX_ATTEMPTS)}, j.size, j.received_at,
        case j.state when 'dead' then j.received_at + 450000 else j.received_at end,
        case j.state when 'done' then j.stored_node when 'leased' then 'node-' || j.cluster_name || '-1' end,
        case when j.state = 'leased' then ${lit(end + 60_000)} end,
        case j.state when 'done' then j.size when 'leased' then j.size / 2 else 0 end,
        case when j.state = 'dead' then 'the agent answered 404: the file is gone from back_dir' end,
        case j.state when 'done' then j.stored_at when 'dead' then j.received_at + 450000 else j.received_at end
      from (
        select m.*, case when m.stored_at is not null then 'done'
            when m.m3 % ${lit(DEAD_JOB_ONE_IN)} = 0 then 'dead'
            when (m.m3 / 100000) % 8 = 0 then 'leased' else 'queued' end as state
        from (
          select b.id, b.cluster_id, b.priority, b.size, b.received_at, b.stored_node, b.stored_at,
            c.name as cluster_name, ${f.draw(sql`b.id * 16 + ${lit(BACKUP_DRAW)}`)} as m3
          from backups b join clusters c on c.id = b.cluster_id
          where b.id between ${lit(first)} and ${lit(last)} and b.status = 'ok'
          ${f.keepRow}
        ) m ${f.keepRow}
      ) j`.execute(trx);
    written += Number(result.numAffectedRows ?? 0n);
  }
  return written;
}

/**
 * Each instance's newest success and report, from the last two cycles (a success
 * older than that would take four failures in a row): their ids are one range, read
 * in heap order rather than through an index.
 */
async function writeLastSuccess(plan: Plan): Promise<number> {
  const firstId = 2 * Math.max(0, plan.days - 2) * plan.n + 1;
  const result = await sql`
    update instances set last_success_at = s.ok_at, last_report_at = s.report_at
    from (
      select instance_id, max(case when status = 'ok' then created_at end) as ok_at,
        max(received_at) as report_at
      from backups where id >= ${lit(firstId)}
      group by instance_id
    ) s
    where instances.id = s.instance_id`.execute(plan.trx);
  return Number(result.numAffectedRows ?? 0n);
}

interface Incident {
  instance_id: number;
  server_id: string;
  type: string;
  instance: string;
  game_id: string;
  created_at: number;
  received_at: number;
  error: string | null;
  filename: string | null;
  /** When it cleared: the next success (failures) or verified copy (dead jobs); null while it lasts. */
  cleared_at: number | null;
}

interface AlertDraft {
  type: 'script_failed' | 'transfer_failed' | 'node_offline';
  subject: string;
  gameId: string;
  incidents: Incident[];
  /** What it said when it opened, and what it says now. */
  firstSummary: string;
  summary: string;
  openedAt: number;
  clearedAt: number | null;
}

const ACK_COMMENT = 'looking into it';
const ON_CALL = 'user:oncall';

/** Alerts, their events and the audit entries, as the alert engine and people would have left them. */
async function writeAlerts(plan: Plan): Promise<{ alerts: number; events: number; audit: number }> {
  const { trx, end } = plan;
  const nextOf = (condition: Expr) => sql<number | null>`(
    select o.received_at from backups o
    where o.instance_id = b.instance_id and o.created_at > b.created_at and ${condition}
    order by o.created_at limit 1)`;
  const failures = await sql<Incident>`
    select b.instance_id, b.server_id, b.type, b.instance, b.game_id, b.created_at, b.received_at, b.error,
      b.filename, ${nextOf(sql`o.status = 'ok'`)} as cleared_at
    from backups b where b.status <> 'ok'
    order by b.instance_id, b.created_at`.execute(trx);
  const dead = await sql<Incident>`
    select b.instance_id, b.server_id, b.type, b.instance, b.game_id, b.created_at, b.received_at, b.error,
      b.filename, ${nextOf(sql`o.stored_at is not null`)} as cleared_at
    from transfer_jobs j join backups b on b.id = j.backup_id
    where j.state = 'dead'
    order by b.instance_id, b.created_at`.execute(trx);

  const drafts: AlertDraft[] = [
    ...incidentAlerts('script_failed', failures.rows, (last) =>
      alertSummary({ type: 'script_failed', createdAt: Number(last.created_at), error: last.error }),
    ),
    ...incidentAlerts('transfer_failed', dead.rows, (last) =>
      alertSummary({
        type: 'transfer_failed',
        filename: last.filename ?? '?',
        attempts: MAX_ATTEMPTS,
        error: 'the agent answered 404: the file is gone from back_dir',
      }),
    ),
  ];
  const offlineSince = end - 2 * HOUR_MS;
  const offlineSummary = alertSummary({
    type: 'node_offline',
    lastHeartbeatAt: offlineSince,
    enrolledAt: plan.registeredAt,
    now: offlineSince + 15_000,
  });
  drafts.push({
    type: 'node_offline',
    subject: OFFLINE_NODE,
    gameId: '',
    incidents: [],
    firstSummary: offlineSummary,
    summary: offlineSummary,
    openedAt: offlineSince + 15_000,
    clearedAt: null,
  });
  drafts.sort((a, b) => a.openedAt - b.openedAt);

  const random = jsRandom(plan.seed + 2);
  const alerts: Insertable<AlertTable>[] = [];
  const events: Insertable<AlertEventTable>[] = [];
  const audit: Insertable<AuditLogTable>[] = [];
  drafts.forEach((draft, k) => {
    const id = k + 1;
    const resolved = draft.clearedAt !== null;
    const ackAt = draft.openedAt + 10 * 60_000;
    const acknowledged = !resolved && ackAt <= end && random() < 0.2;
    let lastEvent = draft.openedAt;
    events.push({
      alert_id: id,
      at: draft.openedAt,
      kind: 'opened',
      actor: 'system',
      detail: draft.firstSummary,
    });
    for (const later of draft.incidents.slice(1)) {
      const at = Number(later.received_at);
      events.push({ alert_id: id, at, kind: 'updated', actor: 'system', detail: 'failed again' });
      lastEvent = Math.max(lastEvent, at);
    }
    if (acknowledged) {
      events.push({ alert_id: id, at: ackAt, kind: 'acknowledged', actor: ON_CALL, detail: ACK_COMMENT });
      audit.push({
        at: ackAt,
        actor: ON_CALL,
        action: 'alert.acknowledge',
        subject: `alert:${id}`,
        detail: JSON.stringify({ comment: ACK_COMMENT }),
      });
      lastEvent = Math.max(lastEvent, ackAt);
    }
    if (draft.clearedAt !== null) {
      const detail =
        draft.type === 'script_failed'
          ? 'a successful backup arrived'
          : 'a later backup was stored and verified';
      events.push({ alert_id: id, at: draft.clearedAt, kind: 'resolved', actor: 'system', detail });
      lastEvent = Math.max(lastEvent, draft.clearedAt);
    }
    alerts.push({
      id,
      type: draft.type,
      subject: draft.subject,
      game_id: draft.gameId,
      severity: draft.type === 'script_failed' ? 'warning' : 'critical',
      state: resolved ? 'resolved' : acknowledged ? 'acknowledged' : 'open',
      summary: draft.summary,
      opened_at: draft.openedAt,
      acknowledged_at: acknowledged ? ackAt : null,
      acknowledged_by: acknowledged ? ON_CALL : null,
      ack_comment: acknowledged ? ACK_COMMENT : null,
      resolved_at: draft.clearedAt,
      resolved_by: resolved ? 'system' : null,
      last_event_at: lastEvent,
      notify_pending: 0,
    });
  });
  audit.push(...registryAudit(plan));
  audit.sort((a, b) => a.at - b.at);
  for (const batch of inBatches(alerts)) await trx.insertInto('alerts').values(batch).execute();
  for (const batch of inBatches(events)) await trx.insertInto('alert_events').values(batch).execute();
  for (const batch of inBatches(audit)) await trx.insertInto('audit_log').values(batch).execute();
  return { alerts: alerts.length, events: events.length, audit: audit.length };
}

/** Consecutive incidents of an instance with nothing good between them are one alert. */
function incidentAlerts(
  type: 'script_failed' | 'transfer_failed',
  incidents: readonly Incident[],
  summaryOf: (last: Incident) => string,
): AlertDraft[] {
  const drafts: AlertDraft[] = [];
  let current: AlertDraft | undefined;
  let currentInstance = -1;
  for (const incident of incidents) {
    const clearedAt = incident.cleared_at === null ? null : Number(incident.cleared_at);
    const instanceId = Number(incident.instance_id);
    if (current && currentInstance === instanceId && current.clearedAt === clearedAt) {
      current.incidents.push(incident);
      current.summary = summaryOf(incident);
      continue;
    }
    current = {
      type,
      subject: `${incident.server_id}/${incident.type}/${incident.instance}`,
      gameId: incident.game_id,
      incidents: [incident],
      firstSummary: summaryOf(incident),
      summary: summaryOf(incident),
      openedAt: Number(incident.received_at),
      clearedAt,
    };
    currentInstance = instanceId;
    drafts.push(current);
  }
  return drafts;
}

function registryAudit(plan: Plan): Insertable<AuditLogTable>[] {
  const at = plan.registeredAt;
  const entry = (offset: number, action: string, subject: string, detail: object) => ({
    at: at + offset,
    actor: 'user:admin',
    action,
    subject,
    detail: JSON.stringify(detail),
  });
  const entries = [
    ...FLEET_CLUSTERS.filter((c) => c.name !== 'default').map((c) =>
      entry(0, 'cluster.create', `cluster:${c.name}`, { name: c.name }),
    ),
    ...FLEET_TYPES.map((t) => entry(1, 'backup_type.create', `backup_type:${t}`, { name: t })),
    ...Array.from({ length: plan.businesses }, (_, b) =>
      entry(2 + b, 'business.create', `business:${gameIdOf(b)}`, { game_id: gameIdOf(b) }),
    ),
  ];
  for (let first = 0; first < plan.n; first += 1000) {
    const lines = Math.min(1000, plan.n - first);
    entries.push(entry(HOUR_MS + first, 'instance.import', 'instances', { created: lines, updated: 0 }));
  }
  return entries;
}

function inBatches<T>(rows: readonly T[]): T[][] {
  const batches: T[][] = [];
  for (let first = 0; first < rows.length; first += INSERT_BATCH)
    batches.push(rows.slice(first, first + INSERT_BATCH));
  return batches;
}
