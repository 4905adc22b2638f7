import { sql } from 'kysely';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Catalog } from '../../src/catalog/database.js';
import { sweepExpiredLeases } from '../../src/server/queue/sweep-leases.js';
import { rebuildRollups } from '../../src/server/stats/rebuild-rollups.js';
import {
  DAY_MS,
  HOUR_MS,
  ROLLUP_COUNTERS,
  type RollupCounts,
} from '../../src/server/stats/rollup-increments.js';
import type { LeasedJob } from '../../src/shared/node-protocol.js';
import { BACKENDS, type TestApp, testApp } from '../support/catalog-backends.js';
import { stopSharedPostgres } from '../support/postgres.js';
import { failedReport, sampleReport } from '../support/report-fixture.js';

afterAll(stopSharedPostgres);

const GiB = 1024 ** 3;
const COUNTERS = ROLLUP_COUNTERS;
type RollupRow = { bucket: number; game_id: string; type: string; node: string } & Record<
  keyof RollupCounts,
  number
>;
type QueueRow = { minute: number; cluster_id: number; enqueued: number; done: number; dead: number };

/** A seeded PRNG (mulberry32): the same sequence on every run and back end. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    int: (min: number, max: number) => min + Math.floor(next() * (max - min + 1)),
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T,
    chance: (p: number) => next() < p,
  };
}

const n = (v: unknown) => Number(v ?? 0);

/** Sums the rows of each key over its shards (a key's rows are spread over a few on PostgreSQL). */
function overShards<T extends Record<string, number | string>>(
  rows: readonly T[],
  keys: ReadonlyArray<keyof T>,
): T[] {
  const byKey = new Map<string, T>();
  for (const row of rows) {
    const key = JSON.stringify(keys.map((k) => row[k]));
    const seen = byKey.get(key);
    if (!seen) byKey.set(key, { ...row });
    else
      for (const [k, v] of Object.entries(row))
        if (!keys.includes(k) && typeof v === 'number')
          (seen as Record<string, number>)[k] = Number(seen[k]) + v;
  }
  return [...byKey.values()];
}

function normalizeRollups(rows: ReadonlyArray<Record<string, unknown>>): RollupRow[] {
  const plain = rows.map((r) => ({
    bucket: n(r.bucket),
    game_id: String(r.game_id),
    type: String(r.type),
    node: String(r.node),
    ...Object.fromEntries(COUNTERS.map((c) => [c, n(r[c])])),
  })) as RollupRow[];
  return overShards(plain, ['bucket', 'game_id', 'type', 'node'])
    .filter((r) => COUNTERS.some((c) => (r as RollupRow)[c] !== 0))
    .sort((a, b) =>
      JSON.stringify([a.bucket, a.game_id, a.type, a.node]).localeCompare(
        JSON.stringify([b.bucket, b.game_id, b.type, b.node]),
      ),
    ) as RollupRow[];
}

function normalizeQueue(rows: ReadonlyArray<Record<string, unknown>>): QueueRow[] {
  const plain = rows.map((r) => ({
    minute: n(r.minute),
    cluster_id: n(r.cluster_id),
    enqueued: n(r.enqueued),
    done: n(r.done),
    dead: n(r.dead),
  }));
  return overShards(plain, ['minute', 'cluster_id'])
    .filter((r) => r.enqueued !== 0 || r.done !== 0 || r.dead !== 0)
    .sort((a, b) => a.minute - b.minute || a.cluster_id - b.cluster_id);
}

/** What the rollups must hold, by a plain GROUP BY over backups (and the done jobs' durations). */
async function expectedRollups(catalog: Catalog, bucketMs: number): Promise<RollupRow[]> {
  const { rows } = await sql<Record<string, unknown>>`
    select b.created_at - (b.created_at % ${sql.lit(bucketMs)}) as bucket, b.game_id, b.type,
      case when b.stored_node is null then '' else b.stored_node end as node,
      count(b.id) as backups,
      count(case when b.status <> 'ok' then 1 end) as failures,
      sum(case when b.stored_node is null then 0 else b.size end) as bytes,
      sum(case when b.stored_node is null then 0 else (
        select sum(j.transfer_ms) from transfer_jobs j where j.backup_id = b.id and j.state = 'done') end) as transfer_ms,
      count(b.stored_node) as transfers,
      count(b.deleted_at) as deleted,
      sum(case when b.deleted_at is null then 0 else b.size end) as deleted_bytes
    from backups b
    group by b.created_at - (b.created_at % ${sql.lit(bucketMs)}), b.game_id, b.type,
      case when b.stored_node is null then '' else b.stored_node end`.execute(catalog.db);
  return normalizeRollups(rows);
}

async function expectedQueue(catalog: Catalog): Promise<QueueRow[]> {
  const { rows } = await sql<Record<string, unknown>>`
    select minute, cluster_id, sum(enqueued) as enqueued, sum(done) as done, sum(dead) as dead from (
      select enqueued_at - (enqueued_at % 60000) as minute, cluster_id, 1 as enqueued, 0 as done, 0 as dead from transfer_jobs
      union all
      select updated_at - (updated_at % 60000), cluster_id, 0, case when state = 'done' then 1 else 0 end,
        case when state = 'dead' then 1 else 0 end
      from transfer_jobs where state in ('done', 'dead')
    ) e group by minute, cluster_id`.execute(catalog.db);
  return normalizeQueue(rows);
}

async function stored(catalog: Catalog) {
  const [daily, hourly, queue] = await Promise.all([
    catalog.db.selectFrom('daily_stats').selectAll().execute(),
    catalog.db.selectFrom('hourly_stats').selectAll().execute(),
    catalog.db.selectFrom('queue_stats').selectAll().execute(),
  ]);
  return {
    daily: normalizeRollups(daily as unknown as Array<Record<string, unknown>>),
    hourly: normalizeRollups(hourly as unknown as Array<Record<string, unknown>>),
    queue: normalizeQueue(queue as unknown as Array<Record<string, unknown>>),
  };
}

async function expected(catalog: Catalog) {
  return {
    daily: await expectedRollups(catalog, DAY_MS),
    hourly: await expectedRollups(catalog, HOUR_MS),
    queue: await expectedQueue(catalog),
  };
}

describe.each(BACKENDS)('statistics rollups on %s', (backend) => {
  let t: TestApp;
  let now: number;
  const hosts = new Map<string, string>();
  const nodes = new Map<string, string>();

  const call = async (method: 'GET' | 'POST', url: string, as: string | null, payload?: unknown) =>
    t.app.inject({
      method,
      url,
      headers: as === null ? {} : { authorization: `Bearer ${as}` },
      ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
    });

  beforeEach(async () => {
    now = Date.parse('2026-11-26T12:00:00Z');
    t = await testApp(backend, {
      clock: () => new Date(now),
      maxAttempts: 2,
      queue: { leaseSeconds: 60, retryBaseSeconds: 1 },
    });
    for (const serverId of ['111111', '222222']) {
      const res = await call('POST', '/api/v1/agents/enroll', t.tokens.enroll, { server_id: serverId });
      expect(res.statusCode).toBe(201);
      hosts.set(serverId, res.json().credential);
    }
    for (const name of ['node-a', 'node-b']) {
      const res = await call('POST', '/api/v1/nodes/enroll', t.tokens.enroll, {
        name,
        cluster: 'default',
        address: null,
        weight: 4,
        reserve_bytes: 0,
        version: '0.1.0',
      });
      expect(res.statusCode).toBe(201);
      nodes.set(name, res.json().credential);
    }
  });
  afterEach(async () => {
    await t.cleanup();
  });

  it('keeps the rollups equal to a recount through ingests, completions, failures, dead jobs and deletions; rebuild agrees', async () => {
    const rnd = prng(20261127);
    const sent: Array<{ server_id: string; body: ReturnType<typeof sampleReport> }> = [];
    const ops = { ingested: 0, duplicates: 0, completed: 0, failed: 0, dead: 0, expired: 0, deleted: 0 };

    const ingestSome = async () => {
      const count = rnd.int(1, 6);
      const bodies = Array.from({ length: count }, () => {
        const server_id = rnd.pick(['111111', '222222']);
        const overrides = {
          server_id,
          game_id: rnd.pick(['31', '32', '33']),
          type: rnd.pick(['mysql', 'redis']),
          instance: rnd.pick(['3306', '3307']),
          created_at: new Date(now - rnd.int(0, 3 * DAY_MS)).toISOString(),
          finished_at: new Date(now).toISOString(),
          size: rnd.int(1, 50_000_000),
        };
        const body = rnd.chance(0.25) ? failedReport(overrides) : sampleReport(overrides);
        return { server_id, body };
      });
      if (sent.length > 0 && rnd.chance(0.3)) bodies.push(rnd.pick(sent)); // a resent report counts once
      // Sent together: the group commit stores them in one transaction.
      const answers = await Promise.all(
        bodies.map((b) => call('POST', '/api/v1/reports', hosts.get(b.server_id) as string, b.body)),
      );
      for (const [i, res] of answers.entries()) {
        expect([200, 201]).toContain(res.statusCode);
        if (res.json().duplicate) ops.duplicates += 1;
        else {
          ops.ingested += 1;
          sent.push(bodies[i] as (typeof sent)[number]);
        }
      }
    };

    const leaseSome = async (node: string): Promise<LeasedJob[]> => {
      const res = await call('POST', '/api/v1/nodes/lease', nodes.get(node) as string, {
        slots: rnd.int(1, 3),
        free_bytes: 100 * GiB,
      });
      expect(res.statusCode).toBe(200);
      return res.json<{ jobs: LeasedJob[] }>().jobs;
    };

    const transferSome = async () => {
      const node = rnd.pick(['node-a', 'node-b']);
      const jobs = await leaseSome(node);
      now += rnd.int(1, 45) * 1000 + rnd.int(0, 999);
      for (const job of jobs) {
        const roll = rnd.int(0, 9);
        if (roll < 6) {
          const res = await call('POST', `/api/v1/jobs/${job.job_id}/complete`, nodes.get(node) as string, {
            path: `${job.game_id}/${job.type}/${job.server_id}/${job.instance}/${job.filename}`,
            blake3: job.blake3,
            size: job.size,
          });
          expect(res.statusCode).toBe(200);
          ops.completed += 1;
        } else if (roll < 9) {
          const res = await call('POST', `/api/v1/jobs/${job.job_id}/fail`, nodes.get(node) as string, {
            code: 'transient',
            error: 'connection reset',
          });
          expect(res.statusCode).toBe(200);
          if (res.json().state === 'dead') ops.dead += 1;
          else ops.failed += 1;
        } // else: the node goes silent; the lease expires below
      }
      if (rnd.chance(0.3)) {
        now += 61_000;
        const swept = await sweepExpiredLeases(t.catalog.db, now);
        ops.expired += swept.requeued + swept.dead;
        ops.dead += swept.dead;
      }
    };

    const deleteSome = async () => {
      // Retention's decision (delete_requested_at), then the storing node's confirmation through the API.
      const candidates = await t.catalog.db
        .selectFrom('backups')
        .select(['id', 'stored_node'])
        .where('stored_node', 'is not', null)
        .where('deleted_at', 'is', null)
        .orderBy('id')
        .execute();
      if (candidates.length === 0) return;
      const victim = rnd.pick(candidates);
      await t.catalog.db
        .updateTable('backups')
        .set({ delete_requested_at: now, delete_reason: 'retention' })
        .where('id', '=', victim.id)
        .execute();
      const res = await call(
        'POST',
        '/api/v1/nodes/deletions',
        nodes.get(victim.stored_node as string) as string,
        {
          deleted: [victim.id],
        },
      );
      expect(res.statusCode).toBe(200);
      expect(res.json().confirmed).toBe(1);
      ops.deleted += 1;
    };

    for (let step = 0; step < 70; step += 1) {
      const roll = rnd.int(0, 9);
      if (roll < 4) await ingestSome();
      else if (roll < 8) await transferSome();
      else await deleteSome();
      now += rnd.int(0, 5) * 60_000 + rnd.int(0, 59_999);
    }
    // The sequence exercised every path.
    for (const [op, count] of Object.entries(ops)) expect(count, op).toBeGreaterThan(0);

    const want = await expected(t.catalog);
    expect(want.daily.length).toBeGreaterThan(3);
    expect(await stored(t.catalog)).toEqual(want);

    // A full rebuild writes the same rows (and drops rows that sum to nothing).
    const full = await rebuildRollups(t.catalog, { fromMs: null, toMs: null });
    expect(full.rows.daily_stats).toBe(want.daily.length);
    expect(full.rows.hourly_stats).toBe(want.hourly.length);
    expect(full.rows.queue_stats).toBe(want.queue.length);
    expect(await stored(t.catalog)).toEqual(want);

    // A ranged rebuild repairs the days it covers and leaves the others alone.
    const day = want.daily[1]?.bucket as number;
    await t.catalog.db.updateTable('daily_stats').set({ backups: 999 }).execute();
    await t.catalog.db
      .deleteFrom('hourly_stats')
      .where('bucket', '>=', day)
      .where('bucket', '<', day + DAY_MS)
      .execute();
    await rebuildRollups(t.catalog, { fromMs: day, toMs: day + DAY_MS });
    const after = await stored(t.catalog);
    expect(after.hourly).toEqual(want.hourly);
    expect(after.daily.filter((r) => r.bucket === day)).toEqual(want.daily.filter((r) => r.bucket === day));
    expect(after.daily.filter((r) => r.bucket !== day).every((r) => r.backups === 999)).toBe(true);
    await rebuildRollups(t.catalog, { fromMs: null, toMs: null });

    // The statistics API answers from the rollups.
    const sum = (rows: readonly RollupRow[], c: keyof RollupCounts) => rows.reduce((s, r) => s + r[c], 0);
    const totals = await call('GET', '/api/v1/stats/totals', t.tokens.viewer);
    expect(totals.statusCode).toBe(200);
    expect(totals.json()).toMatchObject({
      backups: sum(want.daily, 'backups'),
      failures: sum(want.daily, 'failures'),
      bytes: sum(want.daily, 'bytes'),
      transfers: sum(want.daily, 'transfers'),
      transfer_seconds: sum(want.daily, 'transfer_ms') / 1000,
      deleted: sum(want.daily, 'deleted'),
      deleted_bytes: sum(want.daily, 'deleted_bytes'),
    });
    expect(totals.json().backups).toBe(ops.ingested);

    const only32 = want.daily.filter((r) => r.game_id === '32' && r.type === 'mysql');
    const filtered = await call('GET', '/api/v1/stats/totals?business=32&type=mysql', t.tokens.viewer);
    expect(filtered.json()).toMatchObject({ backups: sum(only32, 'backups'), bytes: sum(only32, 'bytes') });
    expect(sum(only32, 'backups')).toBeLessThan(sum(want.daily, 'backups'));

    // cluster: the backups stored on that cluster's nodes (both nodes are in "default").
    const storedRows = want.daily.filter((r) => r.node !== '');
    const inCluster = await call('GET', '/api/v1/stats/totals?cluster=default', t.tokens.viewer);
    expect(inCluster.json()).toMatchObject({
      backups: sum(storedRows, 'backups'),
      bytes: sum(storedRows, 'bytes'),
      failures: 0,
    });
    const nowhere = await call('GET', '/api/v1/stats/totals?cluster=mars', t.tokens.viewer);
    expect(nowhere.json()).toMatchObject({ backups: 0, bytes: 0 });

    const byNode = await call('GET', '/api/v1/stats/daily?by=node&node=node-a', t.tokens.operator);
    expect(byNode.statusCode).toBe(200);
    const nodeA = want.daily.filter((r) => r.node === 'node-a');
    const days = [...new Set(nodeA.map((r) => r.bucket))].sort((a, b) => a - b);
    expect(
      byNode.json().items.map((i: { day: string; bytes: number }) => [Date.parse(i.day), i.bytes]),
    ).toEqual(
      days.map((d) => [
        d,
        sum(
          nodeA.filter((r) => r.bucket === d),
          'bytes',
        ),
      ]),
    );

    // Folded to the top business by bytes: that one's rows as they are, the rest summed per day.
    const top1 = await call('GET', '/api/v1/stats/daily?by=business&top=1&rank=bytes', t.tokens.viewer);
    expect(top1.statusCode).toBe(200);
    const bytesOf = (g: string) =>
      sum(
        want.daily.filter((r) => r.game_id === g),
        'bytes',
      );
    const businesses = [...new Set(want.daily.map((r) => r.game_id))];
    const biggest = [...businesses].sort((a, b) => bytesOf(b) - bytesOf(a) || (a < b ? -1 : 1))[0];
    const top1Items = top1.json().items as Array<{ key: string; bytes: number; backups: number }>;
    expect(new Set(top1Items.map((i) => i.key))).toEqual(new Set([biggest]));
    const others = top1.json().other as Array<{ day: string; keys: number; bytes: number; backups: number }>;
    expect(others.length).toBeGreaterThan(0);
    const add = (list: ReadonlyArray<{ backups: number; bytes: number }>, c: 'backups' | 'bytes') =>
      list.reduce((s, r) => s + r[c], 0);
    expect(add(top1Items, 'backups') + add(others, 'backups')).toBe(sum(want.daily, 'backups'));
    expect(add(others, 'bytes')).toBe(sum(want.daily, 'bytes') - bytesOf(biggest ?? ''));
    expect(Math.max(...others.map((o) => o.keys))).toBeLessThanOrEqual(businesses.length - 1);
    const unfolded = await call('GET', '/api/v1/stats/daily?by=business', t.tokens.viewer);
    expect(unfolded.json().other).toBeUndefined();
    for (const bad of ['top=-1', 'top=101', 'top=x', 'rank=size']) {
      const answer = await call('GET', `/api/v1/stats/daily?${bad}`, t.tokens.viewer);
      expect(answer.statusCode, bad).toBe(400);
    }

    const byType = await call('GET', '/api/v1/stats/daily?by=type&business=31', t.tokens.viewer);
    const g31 = want.daily.filter((r) => r.game_id === '31');
    expect(byType.json().items.reduce((s: number, i: { backups: number }) => s + i.backups, 0)).toBe(
      sum(g31, 'backups'),
    );
    expect((await call('GET', '/api/v1/stats/daily?by=type', t.tokens.viewer)).statusCode).toBe(400);

    const hourly = await call('GET', '/api/v1/stats/hourly?from=2026-11-25&business=31,33', t.tokens.viewer);
    expect(hourly.statusCode).toBe(200);
    const hourRows = want.hourly.filter(
      (r) => r.bucket >= Date.parse('2026-11-25T00:00:00Z') && (r.game_id === '31' || r.game_id === '33'),
    );
    const hourKeys = [...new Set(hourRows.map((r) => `${r.bucket}/${r.game_id}`))].sort();
    expect(
      (hourly.json().items as Array<{ hour: string; key: string; backups: number; bytes: number }>)
        .map((i) => [`${Date.parse(i.hour)}/${i.key}`, i.backups, i.bytes])
        .sort(),
    ).toEqual(
      hourKeys.map((k) => {
        const rows = hourRows.filter((r) => `${r.bucket}/${r.game_id}` === k);
        return [k, sum(rows, 'backups'), sum(rows, 'bytes')];
      }),
    );
    expect(hourRows.length).toBeGreaterThan(1);

    const share = await call('GET', '/api/v1/stats/share', t.tokens.viewer);
    const shares = share.json().items as Array<{ game_id: string; backups: number; backups_share: number }>;
    expect(shares.map((s) => [s.game_id, s.backups])).toEqual(
      ['31', '32', '33'].map((g) => [
        g,
        sum(
          want.daily.filter((r) => r.game_id === g),
          'backups',
        ),
      ]),
    );
    expect(shares.reduce((s, i) => s + i.backups_share, 0)).toBeCloseTo(1, 9);

    const throughput = await call('GET', '/api/v1/stats/throughput?node=node-b', t.tokens.viewer);
    const nodeB = want.daily.filter((r) => r.node === 'node-b');
    expect(throughput.json().items.reduce((s: number, i: { transfers: number }) => s + i.transfers, 0)).toBe(
      sum(nodeB, 'transfers'),
    );

    const depth = await t.catalog.db
      .selectFrom('transfer_jobs')
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .where('state', 'in', ['queued', 'leased'])
      .executeTakeFirstOrThrow();
    const queue = await call('GET', '/api/v1/stats/queue?from=2026-11-26', t.tokens.viewer);
    expect(queue.statusCode).toBe(200);
    const [cluster] = queue.json().clusters;
    expect(cluster.depth).toBe(n(depth.n));
    expect(cluster.minutes.reduce((s: number, m: { enqueued: number }) => s + m.enqueued, 0)).toBe(
      want.queue
        .filter((q) => q.minute >= Date.parse('2026-11-26T00:00:00Z'))
        .reduce((s, q) => s + q.enqueued, 0),
    );
    expect(cluster.minutes.at(-1).depth).toBe(n(depth.n));
    for (const m of cluster.minutes) expect(m.depth).toBeGreaterThanOrEqual(0);

    const failing = await call('GET', '/api/v1/stats/top-failing', t.tokens.viewer);
    const failingItems = failing.json().items as Array<{ failures: number }>;
    expect(failingItems.reduce((s, i) => s + i.failures, 0)).toBe(sum(want.daily, 'failures'));
    expect(failingItems.map((i) => i.failures)).toEqual(
      [...failingItems.map((i) => i.failures)].sort((a, b) => b - a),
    );

    const slowest = await call('GET', '/api/v1/stats/slowest', t.tokens.viewer);
    const slow = slowest.json().items as Array<{ transfer_seconds: number }>;
    expect(slow.length).toBe(Math.min(20, ops.completed));
    const longest = await t.catalog.db
      .selectFrom('transfer_jobs')
      .select((eb) => eb.fn.max('transfer_ms').as('ms'))
      .executeTakeFirstOrThrow();
    expect(slow[0]?.transfer_seconds).toBe(n(longest.ms) / 1000);
    expect(slow.map((s) => s.transfer_seconds)).toEqual(
      [...slow.map((s) => s.transfer_seconds)].sort((a, b) => b - a),
    );
  });

  it('needs a token, and refuses a bad range', async () => {
    expect((await call('GET', '/api/v1/stats/totals', null)).statusCode).toBe(401);
    const reversed = await call('GET', '/api/v1/stats/totals?from=2026-11-20&to=2026-11-10', t.tokens.viewer);
    expect(reversed.statusCode).toBe(400);
    expect(reversed.json().error.code).toBe('invalid_range');
    const long = await call('GET', '/api/v1/stats/daily?from=2025-01-01&to=2026-11-20', t.tokens.viewer);
    expect(long.statusCode).toBe(400);
    expect((await call('GET', '/api/v1/stats/totals?from=yesterday', t.tokens.viewer)).statusCode).toBe(400);
    const queue = await call('GET', '/api/v1/stats/queue?from=2026-11-01', t.tokens.viewer);
    expect(queue.statusCode).toBe(400);
    expect(
      (await call('GET', '/api/v1/stats/totals?from=2026-11-01T00:00:00Z', t.tokens.viewer)).statusCode,
    ).toBe(200);
    const doc = await call('GET', '/api/v1/openapi.json', t.tokens.viewer);
    expect(doc.statusCode).toBe(200);
    expect(Object.keys(doc.json().paths)).toEqual(
      expect.arrayContaining(['/api/v1/stats/totals', '/api/v1/stats/queue', '/api/v1/stats/slowest']),
    );
  });
});
