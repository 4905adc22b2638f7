import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { AppContext } from '../app-context.js';
import { backupTypeRoutes } from './backup-types.js';
import { businessRoutes } from './businesses.js';
import { clusterRoutes } from './clusters.js';
import { instanceImportRoutes } from './instance-import.js';
import { instanceRoutes } from './instances.js';

/** Registry API: businesses, backup types, clusters, instances (each its own plugin). */
export function registryRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    await app.register(businessRoutes(ctx));
    await app.register(backupTypeRoutes(ctx));
    await app.register(clusterRoutes(ctx));
    await app.register(instanceRoutes(ctx));
    // Its own plugin, so its text/plain parser and 4 MiB limit stay with the import route.
    await app.register(instanceImportRoutes(ctx));
  };
}
