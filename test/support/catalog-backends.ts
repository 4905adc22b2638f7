import { join } from 'node:path';
import pino from 'pino';
import { createToken } from '../../src/admin/create-token.js';
import type { CatalogLocation } from '../../src/catalog/catalog-url.js';
import { type Catalog, migrateCatalog, openCatalog } from '../../src/catalog/database.js';
import { type App, buildApp } from '../../src/server/app.js';
import { createAppContext } from '../../src/server/app-context.js';
import type { IllegalReportPolicy } from '../../src/server/ingest-decision.js';
import type { Clock } from '../../src/shared/clock.js';
import { sharedPostgres } from './postgres.js';
import { makeTempDir } from './temp-dir.js';

export type BackendName = 'sqlite' | 'postgres';
export const BACKENDS: readonly BackendName[] = ['sqlite', 'postgres'];

export interface FreshCatalog {
  location: CatalogLocation;
  catalog: Catalog;
  cleanup(): Promise<void>;
}

/** A new, migrated, empty catalog: a SQLite file in a temp dir, or a fresh database on the shared PostgreSQL. */
export async function freshCatalog(backend: BackendName): Promise<FreshCatalog> {
  if (backend === 'sqlite') {
    const dir = await makeTempDir('ubackup-catalog');
    const location: CatalogLocation = { dialect: 'sqlite', path: join(dir.path, 'catalog.db') };
    const catalog = openCatalog(location);
    await migrateCatalog(catalog);
    return {
      location,
      catalog,
      cleanup: async () => {
        await catalog.close();
        await dir.cleanup();
      },
    };
  }
  const pg = await sharedPostgres();
  const location: CatalogLocation = { dialect: 'postgres', url: await pg.createDatabase() };
  const catalog = openCatalog(location);
  await migrateCatalog(catalog);
  return { location, catalog, cleanup: () => catalog.close() };
}

export interface TestApp {
  app: App;
  catalog: Catalog;
  tokens: { admin: string; operator: string; viewer: string; enroll: string };
  cleanup(): Promise<void>;
}

/** The real server app over a fresh catalog, called in-process with `app.inject`. */
export async function testApp(
  backend: BackendName,
  options: {
    policy?: IllegalReportPolicy;
    clock?: Clock;
    maxAttempts?: number;
    /** Serve a built dashboard from here (default: the API only). */
    webDir?: string;
    queue?: {
      leaseSeconds?: number;
      agingSeconds?: number;
      heartbeatSeconds?: number;
      retryBaseSeconds?: number;
    };
  } = {},
): Promise<TestApp> {
  const fresh = await freshCatalog(backend);
  const { catalog } = fresh;
  const app = await buildApp(
    await createAppContext({
      catalog,
      clock: options.clock ?? (() => new Date()),
      log: pino({ level: 'silent' }),
      policy: options.policy ?? 'accept',
      maxAttempts: options.maxAttempts ?? 5,
      ...(options.queue ? { queue: options.queue } : {}),
      ...(options.webDir === undefined ? {} : { webDir: options.webDir }),
    }),
  );
  const now = Date.now();
  const make = (role: string) =>
    createToken(catalog, { name: `test-${role}`, role, expiresAtMs: null, userName: null }, now);
  const tokens = {
    admin: await make('admin'),
    operator: await make('operator'),
    viewer: await make('viewer'),
    enroll: await make('enroll'),
  };
  return {
    app,
    catalog,
    tokens,
    cleanup: async () => {
      await app.close();
      await fresh.cleanup();
    },
  };
}
