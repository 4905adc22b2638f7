import type { Priority } from '../shared/priority.js';
import {
  AgentStartError,
  describeRun,
  ensureCredential,
  openAgentRuntime,
  spoolReport,
} from './agent-daemon.js';
import { type AgentLog, deliverSpool } from './delivery.js';
import { runInstance } from './instance-run.js';

/**
 * `ubackup agent run-once [--only NAME] [--priority P]`: what the old cron
 * client did. Runs every instance (or the named one) once, one after the
 * other, spools each report, then makes one delivery pass over the spool. A
 * server that is down leaves the reports in the spool for the next run or the
 * daemon: nothing is lost, so that is a warning, not an error.
 */

export interface RunOnceOptions {
  configPath: string;
  /** A section name: run only that instance. */
  only?: string;
  /** Overrides every run's priority (`--priority high`, the old `-q level1`). */
  priority?: Priority;
  log: AgentLog;
  /** Epoch-ms clock; default Date.now. */
  now?: () => number;
}

export interface RunOnceResult {
  /** Reports made by this invocation. */
  reports: number;
  /** How many of them say failed. */
  failed: number;
  /** Reports still in the spool after the delivery pass (older ones included). */
  undelivered: number;
}

export async function runOnce(options: RunOnceOptions): Promise<RunOnceResult> {
  const { log } = options;
  const now = options.now ?? Date.now;
  const runtime = await openAgentRuntime(options.configPath, log);
  const { global, state, spool } = runtime;

  let instances = runtime.instances;
  if (options.only !== undefined) {
    const only = options.only;
    const found = instances.filter((instance) => instance.name === only);
    if (found.length === 0) {
      const available = instances.map((instance) => `[${instance.name}]`).join(', ') || '(none)';
      const broken = runtime.brokenSections.includes(only)
        ? `section [${only}] has configuration errors (see above)`
        : `there is no section [${only}] in ${options.configPath}`;
      throw new AgentStartError(`--only ${only}: ${broken}; the sections that can run are: ${available}`);
    }
    instances = found;
  }

  let reports = 0;
  let failed = 0;
  for (const instance of instances) {
    log.info(`[${instance.name}] running: ${instance.script}`);
    const report = await runInstance(instance, global, {
      priority: options.priority ?? instance.priority,
      now,
      state,
      warn: (message) => log.warn(message),
    });
    if (report.status === 'ok') log.info(describeRun(report));
    else log.error(describeRun(report));
    await spoolReport(spool, report, log);
    reports += 1;
    if (report.status === 'failed') failed += 1;
  }

  const { credential } = await ensureCredential(runtime, log);
  let undelivered = await spool.count();
  if (credential !== null) {
    const pass = await deliverSpool({ spool, serverUrl: global.serverUrl, credential, log });
    undelivered = pass.remaining;
    if (pass.retry !== null) log.warn(`could not deliver to ${global.serverUrl}: ${pass.retry.reason}`);
  }
  if (undelivered > 0) {
    log.warn(
      `${undelivered} report(s) are kept in ${spool.dir} and will be sent by the next run-once or by the agent daemon`,
    );
  }
  return { reports, failed, undelivered };
}
