import { type KeyObject, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import type { FileHttpServer } from '../shared/file-http-server.js';
import { formatListenAddress } from '../shared/listen-address.js';
import { startMetricsListener } from '../shared/metrics-listener.js';
import type { Report } from '../shared/report.js';
import { type AgentMetrics, createAgentMetrics } from './agent-metrics.js';
import { AgentState } from './agent-state.js';
import { formatIssue, type GlobalConfig, type InstanceConfig, loadAgentConfig } from './config.js';
import { type AgentLog, Delivery, nextBackoffMs } from './delivery.js';
import { type FileServer, startFileServer } from './file-server.js';
import { runInstance } from './instance-run.js';
import { maxJitterFor, nextPlannedRun, stableJitterMs } from './schedule.js';
import { announceRun, enroll, fetchTicketKey, parseTicketPublicKey } from './server-client.js';
import { Spool } from './spool.js';

/**
 * `ubackup agent`: runs each instance's script on its schedule, spools every
 * report durably and delivers the spool to the server. One bad config section
 * does not stop the others; a run still going when its next slot comes is not
 * started twice (the slot is skipped and logged). It also runs the file
 * server storage nodes pull from (`startHostFileServer`, shared with
 * `ubackup agent serve`).
 */

/** The agent cannot start: no usable [global], or an unknown `--only` section. */
export class AgentStartError extends Error {
  override name = 'AgentStartError';
}

export interface AgentRuntime {
  global: GlobalConfig;
  instances: InstanceConfig[];
  state: AgentState;
  spool: Spool;
  /** Sections that were dropped for configuration errors. */
  brokenSections: string[];
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Loads the config (logging every warning and error with its file, section,
 * key and line), the agent state and the spool. Throws AgentStartError when
 * [global] is missing or has errors.
 */
export async function openAgentRuntime(configPath: string, log: AgentLog): Promise<AgentRuntime> {
  const config = await loadAgentConfig(configPath);
  for (const warning of config.warnings) log.warn(formatIssue(warning));
  for (const error of config.errors) log.error(formatIssue(error));
  if (config.global === null) {
    const globalErrors = config.errors.filter(
      (issue) => issue.section === 'global' || issue.section === null,
    );
    const shown = (globalErrors.length > 0 ? globalErrors : config.errors).map(formatIssue);
    throw new AgentStartError(
      `${configPath}: no usable [global] section, so no instance can run:\n  ${shown.join('\n  ')}`,
    );
  }
  const global = config.global;
  const opened = await AgentState.open(global.stateDir);
  for (const warning of opened.warnings) log.error(warning);
  const spool = await Spool.open(global.stateDir, {
    onCorrupt: (file, reason) =>
      log.error(`CORRUPT SPOOL FILE ${file}: ${reason}; moved to spool/rejected/ (it will not be sent)`),
  });
  const brokenSections = [
    ...new Set(
      config.errors
        .map((issue) => issue.section)
        .filter((section): section is string => section !== null && section !== 'global'),
    ),
  ];
  return { global, instances: config.instances, state: opened.state, spool, brokenSections };
}

/**
 * The host's credential: the stored one, or a new one from one enrollment
 * attempt. Null (logged) when there is none yet; `retryable` says whether
 * trying again later can help.
 */
export async function ensureCredential(
  runtime: Pick<AgentRuntime, 'global' | 'state'>,
  log: AgentLog,
): Promise<{ credential: string | null; retryable: boolean }> {
  const { global, state } = runtime;
  const existing = state.credentialFor(global.serverId);
  if (existing !== null) return { credential: existing, retryable: false };
  const stored = state.storedCredential();
  if (stored !== null) {
    log.warn(
      `the stored credential was issued for server_id ${stored.serverId}, but the config says ${global.serverId}: enrolling again`,
    );
  }
  if (global.enrollToken === null) {
    log.error(
      `this host has no credential for server_id ${global.serverId} and [global] has no enroll_token: ` +
        'add "enroll_token = <token from ubackup admin token create --role enroll>"; ' +
        'reports are kept in the spool until then',
    );
    return { credential: null, retryable: false };
  }
  const result = await enroll(global.serverUrl, global.enrollToken, global.serverId);
  switch (result.kind) {
    case 'enrolled':
      await state.setCredential(
        global.serverId,
        global.serverUrl,
        result.credential,
        new Date().toISOString(),
      );
      log.info(`enrolled with ${global.serverUrl} as server_id ${global.serverId}`);
      if (result.ticketPublicKey !== undefined && result.ticketPublicKey !== state.ticketPublicKey()) {
        try {
          await state.setTicketPublicKey(result.ticketPublicKey);
        } catch (error) {
          // The file server fetches the key itself; the credential is what matters here.
          log.warn(`cannot store the server's ticket key: ${describeError(error)}`);
        }
      }
      return { credential: result.credential, retryable: false };
    case 'rejected':
      log.error(
        `ENROLLMENT REFUSED by ${global.serverUrl}: ${result.message}; reports are kept in the spool`,
      );
      // The operator may fix the token on the server side; keep trying, slowly.
      return { credential: null, retryable: true };
    case 'retry':
      log.warn(`cannot enroll yet: ${result.reason}`);
      return { credential: null, retryable: true };
  }
}

// ---------------------------------------------------------------------------
// The file server for storage nodes, with the server's ticket key

/** How often a known ticket key is fetched again, so a new server key reaches the host. */
export const TICKET_KEY_REFRESH_MS = 60 * 60_000;

/**
 * The PEM contents of `[global] tls_cert` / `tls_key`, or null for plain HTTP.
 * Throws AgentStartError naming the key whose file cannot be read or used.
 */
export async function loadTlsPem(
  global: Pick<GlobalConfig, 'tls'>,
  configPath: string,
): Promise<{ cert: string; key: string } | null> {
  const files = global.tls ?? null;
  if (files === null) return null;
  const read = async (key: 'tls_cert' | 'tls_key', file: string): Promise<string> => {
    try {
      return await readFile(file, 'utf8');
    } catch (error) {
      throw new AgentStartError(
        `${configPath} [global] ${key}: cannot read ${file}: ${describeError(error)}`,
      );
    }
  };
  const cert = await read('tls_cert', files.certFile);
  const key = await read('tls_key', files.keyFile);
  try {
    new X509Certificate(cert);
  } catch (error) {
    throw new AgentStartError(
      `${configPath} [global] tls_cert: ${files.certFile} is not a PEM certificate: ${describeError(error)}`,
    );
  }
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    throw new AgentStartError(
      `${configPath} [global] tls_key: ${files.keyFile} is not the PEM private key of tls_cert ${files.certFile}: ${describeError(error)}`,
    );
  }
  return { cert, key };
}

export interface HostFileServerOptions {
  configPath: string;
  log: AgentLog;
  /** Epoch-ms clock (ticket expiry); default Date.now. */
  now?: () => number;
  random?: () => number;
  /**
   * When the port cannot be bound: `fail` throws AgentStartError (`agent
   * serve`: serving is all it does); `retry` logs an error and tries again with
   * backoff (the daemon: backups keep running and being reported meanwhile).
   */
  onBindError: 'fail' | 'retry';
  /** The host's credential if it has one; asked before each fetch of the ticket key. */
  credential: () => string | null;
  /** Counts what the file server sends (the daemon's metrics). */
  metrics?: AgentMetrics;
}

export interface HostFileServer {
  /** The bound port; null while the port could not be bound (onBindError `retry`). */
  port(): number | null;
  /** Look for the ticket key now (e.g. right after enrolling) instead of at the next backoff. */
  wake(): void;
  close(): Promise<void>;
}

/**
 * The file server for this host's instances, with the server's ticket key:
 * the stored one, else fetched with the host's credential (retrying with
 * backoff; every pull gets 401 until a key is known), and fetched again every
 * TICKET_KEY_REFRESH_MS so a new server key arrives. TLS files are read at
 * start (AgentStartError when unusable).
 */
export async function startHostFileServer(
  runtime: Pick<AgentRuntime, 'global' | 'instances' | 'state'>,
  options: HostFileServerOptions,
): Promise<HostFileServer> {
  const { global, instances, state } = runtime;
  const { log } = options;
  const random = options.random ?? Math.random;
  const tls = await loadTlsPem(global, options.configPath);
  const address = `${tls === null ? 'http' : 'https'}://${formatListenAddress(global.listen)}`;

  let closed = false;
  const abort = new AbortController();
  const wakeups = new Set<() => void>();
  const pause = (ms: number): Promise<void> =>
    new Promise<void>((resolvePause) => {
      const done = (): void => {
        clearTimeout(timer);
        wakeups.delete(done);
        resolvePause();
      };
      const timer = setTimeout(done, ms);
      wakeups.add(done);
    });
  const wakeAll = (): void => {
    for (const wake of [...wakeups]) wake();
  };

  let publicKey: KeyObject | null = null;
  let publicKeyText: string | null = null;
  /** Takes `text` as the key if it is a valid one and differs from the current one. */
  const adopt = (text: string | null, source: string): void => {
    if (text === null || text === publicKeyText) return;
    const key = parseTicketPublicKey(text);
    if (key === null) {
      log.error(`the ticket key ${source} is not an Ed25519 public key; ignoring it`);
      return;
    }
    if (publicKeyText !== null) log.info(`the server's ticket key changed (${source})`);
    publicKey = key;
    publicKeyText = text;
  };
  adopt(state.ticketPublicKey(), `in ${state.path}`);

  const serverOptions = {
    listen: global.listen,
    tls,
    serverId: global.serverId,
    instances: instances.map((i) => ({ type: i.type, instance: i.instance, backDir: i.backDir })),
    publicKey: () => publicKey,
    now: options.now,
    log,
    onServed: options.metrics?.fileServed,
  };
  const listening = (server: FileServer): void =>
    log.info(
      `file server for storage nodes listening on ${address} (port ${server.port}), ${instances.length} instance(s)`,
    );
  let server: FileServer | null = null;
  try {
    server = await startFileServer(serverOptions);
    listening(server);
  } catch (error) {
    const message = `the file server cannot listen on ${address}: ${describeError(error)}`;
    if (options.onBindError === 'fail') throw new AgentStartError(message);
    log.error(`${message}; storage nodes cannot pull until it can (backups still run), retrying`);
  }
  const binding = (async (): Promise<void> => {
    for (let failures = 1; server === null && !closed; failures += 1) {
      await pause(nextBackoffMs(failures, random));
      if (closed) return;
      try {
        const started = await startFileServer(serverOptions);
        if (closed) {
          await started.close();
          return;
        }
        server = started;
        listening(started);
      } catch (error) {
        log.error(`the file server still cannot listen on ${address}: ${describeError(error)}`);
      }
    }
  })();

  const keeping = (async (): Promise<void> => {
    let failures = 0;
    let toldNoCredential = false;
    while (!closed) {
      // A key stored meanwhile (enrollment, another agent process) counts.
      await state.reload().catch(() => undefined);
      adopt(state.ticketPublicKey(), `in ${state.path}`);
      const credential = options.credential();
      if (credential === null) {
        if (!toldNoCredential) {
          toldNoCredential = true;
          const consequence =
            publicKey === null
              ? 'the file server answers 401 to every pull until it has the key'
              : 'keeping the stored ticket key';
          log.warn(
            `this host has no credential for server_id ${global.serverId} yet (the daemon or "ubackup agent run-once" ` +
              `enrolls it with enroll_token), so it cannot fetch the server's ticket key; ${consequence}`,
          );
        }
        failures += 1;
        await pause(nextBackoffMs(failures, random));
        continue;
      }
      const result = await fetchTicketKey(global.serverUrl, credential, { signal: abort.signal });
      if (closed) return;
      if (result.kind === 'key') {
        failures = 0;
        if (result.publicKey !== publicKeyText) {
          const first = publicKeyText === null;
          try {
            await state.setTicketPublicKey(result.publicKey);
          } catch (error) {
            log.error(`cannot store the server's ticket key in ${state.path}: ${describeError(error)}`);
          }
          adopt(result.publicKey, `from ${global.serverUrl}`);
          if (first) log.info(`received the server's ticket key from ${global.serverUrl}`);
        }
        await pause(TICKET_KEY_REFRESH_MS);
        continue;
      }
      failures += 1;
      if (publicKey === null) {
        log.error(
          `cannot fetch the server's ticket key: ${result.reason}; the file server answers 401 to every pull until it has it`,
        );
      } else {
        log.warn(`cannot refresh the server's ticket key: ${result.reason}; keeping the stored one`);
      }
      await pause(nextBackoffMs(failures, random));
    }
  })();

  let closing: Promise<void> | null = null;
  return {
    port: () => server?.port ?? null,
    wake: wakeAll,
    close(): Promise<void> {
      closing ??= (async () => {
        closed = true;
        abort.abort();
        wakeAll();
        await Promise.all([binding, keeping]);
        await server?.close();
      })();
      return closing;
    },
  };
}

/** One line about a finished run, for the log. */
export function describeRun(report: Report): string {
  if (report.status === 'ok') {
    const base = report.kind === 'incremental' ? ` (base ${report.base_filename})` : '';
    return `[${report.section}] ${report.kind} backup ok: ${report.filename}, ${report.size} bytes${base}`;
  }
  return `[${report.section}] backup FAILED: ${report.error}`;
}

/**
 * Spools a report; when even that fails, writes the whole report into the
 * log so it is not silently lost, and rethrows.
 */
export async function spoolReport(spool: Spool, report: Report, log: AgentLog): Promise<void> {
  try {
    await spool.put(report);
  } catch (error) {
    log.error(
      `CANNOT SPOOL REPORT ${report.report_id} to ${spool.dir}: ${describeError(error)}; ` +
        `the report is: ${JSON.stringify(report)}`,
    );
    throw error;
  }
}

export interface AgentDaemonOptions {
  configPath: string;
  log: AgentLog;
  /** Epoch-ms clock; default Date.now. */
  now?: () => number;
  random?: () => number;
}

export interface AgentDaemon {
  /**
   * Stops scheduling, interrupts running scripts (their runs are reported as
   * failed and spooled), finishes the send in flight, and returns.
   */
  stop(): Promise<void>;
}

/** setTimeout's largest delay. */
const MAX_TIMER_MS = 2_147_483_647;
/** An announcement that takes longer than this is dropped: the run goes on regardless. */
const ANNOUNCE_TIMEOUT_MS = 10_000;

export async function startAgentDaemon(options: AgentDaemonOptions): Promise<AgentDaemon> {
  const { log } = options;
  const now = options.now ?? Date.now;
  const random = options.random ?? Math.random;
  const runtime = await openAgentRuntime(options.configPath, log);
  const { global, instances, state, spool } = runtime;
  const metrics = createAgentMetrics(() => spool.count());
  let metricsListener: FileHttpServer | null = null;
  if (global.metricsListen) {
    const at = formatListenAddress(global.metricsListen);
    try {
      metricsListener = await startMetricsListener({
        listen: global.metricsListen,
        registry: metrics.registry,
        name: 'metrics',
        log,
      });
      log.info(`serving /metrics (no authentication) on ${at} (port ${metricsListener.port})`);
    } catch (error) {
      log.error(`cannot serve /metrics on ${at}: ${describeError(error)}; the agent runs without it`);
    }
  }
  const fileServer = await startHostFileServer(runtime, {
    metrics,
    configPath: options.configPath,
    log,
    now,
    random,
    onBindError: 'retry',
    credential: () => state.credentialFor(global.serverId),
  }).catch(async (error: unknown) => {
    await metricsListener?.close();
    throw error;
  });

  let stopped = false;
  const abort = new AbortController();
  const timers = new Map<string, NodeJS.Timeout>();
  const running = new Map<string, { startedAt: number; done: Promise<void> }>();
  const wakeOnStop = new Set<() => void>();

  const delivery = new Delivery({
    spool,
    serverUrl: global.serverUrl,
    credential: () => state.credentialFor(global.serverId),
    log,
    random,
  });
  // Whatever an earlier run left in the spool goes first.
  delivery.start();

  const pause = (ms: number): Promise<void> =>
    new Promise<void>((resolvePause) => {
      const done = (): void => {
        clearTimeout(timer);
        wakeOnStop.delete(done);
        resolvePause();
      };
      const timer = setTimeout(done, ms);
      wakeOnStop.add(done);
    });

  const enrolling = (async (): Promise<void> => {
    for (let failures = 0; !stopped; ) {
      let outcome: { credential: string | null; retryable: boolean };
      try {
        outcome = await ensureCredential(runtime, log);
      } catch (error) {
        log.error(`enrollment failed: ${describeError(error)}`);
        outcome = { credential: null, retryable: true };
      }
      if (outcome.credential !== null) {
        delivery.kick();
        fileServer.wake();
        return;
      }
      if (!outcome.retryable) return;
      failures += 1;
      await pause(nextBackoffMs(failures, random));
    }
  })();

  const jitterOf = (instance: InstanceConfig): number => {
    let maxMs = global.jitterSeconds * 1000;
    try {
      maxMs = Math.min(maxMs, maxJitterFor(instance.schedule, now()));
    } catch {
      // no next slot: the instance is not scheduled anyway
    }
    return stableJitterMs(`${global.serverId}/${instance.type}/${instance.instance}`, maxMs);
  };

  const arm = (instance: InstanceConfig, slot: number, jitterMs: number): void => {
    const fireAt = slot + jitterMs;
    const delay = Math.max(0, fireAt - now());
    const timer = setTimeout(
      () => {
        timers.delete(instance.name);
        if (stopped) return;
        // A very long wait is done in pieces of at most MAX_TIMER_MS.
        if (now() < fireAt - 1000) arm(instance, slot, jitterMs);
        else fire(instance, slot, jitterMs);
      },
      Math.min(delay, MAX_TIMER_MS),
    );
    timers.set(instance.name, timer);
  };

  /** Tells the server the run started, without waiting for it: a hung run then raises `stuck`. */
  const announce = (instance: InstanceConfig, startedAt: number): void => {
    const credential = state.credentialFor(global.serverId);
    if (credential === null) return;
    void announceRun(
      global.serverUrl,
      credential,
      {
        server_id: global.serverId,
        type: instance.type,
        instance: instance.instance,
        started_at: new Date(startedAt).toISOString(),
        timeout_seconds: instance.timeoutSeconds,
      },
      { signal: abort.signal, timeoutMs: ANNOUNCE_TIMEOUT_MS },
    ).then((result) => {
      if (!result.ok) log.warn(`[${instance.name}] could not announce the run: ${result.reason}`);
    });
  };

  const planAfter = (instance: InstanceConfig, afterMs: number): number | null => {
    try {
      return nextPlannedRun(instance.schedule, afterMs);
    } catch (error) {
      log.error(`[${instance.name}] has no next run (${describeError(error)}); it is not scheduled`);
      return null;
    }
  };

  const startRun = (instance: InstanceConfig, slot: number): void => {
    const startedAt = now();
    announce(instance, startedAt);
    const done = (async (): Promise<void> => {
      try {
        const report = await runInstance(instance, global, {
          priority: instance.priority,
          now,
          state,
          signal: abort.signal,
          warn: (message) => log.warn(message),
        });
        metrics.runFinished(report.status);
        if (report.status === 'ok') log.info(describeRun(report));
        else log.error(describeRun(report));
        await spoolReport(spool, report, log);
        delivery.kick();
      } catch (error) {
        log.error(
          `[${instance.name}] the run planned for ${new Date(slot).toISOString()} failed in the agent: ${describeError(error)}`,
        );
      } finally {
        running.delete(instance.name);
      }
    })();
    running.set(instance.name, { startedAt, done });
  };

  const fire = (instance: InstanceConfig, slot: number, jitterMs: number): void => {
    const previous = running.get(instance.name);
    if (previous !== undefined) {
      log.warn(
        `[${instance.name}] skipped the run planned for ${new Date(slot).toISOString()}: ` +
          `the previous run (started ${new Date(previous.startedAt).toISOString()}) is still going`,
      );
    } else {
      startRun(instance, slot);
    }
    let next = planAfter(instance, slot);
    if (next === null) return;
    if (next + jitterMs <= now()) {
      // The timer came very late (suspend, clock jump): skip the slots already past.
      const caughtUp = planAfter(instance, now() - jitterMs);
      if (caughtUp === null) return;
      log.warn(
        `[${instance.name}] missed the slot(s) from ${new Date(next).toISOString()} to before ${new Date(caughtUp).toISOString()} (the agent was not running on time)`,
      );
      next = caughtUp;
    }
    arm(instance, next, jitterMs);
  };

  for (const instance of instances) {
    const jitterMs = jitterOf(instance);
    const first = planAfter(instance, now() - jitterMs);
    if (first === null) continue;
    arm(instance, first, jitterMs);
    log.info(
      `[${instance.name}] scheduled (${describeSchedule(instance)}); next run ${new Date(first + jitterMs).toISOString()}`,
    );
  }
  if (instances.length === 0) log.warn(`${options.configPath} has no instance that can run`);
  log.info(
    `agent started for server_id ${global.serverId}: ${instances.length} instance(s)` +
      (runtime.brokenSections.length > 0
        ? `, ${runtime.brokenSections.length} section(s) with errors skipped`
        : ''),
  );

  let stopping: Promise<void> | null = null;
  return {
    stop(): Promise<void> {
      stopping ??= (async () => {
        stopped = true;
        for (const timer of timers.values()) clearTimeout(timer);
        timers.clear();
        for (const wake of [...wakeOnStop]) wake();
        abort.abort();
        await Promise.all([...running.values()].map((run) => run.done));
        await enrolling;
        await delivery.stop();
        await fileServer.close();
        await metricsListener?.close();
        log.info('agent stopped');
      })();
      return stopping;
    },
  };
}

function describeSchedule(instance: InstanceConfig): string {
  const schedule = instance.schedule;
  return schedule.kind === 'interval'
    ? `every ${schedule.seconds} s`
    : `cron "${schedule.expression}" in ${schedule.timezone}`;
}
