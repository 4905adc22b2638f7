import type { KeyObject } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { formatIssue } from '../agent/config.js';
import type { AgentLog } from '../agent/delivery.js';
import type { FileHttpServer } from '../shared/file-http-server.js';
import { startMetricsListener } from '../shared/metrics-listener.js';
import {
  HeartbeatResponseSchema,
  type JobFailureCode,
  type LeasedJob,
  LeaseResponseSchema,
  NodeDeletionsResponseSchema,
  NodeEnrollResponseSchema,
  ScrubLeaseResponseSchema,
  ScrubResultsResponseSchema,
} from '../shared/node-protocol.js';
import { importPublicKey } from '../shared/ticket.js';
import { UBACKUP_VERSION } from '../shared/version.js';
import { loadNodeConfig, type NodeConfig } from './config.js';
import { createStoredDeleter } from './delete-stored.js';
import { freeSpace } from './disk-space.js';
import { INCOMING_SWEEP_EVERY_MS, sweepIncoming } from './incoming-sweep.js';
import { callServer } from './node-client.js';
import { createNodeMetrics } from './node-metrics.js';
import { type NodeState, readNodeState, writeNodeState } from './node-state.js';
import { removePart } from './part-file.js';
import { defaultReceiverThreads, ReceiverPool } from './receiver-pool.js';
import { restoreAddress } from './restore-address.js';
import { type RestoreServer, startRestoreServer } from './restore-server.js';
import { pullRsync, rsyncTransferRate } from './rsync-pull.js';
import { startScrubLoop } from './scrub-loop.js';
import { incomingDir, sidecarPath } from './storage-layout.js';
import { TokenBucket } from './token-bucket.js';

/**
 * `ubackup node`: enrolls once, then runs two loops until stopped. The
 * heartbeat loop reports disk and transfers and takes the central settings
 * (weight, bandwidth, paused by admin) from each reply. The lease loop keeps up
 * to `weight` transfers running: it leases only when neither paused by an
 * admin nor under its reserve, and each transfer renews its lease with
 * progress reports, pulls and verifies the file, and completes or fails the
 * job. A transfer whose lease is lost stops, and a file stored after its lease
 * went to another node is removed, so each job ends on exactly one node.
 *
 * Unless `listen = off`, the node also serves its stored files for restores
 * (restore-server.ts) on `listen`, paused or not, and sends the address
 * clients reach it at in every heartbeat; the heartbeat reply carries the
 * server's ticket key it checks restore tickets with. A port that cannot be
 * bound is logged and tried again every RESTORE_LISTEN_RETRY_MS: storing
 * goes on meanwhile, and the heartbeat says the node serves no restores.
 */

/** How long the node waits before it tries again to bind its restore port. */
export const RESTORE_LISTEN_RETRY_MS = 30_000;

export class NodeStartError extends Error {
  override name = 'NodeStartError';
}

export interface NodeDaemonOptions {
  configPath: string;
  log: AgentLog;
  /** Time without a byte from the agent before a transfer is cut (default: the config's stall_timeout). */
  stallTimeoutMs?: number;
  /** How long the lease loop waits when there was nothing to lease (default 2 s). */
  idlePollMs?: number;
}

export interface NodeDaemon {
  readonly name: string;
  stop(): Promise<void>;
}

interface Transfer {
  job: LeasedJob;
  bytesDone: number;
  abort: AbortController;
  done: Promise<void>;
}

interface CentralSettings {
  weight: number;
  maxBandwidth: number;
  pausedByAdmin: boolean;
  leaseSeconds: number;
  heartbeatSeconds: number;
}

const OkSchema = z.object({ ok: z.literal(true) });
const ProgressSchema = z.object({ lease_expires_at: z.string() });
const FailSchema = z.object({ state: z.enum(['queued', 'dead']), next_attempt_at: z.string().nullable() });

export async function loadConfigOrThrow(configPath: string, log: AgentLog): Promise<NodeConfig> {
  const loaded = await loadNodeConfig(configPath);
  for (const warning of loaded.warnings) log.warn(formatIssue(warning));
  for (const error of loaded.errors) log.error(formatIssue(error));
  if (loaded.config === null) {
    throw new NodeStartError(
      `${configPath} has errors, so the node cannot start:\n  ${loaded.errors.map(formatIssue).join('\n  ')}`,
    );
  }
  return loaded.config;
}

/** The stored credential, or a new one from the server (retrying while the server is unreachable). */
async function ensureEnrolled(
  config: NodeConfig,
  log: AgentLog,
  stopped: () => boolean,
): Promise<NodeState | null> {
  const existing = await readNodeState(config.stateDir);
  if (existing && existing.name === config.name) return existing;
  if (existing)
    log.warn(
      `the stored credential is for node ${existing.name}, the config says ${config.name}: enrolling again`,
    );
  if (config.enrollToken === null) {
    throw new NodeStartError(
      `node ${config.name} has no credential in ${config.stateDir} and the config has no enroll_token: ` +
        'add "enroll_token = <token from ubackup admin token create --role enroll>"',
    );
  }
  for (let attempt = 1; !stopped(); attempt += 1) {
    const answer = await callServer(
      config.serverUrl,
      config.enrollToken,
      'api/v1/nodes/enroll',
      {
        name: config.name,
        cluster: config.cluster,
        address: null,
        weight: config.weight,
        reserve_bytes: config.reserveBytes,
        max_bandwidth: config.maxBandwidthBytesPerSecond,
        version: UBACKUP_VERSION,
      },
      NodeEnrollResponseSchema,
    );
    if (answer.ok) {
      const state: NodeState = {
        node_id: answer.data.node_id,
        name: answer.data.name,
        cluster: answer.data.cluster,
        credential: answer.data.credential,
        server_url: config.serverUrl,
        enrolled_at: new Date().toISOString(),
      };
      await writeNodeState(config.stateDir, state);
      log.info(`enrolled as node ${state.name} (id ${state.node_id}) in cluster ${state.cluster}`);
      return state;
    }
    const level = answer.status !== null && answer.status >= 400 && answer.status < 500 ? 'error' : 'warn';
    log[level](`cannot enroll node ${config.name} yet: ${answer.code}: ${answer.message}`);
    await sleep(Math.min(60_000, 1000 * 2 ** Math.min(attempt, 6)));
  }
  return null;
}

export async function startNodeDaemon(options: NodeDaemonOptions): Promise<NodeDaemon> {
  const { log } = options;
  const config = await loadConfigOrThrow(options.configPath, log);
  await mkdir(incomingDir(config.rootPath), { recursive: true });
  let stopped = false;
  const state = await ensureEnrolled(config, log, () => stopped);
  if (!state) throw new NodeStartError('stopped before enrolling');
  const bearer = state.credential;
  const central: CentralSettings = {
    weight: config.weight,
    maxBandwidth: config.maxBandwidthBytesPerSecond,
    pausedByAdmin: false,
    leaseSeconds: 60,
    heartbeatSeconds: config.heartbeatSeconds,
  };
  const nodeBucket = new TokenBucket({ bytesPerSecond: central.maxBandwidth });
  // HTTP pulls run on receiver threads; rsync pulls are processes of their own.
  const receivers = new ReceiverPool({
    threads: config.receiverThreads ?? defaultReceiverThreads(),
    nodeBucket,
    onThreadError: (error) =>
      log.error(`receiver thread: ${error.message}; its transfers fail and are retried`),
  });
  const transfers = new Map<number, Transfer>();
  let pausedReserve = false;
  let ticketKey: { base64: string; key: KeyObject } | null = null;
  let restoreServer: RestoreServer | null = null;
  let restoreUrl: string | null = null;
  let bytesSinceBeat = 0;
  let lastBeat = Date.now();
  let lastFreeBytes: number | null = null;
  const metrics = createNodeMetrics(() => ({
    transfersInFlight: transfers.size,
    pausedByAdmin: central.pausedByAdmin,
    pausedReserve,
    freeBytes: lastFreeBytes,
  }));
  let metricsListener: FileHttpServer | null = null;
  if (config.metricsListen !== null) {
    try {
      metricsListener = await startMetricsListener({
        listen: config.metricsListen,
        registry: metrics.registry,
        name: 'metrics',
        log,
      });
      log.info(
        `serving /metrics (no authentication) on ${config.metricsListen.host}:${metricsListener.port}`,
      );
    } catch (error) {
      log.error(
        `cannot serve /metrics on ${config.metricsListen.host}:${config.metricsListen.port}: ` +
          `${error instanceof Error ? error.message : String(error)}; the node runs without it`,
      );
    }
  }
  // Retention's deletes arrive in heartbeat replies and are confirmed once done.
  const deleter = createStoredDeleter({
    root: config.rootPath,
    log,
    confirm: async (ids) => {
      const answer = await callServer(
        config.serverUrl,
        bearer,
        'api/v1/nodes/deletions',
        { deleted: ids },
        NodeDeletionsResponseSchema,
      );
      return answer.ok
        ? { ok: true, confirmed: answer.data.confirmed }
        : { ok: false, error: `${answer.code}: ${answer.message}` };
    },
  });
  // Sleeping loops; `wakeAll` ends every nap at once (stop, a free slot, new central settings).
  const sleepers = new Set<() => void>();
  const nap = (ms: number): Promise<void> =>
    new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      sleepers.add(done);
    });
  const wakeAll = (): void => {
    for (const done of [...sleepers]) done();
  };

  /** Bytes the running transfers will still write. */
  const inFlightRemaining = (): number =>
    [...transfers.values()].reduce((sum, t) => sum + Math.max(0, t.job.size - t.bytesDone), 0);

  const heartbeat = async (): Promise<void> => {
    const disk = await freeSpace(config.rootPath);
    lastFreeBytes = disk.freeBytes;
    const seconds = Math.max(0.001, (Date.now() - lastBeat) / 1000);
    const answer = await callServer(
      config.serverUrl,
      bearer,
      'api/v1/nodes/heartbeat',
      {
        disk_total_bytes: disk.totalBytes,
        disk_free_bytes: disk.freeBytes,
        reserve_bytes: config.reserveBytes,
        paused_reserve: pausedReserve,
        in_flight: [...transfers.values()].map((t) => ({ job_id: t.job.job_id, bytes_done: t.bytesDone })),
        bytes_per_second: bytesSinceBeat / seconds,
        version: UBACKUP_VERSION,
        address: restoreUrl,
      },
      HeartbeatResponseSchema,
    );
    bytesSinceBeat = 0;
    lastBeat = Date.now();
    if (!answer.ok) {
      log.warn(`heartbeat failed: ${answer.code}: ${answer.message}`);
      return;
    }
    const reply = answer.data;
    if (reply.ticket_public_key !== undefined && reply.ticket_public_key !== ticketKey?.base64) {
      try {
        ticketKey = { base64: reply.ticket_public_key, key: importPublicKey(reply.ticket_public_key) };
      } catch (error) {
        log.error(
          `the server's ticket key is not a usable public key: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
    }
    if (reply.paused_by_admin !== central.pausedByAdmin) {
      log.warn(
        reply.paused_by_admin
          ? 'paused by an admin: finishing running transfers, leasing nothing'
          : 'resumed by an admin',
      );
    }
    if (reply.max_bandwidth !== central.maxBandwidth) {
      nodeBucket.setRate(reply.max_bandwidth);
      receivers.nodeRateChanged();
    }
    const leaseMore = reply.weight > central.weight || (central.pausedByAdmin && !reply.paused_by_admin);
    central.weight = reply.weight;
    central.maxBandwidth = reply.max_bandwidth;
    central.pausedByAdmin = reply.paused_by_admin;
    central.leaseSeconds = reply.lease_seconds;
    central.heartbeatSeconds = reply.heartbeat_seconds;
    if (leaseMore) wakeAll();
    if (!stopped) deleter.offer(reply.deletes ?? []);
  };

  const listen = config.listen;
  // The first heartbeat waits for the first try to bind, so it already carries the address.
  let firstTryDone = (): void => undefined;
  const firstTry = new Promise<void>((resolveTry) => {
    firstTryDone = resolveTry;
  });
  const restoreLoop = (async () => {
    if (listen === null) {
      log.info('listen = off: this node serves no restores');
      return;
    }
    while (!stopped) {
      try {
        const server = await startRestoreServer({
          listen,
          root: config.rootPath,
          nodeName: state.name,
          publicKey: () => ticketKey?.key ?? null,
          log,
        });
        if (stopped) {
          await server.close();
          return;
        }
        restoreServer = server;
        const address = restoreAddress({ host: listen.host, port: server.port }, config.publicUrl);
        if (address.warning !== null) log.warn(address.warning);
        restoreUrl = address.url;
        log.info(
          `serving stored files for restores on ${listen.host}:${server.port} (address ${address.url})`,
        );
        return;
      } catch (error) {
        log.error(
          `cannot serve restores on ${listen.host}:${listen.port}: ${error instanceof Error ? error.message : String(error)}; ` +
            `trying again in ${RESTORE_LISTEN_RETRY_MS / 1000} s (set listen to a free port, or listen = off)`,
        );
        firstTryDone();
        await nap(RESTORE_LISTEN_RETRY_MS);
      }
    }
  })().finally(() => firstTryDone());

  const heartbeatLoop = (async () => {
    await firstTry;
    while (!stopped) {
      try {
        await heartbeat();
      } catch (error) {
        log.error(`heartbeat failed: ${error instanceof Error ? error.message : String(error)}`);
      }
      await nap(central.heartbeatSeconds * 1000);
    }
  })();

  const report = async (job: LeasedJob, path: string, body: unknown, schema: z.ZodType) =>
    callServer(config.serverUrl, bearer, `api/v1/jobs/${job.job_id}/${path}`, body, schema);

  const runTransfer = (job: LeasedJob): void => {
    const abort = new AbortController();
    const transfer: Transfer = { job, bytesDone: 0, abort, done: Promise.resolve() };
    transfers.set(job.job_id, transfer);
    let leaseLost = false;
    const renew = setInterval(
      () => {
        void report(job, 'progress', { bytes_done: transfer.bytesDone }, ProgressSchema).then((answer) => {
          if (!answer.ok && answer.code === 'lease_lost') {
            leaseLost = true;
            log.warn(`job ${job.job_id}: lease lost (${answer.message}); stopping the transfer`);
            abort.abort();
          }
        });
      },
      Math.max(1000, (central.leaseSeconds * 1000) / 3),
    );
    transfer.done = (async () => {
      try {
        let last = 0;
        const onProgress = (bytes: number): void => {
          bytesSinceBeat += Math.max(0, bytes - last);
          metrics.bytesPulled(bytes - last);
          last = bytes;
          transfer.bytesDone = bytes;
        };
        const stallTimeoutMs = options.stallTimeoutMs ?? config.stallTimeoutSeconds * 1000;
        const result =
          job.source.transport === 'rsync'
            ? await pullRsync({
                job,
                root: config.rootPath,
                // An external rsync cannot take from the node-wide bucket: it gets a fixed share of it.
                bytesPerSecond: rsyncTransferRate(
                  config.perTransferBytesPerSecond,
                  central.maxBandwidth,
                  central.weight,
                ),
                timeoutSeconds: Math.ceil(stallTimeoutMs / 1000),
                signal: abort.signal,
                onProgress,
              })
            : await receivers.pull({
                job,
                root: config.rootPath,
                perTransferBytesPerSecond: config.perTransferBytesPerSecond,
                timeoutMs: stallTimeoutMs,
                signal: abort.signal,
                onProgress,
              });
        if (stopped || leaseLost) return;
        if (!result.ok) {
          await fail(job, result.code, result.error);
          return;
        }
        const done = await report(
          job,
          'complete',
          { path: result.relativePath, blake3: result.blake3, size: result.size },
          OkSchema,
        );
        if (done.ok) {
          metrics.transferCompleted();
          log.info(
            `job ${job.job_id}: stored ${result.relativePath} (${result.size} bytes, blake3 verified; ` +
              `${result.bytesTransferred} bytes transferred${result.bytesTransferred < result.size ? ', resumed' : ''})`,
          );
        } else if (done.code === 'lease_lost') {
          // Another node has this job now: this copy must not become a second one.
          await rm(sidecarPath(result.path), { force: true });
          await rm(result.path, { force: true });
          log.warn(
            `job ${job.job_id}: the lease went to another node before completion; removed ${result.relativePath}`,
          );
        } else {
          log.error(`job ${job.job_id}: complete was refused: ${done.code}: ${done.message}`);
        }
      } catch (error) {
        log.error(`job ${job.job_id}: ${error instanceof Error ? error.message : String(error)}`);
        if (!stopped && !leaseLost)
          await fail(job, 'transient', error instanceof Error ? error.message : String(error));
      } finally {
        clearInterval(renew);
        // The legacy `interval`: the slot rests before it takes the next job.
        if (config.pauseBetweenPullsSeconds > 0 && !stopped)
          await sleep(config.pauseBetweenPullsSeconds * 1000);
        transfers.delete(job.job_id);
        wakeAll();
      }
    })();
  };

  const fail = async (job: LeasedJob, code: JobFailureCode, error: string): Promise<void> => {
    metrics.pullFailed(code);
    const answer = await callServer(
      config.serverUrl,
      bearer,
      `api/v1/jobs/${job.job_id}/fail`,
      { code, error: error.slice(0, 4000) },
      FailSchema,
    );
    if (answer.ok) {
      // A dead job is not retried here or anywhere: its partial file is of no use.
      if (answer.data.state === 'dead') await removePart(config.rootPath, job.job_id).catch(() => undefined);
      const outcome =
        answer.data.state === 'dead' ? 'the job is dead' : `retry after ${answer.data.next_attempt_at}`;
      log.error(
        `job ${job.job_id} (${job.server_id}/${job.type}/${job.instance}/${job.filename}) failed: ${code}: ${error}; ${outcome}`,
      );
    } else {
      log.error(`job ${job.job_id}: could not report its failure (${answer.code}); its lease will expire`);
    }
  };

  const leaseLoop = (async () => {
    while (!stopped) {
      try {
        const free = transfers.size < central.weight && !central.pausedByAdmin;
        if (!free) {
          await nap(1000);
          continue;
        }
        const disk = await freeSpace(config.rootPath);
        lastFreeBytes = disk.freeBytes;
        const usable = disk.freeBytes - inFlightRemaining();
        const underReserve = usable < config.reserveBytes;
        if (underReserve !== pausedReserve) {
          pausedReserve = underReserve;
          if (underReserve) {
            log.warn(
              `free space ${usable} bytes (after transfers in flight) is under the reserve of ${config.reserveBytes} bytes: leasing nothing until space returns`,
            );
          } else {
            log.warn('free space is above the reserve again: leasing resumes');
          }
        }
        if (underReserve) {
          await nap(options.idlePollMs ?? 2000);
          continue;
        }
        const answer = await callServer(
          config.serverUrl,
          bearer,
          'api/v1/nodes/lease',
          {
            slots: central.weight - transfers.size,
            // Raw free space: the server subtracts the reserve and what is still to come of this node's leases.
            free_bytes: disk.freeBytes,
          },
          LeaseResponseSchema,
        );
        if (!answer.ok) {
          log.warn(`lease failed: ${answer.code}: ${answer.message}`);
          await nap(options.idlePollMs ?? 2000);
          continue;
        }
        central.leaseSeconds = answer.data.lease_seconds;
        for (const job of answer.data.jobs) runTransfer(job);
        if (answer.data.jobs.length === 0) await nap(options.idlePollMs ?? 2000);
      } catch (error) {
        log.error(`lease loop: ${error instanceof Error ? error.message : String(error)}`);
        await nap(options.idlePollMs ?? 2000);
      }
    }
  })();

  // Leftovers of transfers that will not come back here (incoming-sweep.ts): at start, then hourly.
  const sweepLeftovers = (): void => {
    sweepIncoming({
      root: config.rootPath,
      busyJobIds: () => new Set(transfers.keys()),
      now: () => Date.now(),
      log,
    }).catch((error: unknown) =>
      log.error(
        `sweeping ${incomingDir(config.rootPath)}: ${error instanceof Error ? error.message : String(error)}`,
      ),
    );
  };
  sweepLeftovers();
  const leftoverSweep = setInterval(sweepLeftovers, INCOMING_SWEEP_EVERY_MS);
  leftoverSweep.unref();

  // Re-hashes stored files at its own rate (scrub-loop.ts); scrub_bytes_per_second = 0 turns it off.
  const scrub = startScrubLoop({
    root: config.rootPath,
    bytesPerSecond: config.scrubBytesPerSecond,
    periodSeconds: config.scrubPeriodSeconds,
    log,
    onScrubbed: (bytes) => metrics.scrubbed(bytes),
    server: {
      lease: async (limit, periodSeconds) => {
        const answer = await callServer(
          config.serverUrl,
          bearer,
          'api/v1/nodes/scrub/lease',
          { period_seconds: periodSeconds, limit },
          ScrubLeaseResponseSchema,
        );
        return answer.ok
          ? { ok: true, value: answer.data.files }
          : { ok: false, error: `${answer.code}: ${answer.message}` };
      },
      report: async (results) => {
        const answer = await callServer(
          config.serverUrl,
          bearer,
          'api/v1/nodes/scrub/results',
          { results },
          ScrubResultsResponseSchema,
        );
        return answer.ok
          ? { ok: true, value: answer.data.recorded }
          : { ok: false, error: `${answer.code}: ${answer.message}` };
      },
    },
  });

  log.info(
    `node ${state.name} started: root ${config.rootPath}, weight ${central.weight}, reserve ${config.reserveBytes} bytes, ` +
      `${receivers.threads === 0 ? 'pulls on the main thread' : `${receivers.threads} receiver thread${receivers.threads === 1 ? '' : 's'}`}`,
  );
  return {
    name: state.name,
    stop: async () => {
      stopped = true;
      wakeAll();
      clearInterval(leftoverSweep);
      const scrubStopped = scrub.stop();
      // Transfers in flight stop; their parts stay for a resume and their leases expire.
      for (const t of transfers.values()) t.abort.abort();
      await Promise.all([...transfers.values()].map((t) => t.done));
      await receivers.close();
      await Promise.all([leaseLoop, heartbeatLoop, restoreLoop, scrubStopped]);
      await deleter.idle();
      await restoreServer?.close();
      await metricsListener?.close();
    },
  };
}
