import { type Kysely, type RawBuilder, SqliteAdapter, sql } from 'kysely';
import { runTogether } from '../../catalog/run-together.js';
import type { CatalogSchema } from '../../catalog/schema.js';
import { INSERT_BATCH, inBatches } from '../../catalog/statement-batches.js';
import {
  type BackupEvent,
  DAY_MS,
  HOUR_MS,
  type QueueIncrement,
  ROLLUP_COUNTERS,
  type RollupIncrement,
  rollupIncrements,
  sumQueueIncrements,
} from './rollup-increments.js';

/** The caller's transaction (or, for callers that wrap it themselves, their handle on it). */
type Trx = Kysely<CatalogSchema>;

export const ROLLUP_TABLES = [
  { table: 'daily_stats', bucketMs: DAY_MS },
  { table: 'hourly_stats', bucketMs: HOUR_MS },
] as const;

export type RollupTable = (typeof ROLLUP_TABLES)[number]['table'];

/** Rows per rollup key that concurrent PostgreSQL writers spread over (the ingest batcher runs 4 at once). */
export const ROLLUP_SHARDS = 4;
let turn = 0;
const shardOfTransaction = new WeakMap<Trx, number>();

/**
 * The shard a transaction adds to: 0 on SQLite (one writer), else the next in
 * turn, so the few transactions in flight at once rarely wait for each
 * other's row locks on the hot rows (today's rows of busy businesses).
 */
function shardFor(trx: Trx): number {
  if (trx.getExecutor().adapter instanceof SqliteAdapter) return 0;
  // One shard for all of a transaction's rows: its locks are then taken in key order.
  const known = shardOfTransaction.get(trx);
  if (known !== undefined) return known;
  turn = (turn + 1) % ROLLUP_SHARDS;
  shardOfTransaction.set(trx, turn);
  return turn;
}

/**
 * Adds a batch of backup events to `daily_stats` and `hourly_stats`, and queue
 * events (enqueued, done, dead per minute × cluster) to `queue_stats`, inside
 * the caller's transaction: one upsert row per distinct key, in key order, all
 * in one round trip on PostgreSQL (run-together.ts).
 */
export async function recordRollups(
  trx: Trx,
  events: readonly BackupEvent[],
  queue: readonly QueueIncrement[],
): Promise<void> {
  await runTogether(trx, rollupStatements(trx, events, queue));
}

/**
 * The statements `recordRollups` runs, for a caller that runs them together
 * with its own. SQLite: multi-row upserts (each text prepared once per row
 * count). PostgreSQL: one upsert per table whatever the batch, its rows passed
 * as arrays (a fixed text with a fixed number of parameters).
 */
export function rollupStatements(
  trx: Trx,
  events: readonly BackupEvent[],
  queue: readonly QueueIncrement[],
): Array<RawBuilder<unknown>> {
  if (events.length === 0 && queue.length === 0) return [];
  const shard = shardFor(trx);
  const sqlite = trx.getExecutor().adapter instanceof SqliteAdapter;
  const statements: Array<RawBuilder<unknown>> = [];
  if (events.length > 0) {
    for (const { table, bucketMs } of ROLLUP_TABLES) {
      const rows = rollupIncrements(events, bucketMs);
      if (rows.length === 0) continue;
      if (sqlite) statements.push(...rollupUpserts(table, rows, shard));
      else statements.push(rollupUpsertFromArrays(table, rows, shard));
    }
  }
  const queueRows = sumQueueIncrements(queue);
  if (queueRows.length > 0) {
    if (sqlite) statements.push(...queueUpserts(queueRows, shard));
    else statements.push(queueUpsertFromArrays(queueRows, shard));
  }
  return statements;
}

export function recordBackupEvents(trx: Trx, events: readonly BackupEvent[]): Promise<void> {
  return recordRollups(trx, events, []);
}

export function recordQueueEvents(trx: Trx, events: readonly QueueIncrement[]): Promise<void> {
  return recordRollups(trx, [], events);
}

function rollupUpserts(
  table: RollupTable,
  rows: readonly RollupIncrement[],
  shard: number,
): Array<RawBuilder<unknown>> {
  const target = sql.table(table);
  const columns = sql.raw(['bucket', 'game_id', 'type', 'node', 'shard', ...ROLLUP_COUNTERS].join(', '));
  const updates = addedCounters(table, ROLLUP_COUNTERS);
  return inBatches(rows, INSERT_BATCH).map((part) => {
    const values = sql.join(
      part.map(
        (r): RawBuilder<unknown> =>
          sql`(${sql.join([r.bucket, r.game_id, r.type, r.node, shard, ...ROLLUP_COUNTERS.map((c) => r[c])])})`,
      ),
    );
    return sql`insert into ${target} (${columns}) values ${values}
      on conflict (bucket, game_id, type, node, shard) do update set ${updates}`;
  });
}

/** What an upsert adds on a conflict: each counter to the row's own. */
function addedCounters(table: string, counters: readonly string[]): RawBuilder<unknown> {
  return sql.raw(counters.map((c) => `${c} = ${table}.${c} + excluded.${c}`).join(', '));
}

function rollupUpsertFromArrays(
  table: RollupTable,
  rows: readonly RollupIncrement[],
  shard: number,
): RawBuilder<unknown> {
  const counters = sql.raw(ROLLUP_COUNTERS.join(', '));
  const arrays = [
    sql`cast(${rows.map((r) => r.bucket)} as bigint[])`,
    sql`cast(${rows.map((r) => r.game_id)} as text[])`,
    sql`cast(${rows.map((r) => r.type)} as text[])`,
    sql`cast(${rows.map((r) => r.node)} as text[])`,
    ...ROLLUP_COUNTERS.map((c) => sql`cast(${rows.map((r) => r[c])} as bigint[])`),
  ];
  return sql`insert into ${sql.table(table)} (bucket, game_id, type, node, shard, ${counters})
    select v.bucket, v.game_id, v.type, v.node, cast(${shard} as integer), ${counters}
    from unnest(${sql.join(arrays)}) as v(bucket, game_id, type, node, ${counters})
    on conflict (bucket, game_id, type, node, shard) do update set ${addedCounters(table, ROLLUP_COUNTERS)}`;
}

function queueUpsertFromArrays(rows: readonly QueueIncrement[], shard: number): RawBuilder<unknown> {
  return sql`insert into queue_stats (minute, cluster_id, shard, enqueued, done, dead)
    select v.minute, v.cluster_id, cast(${shard} as integer), v.enqueued, v.done, v.dead
    from unnest(
      cast(${rows.map((q) => q.minute)} as bigint[]), cast(${rows.map((q) => q.cluster_id)} as bigint[]),
      cast(${rows.map((q) => q.enqueued)} as bigint[]), cast(${rows.map((q) => q.done)} as bigint[]),
      cast(${rows.map((q) => q.dead)} as bigint[])
    ) as v(minute, cluster_id, enqueued, done, dead)
    on conflict (minute, cluster_id, shard) do update set ${addedCounters('queue_stats', QUEUE_COUNTERS)}`;
}

const QUEUE_COUNTERS = ['enqueued', 'done', 'dead'] as const;

function queueUpserts(rows: readonly QueueIncrement[], shard: number): Array<RawBuilder<unknown>> {
  return inBatches(rows, INSERT_BATCH).map((part) => {
    const values = sql.join(
      part.map((q) => sql`(${sql.join([q.minute, q.cluster_id, shard, q.enqueued, q.done, q.dead])})`),
    );
    return sql`insert into queue_stats (minute, cluster_id, shard, enqueued, done, dead) values ${values}
      on conflict (minute, cluster_id, shard) do update set ${addedCounters('queue_stats', QUEUE_COUNTERS)}`;
  });
}
