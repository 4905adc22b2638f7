import type { Report } from '../shared/report.js';
import { AgentState } from './agent-state.js';
import { formatIssue, type GlobalConfig, type InstanceConfig, loadAgentConfig } from './config.js';
import { type AgentLog, Delivery, nextBackoffMs } from './delivery.js';
import { runInstance } from './instance-run.js';
import { maxJitterFor, nextPlannedRun, stableJitterMs } from './schedule.js';
import { enroll } from './server-client.js';
import { Spool } from './spool.js';

/**
 * `ubackup agent`: runs each instance's script on its schedule, spools every
 * report durably and delivers the spool to the server. One bad config section
 * does not stop the others; a run still going when its next slot comes is not
 * started twice (the slot is skipped and logged). The file server for storage
 * nodes is not part of this module (no port is opened here).
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

export async function startAgentDaemon(options: AgentDaemonOptions): Promise<AgentDaemon> {
  const { log } = options;
  const now = options.now ?? Date.now;
  const random = options.random ?? Math.random;
  const runtime = await openAgentRuntime(options.configPath, log);
  const { global, instances, state, spool } = runtime;

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
    const done = (async (): Promise<void> => {
      try {
        const report = await runInstance(instance, global, {
          priority: instance.priority,
          now,
          state,
          signal: abort.signal,
          warn: (message) => log.warn(message),
        });
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
