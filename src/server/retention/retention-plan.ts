import type { RetentionPolicy } from './retention-policy.js';

/**
 * The retention decision for one instance (DESIGN §11): for every stored
 * backup, keep or delete, and why. Pure: the caller reads the instance's
 * backups and its policy, and applies (or only prints) the result.
 *
 * A backup is kept when any of these holds, in this order of explanation:
 *
 * 1. `permanent`: it is marked permanent.
 * 2. `recent`: it was made within the last N days (`created_at ≥ now − N days`).
 * 3. `last_fulls`: it is one of the K newest *stored* fulls or singles,
 *    however old (a full still waiting for its transfer does not count, so an
 *    older stored one is not given up for it).
 * 4. `base_of_kept`: it is the base full of a kept incremental.
 * 5. `chain_of_kept`: it is an incremental of the same base full made before a
 *    kept incremental (same `base_backup_id`, ordered by `created_at` then
 *    `id`): restoring the kept one replays it.
 *
 * Rules 4 and 5 make the safe, simple invariant: **an incremental is deleted
 * only if everything newer in its chain is deleted too, and a full is deleted
 * only if no kept incremental is built on it.** A chain is therefore only ever
 * shortened from its newest end, and every kept backup stays restorable from
 * what is kept. The incrementals of a full kept by rule 3 are not kept for it:
 * restoring to their times is given up, restoring to the full is not.
 *
 * Backups not stored yet (a transfer still queued) get no decision, since
 * there is nothing on a node to delete, but a pending incremental that rules 1
 * or 2 keep protects its base and chain like a stored one: it will need them
 * once it arrives. Failed and deleted backups are ignored.
 */

/** One backup of the instance as retention reads it (times in epoch ms). */
export interface RetentionBackup {
  id: number;
  /** single | full | incremental */
  kind: string | null;
  status: string;
  created_at: number;
  base_backup_id: number | null;
  filename: string | null;
  size: number | null;
  permanent: boolean;
  /** On a node now (`stored_path` set). */
  stored: boolean;
  deleted: boolean;
}

export type RetentionRule =
  | 'permanent'
  | 'recent'
  | 'last_fulls'
  | 'base_of_kept'
  | 'chain_of_kept'
  | 'expired';

export interface RetentionDecision {
  backup_id: number;
  kind: string | null;
  created_at: number;
  filename: string | null;
  size: number | null;
  action: 'keep' | 'delete';
  rule: RetentionRule;
  /** One sentence an operator understands. */
  reason: string;
}

const DAY_MS = 86_400_000;

const isFull = (b: RetentionBackup) => b.kind === 'full' || b.kind === 'single';

/** Chain order: created_at asc, then id asc. */
function oldestFirst(a: RetentionBackup, b: RetentionBackup): number {
  return a.created_at - b.created_at || a.id - b.id;
}

/** Decisions for every stored, not deleted, successful backup, newest first. */
export function planRetention(
  backups: readonly RetentionBackup[],
  policy: Pick<RetentionPolicy, 'retentionDays' | 'keepFulls'>,
  nowMs: number,
): RetentionDecision[] {
  const live = backups.filter((b) => b.status === 'ok' && !b.deleted);
  const byId = new Map(live.map((b) => [b.id, b]));
  const cutoff = nowMs - policy.retentionDays * DAY_MS;
  const days = `${policy.retentionDays} day${policy.retentionDays === 1 ? '' : 's'}`;
  const fulls = `${policy.keepFulls} full${policy.keepFulls === 1 ? '' : 's'}`;

  const kept = new Map<number, { rule: RetentionRule; reason: string }>();
  const keep = (b: RetentionBackup, rule: RetentionRule, reason: string) => {
    if (!kept.has(b.id)) kept.set(b.id, { rule, reason });
  };

  for (const b of live) if (b.permanent) keep(b, 'permanent', 'marked permanent');
  for (const b of live) if (b.created_at >= cutoff) keep(b, 'recent', `made within the last ${days}`);
  const storedFulls = live
    .filter((b) => b.stored && isFull(b))
    .sort((a, b) => oldestFirst(b, a))
    .slice(0, policy.keepFulls);
  for (const b of storedFulls) keep(b, 'last_fulls', `one of the last ${fulls}`);

  // Chains: the incrementals of each base full present, in chain order.
  const chains = new Map<number, RetentionBackup[]>();
  for (const b of live) {
    if (b.kind !== 'incremental' || b.base_backup_id === null) continue;
    // A base already deleted, or failed, protects nothing: that chain is broken anyway.
    if (!byId.has(b.base_backup_id)) continue;
    const chain = chains.get(b.base_backup_id);
    if (chain) chain.push(b);
    else chains.set(b.base_backup_id, [b]);
  }
  for (const [baseId, chain] of chains) {
    chain.sort(oldestFirst);
    let newestKept = -1;
    chain.forEach((b, i) => {
      if (kept.has(b.id)) newestKept = i;
    });
    if (newestKept < 0) continue;
    const needer = chain[newestKept] as RetentionBackup;
    const base = byId.get(baseId) as RetentionBackup;
    keep(base, 'base_of_kept', `base full of kept incremental #${needer.id}`);
    for (const b of chain.slice(0, newestKept))
      keep(b, 'chain_of_kept', `kept incremental #${needer.id} is built on it`);
  }

  return live
    .filter((b) => b.stored)
    .sort((a, b) => oldestFirst(b, a))
    .map((b) => {
      const why = kept.get(b.id);
      return {
        backup_id: b.id,
        kind: b.kind,
        created_at: b.created_at,
        filename: b.filename,
        size: b.size,
        action: why ? 'keep' : 'delete',
        rule: why?.rule ?? 'expired',
        reason:
          why?.reason ??
          `older than ${days}, not one of the last ${fulls}, not permanent, and no kept incremental needs it`,
      };
    });
}
