import type { CatalogDb } from '../../catalog/database.js';
import { IN_LIST_BATCH, inBatches } from '../../catalog/statement-batches.js';
import type { ScrubItem, ScrubOutcome, ScrubResult } from '../../shared/node-protocol.js';
import { resolveAlertsAbout } from '../alerts/alert-store.js';
import { instanceSubject } from '../alerts/instance-subject.js';
import { raiseIntegrity } from '../alerts/transfer-alerts.js';

/**
 * The scrub as the catalog records it (DESIGN §11). The server drives it, so a
 * file that vanished together with its sidecar is still found: a node leases
 * the copies it stores whose last check (`scrubbed_at`, set when a transfer
 * stores a copy, and when reindex locates one) is older than its scrub
 * period, least recently checked first, re-hashes them and reports what it
 * found.
 *
 * - `ok`: `scrubbed_at` = now. A copy that a scrub had found damaged
 *   (`scrub_error` set) is whole again (an operator put a good copy back): the
 *   error is cleared, `verified_at` is set again, and the instance's
 *   `integrity` alert is resolved once none of its copies is still damaged.
 * - anything else: `scrubbed_at` = now, `verified_at` = null (restores skip
 *   the copy), `scrub_error` = one sentence saying what was found, and the
 *   instance's `integrity` alert is raised.
 *
 * Copies being deleted for retention (`delete_requested_at`) or deleted are
 * neither leased nor changed by a result: the node may be removing them.
 */

/** Longest stored path a lease may carry (the protocol's bound). */
const MAX_PATH_CHARS = 4096;
/** Longest finding of the node's kept in `scrub_error`. */
const MAX_DETAIL_CHARS = 500;

const DEFAULT_DETAIL: Record<Exclude<ScrubOutcome, 'ok'>, string> = {
  mismatch: "BLAKE3 differs from the catalog's",
  size_mismatch: "the size differs from the catalog's",
  missing: 'the file is missing',
  unreadable: 'the file cannot be read',
};

function liveCopiesOn(db: CatalogDb, node: string) {
  return db
    .selectFrom('backups')
    .where('stored_node', '=', node)
    .where('deleted_at', 'is', null)
    .where('delete_requested_at', 'is', null);
}

/**
 * Up to `limit` copies stored on `node` that are due: never checked first,
 * then those checked before `cutoffMs`, oldest check first.
 */
export async function dueForScrub(
  db: CatalogDb,
  node: string,
  cutoffMs: number,
  limit: number,
): Promise<ScrubItem[]> {
  const due = () =>
    liveCopiesOn(db, node)
      .select(['id', 'stored_path', 'size', 'blake3'])
      .where('stored_path', 'is not', null)
      .where('size', 'is not', null)
      .where('blake3', 'is not', null);
  // Two reads instead of one `order by scrubbed_at`: the back ends sort nulls differently.
  const never = await due().where('scrubbed_at', 'is', null).orderBy('id').limit(limit).execute();
  const checked =
    never.length < limit
      ? await due()
          .where('scrubbed_at', '<', cutoffMs)
          .orderBy('scrubbed_at')
          .orderBy('id')
          .limit(limit - never.length)
          .execute()
      : [];
  const items: ScrubItem[] = [];
  for (const row of [...never, ...checked]) {
    if (row.stored_path === null || row.size === null || row.blake3 === null) continue;
    if (row.stored_path === '' || row.stored_path.length > MAX_PATH_CHARS) continue;
    items.push({ backup_id: row.id, path: row.stored_path, size: row.size, blake3: row.blake3 });
  }
  return items;
}

/** `scrub on node n1 at 2026-11-26T04:00:00.000Z: BLAKE3 differs (found …, expected …)`. */
export function scrubErrorSentence(
  node: string,
  nowMs: number,
  outcome: Exclude<ScrubOutcome, 'ok'>,
  detail: string | undefined,
): string {
  const found = oneLine(detail ?? '') ?? DEFAULT_DETAIL[outcome];
  return `scrub on node ${node} at ${new Date(nowMs).toISOString()}: ${found}`;
}

/** The text folded onto one line and shortened; null when nothing is left. */
function oneLine(text: string): string | null {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is folded
  const folded = text.replace(/[\s\u0000-\u001f\u007f]+/g, ' ').trim();
  if (folded === '') return null;
  return folded.length > MAX_DETAIL_CHARS ? `${folded.slice(0, MAX_DETAIL_CHARS - 1)}…` : folded;
}

export interface RecordedScrubs {
  /** Results that counted: copies stored on the node and not being deleted. */
  recorded: number;
  /** Copies found damaged now. */
  damaged: number[];
  /** Copies a scrub had found damaged and that are whole again. */
  recovered: number[];
}

interface CopyRow {
  id: number;
  scrub_error: string | null;
  server_id: string;
  type: string;
  instance: string;
  filename: string | null;
}

/** Records what `node` found; call it in a transaction (the alerts go with the rows). */
export async function recordScrubResults(
  db: CatalogDb,
  node: string,
  results: readonly ScrubResult[],
  nowMs: number,
): Promise<RecordedScrubs> {
  const byId = new Map(results.map((r) => [r.backup_id, r]));
  const rows: CopyRow[] = [];
  for (const ids of inBatches([...byId.keys()], IN_LIST_BATCH)) {
    rows.push(
      ...(await liveCopiesOn(db, node)
        .select(['id', 'scrub_error', 'server_id', 'type', 'instance', 'filename'])
        .where('id', 'in', ids)
        .execute()),
    );
  }
  const whole: number[] = [];
  const recovered: CopyRow[] = [];
  const damaged: number[] = [];
  for (const row of rows) {
    const result = byId.get(row.id);
    if (result === undefined) continue;
    if (result.outcome === 'ok') {
      if (row.scrub_error === null) whole.push(row.id);
      else recovered.push(row);
      continue;
    }
    await db
      .updateTable('backups')
      .set({
        scrubbed_at: nowMs,
        verified_at: null,
        scrub_error: scrubErrorSentence(node, nowMs, result.outcome, result.detail),
      })
      .where('id', '=', row.id)
      .execute();
    await raiseIntegrity(db, row.id, 'scrub', node, nowMs);
    damaged.push(row.id);
  }
  for (const ids of inBatches(whole, IN_LIST_BATCH))
    await db.updateTable('backups').set({ scrubbed_at: nowMs }).where('id', 'in', ids).execute();
  for (const ids of inBatches(
    recovered.map((r) => r.id),
    IN_LIST_BATCH,
  )) {
    await db
      .updateTable('backups')
      .set({ scrubbed_at: nowMs, scrub_error: null, verified_at: nowMs })
      .where('id', 'in', ids)
      .execute();
  }
  await resolveRecovered(db, node, recovered, nowMs);
  return {
    recorded: rows.length,
    damaged: damaged.sort((a, b) => a - b),
    recovered: recovered.map((r) => r.id).sort((a, b) => a - b),
  };
}

/** Resolves the `integrity` alert of each instance with a recovered copy and no damaged one left. */
async function resolveRecovered(
  db: CatalogDb,
  node: string,
  recovered: readonly CopyRow[],
  nowMs: number,
): Promise<void> {
  const byInstance = new Map<string, CopyRow>();
  for (const row of recovered) byInstance.set(instanceSubject(row.server_id, row.type, row.instance), row);
  for (const [subject, row] of byInstance) {
    const stillDamaged = await db
      .selectFrom('backups')
      .select('id')
      .where('server_id', '=', row.server_id)
      .where('type', '=', row.type)
      .where('instance', '=', row.instance)
      .where('scrub_error', 'is not', null)
      .where('deleted_at', 'is', null)
      .limit(1)
      .executeTakeFirst();
    if (stillDamaged !== undefined) continue;
    await resolveAlertsAbout(
      db,
      ['integrity'],
      [subject],
      nowMs,
      'system',
      `${row.filename ?? 'a backup'} was found whole again by the scrub on node ${node}`,
    );
  }
}
