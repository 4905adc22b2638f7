import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CatalogDb } from '../../catalog/database.js';
import type { Clock } from '../../shared/clock.js';
import { withProcessMetrics } from '../../shared/process-metrics.js';
import { type CatalogGauges, readCatalogGauges } from './catalog-gauges.js';
import { LeaseStarts } from './lease-starts.js';

/**
 * The server's Prometheus metrics, one registry per app (never prom-client's
 * global one: several servers can run in one process). Counters are bumped
 * where things happen (ingest, job complete, notification delivery); the
 * catalog gauges are read at scrape time, once per scrape however many
 * gauges ask. No label names an instance or a host: cardinality stays bounded
 * by clusters, nodes, businesses and fixed enums.
 */

/** How a notification delivery attempt ended. */
export type NotificationOutcome = 'sent' | 'retrying' | 'failed';

export interface ServerMetrics {
  readonly registry: Registry;
  /** A newly stored report (repeats of a stored report_id do not count). */
  reportStored(status: string, legality: string): void;
  /** Jobs this process just leased (for the duration histogram). */
  jobsLeased(jobIds: readonly number[], nowMs: number): void;
  /** A job stored and verified by `node`: its bytes, and its duration when this process leased it. */
  transferCompleted(node: string, jobId: number, bytes: number, nowMs: number): void;
  /** A job that failed: its lease start is forgotten. */
  transferFailed(jobId: number): void;
  notificationAttempt(channelType: string, outcome: NotificationOutcome): void;
}

export interface ServerMetricsOptions {
  db: CatalogDb;
  clock: Clock;
  heartbeatSeconds: number;
  /** Lease starts remembered for durations (default 100,000). */
  leaseStartCapacity?: number;
}

/** Seconds; transfers take from a second to hours. */
export const TRANSFER_DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14_400, 43_200];

/** Runs `read` once for all the callers that ask while it is in flight. */
function sharedWhileInFlight<T>(read: () => Promise<T>): () => Promise<T> {
  let inFlight: Promise<T> | null = null;
  return () => {
    inFlight ??= read().finally(() => {
      inFlight = null;
    });
    return inFlight;
  };
}

export function createServerMetrics(options: ServerMetricsOptions): ServerMetrics {
  const { db, clock, heartbeatSeconds } = options;
  const registry = new Registry();
  const snapshot = sharedWhileInFlight(
    (): Promise<CatalogGauges> => readCatalogGauges(db, clock().getTime(), heartbeatSeconds),
  );

  const reports = new Counter({
    name: 'ubackup_reports_received_total',
    help: 'Reports stored, by run status and legality (repeated report_ids do not count).',
    labelNames: ['status', 'legality'] as const,
    registers: [registry],
  });
  const transferBytes = new Counter({
    name: 'ubackup_transfer_bytes_total',
    help: 'Bytes of backups stored and verified, by the storage node that stored them.',
    labelNames: ['node'] as const,
    registers: [registry],
  });
  const transferDuration = new Histogram({
    name: 'ubackup_transfer_duration_seconds',
    help: 'Time from the lease to the completion of a transfer, by storage node (leases granted by this process).',
    labelNames: ['node'] as const,
    buckets: TRANSFER_DURATION_BUCKETS,
    registers: [registry],
  });
  const notifications = new Counter({
    name: 'ubackup_notifications_total',
    help: 'Notification delivery attempts, by channel type and outcome (sent, retrying, failed).',
    labelNames: ['channel_type', 'outcome'] as const,
    registers: [registry],
  });

  new Gauge({
    name: 'ubackup_queue_jobs',
    help: 'Transfer jobs to do, by cluster, priority and state (queued or leased).',
    labelNames: ['cluster', 'priority', 'state'] as const,
    registers: [registry],
    async collect() {
      const s = await snapshot();
      this.reset();
      for (const { value, ...labels } of s.queue.jobs) this.set(labels, value);
    },
  });
  new Gauge({
    name: 'ubackup_queue_oldest_job_age_seconds',
    help: 'How long the oldest queued job has waited, by cluster and priority (0: none waits).',
    labelNames: ['cluster', 'priority'] as const,
    registers: [registry],
    async collect() {
      const s = await snapshot();
      this.reset();
      for (const { value, ...labels } of s.queue.oldestAgeSeconds) this.set(labels, value);
    },
  });
  new Gauge({
    name: 'ubackup_leases_active',
    help: 'Transfer jobs leased to storage nodes now, by cluster.',
    labelNames: ['cluster'] as const,
    registers: [registry],
    async collect() {
      const s = await snapshot();
      this.reset();
      for (const { value, ...labels } of s.queue.leasesActive) this.set(labels, value);
    },
  });
  new Gauge({
    name: 'ubackup_node_free_bytes',
    help: 'Free disk space a storage node last reported.',
    labelNames: ['node', 'cluster'] as const,
    registers: [registry],
    async collect() {
      const s = await snapshot();
      this.reset();
      for (const { value, ...labels } of s.nodes.freeBytes) this.set(labels, value);
    },
  });
  new Gauge({
    name: 'ubackup_node_reserve_bytes',
    help: 'Free space a storage node keeps: under it, it leases nothing.',
    labelNames: ['node', 'cluster'] as const,
    registers: [registry],
    async collect() {
      const s = await snapshot();
      this.reset();
      for (const { value, ...labels } of s.nodes.reserveBytes) this.set(labels, value);
    },
  });
  new Gauge({
    name: 'ubackup_node_state',
    help: "A storage node's state: 1 for the current one (active, paused_admin, paused_reserve, offline).",
    labelNames: ['node', 'cluster', 'state'] as const,
    registers: [registry],
    async collect() {
      const s = await snapshot();
      this.reset();
      for (const { value, ...labels } of s.nodes.state) this.set(labels, value);
    },
  });
  new Gauge({
    name: 'ubackup_alerts_open',
    help: 'Open (not acknowledged, not resolved) alerts, by type.',
    labelNames: ['type'] as const,
    registers: [registry],
    async collect() {
      const s = await snapshot();
      this.reset();
      for (const { value, ...labels } of s.alertsOpen) this.set(labels, value);
    },
  });
  new Gauge({
    name: 'ubackup_instances_overdue',
    help: 'Instances past their due time plus grace, neither paused nor muted.',
    registers: [registry],
    async collect() {
      this.set((await snapshot()).instancesOverdue);
    },
  });
  new Gauge({
    name: 'ubackup_rpo_seconds',
    help: 'Per business, the age of the oldest latest good backup among its unpaused instances (never good: since created).',
    labelNames: ['business'] as const,
    registers: [registry],
    async collect() {
      const s = await snapshot();
      this.reset();
      for (const { business, seconds } of s.rpo) this.set({ business }, seconds);
    },
  });

  const leaseStarts = new LeaseStarts(options.leaseStartCapacity ?? 100_000);
  return {
    registry: withProcessMetrics(registry),
    reportStored: (status, legality) => reports.inc({ status, legality }),
    jobsLeased: (jobIds, nowMs) => {
      for (const id of jobIds) leaseStarts.leased(id, nowMs);
    },
    transferCompleted: (node, jobId, bytes, nowMs) => {
      transferBytes.inc({ node }, bytes);
      const started = leaseStarts.take(jobId);
      if (started !== null) transferDuration.observe({ node }, Math.max(0, (nowMs - started) / 1000));
    },
    transferFailed: (jobId) => {
      leaseStarts.take(jobId);
    },
    notificationAttempt: (channelType, outcome) => notifications.inc({ channel_type: channelType, outcome }),
  };
}
