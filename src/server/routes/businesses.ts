import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Selectable } from 'kysely';
import { z } from 'zod';
import type { BusinessTable } from '../../catalog/schema.js';
import { gameIdSchema } from '../../shared/report.js';
import type { AppContext } from '../app-context.js';
import { keepFullsSchema, retentionDaysSchema } from '../instance-fields.js';
import { isoTime } from './iso-time.js';
import { type KeyedResource, keyedResourceActions } from './keyed-resource.js';
import { PagingQuerySchema, pageSchema } from './paging.js';

export const MAX_BUSINESS_NAME_CHARS = 128;

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we reject
const CONTROL = /[\u0000-\u001f\u007f]/;

export const businessNameSchema = z
  .string()
  .min(1, 'name is empty')
  .max(MAX_BUSINESS_NAME_CHARS)
  .refine((v) => !CONTROL.test(v), 'name contains a control character');

export const BusinessSchema = z.object({
  id: z.number().int(),
  game_id: z.string(),
  name: z.string(),
  /** Retention for the business's instances that neither they nor their type set (null: not set). */
  retention_days: z.number().int().nullable(),
  keep_fulls: z.number().int().nullable(),
  created_at: z.string(),
});
export type Business = z.infer<typeof BusinessSchema>;

export const BusinessCreateSchema = z.strictObject({
  game_id: gameIdSchema,
  name: businessNameSchema,
  retention_days: retentionDaysSchema.nullable().optional(),
  keep_fulls: keepFullsSchema.nullable().optional(),
});
export const BusinessPatchSchema = z
  .strictObject({
    game_id: gameIdSchema.optional(),
    name: businessNameSchema.optional(),
    retention_days: retentionDaysSchema.nullable().optional(),
    keep_fulls: keepFullsSchema.nullable().optional(),
  })
  .refine(
    (p) => Object.values(p).some((v) => v !== undefined),
    'give game_id, name, retention_days or keep_fulls to change',
  );

function toBusiness(row: Selectable<BusinessTable>): Business {
  return {
    id: row.id,
    game_id: row.game_id,
    name: row.name,
    retention_days: row.retention_days,
    keep_fulls: row.keep_fulls,
    created_at: isoTime(row.created_at),
  };
}

/** Businesses (games), named by game_id: a string, so leading zeros are kept. */
export const businessResource: KeyedResource<
  Business,
  z.infer<typeof BusinessCreateSchema>,
  z.infer<typeof BusinessPatchSchema>
> = {
  key: 'game_id',
  noun: 'business',
  keyOf: (values) => values.game_id,
  newKeyOf: (patch) => patch.game_id,
  protectedKeys: [],
  referencedByKey: true,
  store: {
    async count(db) {
      const row = await db
        .selectFrom('businesses')
        .select((eb) => eb.fn.countAll<number | string>().as('n'))
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },
    async list(db, offset, limit) {
      const rows = await db
        .selectFrom('businesses')
        .selectAll()
        .orderBy('game_id')
        .orderBy('id')
        .limit(limit)
        .offset(offset)
        .execute();
      return rows.map(toBusiness);
    },
    async find(db, key) {
      const row = await db.selectFrom('businesses').selectAll().where('game_id', '=', key).executeTakeFirst();
      return row && toBusiness(row);
    },
    async insert(db, values, nowMs) {
      const row = await db
        .insertInto('businesses')
        .values({
          game_id: values.game_id,
          name: values.name,
          retention_days: values.retention_days ?? null,
          keep_fulls: values.keep_fulls ?? null,
          created_at: nowMs,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toBusiness(row);
    },
    async update(db, key, patch) {
      const row = await db
        .updateTable('businesses')
        .set({
          game_id: patch.game_id,
          name: patch.name,
          retention_days: patch.retention_days,
          keep_fulls: patch.keep_fulls,
        })
        .where('game_id', '=', key)
        .returningAll()
        .executeTakeFirstOrThrow();
      return toBusiness(row);
    },
    async remove(db, key) {
      await db.deleteFrom('businesses').where('game_id', '=', key).execute();
    },
    async usage(db, key) {
      const row = await db
        .selectFrom('instances')
        .select((eb) => eb.fn.countAll<number | string>().as('n'))
        .where('game_id', '=', key)
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },
  },
};

const BusinessParamsSchema = z.strictObject({ game_id: gameIdSchema });

/** `GET/POST /api/v1/businesses`, `GET/PATCH/DELETE /api/v1/businesses/:game_id`. */
export function businessRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  const actions = keyedResourceActions(ctx, businessResource);
  return async (app) => {
    app.get(
      '/api/v1/businesses',
      {
        config: { access: 'viewer' },
        schema: { querystring: PagingQuerySchema, response: { 200: pageSchema(BusinessSchema) } },
      },
      (request) => actions.list(request.query),
    );
    app.post(
      '/api/v1/businesses',
      {
        config: { access: 'operator' },
        schema: { body: BusinessCreateSchema, response: { 201: BusinessSchema } },
      },
      async (request, reply) => reply.code(201).send(await actions.create(request.principal, request.body)),
    );
    app.get(
      '/api/v1/businesses/:game_id',
      {
        config: { access: 'viewer' },
        schema: { params: BusinessParamsSchema, response: { 200: BusinessSchema } },
      },
      (request) => actions.get(request.params.game_id),
    );
    app.patch(
      '/api/v1/businesses/:game_id',
      {
        config: { access: 'operator' },
        schema: {
          params: BusinessParamsSchema,
          body: BusinessPatchSchema,
          response: { 200: BusinessSchema },
        },
      },
      (request) => actions.update(request.principal, request.params.game_id, request.body),
    );
    app.delete(
      '/api/v1/businesses/:game_id',
      { config: { access: 'admin' }, schema: { params: BusinessParamsSchema } },
      async (request, reply) => {
        await actions.remove(request.principal, request.params.game_id);
        return reply.code(204).send();
      },
    );
  };
}
