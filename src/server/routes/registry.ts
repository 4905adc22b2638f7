import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { AppContext } from '../app-context.js';

/** Registry API: businesses, backup types, clusters, instances. */
export function registryRoutes(_ctx: AppContext): FastifyPluginAsyncZod {
  return async () => {};
}
