import { resolve } from 'node:path';
import { type CatalogLocation, parseCatalogUrl } from '../catalog/catalog-url.js';
import { type ListenAddress, parseListenAddress } from '../shared/listen-address.js';
import type { IllegalReportPolicy } from './ingest-decision.js';
import { defaultWebDir } from './web-bundle.js';

/** The server's settings, from flags or their `UBACKUP_*` environment variables. */
export interface ServerSettings {
  listen: ListenAddress;
  dataDir: string;
  catalog: CatalogLocation;
  policy: IllegalReportPolicy;
  maxAttempts: number;
  logLevel: string;
  /** PostgreSQL connections per server process. */
  dbPoolSize: number;
  leaseSeconds: number;
  agingSeconds: number;
  heartbeatSeconds: number;
  retryBaseSeconds: number;
  /** How often the alert engine and the notifier run. */
  alertSweepSeconds: number;
  /** How often retention requests the deletes of expired backups; 0: never. */
  retentionSeconds: number;
  /** A cluster whose oldest queued job waited longer than this raises queue_backlog. */
  backlogSeconds: number;
  /** The dashboard's address, for links in notifications (null: no links). */
  publicUrl: string | null;
  /** The built dashboard the server serves at `/`. */
  webDir: string;
  /** A second address serving only `/metrics`, without a token (null: none). */
  metricsListen: ListenAddress | null;
}

export interface ServerFlags {
  listen: string;
  dataDir: string;
  db?: string;
  illegalPolicy: string;
  maxAttempts: string;
  logLevel: string;
  dbPoolSize: string;
  leaseSeconds: string;
  agingSeconds: string;
  heartbeatSeconds: string;
  retryBaseSeconds: string;
  alertSweepSeconds: string;
  retentionSeconds: string;
  backlogSeconds: string;
  publicUrl?: string;
  webDir?: string;
  metricsListen?: string;
}

export const DEFAULT_SERVER_FLAGS = {
  listen: '0.0.0.0:8080',
  dataDir: '/var/lib/ubackup/server',
  illegalPolicy: 'accept',
  maxAttempts: '5',
  logLevel: 'info',
  dbPoolSize: '10',
  leaseSeconds: '60',
  agingSeconds: '600',
  heartbeatSeconds: '5',
  retryBaseSeconds: '30',
  alertSweepSeconds: '15',
  retentionSeconds: '3600',
  backlogSeconds: '3600',
} as const;

function wholeNumber(flag: string, env: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new SettingsError(`${flag} (${env}) must be an integer from ${min} to ${max}, not "${value}"`);
  }
  return n;
}

export class SettingsError extends Error {
  override name = 'SettingsError';
}

export function resolveServerSettings(flags: ServerFlags): ServerSettings {
  const listen = parseListenAddress(flags.listen);
  if (typeof listen === 'string') throw new SettingsError(`--listen (UBACKUP_LISTEN): ${listen}`);
  if (flags.illegalPolicy !== 'accept' && flags.illegalPolicy !== 'reject') {
    throw new SettingsError(
      `--illegal-policy (UBACKUP_ILLEGAL_POLICY) must be accept or reject, not "${flags.illegalPolicy}"`,
    );
  }
  const maxAttempts = Number(flags.maxAttempts);
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > 100) {
    throw new SettingsError(
      `--max-attempts (UBACKUP_MAX_ATTEMPTS) must be an integer from 1 to 100, not "${flags.maxAttempts}"`,
    );
  }
  const dbPoolSize = Number(flags.dbPoolSize);
  if (!Number.isInteger(dbPoolSize) || dbPoolSize < 1 || dbPoolSize > 1000) {
    throw new SettingsError(
      `--db-pool-size (UBACKUP_DB_POOL_SIZE) must be an integer from 1 to 1000, not "${flags.dbPoolSize}"`,
    );
  }
  return {
    leaseSeconds: wholeNumber('--lease-seconds', 'UBACKUP_LEASE_SECONDS', flags.leaseSeconds, 5, 86_400),
    agingSeconds: wholeNumber('--aging-seconds', 'UBACKUP_AGING_SECONDS', flags.agingSeconds, 1, 86_400),
    heartbeatSeconds: wholeNumber(
      '--heartbeat-seconds',
      'UBACKUP_HEARTBEAT_SECONDS',
      flags.heartbeatSeconds,
      1,
      3600,
    ),
    retryBaseSeconds: wholeNumber(
      '--retry-base-seconds',
      'UBACKUP_RETRY_BASE_SECONDS',
      flags.retryBaseSeconds,
      1,
      3600,
    ),
    alertSweepSeconds: wholeNumber(
      '--alert-sweep-seconds',
      'UBACKUP_ALERT_SWEEP_SECONDS',
      flags.alertSweepSeconds,
      1,
      3600,
    ),
    retentionSeconds: wholeNumber(
      '--retention-seconds',
      'UBACKUP_RETENTION_SECONDS',
      flags.retentionSeconds,
      0,
      604_800,
    ),
    backlogSeconds: wholeNumber(
      '--backlog-seconds',
      'UBACKUP_BACKLOG_SECONDS',
      flags.backlogSeconds,
      1,
      604_800,
    ),
    publicUrl: publicUrl(flags.publicUrl),
    metricsListen: metricsListen(flags.metricsListen),
    webDir: flags.webDir === undefined || flags.webDir === '' ? defaultWebDir() : resolve(flags.webDir),
    dbPoolSize,
    listen,
    dataDir: flags.dataDir,
    catalog: parseCatalogUrl(flags.db, flags.dataDir),
    policy: flags.illegalPolicy,
    maxAttempts,
    logLevel: flags.logLevel,
  };
}

function metricsListen(value: string | undefined): ListenAddress | null {
  if (value === undefined || value === '') return null;
  const listen = parseListenAddress(value);
  if (typeof listen === 'string')
    throw new SettingsError(`--metrics-listen (UBACKUP_METRICS_LISTEN): ${listen}`);
  return listen;
}

function publicUrl(value: string | undefined): string | null {
  if (value === undefined || value === '') return null;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new SettingsError(`--public-url (UBACKUP_PUBLIC_URL) must be an http(s) URL, not "${value}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new SettingsError(`--public-url (UBACKUP_PUBLIC_URL) must be an http(s) URL, not "${value}"`);
  }
  return url.toString().replace(/\/$/, '');
}
