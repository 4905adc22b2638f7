/**
 * The pure core of the statistics rollups: what one event adds to which
 * rollup row, and how a batch of events folds into one increment per key.
 */

export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;
export const MINUTE_MS = 60_000;

/** Start of the UTC bucket of `size` milliseconds that holds `ms`. */
export function bucketStart(ms: number, size: number): number {
  return Math.floor(ms / size) * size;
}

/** Which rollup row: a bucket (day or hour start) × business × type × node ('' when not stored). */
export interface RollupKey {
  bucket: number;
  game_id: string;
  type: string;
  node: string;
}

export interface RollupCounts {
  backups: number;
  failures: number;
  bytes: number;
  transfer_ms: number;
  transfers: number;
  deleted: number;
  deleted_bytes: number;
}

export type RollupIncrement = RollupKey & RollupCounts;

export const ROLLUP_COUNTERS: ReadonlyArray<keyof RollupCounts> = [
  'backups',
  'failures',
  'bytes',
  'transfer_ms',
  'transfers',
  'deleted',
  'deleted_bytes',
];

/** Every counter at 0. */
export const ZERO_COUNTS: Readonly<RollupCounts> = {
  backups: 0,
  failures: 0,
  bytes: 0,
  transfer_ms: 0,
  transfers: 0,
  deleted: 0,
  deleted_bytes: 0,
};

/** What a rollup is told about a backup: enough to find its row. */
export interface BackupFacts {
  created_at: number;
  game_id: string;
  type: string;
}

/** One increment, always built with the same fields in the same order (one object shape). */
function increment(
  key: RollupKey,
  backups: number,
  failures: number,
  bytes: number,
  transfer_ms: number,
  transfers: number,
  deleted: number,
  deleted_bytes: number,
): RollupIncrement {
  return {
    bucket: key.bucket,
    game_id: key.game_id,
    type: key.type,
    node: key.node,
    backups,
    failures,
    bytes,
    transfer_ms,
    transfers,
    deleted,
    deleted_bytes,
  };
}

/** Adds `from`'s counters to `into`'s (written out: it runs for every event of every ingest). */
export function addCounts(into: RollupCounts, from: RollupCounts): void {
  into.backups += from.backups;
  into.failures += from.failures;
  into.bytes += from.bytes;
  into.transfer_ms += from.transfer_ms;
  into.transfers += from.transfers;
  into.deleted += from.deleted;
  into.deleted_bytes += from.deleted_bytes;
}

/** A new report: one backup, a failure unless its status is ok; not stored yet (node ''). */
export function ingested(backup: BackupFacts & { status: string }, bucketSize: number): RollupIncrement {
  return increment(keyOf(backup, '', bucketSize), 1, backup.status === 'ok' ? 0 : 1, 0, 0, 0, 0, 0);
}

/**
 * A transfer completed: the backup moves from node '' to `node`, with its
 * bytes and the lease's duration.
 */
export function stored(
  backup: BackupFacts & { size: number; node: string; transferMs: number },
  bucketSize: number,
): RollupIncrement[] {
  return [
    increment(keyOf(backup, '', bucketSize), -1, 0, 0, 0, 0, 0, 0),
    increment(keyOf(backup, backup.node, bucketSize), 1, 0, backup.size, backup.transferMs, 1, 0, 0),
  ];
}

/** A node confirmed deleting the stored copy. */
export function deleted(
  backup: BackupFacts & { size: number; node: string },
  bucketSize: number,
): RollupIncrement {
  return increment(keyOf(backup, backup.node, bucketSize), 0, 0, 0, 0, 0, 1, backup.size);
}

function keyOf(backup: BackupFacts, node: string, bucketSize: number): RollupKey {
  return {
    bucket: bucketStart(backup.created_at, bucketSize),
    game_id: backup.game_id,
    type: backup.type,
    node,
  };
}

function keyText(k: RollupKey): string {
  return `${k.bucket}\u0000${k.game_id}\u0000${k.type}\u0000${k.node}`;
}

function compareKeys(a: RollupKey, b: RollupKey): number {
  if (a.bucket !== b.bucket) return a.bucket - b.bucket;
  if (a.game_id !== b.game_id) return a.game_id < b.game_id ? -1 : 1;
  if (a.type !== b.type) return a.type < b.type ? -1 : 1;
  if (a.node !== b.node) return a.node < b.node ? -1 : 1;
  return 0;
}

/**
 * Sums increments per key: one row per distinct key, in key order (so
 * concurrent transactions upsert rows in the same order and cannot deadlock);
 * rows that sum to nothing are left out.
 */
export function sumIncrements(increments: readonly RollupIncrement[]): RollupIncrement[] {
  const byKey = new Map<string, RollupIncrement>();
  for (const inc of increments) {
    const text = keyText(inc);
    const seen = byKey.get(text);
    if (!seen) {
      byKey.set(
        text,
        increment(
          inc,
          inc.backups,
          inc.failures,
          inc.bytes,
          inc.transfer_ms,
          inc.transfers,
          inc.deleted,
          inc.deleted_bytes,
        ),
      );
      continue;
    }
    addCounts(seen, inc);
  }
  return [...byKey.values()].filter((row) => ROLLUP_COUNTERS.some((c) => row[c] !== 0)).sort(compareKeys);
}

/** Transfer jobs per minute × cluster. */
export interface QueueIncrement {
  minute: number;
  cluster_id: number;
  enqueued: number;
  done: number;
  dead: number;
}

export function queueEvent(
  atMs: number,
  clusterId: number,
  event: 'enqueued' | 'done' | 'dead',
  count = 1,
): QueueIncrement {
  return {
    minute: bucketStart(atMs, MINUTE_MS),
    cluster_id: clusterId,
    enqueued: 0,
    done: 0,
    dead: 0,
    [event]: count,
  };
}

/** Sums queue increments per minute × cluster, in key order, leaving out empty ones. */
export function sumQueueIncrements(increments: readonly QueueIncrement[]): QueueIncrement[] {
  const byKey = new Map<string, QueueIncrement>();
  for (const inc of increments) {
    const text = `${inc.minute}/${inc.cluster_id}`;
    const seen = byKey.get(text);
    if (!seen) {
      byKey.set(text, { ...inc });
      continue;
    }
    seen.enqueued += inc.enqueued;
    seen.done += inc.done;
    seen.dead += inc.dead;
  }
  return [...byKey.values()]
    .filter((q) => q.enqueued !== 0 || q.done !== 0 || q.dead !== 0)
    .sort((a, b) => a.minute - b.minute || a.cluster_id - b.cluster_id);
}

/** Something that changed what the backup rollups count. */
export type BackupEvent =
  | ({ event: 'ingested'; status: string } & BackupFacts)
  | ({ event: 'stored'; size: number; node: string; transferMs: number } & BackupFacts)
  | ({ event: 'deleted'; size: number; node: string } & BackupFacts);

/** A batch of events as one increment per distinct rollup row of the given bucket size. */
export function rollupIncrements(events: readonly BackupEvent[], bucketSize: number): RollupIncrement[] {
  const increments: RollupIncrement[] = [];
  for (const e of events) {
    if (e.event === 'ingested') increments.push(ingested(e, bucketSize));
    else if (e.event === 'stored') increments.push(...stored(e, bucketSize));
    else increments.push(deleted(e, bucketSize));
  }
  return sumIncrements(increments);
}
