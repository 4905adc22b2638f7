import { Counter, Gauge, Registry } from 'prom-client';
import { withProcessMetrics } from '../shared/process-metrics.js';

/**
 * A storage node's Prometheus metrics (served on `metrics_listen` only).
 * Counters are bumped by the transfers and the scrub; the gauges read the
 * daemon's state at scrape time.
 */

export interface NodeLiveState {
  transfersInFlight: number;
  pausedByAdmin: boolean;
  pausedReserve: boolean;
  /** Free bytes on the storage root at the last check; null before the first one. */
  freeBytes: number | null;
}

export interface NodeMetrics {
  readonly registry: Registry;
  bytesPulled(bytes: number): void;
  pullFailed(code: string): void;
  transferCompleted(): void;
  scrubbed(bytes: number): void;
}

export function createNodeMetrics(live: () => NodeLiveState): NodeMetrics {
  const registry = new Registry();
  const pulled = new Counter({
    name: 'ubackup_node_pulled_bytes_total',
    help: 'Bytes received from agents by transfers (resumed and failed transfers included).',
    registers: [registry],
  });
  const failures = new Counter({
    name: 'ubackup_node_pull_failures_total',
    help: 'Transfers that failed on this node, by failure code.',
    labelNames: ['code'] as const,
    registers: [registry],
  });
  const completed = new Counter({
    name: 'ubackup_node_transfers_completed_total',
    help: 'Transfers stored, verified and accepted by the server.',
    registers: [registry],
  });
  const scrub = new Counter({
    name: 'ubackup_node_scrub_bytes_total',
    help: 'Bytes of stored files re-hashed by the scrub.',
    registers: [registry],
  });
  new Gauge({
    name: 'ubackup_node_transfers_in_flight',
    help: 'Transfers running now.',
    registers: [registry],
    collect() {
      this.set(live().transfersInFlight);
    },
  });
  new Gauge({
    name: 'ubackup_node_paused',
    help: 'Whether the node leases nothing, by reason (admin, reserve): 1 paused, 0 not.',
    labelNames: ['reason'] as const,
    registers: [registry],
    collect() {
      const state = live();
      this.set({ reason: 'admin' }, state.pausedByAdmin ? 1 : 0);
      this.set({ reason: 'reserve' }, state.pausedReserve ? 1 : 0);
    },
  });
  new Gauge({
    name: 'ubackup_node_disk_free_bytes',
    help: 'Free bytes on the storage root at the last check.',
    registers: [registry],
    collect() {
      const free = live().freeBytes;
      this.reset();
      if (free !== null) this.set(free);
    },
  });
  return {
    registry: withProcessMetrics(registry),
    bytesPulled: (bytes) => {
      if (bytes > 0) pulled.inc(bytes);
    },
    pullFailed: (code) => failures.inc({ code }),
    transferCompleted: () => completed.inc(),
    scrubbed: (bytes) => {
      if (bytes > 0) scrub.inc(bytes);
    },
  };
}
