import { type Kysely, type RawBuilder, SqliteAdapter, sql } from 'kysely';
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
 * the caller's transaction: one upsert row per distinct key, in key order. On
 * PostgreSQL the upserts go as one statement (data-modifying WITH), one round
 * trip; SQLite runs them one by one (in process, no round trips).
 */
export async function recordRollups(
  trx: Trx,
  events: readonly BackupEvent[],
  queue: readonly QueueIncrement[],
): Promise<void> {
  if (events.length === 0 && queue.length === 0) return;
  const shard = shardFor(trx);
  const statements: Array<RawBuilder<unknown>> = [];
  if (events.length > 0) {
    for (const { table, bucketMs } of ROLLUP_TABLES)
      statements.push(...rollupUpserts(table, rollupIncrements(events, bucketMs), shard));
  }
  statements.push(...queueUpserts(sumQueueIncrements(queue), shard));
  const last = statements.at(-1);
  if (last === undefined) return;
  if (trx.getExecutor().adapter instanceof SqliteAdapter || statements.length === 1) {
    for (const statement of statements) await statement.execute(trx);
    return;
  }
  const earlier = statements.slice(0, -1).map((statement, i) => sql`${sql.raw(`u${i}`)} as (${statement})`);
  await sql`with ${sql.join(earlier)} ${last}`.execute(trx);
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
  const updates = sql.raw(ROLLUP_COUNTERS.map((c) => `${c} = ${table}.${c} + excluded.${c}`).join(', '));
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

function queueUpserts(rows: readonly QueueIncrement[], shard: number): Array<RawBuilder<unknown>> {
  return inBatches(rows, INSERT_BATCH).map((part) => {
    const values = sql.join(
      part.map((q) => sql`(${sql.join([q.minute, q.cluster_id, shard, q.enqueued, q.done, q.dead])})`),
    );
    return sql`insert into queue_stats (minute, cluster_id, shard, enqueued, done, dead) values ${values}
      on conflict (minute, cluster_id, shard) do update set
        enqueued = queue_stats.enqueued + excluded.enqueued,
        done = queue_stats.done + excluded.done,
        dead = queue_stats.dead + excluded.dead`;
  });
}
