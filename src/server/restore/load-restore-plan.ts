import type { CatalogDb } from '../../catalog/database.js';
import { type PlanBackup, planRestore, type RestorePlan } from './restore-plan.js';

/** One instance, as backups name it. */
export interface BackupIdentity {
  server_id: string;
  type: string;
  instance: string;
}

/** The first read: enough for the newest day or so of an instance that backs up every hour. */
export const FIRST_PAGE_ROWS = 64;
/** Later reads double up to this. */
const MAX_PAGE_ROWS = 4096;
/** Ids per `in (…)` list (well under both back ends' parameter limits). */
const IN_LIST_BATCH = 500;

const PLAN_COLUMNS = [
  'id',
  'kind',
  'status',
  'created_at',
  'base_backup_id',
  'base_filename',
  'filename',
  'size',
  'blake3',
  'stored_node',
  'stored_path',
  'verified_at',
  'deleted_at',
  'delete_requested_at',
  'scrub_error',
] as const;

type PlanRow = PlanBackup & { delete_requested_at: number | null };

/**
 * A copy whose delete retention has requested is as good as gone (the node
 * may be removing it right now): the plan treats it as deleted.
 */
function asPlanned(row: PlanRow): PlanBackup {
  const { delete_requested_at, ...backup } = row;
  return { ...backup, deleted_at: backup.deleted_at ?? delete_requested_at };
}

/**
 * Reads what the restore plan for `at` needs and no more, then plans.
 *
 * The plan for a candidate depends only on the candidate, its base full and
 * the rows between that base and the candidate. So the rows are read
 * newest-first from `at` (index `backups_identity_created`) a page at a time,
 * always keeping a window "every row from `coveredFrom` to `at`". After each
 * page the window is widened back to the oldest base full that any loaded
 * incremental names (the bases are read by id), until nothing new is named.
 * Every loaded candidate then sees exactly what it would see in the whole
 * history, so a target found in the window is the target. When none is found
 * and older rows remain, the next (larger) page is read. An instance with
 * 10,000 stored backups costs one read of {@link FIRST_PAGE_ROWS} rows, plus
 * its current chain, in the common case.
 */
export async function loadRestorePlan(
  db: CatalogDb,
  identity: BackupIdentity,
  at: number,
): Promise<RestorePlan> {
  const ofInstance = () =>
    db
      .selectFrom('backups')
      .select(PLAN_COLUMNS)
      .where('server_id', '=', identity.server_id)
      .where('type', '=', identity.type)
      .where('instance', '=', identity.instance);
  const rows = new Map<number, PlanBackup>();
  const keep = (read: readonly PlanRow[]) => {
    for (const row of read) rows.set(row.id, asPlanned(row));
  };
  /** Every row of the instance with coveredFrom ≤ created_at ≤ at is in `rows`. */
  let coveredFrom = Number.POSITIVE_INFINITY;
  let pageSize = FIRST_PAGE_ROWS;
  for (;;) {
    let page = ofInstance().where('created_at', '<=', at);
    if (Number.isFinite(coveredFrom)) page = page.where('created_at', '<', coveredFrom);
    const read = await page.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(pageSize).execute();
    keep(read);
    const last = read.at(-1);
    const exhausted = read.length < pageSize || last === undefined;
    if (exhausted) coveredFrom = Number.NEGATIVE_INFINITY;
    else {
      // The page may have cut a group of equal times: read the rest of it.
      keep(await ofInstance().where('created_at', '=', last.created_at).execute());
      coveredFrom = last.created_at;
    }
    coveredFrom = await widenToBases(db, identity, rows, coveredFrom, at, ofInstance);
    const plan = planRestore([...rows.values()], at);
    if (plan.ok || exhausted) return plan;
    pageSize = Math.min(pageSize * 4, MAX_PAGE_ROWS);
  }
}

type PlanRowsQuery = ReturnType<typeof planRowsOf>;

function planRowsOf(db: CatalogDb) {
  return db.selectFrom('backups').select(PLAN_COLUMNS);
}

/**
 * Reads the base fulls the loaded incrementals name and every row from the
 * oldest of them on, until no loaded incremental names a base outside the
 * window. Returns the new `coveredFrom`.
 */
async function widenToBases(
  db: CatalogDb,
  identity: BackupIdentity,
  rows: Map<number, PlanBackup>,
  coveredFrom: number,
  at: number,
  ofInstance: () => PlanRowsQuery,
): Promise<number> {
  const asked = new Set<number>();
  for (;;) {
    const missing = new Set<number>();
    let oldestBase = Number.POSITIVE_INFINITY;
    for (const row of rows.values()) {
      if (row.kind !== 'incremental' || row.base_backup_id === null) continue;
      const base = rows.get(row.base_backup_id);
      if (base !== undefined) oldestBase = Math.min(oldestBase, base.created_at);
      else if (!asked.has(row.base_backup_id)) missing.add(row.base_backup_id);
    }
    const wanted = [...missing];
    if (wanted.length === 0 && oldestBase >= coveredFrom) return coveredFrom;
    for (let i = 0; i < wanted.length; i += IN_LIST_BATCH) {
      const part = wanted.slice(i, i + IN_LIST_BATCH);
      for (const id of part) asked.add(id);
      const bases = await planRowsOf(db)
        .where('id', 'in', part)
        // A base of another instance is no base of this one.
        .where('server_id', '=', identity.server_id)
        .where('type', '=', identity.type)
        .where('instance', '=', identity.instance)
        .execute();
      for (const base of bases) rows.set(base.id, asPlanned(base));
    }
    if (wanted.length > 0) continue; // the new bases may move the oldest one back
    // Here oldestBase < coveredFrom, so both are finite.
    const between = await ofInstance()
      .where('created_at', '>=', oldestBase)
      .where('created_at', '<', coveredFrom)
      .where('created_at', '<=', at)
      .execute();
    for (const row of between) rows.set(row.id, asPlanned(row));
    coveredFrom = oldestBase;
  }
}
