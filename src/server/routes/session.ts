import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ApiError } from '../api-error.js';
import type { AppContext } from '../app-context.js';
import { recordAudit } from '../audit.js';
import { CSRF_HEADER, csrfTokenMatches } from '../auth/csrf-token.js';
import { hashPassword, verifyPassword } from '../auth/password.js';
import { isUserRole, USER_ROLES } from '../auth/roles.js';
import {
  type ActiveSession,
  createSession,
  deleteSession,
  findSession,
  SESSION_MAX_MS,
} from '../auth/session-store.js';

/** The dashboard's session cookie. */
export const SESSION_COOKIE = 'ubackup_session';
/** Login attempts one client address may make per minute. */
export const LOGIN_ATTEMPTS_PER_MINUTE = 10;

export const LOCALES = ['zh-CN', 'en-US'] as const;

export const SessionUserSchema = z.object({
  id: z.number().int(),
  name: z.string(),
  role: z.enum(USER_ROLES),
  locale: z.string(),
  time_zone: z.string(),
});

export const SessionSchema = z.object({
  user: SessionUserSchema,
  /** Send it back as `X-CSRF-Token` on every write made with the cookie. */
  csrf_token: z.string(),
});
export type Session = z.infer<typeof SessionSchema>;

const LoginSchema = z.strictObject({
  name: z.string().min(1).max(256),
  password: z.string().min(1).max(4096),
});

function sessionBody(session: ActiveSession): Session {
  return { user: session.user, csrf_token: session.csrfToken };
}

/** The cookie's attributes: never readable by scripts, never sent cross-site; Secure when reached over TLS. */
function cookieOptions(ctx: AppContext, request: FastifyRequest) {
  return {
    httpOnly: true,
    sameSite: 'strict' as const,
    path: '/',
    secure: ctx.secureCookies || request.protocol === 'https',
  };
}

export function clearSessionCookie(ctx: AppContext, request: FastifyRequest, reply: FastifyReply): void {
  reply.clearCookie(SESSION_COOKIE, cookieOptions(ctx, request));
}

/**
 * Logging in and out of the dashboard: `POST/GET/DELETE /api/v1/session`.
 * Unknown user, wrong password and disabled user answer alike, after the same
 * argon2 work.
 */
export function sessionRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  const db = ctx.catalog.db;
  return async (app) => {
    // Verified against when the name is unknown, so that answer takes as long as a wrong password.
    const dummyHash = await hashPassword('not a password of anyone: only here to spend time');

    app.post(
      '/api/v1/session',
      {
        config: {
          access: 'public',
          rateLimit: { max: LOGIN_ATTEMPTS_PER_MINUTE, timeWindow: 60_000 },
        },
        schema: { body: LoginSchema, response: { 200: SessionSchema } },
      },
      async (request, reply) => {
        const { name, password } = request.body;
        const user = await db
          .selectFrom('users')
          .select(['id', 'name', 'role', 'password_hash', 'disabled', 'locale', 'time_zone'])
          .where('name', '=', name)
          .executeTakeFirst();
        const passwordOk = await verifyPassword(user?.password_hash ?? dummyHash, password);
        const nowMs = ctx.clock().getTime();
        const refusal = !user
          ? 'unknown_user'
          : !passwordOk
            ? 'wrong_password'
            : Number(user.disabled) !== 0
              ? 'disabled'
              : !isUserRole(user.role)
                ? 'bad_role'
                : null;
        if (refusal !== null || !user || !isUserRole(user.role)) {
          await recordAudit(db, {
            at: nowMs,
            actor: 'anonymous',
            action: 'session.login_failed',
            subject: `user:${name.slice(0, 64)}`,
            detail: { reason: refusal, ip: request.ip },
          });
          throw new ApiError(
            401,
            'bad_credentials',
            'the name or the password is wrong, or the user is disabled',
          );
        }
        const role = user.role;
        const session = await db.transaction().execute(async (trx) => {
          const created = await createSession(trx, user.id, nowMs);
          await recordAudit(trx, {
            at: nowMs,
            actor: `user:${user.name}`,
            action: 'session.login',
            subject: `user:${user.name}`,
            detail: { session: created.id, ip: request.ip },
          });
          return created;
        });
        reply.setCookie(SESSION_COOKIE, session.secret, {
          ...cookieOptions(ctx, request),
          maxAge: SESSION_MAX_MS / 1000,
        });
        return {
          user: { id: user.id, name: user.name, role, locale: user.locale, time_zone: user.time_zone },
          csrf_token: session.csrfToken,
        };
      },
    );

    app.get(
      '/api/v1/session',
      { config: { access: 'public' }, schema: { response: { 200: SessionSchema } } },
      async (request) => {
        const secret = request.cookies[SESSION_COOKIE];
        const session = secret ? await findSession(db, secret, ctx.clock().getTime()) : null;
        if (!session)
          throw new ApiError(401, 'no_session', 'not logged in, or the session is over: log in again');
        return sessionBody(session);
      },
    );

    app.delete('/api/v1/session', { config: { access: 'public' } }, async (request, reply) => {
      const secret = request.cookies[SESSION_COOKIE];
      const nowMs = ctx.clock().getTime();
      const session = secret ? await findSession(db, secret, nowMs) : null;
      if (session) {
        if (!csrfTokenMatches(session.csrfToken, request.headers[CSRF_HEADER])) throw csrfRefused();
        await db.transaction().execute(async (trx) => {
          await deleteSession(trx, session.id);
          await recordAudit(trx, {
            at: nowMs,
            actor: `user:${session.user.name}`,
            action: 'session.logout',
            subject: `user:${session.user.name}`,
            detail: { session: session.id },
          });
        });
      }
      clearSessionCookie(ctx, request, reply);
      return reply.code(204).send();
    });
  };
}

export function csrfRefused(): ApiError {
  return new ApiError(
    403,
    'csrf_token_invalid',
    `a write made with the session cookie needs the header X-CSRF-Token: the csrf_token of GET /api/v1/session`,
  );
}
