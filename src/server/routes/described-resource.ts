import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Selectable } from 'kysely';
import { z } from 'zod';
import type { CatalogDb } from '../../catalog/database.js';
import type { BackupTypeTable, ClusterTable } from '../../catalog/schema.js';
import type { AppContext } from '../app-context.js';
import { isoTime } from './iso-time.js';
import { keyedResourceActions } from './keyed-resource.js';
import { PagingQuerySchema, pageSchema } from './paging.js';

/**
 * The routes of a registry resource that is a unique name plus a free-text
 * description: clusters (backup types, which also carry retention settings, have their own
 * routes in backup-types.ts). `GET/POST <path>`, `GET/PATCH/DELETE <path>/:name`.
 */

export const MAX_DESCRIPTION_CHARS = 1024;

export const descriptionSchema = z
  .string()
  .max(MAX_DESCRIPTION_CHARS)
  .refine((v) => !v.includes('\0'), 'description contains a NUL character');

export const DescribedItemSchema = z.object({
  id: z.number().int(),
  name: z.string(),
  description: z.string(),
  created_at: z.string(),
});
export type DescribedItem = z.infer<typeof DescribedItemSchema>;

export type DescribedTable = 'backup_types' | 'clusters';

export interface DescribedResource {
  table: DescribedTable;
  /** Collection path, e.g. `/api/v1/clusters`. */
  path: string;
  /** Audit noun, e.g. `cluster`. */
  noun: string;
  nameSchema: z.ZodType<string, string>;
  /** Names that can be neither deleted nor renamed. */
  protectedNames: readonly string[];
  /** Instances name this resource by its name (not by id), so it cannot be renamed while in use. */
  referencedByName: boolean;
  /** How many instances use the row. */
  usage(db: CatalogDb, row: { id: number; name: string }): Promise<number>;
}

function toItem(row: Selectable<BackupTypeTable> | Selectable<ClusterTable>): DescribedItem {
  return { id: row.id, name: row.name, description: row.description, created_at: isoTime(row.created_at) };
}

export function describedResourceRoutes(ctx: AppContext, resource: DescribedResource): FastifyPluginAsyncZod {
  const { table } = resource;
  const CreateSchema = z.strictObject({
    name: resource.nameSchema,
    description: descriptionSchema.default(''),
  });
  const PatchSchema = z
    .strictObject({ name: resource.nameSchema.optional(), description: descriptionSchema.optional() })
    .refine((p) => p.name !== undefined || p.description !== undefined, 'give name or description to change');
  const ParamsSchema = z.strictObject({ name: resource.nameSchema });

  const actions = keyedResourceActions<
    DescribedItem,
    z.infer<typeof CreateSchema>,
    z.infer<typeof PatchSchema>
  >(ctx, {
    key: 'name',
    noun: resource.noun,
    keyOf: (values) => values.name,
    newKeyOf: (patch) => patch.name,
    protectedKeys: resource.protectedNames,
    referencedByKey: resource.referencedByName,
    store: {
      async count(db) {
        const row = await db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll<number | string>().as('n'))
          .executeTakeFirstOrThrow();
        return Number(row.n);
      },
      async list(db, offset, limit) {
        const rows = await db
          .selectFrom(table)
          .selectAll()
          .orderBy('name')
          .orderBy('id')
          .limit(limit)
          .offset(offset)
          .execute();
        return rows.map(toItem);
      },
      async find(db, name) {
        const row = await db.selectFrom(table).selectAll().where('name', '=', name).executeTakeFirst();
        return row && toItem(row);
      },
      async insert(db, values, nowMs) {
        const row = await db
          .insertInto(table)
          .values({ name: values.name, description: values.description, created_at: nowMs })
          .returningAll()
          .executeTakeFirstOrThrow();
        return toItem(row);
      },
      async update(db, name, patch) {
        const row = await db
          .updateTable(table)
          .set({ name: patch.name, description: patch.description })
          .where('name', '=', name)
          .returningAll()
          .executeTakeFirstOrThrow();
        return toItem(row);
      },
      async remove(db, name) {
        await db.deleteFrom(table).where('name', '=', name).execute();
      },
      async usage(db, name) {
        const row = await db
          .selectFrom(table)
          .select(['id', 'name'])
          .where('name', '=', name)
          .executeTakeFirst();
        return row ? resource.usage(db, row) : 0;
      },
    },
  });

  return async (app) => {
    app.get(
      resource.path,
      {
        config: { access: 'viewer' },
        schema: { querystring: PagingQuerySchema, response: { 200: pageSchema(DescribedItemSchema) } },
      },
      (request) => actions.list(request.query),
    );
    app.post(
      resource.path,
      {
        config: { access: 'operator' },
        schema: { body: CreateSchema, response: { 201: DescribedItemSchema } },
      },
      async (request, reply) => reply.code(201).send(await actions.create(request.principal, request.body)),
    );
    app.get(
      `${resource.path}/:name`,
      {
        config: { access: 'viewer' },
        schema: { params: ParamsSchema, response: { 200: DescribedItemSchema } },
      },
      (request) => actions.get(request.params.name),
    );
    app.patch(
      `${resource.path}/:name`,
      {
        config: { access: 'operator' },
        schema: { params: ParamsSchema, body: PatchSchema, response: { 200: DescribedItemSchema } },
      },
      (request) => actions.update(request.principal, request.params.name, request.body),
    );
    app.delete(
      `${resource.path}/:name`,
      { config: { access: 'admin' }, schema: { params: ParamsSchema } },
      async (request, reply) => {
        await actions.remove(request.principal, request.params.name);
        return reply.code(204).send();
      },
    );
  };
}
