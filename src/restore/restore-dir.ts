import type { RestorePlan } from './restore-plan.js';

/**
 * The directory a restore writes to when `--to` is not given, relative to the
 * working directory:
 *
 *   ubackup-restore-<server_id>-<type>-<instance>-<created_at of the target backup>
 *
 * e.g. `ubackup-restore-5001-mysql-3306-20261120T043000Z`. It is named after
 * the backup being restored, not the time of the run, so running the same
 * restore again (after a failed download) finds its `.part` files and
 * resumes them.
 */
export function defaultRestoreDirName(
  identity: { serverId: string; type: string; instance: string },
  plan: RestorePlan,
): string {
  const target =
    plan.chain.find((file) => file.backup_id === plan.target.backup_id) ?? plan.chain[plan.chain.length - 1];
  const ms = Date.parse(target?.created_at ?? '');
  const stamp = Number.isNaN(ms)
    ? `backup${plan.target.backup_id}`
    : new Date(ms)
        .toISOString()
        .replace(/\.\d{3}Z$/, 'Z')
        .replace(/[-:]/g, '');
  return `ubackup-restore-${identity.serverId}-${identity.type}-${identity.instance}-${stamp}`;
}
