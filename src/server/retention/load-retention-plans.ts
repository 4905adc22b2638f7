import type { Catalog } from '../../catalog/database.js';
import { planRetention, type RetentionDecision } from './retention-plan.js';
import { type RetentionPolicy, type RetentionSettings, resolveRetentionPolicy } from './retention-policy.js';

/**
 * Reads what retention decides on from the catalog and plans each instance
 * (DESIGN §11). Shared by the dry run (`ubackup admin retention plan`) and the
 * server's retention round, so both see the same decisions. Reads only.
 *
 * A backup whose delete was already requested (`delete_requested_at` set) is
 * on its way out: it is left out of the planner's input as if it were
 * deleted, so it is neither decided again nor counted as a kept full, and it
 * protects no base or chain (what it depended on was not kept for it when its
 * delete was decided, and nothing kept depends on it).
 */

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

/** Instances planned per page when every instance is planned. */
export const PLAN_PAGE_INSTANCES = 200;

/** Type and business settings, read once per pass. */
interface SettingsCache {
  types: Map<string, RetentionSettings | null>;
  businesses: Map<string, RetentionSettings | null>;
}

const newCache = (): SettingsCache => ({ types: new Map(), businesses: new Map() });

/**
 * The retention plan of one instance, or of every instance that has stored
 * backups whose fate is not decided yet, in identity order.
 */
export async function retentionPlans(
  catalog: Catalog,
  which: { instance?: InstanceIdentity },
  nowMs: number,
): Promise<InstanceRetentionPlan[]> {
  if (which.instance) return [await instancePlan(catalog, which.instance, nowMs, newCache())];
  const plans: InstanceRetentionPlan[] = [];
  for await (const page of retentionPlanPages(catalog, nowMs)) plans.push(...page);
  return plans;
}

/**
 * The plans of every instance with stored, not deleted, not delete-requested
 * backups, a page of instances at a time (identity order), so a pass over a
 * large fleet holds one page in memory and gives other queries their turn.
 */
export async function* retentionPlanPages(
  catalog: Catalog,
  nowMs: number,
  pageInstances: number = PLAN_PAGE_INSTANCES,
): AsyncGenerator<InstanceRetentionPlan[]> {
  const cache = newCache();
  let after: InstanceIdentity | null = null;
  for (;;) {
    const identities = await identityPage(catalog, after, pageInstances);
    if (identities.length === 0) return;
    const page: InstanceRetentionPlan[] = [];
    for (const id of identities) page.push(await instancePlan(catalog, id, nowMs, cache));
    yield page;
    if (identities.length < pageInstances) return;
    after = identities.at(-1) ?? null;
  }
}

/** The next `limit` instances (identity order) after `after` that have something to decide on. */
async function identityPage(
  catalog: Catalog,
  after: InstanceIdentity | null,
  limit: number,
): Promise<InstanceIdentity[]> {
  let query = catalog.db
    .selectFrom('backups')
    .select(['server_id', 'type', 'instance'])
    .distinct()
    .where('stored_path', 'is not', null)
    .where('deleted_at', 'is', null)
    .where('delete_requested_at', 'is', null);
  if (after !== null) {
    query = query.where(({ eb, refTuple, tuple }) =>
      eb(refTuple('server_id', 'type', 'instance'), '>', tuple(after.server_id, after.type, after.instance)),
    );
  }
  return query.orderBy('server_id').orderBy('type').orderBy('instance').limit(limit).execute();
}

async function instancePlan(
  catalog: Catalog,
  id: InstanceIdentity,
  nowMs: number,
  cache: SettingsCache,
): Promise<InstanceRetentionPlan> {
  const db = catalog.db;
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
      'game_id',
    ])
    .where('server_id', '=', id.server_id)
    .where('type', '=', id.type)
    .where('instance', '=', id.instance)
    .where('status', '=', 'ok')
    .where('deleted_at', 'is', null)
    // Already going: as good as deleted (see the top of this file).
    .where('delete_requested_at', 'is', null)
    .orderBy('created_at', 'desc')
    .execute();
  // An unregistered instance belongs to the business its newest backup claimed.
  const gameId = registered?.game_id ?? rows[0]?.game_id ?? null;
  const policy = resolveRetentionPolicy(
    registered ?? null,
    await typeSettings(catalog, cache, id.type),
    gameId === null ? null : await businessSettings(catalog, cache, gameId),
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
      deleted: false,
    })),
    policy,
    nowMs,
  );
  return { ...id, game_id: gameId, policy, decisions };
}

async function typeSettings(
  catalog: Catalog,
  cache: SettingsCache,
  type: string,
): Promise<RetentionSettings | null> {
  if (!cache.types.has(type)) {
    const row = await catalog.db
      .selectFrom('backup_types')
      .select(['retention_days', 'keep_fulls'])
      .where('name', '=', type)
      .executeTakeFirst();
    cache.types.set(type, row ?? null);
  }
  return cache.types.get(type) ?? null;
}

async function businessSettings(
  catalog: Catalog,
  cache: SettingsCache,
  gameId: string,
): Promise<RetentionSettings | null> {
  if (!cache.businesses.has(gameId)) {
    const row = await catalog.db
      .selectFrom('businesses')
      .select(['retention_days', 'keep_fulls'])
      .where('game_id', '=', gameId)
      .executeTakeFirst();
    cache.businesses.set(gameId, row ?? null);
  }
  return cache.businesses.get(gameId) ?? null;
}
