import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { BACKENDS, type BackendName } from '../support/catalog-backends.js';
import { startCli } from '../support/cli-process.js';
import { type Cluster, startCluster } from '../support/cluster.js';
import { freePort } from '../support/free-port.js';
import { stopSharedPostgres } from '../support/postgres.js';
import { type PromText, parsePrometheusText, sampleValue } from '../support/prometheus-text.js';
import { waitFor } from '../support/wait-for.js';

afterAll(stopSharedPostgres);

const FILE_BYTES = 300_000;

/** The metrics a `metrics_listen` address serves, without a token; null while it does not answer. */
async function scrapeOpen(port: number): Promise<PromText | null> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`).catch(() => null);
  if (res === null || res.status !== 200) return null;
  return parsePrometheusText(await res.text());
}

describe.each<BackendName>(BACKENDS)('node and agent /metrics on %s', (backend) => {
  let cluster: Cluster | null = null;
  afterEach(async () => {
    await cluster?.stop();
    cluster = null;
  });

  it('serve their own metrics on metrics_listen only, counting real runs, pulls, scrubs and transfers', async () => {
    const agentPort = await freePort();
    const nodePort = await freePort();
    const serverPort = await freePort();
    const c = await startCluster(backend, {
      instances: 1,
      fileBytes: FILE_BYTES,
      agentGlobal: [`metrics_listen = 127.0.0.1:${agentPort}`, 'interval = 2', 'jitter = 0'],
      serverArgs: ['--metrics-listen', `127.0.0.1:${serverPort}`],
    });
    cluster = c;
    // The agent daemon: runs on its schedule, delivers, and serves the files itself.
    const agent = startCli(['agent', 'daemon', '--config', c.agentConfig, '--log-level', 'warn']);
    const node = await c.startNode('n1', [`metrics_listen = 127.0.0.1:${nodePort}`, 'scrub_period = 1']);
    try {
      const nodeMetrics = await waitFor(
        async () => {
          const m = await scrapeOpen(nodePort);
          const scrubbed = m === null ? 0 : (sampleValue(m, 'ubackup_node_scrub_bytes_total') ?? 0);
          const done = m === null ? 0 : (sampleValue(m, 'ubackup_node_transfers_completed_total') ?? 0);
          return done >= 2 && scrubbed >= FILE_BYTES ? m : null;
        },
        { timeoutMs: 90_000, intervalMs: 250, what: `two transfers and a scrub on n1:\n${node.output()}` },
      );
      expect(sampleValue(nodeMetrics, 'ubackup_node_pulled_bytes_total')).toBeGreaterThanOrEqual(
        2 * FILE_BYTES,
      );
      expect(sampleValue(nodeMetrics, 'ubackup_node_transfers_in_flight')).toBeGreaterThanOrEqual(0);
      expect(sampleValue(nodeMetrics, 'ubackup_node_paused', { reason: 'admin' })).toBe(0);
      expect(sampleValue(nodeMetrics, 'ubackup_node_paused', { reason: 'reserve' })).toBe(0);
      expect(sampleValue(nodeMetrics, 'ubackup_node_disk_free_bytes')).toBeGreaterThan(0);
      expect(nodeMetrics.samples.filter((s) => s.name === 'ubackup_node_pull_failures_total')).toEqual([]);
      expect(sampleValue(nodeMetrics, 'process_resident_memory_bytes')).toBeGreaterThan(0);
      expect((await fetch(`http://127.0.0.1:${nodePort}/v1/stored/1`)).status).toBe(404);

      const agentMetrics = await waitFor(
        async () => {
          const m = await scrapeOpen(agentPort);
          return m !== null &&
            (sampleValue(m, 'ubackup_agent_files_served_total', { outcome: 'whole' }) ?? 0) >= 2
            ? m
            : null;
        },
        { timeoutMs: 30_000, what: 'the agent to count two files served' },
      );
      expect(sampleValue(agentMetrics, 'ubackup_agent_runs_total', { outcome: 'ok' })).toBeGreaterThanOrEqual(
        2,
      );
      expect(sampleValue(agentMetrics, 'ubackup_agent_runs_total', { outcome: 'failed' })).toBeUndefined();
      expect(sampleValue(agentMetrics, 'ubackup_agent_served_bytes_total')).toBeGreaterThanOrEqual(
        2 * FILE_BYTES,
      );
      expect(sampleValue(agentMetrics, 'ubackup_agent_spool_reports')).toBeGreaterThanOrEqual(0);
      expect((await fetch(`http://127.0.0.1:${agentPort}/healthz`)).status).toBe(404);

      // The server counted the same transfers, by node, with their durations (nothing moves any more).
      await agent.stop('SIGKILL');
      await node.stop('SIGKILL');
      await new Promise((resolve) => setTimeout(resolve, 500));
      const serverMetrics = await scrapeOpen(serverPort);
      expect(serverMetrics).not.toBeNull();
      const stored = (await c.jobs()).filter((j) => j.state === 'done').length;
      expect(stored).toBeGreaterThanOrEqual(2);
      expect(sampleValue(serverMetrics as PromText, 'ubackup_transfer_bytes_total', { node: 'n1' })).toBe(
        stored * FILE_BYTES,
      );
      expect(
        sampleValue(serverMetrics as PromText, 'ubackup_transfer_duration_seconds_count', { node: 'n1' }),
      ).toBe(stored);
      // Unregistered instances: accepted and flagged illegal.
      expect(
        sampleValue(serverMetrics as PromText, 'ubackup_reports_received_total', {
          status: 'ok',
          legality: 'illegal',
        }),
      ).toBeGreaterThanOrEqual(stored);
    } finally {
      await agent.stop('SIGKILL');
    }
  });
});
