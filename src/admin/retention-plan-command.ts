import type { Catalog } from '../catalog/database.js';
import { planRetention, type RetentionDecision } from '../server/retention/retention-plan.js';
import {
  type RetentionPolicy,
  type RetentionSettings,
  resolveRetentionPolicy,
} from '../server/retention/retention-policy.js';
import { AdminInputError } from './create-user.js';

/** One instance, as backups name it. */
export interface InstanceIdentity {
  server_id: string;
  type: string;
  instance: string;
}

export interface InstanceRetentionPlan extends InstanceIdentity {
  game_id: string | null;
  policy: RetentionPolicy;
  decisions: RetentionDecision[];
}

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

/**
 * The retention plan of one instance, or of every instance that has stored
 * backups, read from the catalog. A dry run: nothing is changed.
 */
export async function retentionPlans(
  catalog: Catalog,
  which: { instance?: InstanceIdentity },
  nowMs: number,
): Promise<InstanceRetentionPlan[]> {
  const db = catalog.db;
  const identities: InstanceIdentity[] = which.instance
    ? [which.instance]
    : await db
        .selectFrom('backups')
        .select(['server_id', 'type', 'instance'])
        .distinct()
        .where('stored_path', 'is not', null)
        .where('deleted_at', 'is', null)
        .orderBy('server_id')
        .orderBy('type')
        .orderBy('instance')
        .execute();

  const typeSettings = new Map<string, RetentionSettings | null>();
  const businessSettings = new Map<string, RetentionSettings | null>();
  const plans: InstanceRetentionPlan[] = [];
  for (const id of identities) {
    const registered = await db
      .selectFrom('instances')
      .select(['game_id', 'retention_days', 'keep_fulls'])
      .where('server_id', '=', id.server_id)
      .where('type', '=', id.type)
      .where('instance', '=', id.instance)
      .executeTakeFirst();
    const rows = await db
      .selectFrom('backups')
      .select([
        'id',
        'kind',
        'status',
        'created_at',
        'base_backup_id',
        'filename',
        'size',
        'permanent',
        'stored_path',
        'deleted_at',
        'game_id',
      ])
      .where('server_id', '=', id.server_id)
      .where('type', '=', id.type)
      .where('instance', '=', id.instance)
      .where('status', '=', 'ok')
      .where('deleted_at', 'is', null)
      .orderBy('created_at', 'desc')
      .execute();
    // An unregistered instance belongs to the business its newest backup claimed.
    const gameId = registered?.game_id ?? rows[0]?.game_id ?? null;

    if (!typeSettings.has(id.type)) {
      typeSettings.set(
        id.type,
        (await db
          .selectFrom('backup_types')
          .select(['retention_days', 'keep_fulls'])
          .where('name', '=', id.type)
          .executeTakeFirst()) ?? null,
      );
    }
    if (gameId !== null && !businessSettings.has(gameId)) {
      businessSettings.set(
        gameId,
        (await db
          .selectFrom('businesses')
          .select(['retention_days', 'keep_fulls'])
          .where('game_id', '=', gameId)
          .executeTakeFirst()) ?? null,
      );
    }
    const policy = resolveRetentionPolicy(
      registered ?? null,
      typeSettings.get(id.type) ?? null,
      gameId === null ? null : (businessSettings.get(gameId) ?? null),
    );
    const decisions = planRetention(
      rows.map((r) => ({
        id: r.id,
        kind: r.kind,
        status: r.status,
        created_at: r.created_at,
        base_backup_id: r.base_backup_id,
        filename: r.filename,
        size: r.size,
        permanent: r.permanent === 1,
        stored: r.stored_path !== null,
        deleted: r.deleted_at !== null,
      })),
      policy,
      nowMs,
    );
    plans.push({ ...id, game_id: gameId, policy, decisions });
  }
  return plans;
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
