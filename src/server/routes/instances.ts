import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { CatalogDb } from '../../catalog/database.js';
import type { InstanceRow, InstanceUpdate } from '../../catalog/schema.js';
import { isPriority, PRIORITIES } from '../../shared/priority.js';
import { gameIdSchema, instanceNameSchema, serverIdSchema, typeNameSchema } from '../../shared/report.js';
import { resolveAlertsAbout } from '../alerts/alert-store.js';
import { instanceSubject } from '../alerts/instance-subject.js';
import { ApiError } from '../api-error.js';
import type { AppContext } from '../app-context.js';
import { recordAudit } from '../audit.js';
import { actorName } from '../auth/principal.js';
import { answerConstraintErrors } from '../constraint-violation.js';
import {
  DEFAULT_GRACE_SECONDS,
  DEFAULT_INTERVAL_SECONDS,
  DEFAULT_TIMEZONE,
  graceSecondsSchema,
  instanceDisplayNameSchema,
  intervalSecondsSchema,
  keepFullsSchema,
  retentionDaysSchema,
  scheduleProblem,
  scheduleSchema,
  timezoneSchema,
} from '../instance-fields.js';
import { clusterNameSchema, DEFAULT_CLUSTER } from './clusters.js';
import { isoTime, isoTimeOrNull } from './iso-time.js';
import { booleanFlag, listFilter, pageOf, pageOffset, pageSchema, pagingQueryShape } from './paging.js';

/** Most ids one bulk delete may name. */
export const MAX_BULK_DELETE = 1000;

export const InstanceSchema = z.object({
  id: z.number().int(),
  name: z.string(),
  server_id: z.string(),
  type: z.string(),
  instance: z.string(),
  game_id: z.string(),
  cluster: z.string(),
  priority: z.enum(PRIORITIES),
  schedule: z.string().nullable(),
  interval_seconds: z.number().int(),
  timezone: z.string(),
  grace_seconds: z.number().int(),
  retention_days: z.number().int().nullable(),
  keep_fulls: z.number().int().nullable(),
  paused: z.boolean(),
  /** Alerts of this instance are quiet until then (null: not muted). */
  muted_until: z.string().nullable(),
  last_success_at: z.string().nullable(),
  last_report_at: z.string().nullable(),
  next_due_at: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
});
export type Instance = z.infer<typeof InstanceSchema>;

export const InstanceCreateSchema = z
  .strictObject({
    name: instanceDisplayNameSchema,
    server_id: serverIdSchema,
    type: typeNameSchema,
    instance: instanceNameSchema,
    game_id: gameIdSchema,
    cluster: clusterNameSchema.default(DEFAULT_CLUSTER),
    priority: z.enum(PRIORITIES).default('normal'),
    schedule: scheduleSchema.nullable().default(null),
    interval_seconds: intervalSecondsSchema.default(DEFAULT_INTERVAL_SECONDS),
    timezone: timezoneSchema.default(DEFAULT_TIMEZONE),
    grace_seconds: graceSecondsSchema.default(DEFAULT_GRACE_SECONDS),
    retention_days: retentionDaysSchema.nullable().default(null),
    keep_fulls: keepFullsSchema.nullable().default(null),
    paused: z.boolean().default(false),
  })
  .superRefine((body, ctx) => {
    const problem = body.schedule === null ? null : scheduleProblem(body.schedule, body.timezone);
    if (problem) ctx.addIssue({ code: 'custom', path: ['schedule'], message: problem });
  });
export type InstanceCreate = z.infer<typeof InstanceCreateSchema>;

export const InstancePatchSchema = z
  .strictObject({
    name: instanceDisplayNameSchema.optional(),
    server_id: serverIdSchema.optional(),
    type: typeNameSchema.optional(),
    instance: instanceNameSchema.optional(),
    game_id: gameIdSchema.optional(),
    cluster: clusterNameSchema.optional(),
    priority: z.enum(PRIORITIES).optional(),
    schedule: scheduleSchema.nullable().optional(),
    interval_seconds: intervalSecondsSchema.optional(),
    timezone: timezoneSchema.optional(),
    grace_seconds: graceSecondsSchema.optional(),
    retention_days: retentionDaysSchema.nullable().optional(),
    keep_fulls: keepFullsSchema.nullable().optional(),
    paused: z.boolean().optional(),
  })
  .refine((patch) => Object.values(patch).some((v) => v !== undefined), 'give at least one field to change');
export type InstancePatch = z.infer<typeof InstancePatchSchema>;

export const InstanceListQuerySchema = z.strictObject({
  ...pagingQueryShape,
  name: listFilter(instanceDisplayNameSchema).optional(),
  server_id: listFilter(serverIdSchema).optional(),
  type: listFilter(typeNameSchema).optional(),
  instance: listFilter(instanceNameSchema).optional(),
  game_id: listFilter(gameIdSchema).optional(),
  cluster: listFilter(clusterNameSchema).optional(),
  paused: booleanFlag.optional(),
});
export type InstanceListQuery = z.infer<typeof InstanceListQuerySchema>;

export const InstanceParamsSchema = z.strictObject({
  id: z
    .string()
    .regex(/^[1-9][0-9]{0,14}$/, 'id must be a positive whole number')
    .transform(Number),
});

export const BulkDeleteSchema = z.strictObject({
  ids: z.array(z.number().int().positive().max(Number.MAX_SAFE_INTEGER)).min(1).max(MAX_BULK_DELETE),
});

type InstanceWithCluster = InstanceRow & { cluster: string };

export function toInstance(row: InstanceWithCluster): Instance {
  return {
    id: row.id,
    name: row.name,
    server_id: row.server_id,
    type: row.type,
    instance: row.instance,
    game_id: row.game_id,
    cluster: row.cluster,
    priority: isPriority(row.priority) ? row.priority : 'normal',
    schedule: row.schedule,
    interval_seconds: row.interval_seconds,
    timezone: row.timezone,
    grace_seconds: row.grace_seconds,
    retention_days: row.retention_days,
    keep_fulls: row.keep_fulls,
    paused: row.paused !== 0,
    muted_until: isoTimeOrNull(row.muted_until),
    last_success_at: isoTimeOrNull(row.last_success_at),
    last_report_at: isoTimeOrNull(row.last_report_at),
    next_due_at: isoTimeOrNull(row.next_due_at),
    created_at: isoTime(row.created_at),
    updated_at: isoTime(row.updated_at),
  };
}

function instancesWithCluster(db: CatalogDb) {
  return db.selectFrom('instances').innerJoin('clusters', 'clusters.id', 'instances.cluster_id');
}

async function findInstance(db: CatalogDb, id: number): Promise<Instance | undefined> {
  const row = await instancesWithCluster(db)
    .selectAll('instances')
    .select('clusters.name as cluster')
    .where('instances.id', '=', id)
    .executeTakeFirst();
  return row && toInstance(row);
}

async function listInstances(db: CatalogDb, query: InstanceListQuery) {
  let filtered = instancesWithCluster(db);
  if (query.name) filtered = filtered.where('instances.name', 'in', query.name);
  if (query.server_id) filtered = filtered.where('instances.server_id', 'in', query.server_id);
  if (query.type) filtered = filtered.where('instances.type', 'in', query.type);
  if (query.instance) filtered = filtered.where('instances.instance', 'in', query.instance);
  if (query.game_id) filtered = filtered.where('instances.game_id', 'in', query.game_id);
  if (query.cluster) filtered = filtered.where('clusters.name', 'in', query.cluster);
  if (query.paused !== undefined) filtered = filtered.where('instances.paused', '=', query.paused ? 1 : 0);
  const [counted, rows] = await Promise.all([
    filtered.select((eb) => eb.fn.countAll<number | string>().as('n')).executeTakeFirstOrThrow(),
    filtered
      .selectAll('instances')
      .select('clusters.name as cluster')
      .orderBy('instances.name')
      .orderBy('instances.id')
      .limit(query.page_size)
      .offset(pageOffset(query))
      .execute(),
  ]);
  return pageOf(rows.map(toInstance), Number(counted.n), query);
}

/** The cluster's id; the business and type must exist (the registry is strict). */
async function checkReferences(
  db: CatalogDb,
  refs: { game_id?: string | undefined; type?: string | undefined; cluster?: string | undefined },
): Promise<{ clusterId: number | undefined }> {
  if (refs.game_id !== undefined) {
    const business = await db
      .selectFrom('businesses')
      .select('id')
      .where('game_id', '=', refs.game_id)
      .executeTakeFirst();
    if (!business) {
      throw new ApiError(
        400,
        'unknown_business',
        `no business with game_id ${JSON.stringify(refs.game_id)}; register it first`,
      );
    }
  }
  if (refs.type !== undefined) {
    const type = await db
      .selectFrom('backup_types')
      .select('id')
      .where('name', '=', refs.type)
      .executeTakeFirst();
    if (!type)
      throw new ApiError(
        400,
        'unknown_type',
        `no backup type ${JSON.stringify(refs.type)}; register it first`,
      );
  }
  if (refs.cluster === undefined) return { clusterId: undefined };
  const cluster = await db
    .selectFrom('clusters')
    .select('id')
    .where('name', '=', refs.cluster)
    .executeTakeFirst();
  if (!cluster) throw new ApiError(400, 'unknown_cluster', `no cluster ${JSON.stringify(refs.cluster)}`);
  return { clusterId: cluster.id };
}

interface Identity {
  server_id: string;
  type: string;
  instance: string;
}

const describeIdentity = (i: Identity) => `${i.server_id}/${i.type}/${i.instance}`;

function duplicateIdentity(identity: Identity, id?: number): ApiError {
  const which = id === undefined ? '' : ` (id ${id})`;
  return new ApiError(
    409,
    'duplicate',
    `instance ${describeIdentity(identity)} is already registered${which}`,
    {
      ...(id === undefined ? {} : { id }),
    },
  );
}

async function checkIdentityFree(db: CatalogDb, identity: Identity, exceptId?: number): Promise<void> {
  let query = db
    .selectFrom('instances')
    .select('id')
    .where('server_id', '=', identity.server_id)
    .where('type', '=', identity.type)
    .where('instance', '=', identity.instance);
  if (exceptId !== undefined) query = query.where('id', '!=', exceptId);
  const existing = await query.executeTakeFirst();
  if (existing) throw duplicateIdentity(identity, existing.id);
}

/** Links the backups stored before the identity was registered. Returns how many. */
async function linkEarlierBackups(db: CatalogDb, instanceId: number, identity: Identity): Promise<number> {
  const result = await db
    .updateTable('backups')
    .set({ instance_id: instanceId })
    .where('server_id', '=', identity.server_id)
    .where('type', '=', identity.type)
    .where('instance', '=', identity.instance)
    .where('instance_id', 'is', null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** What a patch changes, as `{ field: { from, to } }`. */
function changes(before: Instance, patch: InstancePatch): Record<string, { from: unknown; to: unknown }> {
  const fields: Record<string, unknown> = before;
  const changed: Record<string, { from: unknown; to: unknown }> = {};
  for (const [field, to] of Object.entries(patch)) {
    if (to !== undefined && fields[field] !== to) changed[field] = { from: fields[field], to };
  }
  return changed;
}

/**
 * The instance registry: `GET/POST /api/v1/instances`, `GET/PATCH/DELETE /api/v1/instances/:id`,
 * `POST /api/v1/instances/bulk-delete`.
 */
export function instanceRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  const db = ctx.catalog.db;
  return async (app) => {
    app.get(
      '/api/v1/instances',
      {
        config: { access: 'viewer' },
        schema: { querystring: InstanceListQuerySchema, response: { 200: pageSchema(InstanceSchema) } },
      },
      (request) => listInstances(db, request.query),
    );

    app.post(
      '/api/v1/instances',
      {
        config: { access: 'operator' },
        schema: { body: InstanceCreateSchema, response: { 201: InstanceSchema } },
      },
      async (request, reply) => {
        const body = request.body;
        const nowMs = ctx.clock().getTime();
        const created = await answerConstraintErrors(
          db.transaction().execute(async (trx) => {
            const { clusterId } = await checkReferences(trx, body);
            await checkIdentityFree(trx, body);
            const inserted = await trx
              .insertInto('instances')
              .values({
                name: body.name,
                server_id: body.server_id,
                type: body.type,
                instance: body.instance,
                game_id: body.game_id,
                cluster_id: clusterId ?? ctx.defaultClusterId,
                priority: body.priority,
                schedule: body.schedule,
                interval_seconds: body.interval_seconds,
                timezone: body.timezone,
                grace_seconds: body.grace_seconds,
                retention_days: body.retention_days,
                keep_fulls: body.keep_fulls,
                paused: body.paused ? 1 : 0,
                created_at: nowMs,
                updated_at: nowMs,
              })
              .returning('id')
              .executeTakeFirstOrThrow();
            const linked = await linkEarlierBackups(trx, inserted.id, body);
            await resolveAlertsAbout(
              trx,
              ['illegal'],
              [instanceSubject(body.server_id, body.type, body.instance)],
              nowMs,
              actorName(request.principal),
              'the instance was registered',
            );
            await recordAudit(trx, {
              at: nowMs,
              actor: actorName(request.principal),
              action: 'instance.create',
              subject: `instance:${inserted.id}`,
              detail: { ...body, linked_backups: linked },
            });
            const instance = await findInstance(trx, inserted.id);
            if (!instance) throw new Error(`instance ${inserted.id} vanished during its creation`);
            return instance;
          }),
          { unique: () => duplicateIdentity(body) },
        );
        return reply.code(201).send(created);
      },
    );

    app.post(
      '/api/v1/instances/bulk-delete',
      {
        config: { access: 'operator' },
        schema: { body: BulkDeleteSchema, response: { 200: z.object({ deleted: z.number().int() }) } },
      },
      async (request) => {
        const nowMs = ctx.clock().getTime();
        const ids = [...new Set(request.body.ids)];
        const deleted = await db.transaction().execute(async (trx) => {
          const rows = await trx.deleteFrom('instances').where('id', 'in', ids).returning('id').execute();
          const deletedIds = rows.map((r) => r.id).sort((a, b) => a - b);
          await recordAudit(trx, {
            at: nowMs,
            actor: actorName(request.principal),
            action: 'instance.bulk_delete',
            subject: 'instances',
            detail: { requested: ids.length, deleted: deletedIds },
          });
          return deletedIds.length;
        });
        return { deleted };
      },
    );

    app.get(
      '/api/v1/instances/:id',
      {
        config: { access: 'viewer' },
        schema: { params: InstanceParamsSchema, response: { 200: InstanceSchema } },
      },
      async (request) => {
        const instance = await findInstance(db, request.params.id);
        if (!instance) throw new ApiError(404, 'not_found', `no instance ${request.params.id}`);
        return instance;
      },
    );

    app.patch(
      '/api/v1/instances/:id',
      {
        config: { access: 'operator' },
        schema: {
          params: InstanceParamsSchema,
          body: InstancePatchSchema,
          response: { 200: InstanceSchema },
        },
      },
      async (request) => {
        const { id } = request.params;
        const patch = request.body;
        const nowMs = ctx.clock().getTime();
        return answerConstraintErrors(
          db.transaction().execute(async (trx) => {
            const before = await findInstance(trx, id);
            if (!before) throw new ApiError(404, 'not_found', `no instance ${id}`);
            const { clusterId } = await checkReferences(trx, {
              game_id: patch.game_id !== before.game_id ? patch.game_id : undefined,
              type: patch.type !== before.type ? patch.type : undefined,
              cluster: patch.cluster,
            });
            const identity: Identity = {
              server_id: patch.server_id ?? before.server_id,
              type: patch.type ?? before.type,
              instance: patch.instance ?? before.instance,
            };
            const identityChanged = describeIdentity(identity) !== describeIdentity(before);
            if (identityChanged) await checkIdentityFree(trx, identity, id);
            if (patch.schedule !== undefined || patch.timezone !== undefined) {
              const schedule = patch.schedule === undefined ? before.schedule : patch.schedule;
              const problem =
                schedule === null ? null : scheduleProblem(schedule, patch.timezone ?? before.timezone);
              if (problem) {
                const path = patch.schedule === undefined ? 'body.timezone' : 'body.schedule';
                throw new ApiError(400, 'invalid_request', `${path}: ${problem}`, [
                  { path, message: problem },
                ]);
              }
            }
            const update: InstanceUpdate = {
              name: patch.name,
              server_id: patch.server_id,
              type: patch.type,
              instance: patch.instance,
              game_id: patch.game_id,
              cluster_id: clusterId,
              priority: patch.priority,
              schedule: patch.schedule,
              interval_seconds: patch.interval_seconds,
              timezone: patch.timezone,
              grace_seconds: patch.grace_seconds,
              retention_days: patch.retention_days,
              keep_fulls: patch.keep_fulls,
              paused: patch.paused === undefined ? undefined : patch.paused ? 1 : 0,
              updated_at: nowMs,
            };
            // A new schedule (or a new identity, whose history differs) needs a new due time: the alert engine computes it.
            if (
              identityChanged ||
              patch.schedule !== undefined ||
              patch.interval_seconds !== undefined ||
              patch.timezone !== undefined ||
              patch.grace_seconds !== undefined
            ) {
              update.next_due_at = null;
            }
            await trx.updateTable('instances').set(update).where('id', '=', id).execute();
            const linked = identityChanged ? await linkEarlierBackups(trx, id, identity) : 0;
            await recordAudit(trx, {
              at: nowMs,
              actor: actorName(request.principal),
              action: 'instance.update',
              subject: `instance:${id}`,
              detail: identityChanged
                ? { ...changes(before, patch), linked_backups: linked }
                : changes(before, patch),
            });
            const after = await findInstance(trx, id);
            if (!after) throw new Error(`instance ${id} vanished during its update`);
            return after;
          }),
          {
            unique: () =>
              new ApiError(
                409,
                'duplicate',
                'another instance took the same server_id/type/instance meanwhile',
              ),
          },
        );
      },
    );

    app.delete(
      '/api/v1/instances/:id',
      { config: { access: 'operator' }, schema: { params: InstanceParamsSchema } },
      async (request, reply) => {
        const { id } = request.params;
        const nowMs = ctx.clock().getTime();
        await db.transaction().execute(async (trx) => {
          const before = await findInstance(trx, id);
          if (!before) throw new ApiError(404, 'not_found', `no instance ${id}`);
          await trx.deleteFrom('instances').where('id', '=', id).execute();
          await recordAudit(trx, {
            at: nowMs,
            actor: actorName(request.principal),
            action: 'instance.delete',
            subject: `instance:${id}`,
            detail: before,
          });
        });
        return reply.code(204).send();
      },
    );
  };
}
