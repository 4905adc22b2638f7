import { mkdirSync } from 'node:fs';
import pino, { type Logger } from 'pino';
import { type Catalog, migrateCatalog, openCatalog } from '../catalog/database.js';
import { systemClock } from '../shared/clock.js';
import type { FileHttpServer } from '../shared/file-http-server.js';
import { formatListenAddress } from '../shared/listen-address.js';
import { startMetricsListener } from '../shared/metrics-listener.js';
import { stopOnSignal } from '../shared/stop-on-signal.js';
import { sweepAlerts } from './alerts/alert-sweep.js';
import { runDeliveryRound } from './alerts/delivery-round.js';
import { runNotificationRound } from './alerts/notification-round.js';
import { type App, buildApp } from './app.js';
import { createAppContext } from './app-context.js';
import { type PeriodicTask, startPeriodicTask } from './periodic-task.js';
import { sweepExpiredLeases } from './queue/sweep-leases.js';
import { applyRetention } from './retention/apply-retention.js';
import type { ServerSettings } from './server-settings.js';
import { pruneFineRollups } from './stats/prune-rollups.js';

/** How often queued notifications are sent (each round sends what is due). */
const DELIVERY_ROUND_SECONDS = 2;

export interface RunningServer {
  app: App;
  catalog: Catalog;
  /** The address actually bound (the port is real even when 0 was asked for). */
  url: string;
  /** The port `--metrics-listen` bound; null without it. */
  metricsPort: number | null;
  close(): Promise<void>;
}

/** Opens and migrates the catalog, builds the app and listens. */
export async function startServer(settings: ServerSettings, log: Logger): Promise<RunningServer> {
  mkdirSync(settings.dataDir, { recursive: true });
  const catalog = openCatalog(settings.catalog, { poolSize: settings.dbPoolSize });
  try {
    const migrated = await migrateCatalog(catalog);
    if (migrated.applied.length > 0) log.info({ applied: migrated.applied }, 'catalog migrated');
    const ctx = await createAppContext({
      catalog,
      clock: systemClock,
      log,
      policy: settings.policy,
      maxAttempts: settings.maxAttempts,
      webDir: settings.webDir,
      // Behind a proxy that ends TLS, the public address says so: the cookie must then be Secure.
      secureCookies: settings.publicUrl?.startsWith('https:') ?? false,
      queue: {
        leaseSeconds: settings.leaseSeconds,
        agingSeconds: settings.agingSeconds,
        heartbeatSeconds: settings.heartbeatSeconds,
        retryBaseSeconds: settings.retryBaseSeconds,
      },
    });
    const app = await buildApp(ctx);
    const tasks: PeriodicTask[] = [
      startPeriodicTask({
        name: 'lease sweep',
        everySeconds: Math.max(1, settings.leaseSeconds / 4),
        log,
        run: async () => {
          const swept = await sweepExpiredLeases(catalog.db, Date.now());
          if (swept.requeued > 0 || swept.dead > 0) log.warn(swept, 'expired leases swept');
        },
      }),
      startPeriodicTask({
        name: 'alert sweep',
        everySeconds: settings.alertSweepSeconds,
        log,
        run: async () => {
          const swept = await sweepAlerts(catalog.db, Date.now(), {
            heartbeatSeconds: settings.heartbeatSeconds,
            backlogSeconds: settings.backlogSeconds,
          });
          if (swept.opened > 0 || swept.resolved > 0) log.info(swept, 'alerts changed');
          const round = await runNotificationRound(catalog.db, Date.now(), {
            dashboardUrl: settings.publicUrl,
            onInvalidChannel: (channel, problem) =>
              log.error(
                { channel: channel.name },
                `notification channel ${channel.name} is skipped: ${problem}`,
              ),
          });
          if (round.messagesQueued > 0) log.info(round, 'notifications queued');
        },
      }),
      startPeriodicTask({
        name: 'notification delivery',
        everySeconds: DELIVERY_ROUND_SECONDS,
        log,
        run: async () => {
          const sent = await runDeliveryRound(
            catalog.db,
            () => Date.now(),
            (kind, outcome) => ctx.metrics.notificationAttempt(kind, outcome),
          );
          for (const f of sent.failed) {
            log.error(
              { delivery: f.deliveryId, channel: f.channel },
              `notification to ${f.channel} failed for good: ${f.error}`,
            );
          }
        },
      }),
      startPeriodicTask({
        name: 'statistics prune',
        everySeconds: 3600,
        log,
        run: async () => {
          const pruned = await pruneFineRollups(catalog.db, Date.now());
          if (pruned.hourly > 0 || pruned.queue > 0)
            log.info(pruned, 'old hourly and per-minute statistics deleted');
        },
      }),
    ];
    if (settings.retentionSeconds > 0) {
      tasks.push(
        startPeriodicTask({
          name: 'retention',
          everySeconds: settings.retentionSeconds,
          log,
          run: async () => {
            const round = await applyRetention(catalog, Date.now());
            if (round.requested > 0) log.info(round, 'retention requested deletes');
          },
        }),
      );
    }
    await app.listen({ host: settings.listen.host, port: settings.listen.port });
    let metricsListener: FileHttpServer | null = null;
    if (settings.metricsListen !== null) {
      try {
        metricsListener = await startMetricsListener({
          listen: settings.metricsListen,
          registry: ctx.metrics.registry,
          name: 'metrics',
          log: { error: (message) => log.error(message) },
        });
      } catch (error) {
        await app.close();
        await Promise.all(tasks.map((t) => t.stop()));
        throw error;
      }
      log.info(
        {
          metrics: formatListenAddress({ host: settings.metricsListen.host, port: metricsListener.port }),
        },
        'serving /metrics without a token',
      );
    }
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
      metricsPort: metricsListener?.port ?? null,
      close: async () => {
        await metricsListener?.close();
        await app.close();
        await Promise.all(tasks.map((t) => t.stop()));
        await catalog.close();
      },
    };
  } catch (error) {
    await catalog.close();
    throw error;
  }
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
