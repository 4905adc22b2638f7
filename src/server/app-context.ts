import type { Logger } from 'pino';
import type { Catalog } from '../catalog/database.js';
import type { Clock } from '../shared/clock.js';
import { PrincipalCache } from './auth/principal-cache.js';
import { IngestBatcher } from './ingest-batcher.js';
import { createServerMetrics, type ServerMetrics } from './metrics/server-metrics.js';

/** How long a verified secret is trusted without asking the catalog again. */
export const PRINCIPAL_CACHE_TTL_MS = 10_000;

import type { IllegalReportPolicy } from './ingest-decision.js';
import { loadTicketKeys, type TicketKeys } from './ticket-keys.js';

/** What every route needs: the catalog, the clock, the logger, and the ingest pipeline. */
export interface AppContext {
  catalog: Catalog;
  clock: Clock;
  log: Logger;
  /** The `default` cluster: instances registered without a cluster, and every unregistered one. */
  defaultClusterId: number;
  ingest: IngestBatcher;
  principals: PrincipalCache;
  ticketKeys: TicketKeys;
  queue: QueueSettings;
  /** The built dashboard (index.html, assets/); null: the server answers the API only. */
  webDir: string | null;
  /** Session cookies get `Secure` even over plain HTTP (TLS ends at a proxy in front). */
  secureCookies: boolean;
  /** This app's Prometheus registry and the events that feed it. */
  metrics: ServerMetrics;
}

/** How the transfer queue behaves; the server's flags. */
export interface QueueSettings {
  /** A lease lasts this long unless the node reports progress. */
  leaseSeconds: number;
  /** Every this many seconds a job waits, it counts one priority level higher. */
  agingSeconds: number;
  /** How often nodes send heartbeats (told to them in each reply). */
  heartbeatSeconds: number;
  /** First retry delay after a failed transfer; doubles per attempt, capped at 1 h. */
  retryBaseSeconds: number;
  maxAttempts: number;
}

export const DEFAULT_QUEUE_SETTINGS: Omit<QueueSettings, 'maxAttempts'> = {
  leaseSeconds: 60,
  agingSeconds: 600,
  heartbeatSeconds: 5,
  retryBaseSeconds: 30,
};

export interface AppContextOptions {
  catalog: Catalog;
  clock: Clock;
  log: Logger;
  policy: IllegalReportPolicy;
  maxAttempts: number;
  queue?: Partial<Omit<QueueSettings, 'maxAttempts'>>;
  webDir?: string | null;
  secureCookies?: boolean;
}

export async function createAppContext(options: AppContextOptions): Promise<AppContext> {
  const { catalog, clock, log } = options;
  const defaultCluster = await catalog.db
    .selectFrom('clusters')
    .select('id')
    .where('name', '=', 'default')
    .executeTakeFirstOrThrow();
  const ingest = new IngestBatcher(
    catalog.db,
    { policy: options.policy, maxAttempts: options.maxAttempts, defaultClusterId: defaultCluster.id },
    clock,
    log,
    { maxBatch: 256, concurrency: catalog.dialect === 'sqlite' ? 1 : 4 },
  );
  const principals = new PrincipalCache(PRINCIPAL_CACHE_TTL_MS, 100_000);
  const ticketKeys = await loadTicketKeys(catalog.db, clock().getTime());
  const queue: QueueSettings = {
    ...DEFAULT_QUEUE_SETTINGS,
    ...options.queue,
    maxAttempts: options.maxAttempts,
  };
  return {
    catalog,
    clock,
    log,
    defaultClusterId: defaultCluster.id,
    ingest,
    principals,
    ticketKeys,
    queue,
    webDir: options.webDir ?? null,
    secureCookies: options.secureCookies ?? false,
    metrics: createServerMetrics({ db: catalog.db, clock, heartbeatSeconds: queue.heartbeatSeconds }),
  };
}
