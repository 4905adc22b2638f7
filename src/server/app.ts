import fastifyCookie from '@fastify/cookie';
import fastifyRateLimit from '@fastify/rate-limit';
import fastifySwagger from '@fastify/swagger';
import Fastify, { type FastifyError, LogController } from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import { MAX_REPORT_BYTES } from '../shared/report.js';
import { UBACKUP_VERSION } from '../shared/version.js';
import { ApiError, errorBody } from './api-error.js';
import type { AppContext } from './app-context.js';
import { CSRF_HEADER, csrfTokenMatches, isWriteMethod } from './auth/csrf-token.js';
import { type Access, bearerValue, type Principal, resolvePrincipal } from './auth/principal.js';
import { isUserRole, roleAllows } from './auth/roles.js';
import { findSession } from './auth/session-store.js';
import { extensionCorsHeaders, extensionCorsRoutes } from './extension-cors.js';
import { alertRoutes } from './routes/alerts.js';
import { auditLogRoutes } from './routes/audit-log.js';
import { backupPermanentRoutes } from './routes/backup-permanent.js';
import { backupRoutes } from './routes/backups.js';
import { clusterSummaryRoutes } from './routes/cluster-summary.js';
import { enrollRoutes } from './routes/enroll.js';
import { focusRoutes } from './routes/focus.js';
import { healthRoutes } from './routes/health.js';
import { instanceMuteRoutes } from './routes/instance-mute.js';
import { jobRoutes } from './routes/jobs.js';
import { meTokenRoutes } from './routes/me-tokens.js';
import { metricsRoutes } from './routes/metrics.js';
import { nodeDeletionRoutes } from './routes/node-deletions.js';
import { nodeScrubRoutes } from './routes/node-scrub.js';
import { nodeRoutes } from './routes/nodes.js';
import { notificationChannelRoutes } from './routes/notification-channels.js';
import { overviewRoutes } from './routes/overview.js';
import { registryRoutes } from './routes/registry.js';
import { reindexRoutes } from './routes/reindex.js';
import { reportRoutes } from './routes/reports.js';
import { restorePlanRoutes } from './routes/restore-plan.js';
import { runRoutes } from './routes/runs.js';
import { csrfRefused, SESSION_COOKIE, sessionRoutes } from './routes/session.js';
import { statsRoutes } from './routes/stats.js';
import { userRoutes } from './routes/users.js';
import { webBundleRoutes } from './web-bundle.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route. A route without it is refused: access is never open by default. */
    access?: Access;
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
}

/** Bodies larger than this are refused with 413 before they are parsed (the import route allows more). */
export const DEFAULT_BODY_LIMIT = MAX_REPORT_BYTES;

export async function buildApp(ctx: AppContext) {
  const app = Fastify({
    loggerInstance: ctx.log,
    bodyLimit: DEFAULT_BODY_LIMIT,
    // Per-request access lines would be two log lines per report at fleet scale; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    trustProxy: false,
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.decorateRequest('principal', null);

  await app.register(fastifySwagger, {
    openapi: {
      info: { title: 'UBackup API', version: UBACKUP_VERSION },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });

  // Before the access hook, so that cookies are parsed when it runs.
  await app.register(fastifyCookie);
  // Only routes that ask for it (the login) are limited; the store is this process's memory.
  await app.register(fastifyRateLimit, {
    global: false,
    errorResponseBuilder: (_request, context) =>
      new ApiError(
        429,
        'rate_limited',
        `too many attempts: at most ${context.max} a minute from one address; try again in ${context.after}`,
      ),
  });

  app.addHook('onRequest', async (request) => {
    const access = request.routeOptions.config.access;
    if (request.routeOptions.url === undefined) return; // 404s are answered by the not-found handler
    if (access === undefined) throw new ApiError(403, 'forbidden', 'this route has no access rule');
    if (access === 'public') return;
    const nowMs = ctx.clock().getTime();
    const secret = bearerValue(request.headers.authorization);
    let principal: Principal | null;
    if (secret) {
      // A Bearer header wins over a cookie, and a bad one is not rescued by one.
      principal = await resolvePrincipal(ctx.catalog.db, secret, nowMs, ctx.principals);
      if (!principal) throw new ApiError(401, 'unauthenticated', 'the token is unknown, revoked or expired');
    } else {
      // Only people's routes take the session cookie: node, host and enroll credentials never come from one.
      const cookie = isUserRole(access) ? request.cookies[SESSION_COOKIE] : undefined;
      if (!cookie) throw new ApiError(401, 'unauthenticated', 'send "Authorization: Bearer <token>"');
      const session = await findSession(ctx.catalog.db, cookie, nowMs);
      if (!session) throw new ApiError(401, 'unauthenticated', 'the session is over: log in again');
      if (
        isWriteMethod(request.method) &&
        !csrfTokenMatches(session.csrfToken, request.headers[CSRF_HEADER])
      ) {
        throw csrfRefused();
      }
      principal = {
        kind: 'session',
        sessionId: session.id,
        userId: session.user.id,
        name: session.user.name,
        role: session.user.role,
      };
    }
    request.principal = principal;
    if (!principalMayAccess(principal, access)) {
      throw new ApiError(403, 'forbidden', `this route needs ${describeAccess(access)}`);
    }
  });

  app.addHook('onSend', async (request, reply, payload) => {
    const cors = extensionCorsHeaders(request.headers.origin, request.url);
    if (cors['access-control-allow-origin'] !== undefined) reply.headers(cors);
    return payload;
  });

  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(errorBody('not_found', `no route ${request.method} ${request.url.split('?')[0]}`));
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof ApiError) {
      return reply.code(error.status).send(errorBody(error.code, error.message, error.details));
    }
    if (hasZodFastifySchemaValidationErrors(error)) {
      const issues = error.validation.map((v) => ({
        path: validationPath(error.validationContext ?? 'body', v.instancePath),
        message: v.message,
      }));
      const first = issues[0];
      return reply
        .code(400)
        .send(
          errorBody('invalid_request', first ? `${first.path}: ${first.message}` : 'invalid request', issues),
        );
    }
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply.code(413).send(errorBody('body_too_large', error.message));
    }
    if (error.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || error instanceof SyntaxError) {
      return reply.code(400).send(errorBody('malformed_json', 'the body is not valid JSON'));
    }
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return reply.code(415).send(errorBody('unsupported_media_type', error.message));
    }
    if (error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') {
      return reply.code(400).send(errorBody('malformed_json', 'the body is empty'));
    }
    if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
      return reply.code(error.statusCode).send(errorBody('bad_request', error.message));
    }
    request.log.error({ err: error, url: request.url }, 'request failed');
    return reply.code(500).send(errorBody('internal', 'internal error; see the server log'));
  });

  app.get('/api/v1/openapi.json', { config: { access: 'public' }, schema: { hide: true } }, async () =>
    app.swagger(),
  );
  await app.register(healthRoutes(ctx));
  await app.register(enrollRoutes(ctx));
  await app.register(reportRoutes(ctx));
  await app.register(runRoutes(ctx));
  await app.register(backupRoutes(ctx));
  await app.register(backupPermanentRoutes(ctx));
  await app.register(registryRoutes(ctx));
  await app.register(nodeRoutes(ctx));
  await app.register(nodeDeletionRoutes(ctx));
  await app.register(nodeScrubRoutes(ctx));
  await app.register(notificationChannelRoutes(ctx));
  await app.register(jobRoutes(ctx));
  await app.register(reindexRoutes(ctx));
  await app.register(alertRoutes(ctx));
  await app.register(focusRoutes(ctx));
  await app.register(instanceMuteRoutes(ctx));
  await app.register(restorePlanRoutes(ctx));
  await app.register(sessionRoutes(ctx));
  await app.register(meTokenRoutes(ctx));
  await app.register(userRoutes(ctx));
  await app.register(auditLogRoutes(ctx));
  await app.register(overviewRoutes(ctx));
  await app.register(clusterSummaryRoutes(ctx));
  await app.register(statsRoutes(ctx));
  await app.register(metricsRoutes(ctx));
  await app.register(extensionCorsRoutes());
  if (ctx.webDir !== null) await app.register(webBundleRoutes(ctx.webDir));
  return app;
}

/** `body` + `/filename` → `body.filename`; the body itself is just `body`. */
function validationPath(context: string, instancePath: string): string {
  return [context, ...instancePath.split('/').filter((part) => part !== '')].join('.');
}

function principalMayAccess(principal: Principal, access: Exclude<Access, 'public'>): boolean {
  if (access === 'host') return principal.kind === 'host';
  if (access === 'node') return principal.kind === 'node';
  if (access === 'enroll') return principal.kind === 'enroll';
  return (principal.kind === 'token' || principal.kind === 'session') && roleAllows(principal.role, access);
}

function describeAccess(access: Exclude<Access, 'public'>): string {
  if (access === 'host') return 'an agent credential';
  if (access === 'node') return 'a storage node credential';
  if (access === 'enroll') return 'an enrollment token';
  return `the ${access} role or higher`;
}

export type App = Awaited<ReturnType<typeof buildApp>>;
