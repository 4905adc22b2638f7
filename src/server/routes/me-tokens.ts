import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { issueToken } from '../../admin/create-token.js';
import { AdminInputError } from '../../admin/create-user.js';
import { ApiError } from '../api-error.js';
import type { AppContext } from '../app-context.js';
import { recordAudit } from '../audit.js';
import { actorName } from '../auth/principal.js';
import { USER_ROLES } from '../auth/roles.js';
import { isoTime, isoTimeOrNull } from './iso-time.js';
import { requireUser } from './person.js';

/** Longest a personal token may live: ten years. */
export const MAX_TOKEN_DAYS = 3650;

export const PersonalTokenSchema = z.object({
  id: z.number().int(),
  name: z.string(),
  role: z.enum(USER_ROLES),
  created_at: z.string(),
  expires_at: z.string().nullable(),
  last_used_at: z.string().nullable(),
});
export type PersonalToken = z.infer<typeof PersonalTokenSchema>;

export const NewPersonalTokenSchema = z.object({
  id: z.number().int(),
  name: z.string(),
  role: z.enum(USER_ROLES),
  created_at: z.string(),
  expires_at: z.string().nullable(),
  /** The secret: shown this once, only its hash is kept. */
  token: z.string(),
});
export type NewPersonalToken = z.infer<typeof NewPersonalTokenSchema>;

const CreateSchema = z.strictObject({
  name: z.string().trim().min(1).max(128),
  expires_in_days: z.number().int().min(1).max(MAX_TOKEN_DAYS).optional(),
});

/** `GET/POST /api/v1/me/tokens`, `DELETE /api/v1/me/tokens/:id`: a person's own API tokens. */
export function meTokenRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  const db = ctx.catalog.db;
  return async (app) => {
    app.get(
      '/api/v1/me/tokens',
      {
        config: { access: 'viewer' },
        schema: { response: { 200: z.object({ items: z.array(PersonalTokenSchema) }) } },
      },
      async (request) => {
        const userId = requireUser(request.principal);
        const rows = await db
          .selectFrom('tokens')
          .select(['id', 'name', 'role', 'created_at', 'expires_at', 'last_used_at'])
          .where('user_id', '=', userId)
          .where('revoked_at', 'is', null)
          .orderBy('id')
          .execute();
        return {
          items: rows.flatMap((r) => {
            const role = USER_ROLES.find((known) => known === r.role);
            return role
              ? [
                  {
                    id: r.id,
                    name: r.name,
                    role,
                    created_at: isoTime(r.created_at),
                    expires_at: isoTimeOrNull(r.expires_at),
                    last_used_at: isoTimeOrNull(r.last_used_at),
                  },
                ]
              : [];
          }),
        };
      },
    );

    app.post(
      '/api/v1/me/tokens',
      {
        config: { access: 'viewer' },
        schema: { body: CreateSchema, response: { 201: NewPersonalTokenSchema } },
      },
      async (request, reply) => {
        const userId = requireUser(request.principal);
        const user = await db
          .selectFrom('users')
          .select(['name', 'role'])
          .where('id', '=', userId)
          .executeTakeFirstOrThrow();
        const role = USER_ROLES.find((known) => known === user.role);
        if (!role) throw new Error(`user ${user.name} has the unknown role ${user.role}`);
        const nowMs = ctx.clock().getTime();
        const days = request.body.expires_in_days;
        const expiresAtMs = days === undefined ? null : nowMs + days * 86_400_000;
        let issued: { id: number; secret: string };
        try {
          issued = await issueToken(
            ctx.catalog,
            { name: request.body.name, role, expiresAtMs, userName: user.name },
            nowMs,
            actorName(request.principal),
          );
        } catch (error) {
          if (error instanceof AdminInputError) throw new ApiError(400, 'invalid_request', error.message);
          throw error;
        }
        return reply.code(201).send({
          id: issued.id,
          name: request.body.name,
          role,
          created_at: isoTime(nowMs),
          expires_at: isoTimeOrNull(expiresAtMs),
          token: issued.secret,
        });
      },
    );

    app.delete(
      '/api/v1/me/tokens/:id',
      {
        config: { access: 'viewer' },
        schema: {
          params: z.strictObject({
            id: z
              .string()
              .regex(/^[1-9][0-9]{0,15}$/)
              .transform(Number),
          }),
        },
      },
      async (request, reply) => {
        const userId = requireUser(request.principal);
        const nowMs = ctx.clock().getTime();
        const revoked = await db.transaction().execute(async (trx) => {
          const token = await trx
            .selectFrom('tokens')
            .select(['id', 'name', 'token_hash'])
            .where('id', '=', request.params.id)
            .where('user_id', '=', userId)
            .where('revoked_at', 'is', null)
            .executeTakeFirst();
          if (!token) return null;
          await trx.updateTable('tokens').set({ revoked_at: nowMs }).where('id', '=', token.id).execute();
          await recordAudit(trx, {
            at: nowMs,
            actor: actorName(request.principal),
            action: 'token.revoke',
            subject: `token:${token.name}`,
            detail: { id: token.id },
          });
          return token;
        });
        if (!revoked) throw new ApiError(404, 'not_found', `you have no token ${request.params.id}`);
        ctx.principals.forget(revoked.token_hash);
        return reply.code(204).send();
      },
    );
  };
}
