import type { InstanceIdentity, InstanceRetentionPlan } from '../server/retention/load-retention-plans.js';
import { AdminInputError } from './create-user.js';

/**
 * `ubackup admin retention plan`: the dry run's input parsing and output. The
 * plans come from the loader the server's retention round uses
 * (server/retention/load-retention-plans.ts).
 */

/** `server_id/type/instance`, as `--instance` takes it. */
export function parseInstanceIdentity(text: string): InstanceIdentity {
  const parts = text.split('/');
  if (parts.length !== 3 || parts.some((p) => p.trim() === '')) {
    throw new AdminInputError(
      `--instance: expected server_id/type/instance (e.g. 111111/mysql/3306), got "${text}"`,
    );
  }
  const [server_id, type, instance] = parts as [string, string, string];
  return { server_id, type, instance };
}

const iso = (ms: number) => new Date(ms).toISOString();

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function summary(plan: InstanceRetentionPlan) {
  const deletes = plan.decisions.filter((d) => d.action === 'delete');
  return {
    keep: plan.decisions.length - deletes.length,
    delete: deletes.length,
    delete_bytes: deletes.reduce((sum, d) => sum + (d.size ?? 0), 0),
  };
}

/** The plan as `--json` prints it. */
export function retentionPlansJson(plans: readonly InstanceRetentionPlan[], nowMs: number) {
  return {
    now: iso(nowMs),
    dry_run: true,
    instances: plans.map((p) => ({
      server_id: p.server_id,
      type: p.type,
      instance: p.instance,
      game_id: p.game_id,
      policy: {
        retention_days: p.policy.retentionDays,
        keep_fulls: p.policy.keepFulls,
        source: { retention_days: p.policy.source.retentionDays, keep_fulls: p.policy.source.keepFulls },
      },
      summary: summary(p),
      decisions: p.decisions.map((d) => ({ ...d, created_at: iso(d.created_at) })),
    })),
  };
}

/** The plan for people: one block per instance, one line per backup, newest first. */
export function formatRetentionPlans(plans: readonly InstanceRetentionPlan[]): string {
  if (plans.length === 0) return 'no stored backups: nothing to plan\n';
  const lines: string[] = [];
  for (const p of plans) {
    const { retentionDays, keepFulls, source } = p.policy;
    lines.push(
      `${p.server_id}/${p.type}/${p.instance}${p.game_id === null ? '' : ` (business ${p.game_id})`}: keep ${retentionDays} days (${source.retentionDays}), at least ${keepFulls} fulls (${source.keepFulls})`,
    );
    for (const d of p.decisions) {
      lines.push(
        `  ${d.action.padEnd(6)}  #${String(d.backup_id).padEnd(8)} ${(d.kind ?? '-').padEnd(11)}  ${iso(d.created_at)}  ${d.filename ?? '-'}  ${d.reason}`,
      );
    }
    const s = summary(p);
    lines.push(`  => keep ${s.keep}, delete ${s.delete} (${bytes(s.delete_bytes)})`, '');
  }
  lines.push('dry run: nothing was changed');
  return `${lines.join('\n')}\n`;
}
