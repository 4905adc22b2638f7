import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { CatalogDb } from '../../catalog/database.js';
import { IN_LIST_BATCH, INSERT_BATCH, inBatches } from '../../catalog/statement-batches.js';
import { gameIdSchema } from '../../shared/report.js';
import { ApiError } from '../api-error.js';
import type { AppContext } from '../app-context.js';
import { recordAudit } from '../audit.js';
import { actorName, type Principal } from '../auth/principal.js';
import { USER_ROLES } from '../auth/roles.js';
import { personOf, requirePerson, requireUser } from './person.js';
import { LOCALES } from './session.js';
import { timeZoneInput } from './time-zone-input.js';

/** Most businesses one person may follow. */
export const MAX_FOCUS = 10_000;
/** A full list of the longest game_ids, as JSON, with room to spare. */
export const MAX_FOCUS_BODY_BYTES = MAX_FOCUS * 70 + 64 * 1024;
/** Most unknown game_ids an error names. */
const MAX_UNKNOWN_LISTED = 100;

export const FocusSchema = z.object({
  /** The followed businesses' game_ids, sorted. */
  businesses: z.array(z.string()),
});
export type Focus = z.infer<typeof FocusSchema>;

export const FocusPutSchema = z.strictObject({
  businesses: z.array(gameIdSchema).max(MAX_FOCUS, `follow at most ${MAX_FOCUS} businesses`),
});

export const MeSchema = z.object({
  /** The person the token or session belongs to; null for a service token. */
  user: z
    .object({
      id: z.number().int(),
      name: z.string(),
      role: z.enum(USER_ROLES),
      locale: z.string(),
      time_zone: z.string(),
    })
    .nullable(),
  /**
   * The token the call was made with. A call made with the dashboard's session
   * shows it as id 0, name `session`, with the user's role.
   */
  token: z.object({ id: z.number().int(), name: z.string(), role: z.enum(USER_ROLES) }),
});
export type Me = z.infer<typeof MeSchema>;

/** `token.id` of a call made with the dashboard's session (no token has id 0). */
export const SESSION_TOKEN_ID = 0;

export const MePatchSchema = z.strictObject({
  locale: z.enum(LOCALES).optional(),
  time_zone: timeZoneInput.optional(),
});

async function readMe(db: CatalogDb, principal: Principal | null): Promise<Me> {
  if (principal?.kind !== 'token' && principal?.kind !== 'session') {
    throw new Error('a viewer route was reached without a token or a session');
  }
  const userId = personOf(principal);
  const user =
    userId === null
      ? undefined
      : await db
          .selectFrom('users')
          .select(['id', 'name', 'role', 'locale', 'time_zone'])
          .where('id', '=', userId)
          .executeTakeFirst();
  const userRole = USER_ROLES.find((r) => r === user?.role);
  return {
    user:
      user && userRole
        ? { id: user.id, name: user.name, role: userRole, locale: user.locale, time_zone: user.time_zone }
        : null,
    token:
      principal.kind === 'token'
        ? { id: principal.tokenId, name: principal.name, role: principal.role }
        : { id: SESSION_TOKEN_ID, name: 'session', role: principal.role },
  };
}

async function readFocus(db: CatalogDb, userId: number): Promise<string[]> {
  const rows = await db.selectFrom('user_focus').select('game_id').where('user_id', '=', userId).execute();
  // Sorted here, not by the database, so both backends answer the same order.
  return rows.map((r) => r.game_id).sort();
}

/** The given game_ids that name no registered business. */
async function unknownBusinesses(db: CatalogDb, gameIds: readonly string[]): Promise<string[]> {
  const known = new Set<string>();
  for (const batch of inBatches(gameIds, IN_LIST_BATCH)) {
    const rows = await db.selectFrom('businesses').select('game_id').where('game_id', 'in', batch).execute();
    for (const r of rows) known.add(r.game_id);
  }
  return gameIds.filter((g) => !known.has(g));
}

/**
 * What the caller follows and who the caller is: `GET /api/v1/me`,
 * `GET/PUT /api/v1/me/focus`. Following needs a person's token.
 */
export function focusRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  const db = ctx.catalog.db;
  return async (app) => {
    app.get(
      '/api/v1/me',
      { config: { access: 'viewer' }, schema: { response: { 200: MeSchema } } },
      async (request) => readMe(db, request.principal),
    );

    app.patch(
      '/api/v1/me',
      { config: { access: 'viewer' }, schema: { body: MePatchSchema, response: { 200: MeSchema } } },
      async (request) => {
        const userId = requireUser(request.principal);
        const { locale, time_zone } = request.body;
        const changes = {
          ...(locale === undefined ? {} : { locale }),
          ...(time_zone === undefined ? {} : { time_zone }),
        };
        if (Object.keys(changes).length > 0) {
          const nowMs = ctx.clock().getTime();
          await db.transaction().execute(async (trx) => {
            await trx.updateTable('users').set(changes).where('id', '=', userId).execute();
            await recordAudit(trx, {
              at: nowMs,
              actor: actorName(request.principal),
              action: 'user.preferences',
              subject: `user:${userId}`,
              detail: changes,
            });
          });
        }
        return readMe(db, request.principal);
      },
    );

    app.get(
      '/api/v1/me/focus',
      { config: { access: 'viewer' }, schema: { response: { 200: FocusSchema } } },
      async (request) => ({ businesses: await readFocus(db, requirePerson(request.principal)) }),
    );

    app.put(
      '/api/v1/me/focus',
      {
        config: { access: 'viewer' },
        bodyLimit: MAX_FOCUS_BODY_BYTES,
        schema: { body: FocusPutSchema, response: { 200: FocusSchema } },
      },
      async (request) => {
        const userId = requirePerson(request.principal);
        const wanted = [...new Set(request.body.businesses)].sort();
        const nowMs = ctx.clock().getTime();
        return db.transaction().execute(async (trx) => {
          const unknown = await unknownBusinesses(trx, wanted);
          if (unknown.length > 0) {
            const listed = unknown.slice(0, MAX_UNKNOWN_LISTED);
            throw new ApiError(
              400,
              'unknown_business',
              `${unknown.length} game_id${unknown.length === 1 ? '' : 's'} name no business: ` +
                `${listed.join(', ')}${unknown.length > listed.length ? ', …' : ''}`,
              { unknown: listed, unknown_count: unknown.length },
            );
          }
          const before = new Set(await readFocus(trx, userId));
          const wantedSet = new Set(wanted);
          const added = wanted.filter((g) => !before.has(g));
          const removed = [...before].filter((g) => !wantedSet.has(g)).sort();
          for (const batch of inBatches(removed, IN_LIST_BATCH)) {
            await trx
              .deleteFrom('user_focus')
              .where('user_id', '=', userId)
              .where('game_id', 'in', batch)
              .execute();
          }
          for (const batch of inBatches(added, INSERT_BATCH)) {
            await trx
              .insertInto('user_focus')
              .values(batch.map((game_id) => ({ user_id: userId, game_id })))
              .execute();
          }
          if (added.length > 0 || removed.length > 0) {
            await recordAudit(trx, {
              at: nowMs,
              actor: actorName(request.principal),
              action: 'focus.update',
              subject: `user:${userId}`,
              detail: { added, removed, count: wanted.length },
            });
          }
          return { businesses: wanted };
        });
      },
    );
  };
}
