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
import { type Access, bearerValue, type Principal, resolvePrincipal } from './auth/principal.js';
import { roleAllows } from './auth/roles.js';
import { alertRoutes } from './routes/alerts.js';
import { backupPermanentRoutes } from './routes/backup-permanent.js';
import { backupRoutes } from './routes/backups.js';
import { enrollRoutes } from './routes/enroll.js';
import { focusRoutes } from './routes/focus.js';
import { healthRoutes } from './routes/health.js';
import { instanceMuteRoutes } from './routes/instance-mute.js';
import { jobRoutes } from './routes/jobs.js';
import { nodeDeletionRoutes } from './routes/node-deletions.js';
import { nodeScrubRoutes } from './routes/node-scrub.js';
import { nodeRoutes } from './routes/nodes.js';
import { notificationChannelRoutes } from './routes/notification-channels.js';
import { registryRoutes } from './routes/registry.js';
import { reindexRoutes } from './routes/reindex.js';
import { reportRoutes } from './routes/reports.js';
import { restorePlanRoutes } from './routes/restore-plan.js';
import { runRoutes } from './routes/runs.js';

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

  app.addHook('onRequest', async (request) => {
    const access = request.routeOptions.config.access;
    if (request.routeOptions.url === undefined) return; // 404s are answered by the not-found handler
    if (access === undefined) throw new ApiError(403, 'forbidden', 'this route has no access rule');
    if (access === 'public') return;
    const secret = bearerValue(request.headers.authorization);
    if (!secret) throw new ApiError(401, 'unauthenticated', 'send "Authorization: Bearer <token>"');
    const principal = await resolvePrincipal(ctx.catalog.db, secret, ctx.clock().getTime(), ctx.principals);
    if (!principal) throw new ApiError(401, 'unauthenticated', 'the token is unknown, revoked or expired');
    request.principal = principal;
    if (!principalMayAccess(principal, access)) {
      throw new ApiError(403, 'forbidden', `this route needs ${describeAccess(access)}`);
    }
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
  return principal.kind === 'token' && roleAllows(principal.role, access);
}

function describeAccess(access: Exclude<Access, 'public'>): string {
  if (access === 'host') return 'an agent credential';
  if (access === 'node') return 'a storage node credential';
  if (access === 'enroll') return 'an enrollment token';
  return `the ${access} role or higher`;
}

export type App = Awaited<ReturnType<typeof buildApp>>;
