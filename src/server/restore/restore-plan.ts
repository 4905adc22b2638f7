/**
 * The restore decision (DESIGN §11): which files, in which order, bring an
 * instance back to how it was at a given time. Pure: the caller reads the
 * instance's backups from the catalog and turns the plan into downloads.
 *
 * Rules, written down so that the tests can hold the code to them:
 *
 * - A backup is **good** when it succeeded (`status = ok`), names a file
 *   (filename, size, blake3), is stored (`stored_node` and `stored_path` set), is not deleted
 *   (`deleted_at` null) and is verified (`verified_at` set: a scrub that finds
 *   a mismatch clears it). An unverified backup's message gives the scrub's
 *   finding (`scrub_error`) when there is one.
 * - The **candidates** are the successful backups of a known kind with
 *   `created_at ≤ at`, newest first (`created_at` desc, then `id` desc).
 * - A `full` or `single` candidate is a chain of one.
 * - An `incremental` candidate T needs its base full B (`base_backup_id`) and
 *   **every incremental of that base between them**: the backups of kind
 *   `incremental` with the same `base_backup_id`, `created_at ≥ B.created_at`,
 *   ordered by (`created_at`, `id`) before T — failed ones included, since a
 *   failed link of an incremental chain breaks every later link. A backup whose
 *   kind is unknown (a failed run that never said what it was) belongs to no
 *   chain. The chain is whole when B and every one of those incrementals are
 *   good; it is then `[B, …between, T]` in that order.
 * - The **target** is the first candidate whose chain is whole. Every newer
 *   candidate, and every failed run newer than the target, is reported in
 *   `skipped` with the reason, so a restore can say what it fell back from.
 * - No candidate at all: `plan_not_found`. Candidates, but none whose chain is
 *   whole: `chain_broken`, naming each missing or unusable piece.
 */

/** One backup row as the plan reads it (times in epoch ms). */
export interface PlanBackup {
  id: number;
  /** single | full | incremental; null for a failed run that did not say. */
  kind: string | null;
  /** ok | failed */
  status: string;
  created_at: number;
  base_backup_id: number | null;
  /** The base full's file name, as the incremental's report named it (for messages). */
  base_filename?: string | null;
  filename: string | null;
  size: number | null;
  blake3: string | null;
  stored_node: string | null;
  stored_path: string | null;
  verified_at: number | null;
  deleted_at: number | null;
  /** What the last scrub found wrong with the stored copy (for messages). */
  scrub_error?: string | null;
}

/** A backup of the chain: every field a download needs is present. */
export interface ChainLink {
  id: number;
  kind: 'single' | 'full' | 'incremental';
  created_at: number;
  filename: string;
  size: number;
  blake3: string;
  stored_node: string;
  stored_path: string;
}

/** Why a backup cannot be restored by itself (the target's own state). */
export type Unusable = 'failed' | 'no_file' | 'not_stored' | 'deleted' | 'unverified';

/** One piece a candidate's chain lacks. */
export interface MissingPiece {
  /** The backup that is missing or unusable; null when it is not in the catalog at all. */
  backup_id: number | null;
  role: 'target' | 'base' | 'incremental';
  problem: Unusable | 'unknown' | 'not_a_full';
  /** One sentence an operator understands. */
  message: string;
}

export interface SkippedBackup {
  backup_id: number;
  created_at: number;
  kind: string | null;
  /** One sentence: why this newer backup was not restored. */
  reason: string;
  /** What its chain lacks (empty for a failed run). */
  missing: MissingPiece[];
}

export type RestorePlan =
  | { ok: true; target: ChainLink; chain: ChainLink[]; skipped: SkippedBackup[] }
  | {
      ok: false;
      code: 'plan_not_found' | 'chain_broken';
      message: string;
      missing: MissingPiece[];
      skipped: SkippedBackup[];
    };

const KINDS = new Set(['single', 'full', 'incremental']);

/** Newest first: created_at desc, then id desc. */
export function newestFirst(a: PlanBackup, b: PlanBackup): number {
  return b.created_at - a.created_at || b.id - a.id;
}

/** Chain order: created_at asc, then id asc. */
function oldestFirst(a: PlanBackup, b: PlanBackup): number {
  return a.created_at - b.created_at || a.id - b.id;
}

/** What keeps this backup from being restored by itself, or null when it is good. */
export function unusable(backup: PlanBackup): Unusable | null {
  if (backup.status !== 'ok') return 'failed';
  if (backup.filename === null || backup.size === null || backup.blake3 === null) return 'no_file';
  if (backup.deleted_at !== null) return 'deleted';
  if (backup.stored_path === null || backup.stored_node === null) return 'not_stored';
  if (backup.verified_at === null) return 'unverified';
  return null;
}

const PROBLEM_TEXT: Record<Unusable, string> = {
  failed: 'failed',
  no_file: 'names no file',
  not_stored: 'is not stored on a node (yet)',
  deleted: 'was deleted',
  unverified: 'is not verified (a checksum check failed or is pending)',
};

/** Why `backup` is unusable, for people: the scrub's finding when it made the backup unverified. */
function problemText(backup: PlanBackup, problem: Unusable): string {
  if (problem === 'unverified' && backup.scrub_error) return `is not verified: ${backup.scrub_error}`;
  return PROBLEM_TEXT[problem];
}

function describe(backup: PlanBackup): string {
  return `${backup.kind ?? 'backup'} #${backup.id} (${backup.filename ?? 'no file'}, ${new Date(backup.created_at).toISOString()})`;
}

function toLink(backup: PlanBackup): ChainLink {
  return {
    id: backup.id,
    kind: backup.kind as ChainLink['kind'],
    created_at: backup.created_at,
    filename: backup.filename as string,
    size: backup.size as number,
    blake3: backup.blake3 as string,
    stored_node: backup.stored_node as string,
    stored_path: backup.stored_path as string,
  };
}

/** The incrementals of one base full, in chain order, with the index of the first bad one. */
interface BaseGroup {
  members: PlanBackup[];
  /** Each member's index in members, by id. */
  position: Map<number, number>;
  /** Index into members of the first one that is not good (members.length when all are). */
  firstBad: number;
}

function groupIncrementals(
  backups: readonly PlanBackup[],
  byId: ReadonlyMap<number, PlanBackup>,
): Map<number, BaseGroup> {
  const lists = new Map<number, PlanBackup[]>();
  for (const b of backups) {
    if (b.kind !== 'incremental' || b.base_backup_id === null) continue;
    const base = byId.get(b.base_backup_id);
    if (base !== undefined && b.created_at < base.created_at) continue;
    const list = lists.get(b.base_backup_id);
    if (list) list.push(b);
    else lists.set(b.base_backup_id, [b]);
  }
  const groups = new Map<number, BaseGroup>();
  for (const [baseId, members] of lists) {
    members.sort(oldestFirst);
    let firstBad = members.findIndex((m) => unusable(m) !== null);
    if (firstBad < 0) firstBad = members.length;
    groups.set(baseId, { members, position: new Map(members.map((m, i) => [m.id, i])), firstBad });
  }
  return groups;
}

type ChainCheck = { whole: true; chain: PlanBackup[] } | { whole: false; missing: MissingPiece[] };

function checkChain(
  target: PlanBackup,
  byId: ReadonlyMap<number, PlanBackup>,
  groups: ReadonlyMap<number, BaseGroup>,
): ChainCheck {
  const own = unusable(target);
  if (own !== null) {
    return {
      whole: false,
      missing: [
        {
          backup_id: target.id,
          role: 'target',
          problem: own,
          message: `${describe(target)} ${problemText(target, own)}`,
        },
      ],
    };
  }
  if (target.kind !== 'incremental') return { whole: true, chain: [target] };

  const missing: MissingPiece[] = [];
  const base = target.base_backup_id === null ? undefined : byId.get(target.base_backup_id);
  if (base === undefined) {
    const name = target.base_filename ? ` ${target.base_filename}` : '';
    missing.push({
      backup_id: target.base_backup_id,
      role: 'base',
      problem: 'unknown',
      message: `the base full${name} of ${describe(target)} is not in the catalog`,
    });
    return { whole: false, missing };
  }
  if (base.kind !== 'full') {
    missing.push({
      backup_id: base.id,
      role: 'base',
      problem: 'not_a_full',
      message: `the base of ${describe(target)} is ${describe(base)}, not a full`,
    });
  } else {
    const problem = unusable(base);
    if (problem !== null) {
      missing.push({
        backup_id: base.id,
        role: 'base',
        problem,
        message: `the base ${describe(base)} of ${describe(target)} ${problemText(base, problem)}`,
      });
    }
  }
  const group = groups.get(base.id);
  // Everything before the target in its group lies between base and target.
  const position = group?.position.get(target.id) ?? -1;
  const between = group === undefined || position < 0 ? [] : group.members.slice(0, position);
  if (group !== undefined && group.firstBad < position) {
    for (const m of between) {
      const problem = unusable(m);
      if (problem === null) continue;
      missing.push({
        backup_id: m.id,
        role: 'incremental',
        problem,
        message: `${describe(m)}, between the base full #${base.id} and ${describe(target)}, ${problemText(m, problem)}`,
      });
    }
  }
  if (missing.length > 0) return { whole: false, missing };
  return { whole: true, chain: [base, ...between, target] };
}

/** The plan for restoring to `at` (epoch ms) from one instance's backups (any order, any subset of kinds). */
export function planRestore(backups: readonly PlanBackup[], at: number): RestorePlan {
  const byId = new Map<number, PlanBackup>();
  for (const b of backups) byId.set(b.id, b);
  const groups = groupIncrementals(backups, byId);
  const history = backups.filter((b) => b.created_at <= at).sort(newestFirst);

  const skipped: SkippedBackup[] = [];
  const missing = new Map<string, MissingPiece>();
  let candidates = 0;
  for (const b of history) {
    const isCandidate = b.status === 'ok' && b.kind !== null && KINDS.has(b.kind);
    if (!isCandidate) {
      skipped.push({
        backup_id: b.id,
        created_at: b.created_at,
        kind: b.kind,
        reason: `${describe(b)} ${b.status === 'ok' ? 'is of no known kind' : 'failed'}`,
        missing: [],
      });
      continue;
    }
    candidates += 1;
    const check = checkChain(b, byId, groups);
    if (check.whole) {
      const chain = check.chain.map(toLink);
      return { ok: true, target: chain[chain.length - 1] as ChainLink, chain, skipped };
    }
    for (const piece of check.missing) {
      // One entry per missing backup, however many candidates lacked it.
      const key = piece.backup_id === null ? `unknown:${piece.message}` : `${piece.backup_id}`;
      if (!missing.has(key)) missing.set(key, piece);
    }
    skipped.push({
      backup_id: b.id,
      created_at: b.created_at,
      kind: b.kind,
      reason: check.missing.map((m) => m.message).join('; '),
      missing: check.missing,
    });
  }

  const when = new Date(at).toISOString();
  if (candidates === 0) {
    return {
      ok: false,
      code: 'plan_not_found',
      message: `no successful backup made at or before ${when}`,
      missing: [],
      skipped,
    };
  }
  const pieces = [...missing.values()];
  return {
    ok: false,
    code: 'chain_broken',
    message: `none of the ${candidates} successful backup(s) made at or before ${when} can be restored: ${pieces
      .slice(0, 5)
      .map((p) => p.message)
      .join('; ')}${pieces.length > 5 ? `; and ${pieces.length - 5} more` : ''}`,
    missing: pieces,
    skipped,
  };
}
