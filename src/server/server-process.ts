import { mkdirSync } from 'node:fs';
import pino, { type Logger } from 'pino';
import { type Catalog, migrateCatalog, openCatalog } from '../catalog/database.js';
import { systemClock } from '../shared/clock.js';
import { formatListenAddress } from '../shared/listen-address.js';
import { stopOnSignal } from '../shared/stop-on-signal.js';
import { type App, buildApp } from './app.js';
import { createAppContext } from './app-context.js';
import { sweepExpiredLeases } from './queue/sweep-leases.js';
import type { ServerSettings } from './server-settings.js';

export interface RunningServer {
  app: App;
  catalog: Catalog;
  /** The address actually bound (the port is real even when 0 was asked for). */
  url: string;
  close(): Promise<void>;
}

/** Opens and migrates the catalog, builds the app and listens. */
export async function startServer(settings: ServerSettings, log: Logger): Promise<RunningServer> {
  mkdirSync(settings.dataDir, { recursive: true });
  const catalog = openCatalog(settings.catalog, { poolSize: settings.dbPoolSize });
  try {
    const migrated = await migrateCatalog(catalog);
    if (migrated.applied.length > 0) log.info({ applied: migrated.applied }, 'catalog migrated');
    const app = await buildApp(
      await createAppContext({
        catalog,
        clock: systemClock,
        log,
        policy: settings.policy,
        maxAttempts: settings.maxAttempts,
        queue: {
          leaseSeconds: settings.leaseSeconds,
          agingSeconds: settings.agingSeconds,
          heartbeatSeconds: settings.heartbeatSeconds,
          retryBaseSeconds: settings.retryBaseSeconds,
        },
      }),
    );
    const sweeper = startLeaseSweeper(catalog, log, Math.max(1, settings.leaseSeconds / 4));
    await app.listen({ host: settings.listen.host, port: settings.listen.port });
    const bound = app.server.address();
    const port = typeof bound === 'object' && bound ? bound.port : settings.listen.port;
    const shownHost = settings.listen.host === '0.0.0.0' ? '127.0.0.1' : settings.listen.host;
    const url = `http://${formatListenAddress({ host: shownHost, port })}`;
    log.info(
      { url, catalog: catalog.dialect, listen: formatListenAddress({ host: settings.listen.host, port }) },
      'server listening',
    );
    return {
      app,
      catalog,
      url,
      close: async () => {
        clearInterval(sweeper);
        await app.close();
        await catalog.close();
      },
    };
  } catch (error) {
    await catalog.close();
    throw error;
  }
}

/** Returns expired leases to the queue every `everySeconds`. */
function startLeaseSweeper(catalog: Catalog, log: Logger, everySeconds: number): NodeJS.Timeout {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    sweepExpiredLeases(catalog.db, Date.now())
      .then((swept) => {
        if (swept.requeued > 0 || swept.dead > 0) log.warn(swept, 'expired leases swept');
      })
      .catch((error: unknown) => log.error({ err: error }, 'lease sweep failed'))
      .finally(() => {
        running = false;
      });
  }, everySeconds * 1000);
  timer.unref();
  return timer;
}

export function createLogger(level: string, name: string): Logger {
  return pino({ level, name, base: { pid: process.pid } });
}

/**
 * Runs until SIGTERM/SIGINT, then stops accepting, lets requests in flight
 * finish (their transactions commit or roll back), closes the catalog and exits.
 */
export async function runServerUntilSignal(settings: ServerSettings): Promise<void> {
  const log = createLogger(settings.logLevel, 'ubackup-server');
  const server = await startServer(settings, log);
  stopOnSignal(log, () => server.close());
}
