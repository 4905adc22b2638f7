import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Selectable } from 'kysely';
import { z } from 'zod';
import type { BackupTypeTable } from '../../catalog/schema.js';
import { typeNameSchema } from '../../shared/report.js';
import type { AppContext } from '../app-context.js';
import { keepFullsSchema, retentionDaysSchema } from '../instance-fields.js';
import { DescribedItemSchema, descriptionSchema } from './described-resource.js';
import { isoTime } from './iso-time.js';
import { type KeyedResource, keyedResourceActions } from './keyed-resource.js';
import { PagingQuerySchema, pageSchema } from './paging.js';

export const BackupTypeSchema = DescribedItemSchema.extend({
  /** Retention for instances of this type that do not set their own (null: not set). */
  retention_days: z.number().int().nullable(),
  keep_fulls: z.number().int().nullable(),
});
export type BackupType = z.infer<typeof BackupTypeSchema>;

export const BackupTypeCreateSchema = z.strictObject({
  name: typeNameSchema,
  description: descriptionSchema.default(''),
  retention_days: retentionDaysSchema.nullable().optional(),
  keep_fulls: keepFullsSchema.nullable().optional(),
});
export const BackupTypePatchSchema = z
  .strictObject({
    name: typeNameSchema.optional(),
    description: descriptionSchema.optional(),
    retention_days: retentionDaysSchema.nullable().optional(),
    keep_fulls: keepFullsSchema.nullable().optional(),
  })
  .refine(
    (p) => Object.values(p).some((v) => v !== undefined),
    'give name, description, retention_days or keep_fulls to change',
  );

function toBackupType(row: Selectable<BackupTypeTable>): BackupType {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    retention_days: row.retention_days,
    keep_fulls: row.keep_fulls,
    created_at: isoTime(row.created_at),
  };
}

/** Backup types, named by name; instances name their type by name, so one in use is neither deleted nor renamed. */
export const backupTypeResource: KeyedResource<
  BackupType,
  z.infer<typeof BackupTypeCreateSchema>,
  z.infer<typeof BackupTypePatchSchema>
> = {
  key: 'name',
  noun: 'backup_type',
  keyOf: (values) => values.name,
  newKeyOf: (patch) => patch.name,
  protectedKeys: [],
  referencedByKey: true,
  store: {
    async count(db) {
      const row = await db
        .selectFrom('backup_types')
        .select((eb) => eb.fn.countAll<number | string>().as('n'))
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },
    async list(db, offset, limit) {
      const rows = await db
        .selectFrom('backup_types')
        .selectAll()
        .orderBy('name')
        .orderBy('id')
        .limit(limit)
        .offset(offset)
        .execute();
      return rows.map(toBackupType);
    },
    async find(db, name) {
      const row = await db.selectFrom('backup_types').selectAll().where('name', '=', name).executeTakeFirst();
      return row && toBackupType(row);
    },
    async insert(db, values, nowMs) {
      const row = await db
        .insertInto('backup_types')
        .values({
          name: values.name,
          description: values.description,
          retention_days: values.retention_days ?? null,
          keep_fulls: values.keep_fulls ?? null,
          created_at: nowMs,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toBackupType(row);
    },
    async update(db, name, patch) {
      const row = await db
        .updateTable('backup_types')
        .set({
          name: patch.name,
          description: patch.description,
          retention_days: patch.retention_days,
          keep_fulls: patch.keep_fulls,
        })
        .where('name', '=', name)
        .returningAll()
        .executeTakeFirstOrThrow();
      return toBackupType(row);
    },
    async remove(db, name) {
      await db.deleteFrom('backup_types').where('name', '=', name).execute();
    },
    async usage(db, name) {
      const row = await db
        .selectFrom('instances')
        .select((eb) => eb.fn.countAll<number | string>().as('n'))
        .where('type', '=', name)
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },
  },
};

const BackupTypeParamsSchema = z.strictObject({ name: typeNameSchema });

/** `GET/POST /api/v1/backup-types`, `GET/PATCH/DELETE /api/v1/backup-types/:name`. */
export function backupTypeRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  const actions = keyedResourceActions(ctx, backupTypeResource);
  return async (app) => {
    app.get(
      '/api/v1/backup-types',
      {
        config: { access: 'viewer' },
        schema: { querystring: PagingQuerySchema, response: { 200: pageSchema(BackupTypeSchema) } },
      },
      (request) => actions.list(request.query),
    );
    app.post(
      '/api/v1/backup-types',
      {
        config: { access: 'operator' },
        schema: { body: BackupTypeCreateSchema, response: { 201: BackupTypeSchema } },
      },
      async (request, reply) => reply.code(201).send(await actions.create(request.principal, request.body)),
    );
    app.get(
      '/api/v1/backup-types/:name',
      {
        config: { access: 'viewer' },
        schema: { params: BackupTypeParamsSchema, response: { 200: BackupTypeSchema } },
      },
      (request) => actions.get(request.params.name),
    );
    app.patch(
      '/api/v1/backup-types/:name',
      {
        config: { access: 'operator' },
        schema: {
          params: BackupTypeParamsSchema,
          body: BackupTypePatchSchema,
          response: { 200: BackupTypeSchema },
        },
      },
      (request) => actions.update(request.principal, request.params.name, request.body),
    );
    app.delete(
      '/api/v1/backup-types/:name',
      { config: { access: 'admin' }, schema: { params: BackupTypeParamsSchema } },
      async (request, reply) => {
        await actions.remove(request.principal, request.params.name);
        return reply.code(204).send();
      },
    );
  };
}
