import type { CatalogDb } from '../../catalog/database.js';
import { ApiError } from '../api-error.js';
import type { AppContext } from '../app-context.js';
import { recordAudit } from '../audit.js';
import { actorName, type Principal } from '../auth/principal.js';
import { answerConstraintErrors } from '../constraint-violation.js';
import { type Page, type Paging, pageOf, pageOffset } from './paging.js';

/**
 * What the routes of a small registry resource named by a unique key do
 * (businesses by game_id, backup types and clusters by name): list, create,
 * read, update and delete, with the duplicate / in_use / protected answers and
 * an audit entry inside every write's transaction. Each resource's file
 * declares its routes (typed by its zod schemas) and its Kysely queries.
 */

type Fields = Record<string, unknown>;

/** Table-specific queries. `db` is the catalog or the write's transaction. */
export interface KeyedResourceStore<Item extends Fields, Create extends Fields, Patch extends Fields> {
  count(db: CatalogDb): Promise<number>;
  list(db: CatalogDb, offset: number, limit: number): Promise<Item[]>;
  find(db: CatalogDb, key: string): Promise<Item | undefined>;
  insert(db: CatalogDb, values: Create, nowMs: number): Promise<Item>;
  update(db: CatalogDb, key: string, patch: Patch): Promise<Item>;
  remove(db: CatalogDb, key: string): Promise<void>;
  /** How many instances refer to the resource. */
  usage(db: CatalogDb, key: string): Promise<number>;
}

export interface KeyedResource<Item extends Fields, Create extends Fields, Patch extends Fields> {
  /** The key field, e.g. `game_id`. */
  key: string;
  /** Audit action prefix and subject, e.g. `business` gives `business.create` on `business:31`. */
  noun: string;
  keyOf(values: Create): string;
  /** The key a patch sets, if it sets one. */
  newKeyOf(patch: Patch): string | undefined;
  /** Keys that can be neither deleted nor renamed. */
  protectedKeys: readonly string[];
  /** Instances name this resource by its key (not by id), so the key cannot change while it is in use. */
  referencedByKey: boolean;
  store: KeyedResourceStore<Item, Create, Patch>;
}

export interface KeyedResourceActions<Item extends Fields, Create extends Fields, Patch extends Fields> {
  list(paging: Paging): Promise<Page<Item>>;
  get(key: string): Promise<Item>;
  create(principal: Principal | null, values: Create): Promise<Item>;
  update(principal: Principal | null, key: string, patch: Patch): Promise<Item>;
  remove(principal: Principal | null, key: string): Promise<void>;
}

export function keyedResourceActions<Item extends Fields, Create extends Fields, Patch extends Fields>(
  ctx: AppContext,
  spec: KeyedResource<Item, Create, Patch>,
): KeyedResourceActions<Item, Create, Patch> {
  const { store, noun } = spec;
  const db = ctx.catalog.db;
  const named = (key: string) => `${noun} ${JSON.stringify(key)}`;
  const notFound = (key: string) => new ApiError(404, 'not_found', `no ${named(key)}`);
  const duplicate = (key: string) =>
    new ApiError(409, 'duplicate', `${spec.key} ${JSON.stringify(key)} is already registered`);

  return {
    async list(paging) {
      const [total, items] = await Promise.all([
        store.count(db),
        store.list(db, pageOffset(paging), paging.page_size),
      ]);
      return pageOf(items, total, paging);
    },

    async get(key) {
      const item = await store.find(db, key);
      if (!item) throw notFound(key);
      return item;
    },

    create(principal, values) {
      const nowMs = ctx.clock().getTime();
      const key = spec.keyOf(values);
      return answerConstraintErrors(
        db.transaction().execute(async (trx) => {
          if (await store.find(trx, key)) throw duplicate(key);
          const created = await store.insert(trx, values, nowMs);
          await recordAudit(trx, {
            at: nowMs,
            actor: actorName(principal),
            action: `${noun}.create`,
            subject: `${noun}:${key}`,
            detail: values,
          });
          return created;
        }),
        { unique: () => duplicate(key) },
      );
    },

    update(principal, key, patch) {
      const nowMs = ctx.clock().getTime();
      const newKey = spec.newKeyOf(patch);
      return answerConstraintErrors(
        db.transaction().execute(async (trx) => {
          const before = await store.find(trx, key);
          if (!before) throw notFound(key);
          if (newKey !== undefined && newKey !== key) {
            if (spec.protectedKeys.includes(key)) {
              throw new ApiError(409, 'protected', `the ${named(key)} cannot be renamed`);
            }
            if (spec.referencedByKey) {
              const instances = await store.usage(trx, key);
              if (instances > 0) throw inUse(named(key), instances, `its ${spec.key} cannot change`);
            }
            if (await store.find(trx, newKey)) throw duplicate(newKey);
          }
          const after = await store.update(trx, key, patch);
          await recordAudit(trx, {
            at: nowMs,
            actor: actorName(principal),
            action: `${noun}.update`,
            subject: `${noun}:${key}`,
            detail: changedFields(before, patch),
          });
          return after;
        }),
        { unique: () => duplicate(newKey ?? key) },
      );
    },

    async remove(principal, key) {
      const nowMs = ctx.clock().getTime();
      if (spec.protectedKeys.includes(key)) {
        throw new ApiError(409, 'protected', `the ${named(key)} cannot be deleted`);
      }
      await answerConstraintErrors(
        db.transaction().execute(async (trx) => {
          const before = await store.find(trx, key);
          if (!before) throw notFound(key);
          const instances = await store.usage(trx, key);
          if (instances > 0) throw inUse(named(key), instances, 'delete them or move them elsewhere first');
          await store.remove(trx, key);
          await recordAudit(trx, {
            at: nowMs,
            actor: actorName(principal),
            action: `${noun}.delete`,
            subject: `${noun}:${key}`,
            detail: before,
          });
        }),
        {
          foreign_key: () =>
            new ApiError(
              409,
              'in_use',
              `the ${named(key)} is still referenced by stored backups or transfer jobs`,
            ),
        },
      );
    },
  };
}

function inUse(what: string, instances: number, advice: string): ApiError {
  const count = instances === 1 ? '1 instance' : `${instances} instances`;
  return new ApiError(409, 'in_use', `the ${what} is used by ${count}; ${advice}`, { instances });
}

/** `{ field: { from, to } }` for each field the patch changes. */
function changedFields(before: Fields, patch: Fields): Record<string, { from: unknown; to: unknown }> {
  const changes: Record<string, { from: unknown; to: unknown }> = {};
  for (const [field, to] of Object.entries(patch)) {
    if (to !== undefined && before[field] !== to) changes[field] = { from: before[field], to };
  }
  return changes;
}
