import type { FastifyPluginAsync } from 'fastify';
import type { AppContext } from '../app-context.js';

/**
 * `GET /metrics`: the server's Prometheus metrics (text format), for an API
 * token of any role (Prometheus sends it with `authorization.credentials_file`).
 * `--metrics-listen` serves the same without a token on a separate address.
 */
export function metricsRoutes(ctx: AppContext): FastifyPluginAsync {
  return async (app) => {
    app.get('/metrics', { config: { access: 'viewer' }, schema: { hide: true } }, async (_request, reply) => {
      const body = await ctx.metrics.registry.metrics();
      return reply.type(ctx.metrics.registry.contentType).header('cache-control', 'no-store').send(body);
    });
  };
}
