import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Transaction } from 'kysely';
import { z } from 'zod';
import {
  AdminInputError,
  createUser,
  passwordProblem,
  UserExistsError,
  userRoleProblem,
} from '../../admin/create-user.js';
import type { CatalogDialect } from '../../catalog/dialect.js';
import type { CatalogSchema } from '../../catalog/schema.js';
import { ApiError } from '../api-error.js';
import type { AppContext } from '../app-context.js';
import { recordAudit } from '../audit.js';
import { hashPassword } from '../auth/password.js';
import { actorName } from '../auth/principal.js';
import { isUserRole, USER_ROLES, type UserRole } from '../auth/roles.js';
import { deleteUserSessions } from '../auth/session-store.js';
import { isoTime } from './iso-time.js';
import { pageOf, pageOffset, pageSchema, pagingQueryShape } from './paging.js';

export const UserSchema = z.object({
  id: z.number().int(),
  name: z.string(),
  role: z.enum(USER_ROLES),
  disabled: z.boolean(),
  locale: z.string(),
  created_at: z.string(),
});
export type User = z.infer<typeof UserSchema>;

const CreateSchema = z.strictObject({
  name: z.string(),
  password: z.string(),
  role: z.string(),
});

const PatchSchema = z.strictObject({
  role: z.string().optional(),
  password: z.string().optional(),
  disabled: z.boolean().optional(),
});

const IdParams = z.strictObject({
  id: z
    .string()
    .regex(/^[1-9][0-9]{0,15}$/, 'a user id')
    .transform(Number),
});

type UserRecord = {
  id: number;
  name: string;
  role: string;
  disabled: number;
  locale: string;
  created_at: number;
};

function userOf(row: UserRecord): User {
  return {
    id: row.id,
    name: row.name,
    role: isUserRole(row.role) ? row.role : 'viewer',
    disabled: Number(row.disabled) !== 0,
    locale: row.locale,
    created_at: isoTime(row.created_at),
  };
}

const USER_COLUMNS = ['id', 'name', 'role', 'disabled', 'locale', 'created_at'] as const;

/** Whether a user counts as an enabled admin: the dashboard must always keep one. */
function isEnabledAdmin(row: { role: string; disabled: number }): boolean {
  return row.role === 'admin' && Number(row.disabled) === 0;
}

/**
 * Refuses a change that would leave no enabled admin. On PostgreSQL the enabled
 * admins' rows are locked until the caller's transaction ends, so two admins
 * demoting each other at once cannot both succeed (SQLite runs one write at a time).
 */
async function keepAnAdmin(
  trx: Transaction<CatalogSchema>,
  dialect: CatalogDialect,
  exceptId: number,
): Promise<void> {
  let query = trx.selectFrom('users').select('id').where('role', '=', 'admin').where('disabled', '=', 0);
  if (dialect === 'postgres') query = query.forUpdate();
  const admins = await query.execute();
  if (!admins.some((a) => a.id !== exceptId)) {
    throw new ApiError(409, 'last_admin', 'this is the last enabled admin: make another admin first');
  }
}

function inputProblem(problem: string | null): void {
  if (problem !== null) throw new ApiError(400, 'invalid_request', problem);
}

/** People (admin only): `GET/POST /api/v1/users`, `PATCH/DELETE /api/v1/users/:id`. */
export function userRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  const db = ctx.catalog.db;
  return async (app) => {
    app.get(
      '/api/v1/users',
      {
        config: { access: 'admin' },
        schema: { querystring: z.strictObject(pagingQueryShape), response: { 200: pageSchema(UserSchema) } },
      },
      async (request) => {
        const [rows, count] = await Promise.all([
          db
            .selectFrom('users')
            .select(USER_COLUMNS)
            .orderBy('name')
            .offset(pageOffset(request.query))
            .limit(request.query.page_size)
            .execute(),
          db
            .selectFrom('users')
            .select((eb) => eb.fn.countAll<number | string>().as('n'))
            .executeTakeFirstOrThrow(),
        ]);
        return pageOf(rows.map(userOf), Number(count.n), request.query);
      },
    );

    app.post(
      '/api/v1/users',
      { config: { access: 'admin' }, schema: { body: CreateSchema, response: { 201: UserSchema } } },
      async (request, reply) => {
        let id: number;
        try {
          id = await createUser(
            ctx.catalog,
            request.body,
            ctx.clock().getTime(),
            actorName(request.principal),
          );
        } catch (error) {
          if (error instanceof UserExistsError) throw new ApiError(409, 'user_exists', error.message);
          if (error instanceof AdminInputError) throw new ApiError(400, 'invalid_request', error.message);
          throw error;
        }
        const row = await db
          .selectFrom('users')
          .select(USER_COLUMNS)
          .where('id', '=', id)
          .executeTakeFirstOrThrow();
        return reply.code(201).send(userOf(row));
      },
    );

    app.patch(
      '/api/v1/users/:id',
      {
        config: { access: 'admin' },
        schema: { params: IdParams, body: PatchSchema, response: { 200: UserSchema } },
      },
      async (request) => {
        const { role, password, disabled } = request.body;
        if (role !== undefined) inputProblem(userRoleProblem(role));
        if (password !== undefined) inputProblem(passwordProblem(password));
        const passwordHash = password === undefined ? undefined : await hashPassword(password);
        const nowMs = ctx.clock().getTime();
        const principal = request.principal;
        const row = await db.transaction().execute(async (trx) => {
          const before = await trx
            .selectFrom('users')
            .select(USER_COLUMNS)
            .where('id', '=', request.params.id)
            .executeTakeFirst();
          if (!before) throw new ApiError(404, 'not_found', `no user ${request.params.id}`);
          const after = {
            role: role ?? before.role,
            disabled: disabled === undefined ? Number(before.disabled) : disabled ? 1 : 0,
          };
          if (isEnabledAdmin(before) && !isEnabledAdmin(after))
            await keepAnAdmin(trx, ctx.catalog.dialect, before.id);
          await trx
            .updateTable('users')
            .set({
              role: after.role as UserRole,
              disabled: after.disabled,
              ...(passwordHash === undefined ? {} : { password_hash: passwordHash }),
            })
            .where('id', '=', before.id)
            .execute();
          // Disabled: every session ends. New password: every session but the caller's own ends.
          if (after.disabled === 1) await deleteUserSessions(trx, before.id);
          else if (passwordHash !== undefined) {
            const keep =
              principal?.kind === 'session' && principal.userId === before.id
                ? principal.sessionId
                : undefined;
            await deleteUserSessions(trx, before.id, keep);
          }
          await recordAudit(trx, {
            at: nowMs,
            actor: actorName(principal),
            action: 'user.update',
            subject: `user:${before.name}`,
            detail: {
              ...(role !== undefined && role !== before.role
                ? { role: { from: before.role, to: role } }
                : {}),
              ...(disabled !== undefined && after.disabled !== Number(before.disabled) ? { disabled } : {}),
              ...(passwordHash !== undefined ? { password_changed: true } : {}),
            },
          });
          return { ...before, ...after };
        });
        // The user's tokens may now be worth less, or nothing: look them up afresh.
        ctx.principals.clear();
        return userOf(row);
      },
    );

    app.delete(
      '/api/v1/users/:id',
      { config: { access: 'admin' }, schema: { params: IdParams } },
      async (request, reply) => {
        const nowMs = ctx.clock().getTime();
        await db.transaction().execute(async (trx) => {
          const user = await trx
            .selectFrom('users')
            .select(['id', 'name', 'role', 'disabled'])
            .where('id', '=', request.params.id)
            .executeTakeFirst();
          if (!user) throw new ApiError(404, 'not_found', `no user ${request.params.id}`);
          if (isEnabledAdmin(user)) await keepAnAdmin(trx, ctx.catalog.dialect, user.id);
          await deleteUserSessions(trx, user.id);
          await trx.deleteFrom('tokens').where('user_id', '=', user.id).execute();
          await trx.deleteFrom('user_focus').where('user_id', '=', user.id).execute();
          await trx.deleteFrom('users').where('id', '=', user.id).execute();
          await recordAudit(trx, {
            at: nowMs,
            actor: actorName(request.principal),
            action: 'user.delete',
            subject: `user:${user.name}`,
            detail: { id: user.id, role: user.role },
          });
        });
        ctx.principals.clear();
        return reply.code(204).send();
      },
    );
  };
}
