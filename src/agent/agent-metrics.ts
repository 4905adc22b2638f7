import { Counter, Gauge, Registry } from 'prom-client';
import { withProcessMetrics } from '../shared/process-metrics.js';

/**
 * The agent daemon's Prometheus metrics (served on `metrics_listen` only).
 * Counters are bumped by runs and by the file server; the spool length is
 * counted (file names only) at scrape time.
 */

export interface AgentMetrics {
  readonly registry: Registry;
  runFinished(status: string): void;
  /** A GET answered by the file server: the bytes sent, and whether the whole range went out. */
  fileServed(bytes: number, whole: boolean): void;
}

export function createAgentMetrics(spoolLength: () => Promise<number>): AgentMetrics {
  const registry = new Registry();
  const runs = new Counter({
    name: 'ubackup_agent_runs_total',
    help: 'Backup runs finished, by outcome (ok, failed).',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const files = new Counter({
    name: 'ubackup_agent_files_served_total',
    help: 'Files (or ranges of them) sent to storage nodes, by outcome (whole, interrupted).',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const bytes = new Counter({
    name: 'ubackup_agent_served_bytes_total',
    help: 'Bytes read from backup files and sent to storage nodes.',
    registers: [registry],
  });
  new Gauge({
    name: 'ubackup_agent_spool_reports',
    help: 'Reports waiting in the spool to be delivered to the server.',
    registers: [registry],
    async collect() {
      this.set(await spoolLength());
    },
  });
  return {
    registry: withProcessMetrics(registry),
    runFinished: (status) => runs.inc({ outcome: status === 'ok' ? 'ok' : 'failed' }),
    fileServed: (sent, whole) => {
      files.inc({ outcome: whole ? 'whole' : 'interrupted' });
      if (sent > 0) bytes.inc(sent);
    },
  };
}
