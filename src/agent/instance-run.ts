import { randomUUID } from 'node:crypto';
import type { Stats } from 'node:fs';
import { constants } from 'node:fs';
import { lstat, open, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, sep } from 'node:path';
import { blake3File } from '../shared/blake3.js';
import type { Priority } from '../shared/priority.js';
import { MAX_ERROR_CHARS, MAX_LOG_CHARS, type Report, ReportSchema } from '../shared/report.js';
import { UBACKUP_VERSION } from '../shared/version.js';
import type { AgentState } from './agent-state.js';
import type { GlobalConfig, InstanceConfig } from './config.js';
import { applyContract, type ContractOutcome, type LogSnapshot, truncateChars } from './contract.js';
import { runScript, type ScriptResult } from './script-runner.js';

/**
 * One run of one instance: run the script, read its logs, apply the script
 * contract (contract.ts), resolve and hash the file it named, and build the
 * report. Every problem of the script, its logs or its file becomes a failed
 * report with a precise error; this function does not throw for them.
 */

/** The most of a log file that is read, in bytes (only its first lines matter). */
export const MAX_LOG_READ_BYTES = 64 * 1024;

export interface RunInstanceOptions {
  /** A per-run override of the instance's priority (`run-once --priority`); null = the registry's. */
  priority: Priority | null;
  /** Epoch-ms clock for the run's start and end. */
  now: () => number;
  state: AgentState;
  /** Aborting kills the running script (the agent is stopping); the run is reported as failed. */
  signal?: AbortSignal;
  /** Told about problems that do not change the report (e.g. the state could not be saved). */
  warn?: (message: string) => void;
}

type Identity = Pick<
  Report,
  | 'report_id'
  | 'server_id'
  | 'game_id'
  | 'type'
  | 'instance'
  | 'section'
  | 'created_at'
  | 'finished_at'
  | 'exit_code'
  | 'output_tail'
  | 'host_ip'
  | 'priority'
  | 'agent_version'
  | 'transport'
  | 'rsync_model'
  | 'pull_port'
  | 'pull_tls'
>;

/** What a failed report may still say about the file the script named. */
interface FailedFile {
  kind: Report['kind'];
  filename: string | null;
  baseFilename: string | null;
}

const NO_FILE: FailedFile = { kind: null, filename: null, baseFilename: null };

function errnoCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error
    ? String((error as { code: unknown }).code)
    : undefined;
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function failedReport(identity: Identity, log: string, error: string, file: FailedFile = NO_FILE): Report {
  return {
    ...identity,
    status: 'failed',
    kind: file.kind,
    filename: file.filename,
    size: null,
    blake3: null,
    base_filename: file.baseFilename,
    base_created_at: null,
    error: truncateChars(error, MAX_ERROR_CHARS),
    log,
  };
}

/** What kind of file system object `stats` describes, for messages. */
export function describeFileType(stats: Stats): string {
  if (stats.isFile()) return 'a regular file';
  if (stats.isDirectory()) return 'a directory';
  if (stats.isSymbolicLink()) return 'a symbolic link';
  if (stats.isFIFO()) return 'a named pipe';
  if (stats.isSocket()) return 'a socket';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

/**
 * A log file as the contract needs it: content (UTF-8 with replacement, at
 * most MAX_LOG_READ_BYTES) and mtime. null when it does not exist; a problem
 * text when it exists but cannot be read.
 */
export async function readLogSnapshot(
  path: string,
  what: string,
): Promise<LogSnapshot | null | { problem: string }> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    // O_NONBLOCK: a named pipe in the log's place must not hang the agent.
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return null;
    return { problem: `cannot open ${what} ${path}: ${describeError(error)}` };
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile())
      return { problem: `${what} ${path} is ${describeFileType(stats)}, not a regular file` };
    const buffer = Buffer.alloc(Math.min(stats.size, MAX_LOG_READ_BYTES));
    let filled = 0;
    while (filled < buffer.length) {
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return { content: buffer.subarray(0, filled).toString('utf8'), mtimeMs: stats.mtimeMs };
  } catch (error) {
    return { problem: `cannot read ${what} ${path}: ${describeError(error)}` };
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/**
 * The real path of `<backDir>/<filename>`, refusing a file that does not
 * exist, is not a regular file, or (through a symbolic link) lies outside
 * the real back_dir.
 */
export async function resolveBackupFile(
  backDir: string,
  filename: string,
): Promise<{ path: string } | { problem: string }> {
  let realDir: string;
  try {
    realDir = await realpath(backDir);
  } catch (error) {
    return { problem: `back_dir ${backDir} cannot be resolved: ${describeError(error)}` };
  }
  const candidate = join(backDir, filename);
  const shown = JSON.stringify(filename);
  let real: string;
  try {
    real = await realpath(candidate);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') {
      const link = await lstat(candidate).catch(() => null);
      if (link?.isSymbolicLink()) {
        return {
          problem: `back_log names ${shown}, but ${candidate} is a symbolic link whose target does not exist`,
        };
      }
      return { problem: `back_log names ${shown}, but ${candidate} does not exist` };
    }
    return {
      problem: `back_log names ${shown}, but ${candidate} cannot be resolved: ${describeError(error)}`,
    };
  }
  const inside = relative(realDir, real);
  if (inside === '' || inside === '..' || inside.startsWith(`..${sep}`) || isAbsolute(inside)) {
    return {
      problem:
        `back_log names ${shown}, but ${candidate} resolves to ${real}, outside back_dir ${realDir}: ` +
        'a symbolic link out of back_dir is refused',
    };
  }
  let stats: Stats;
  try {
    stats = await stat(real);
  } catch (error) {
    return {
      problem: `back_log names ${shown}, but ${candidate} cannot be examined: ${describeError(error)}`,
    };
  }
  if (!stats.isFile()) {
    return {
      problem: `back_log names ${shown}, but ${candidate} is ${describeFileType(stats)}, not a regular file`,
    };
  }
  return { path: real };
}

/** The contract's outcome, with a log that could not be read reported precisely instead of "missing". */
function decide(
  script: ScriptResult,
  instance: InstanceConfig,
  backLog: LogSnapshot | null | { problem: string },
  lastAllLog: LogSnapshot | null | { problem: string },
): ContractOutcome {
  const outcome = applyContract({
    exitCode: script.exitCode,
    signal: script.signal,
    timedOut: script.timedOut,
    timeoutSeconds: instance.timeoutSeconds,
    runStartedAtMs: script.startedAtMs,
    backLog: backLog !== null && 'problem' in backLog ? null : backLog,
    lastAllLogConfigured: instance.lastAllLog !== null,
    lastAllLog: lastAllLog !== null && 'problem' in lastAllLog ? null : lastAllLog,
  });
  if (outcome.status === 'failed') {
    if (outcome.code === 'back_log_missing' && backLog !== null && 'problem' in backLog) {
      return { ...outcome, error: backLog.problem };
    }
    if (outcome.code === 'last_all_log_missing' && lastAllLog !== null && 'problem' in lastAllLog) {
      return { ...outcome, error: lastAllLog.problem };
    }
  }
  return outcome;
}

/** A failed report saying which fields of `report` failed validation, or null if even that is invalid. */
function invalidReport(identity: Identity, report: Report, issues: string): Report | null {
  const fallback = failedReport(
    identity,
    truncateChars(report.log, MAX_LOG_CHARS),
    `the agent built an invalid report for this run (${issues})${report.error ? `; the run's own error: ${report.error}` : ''}`,
  );
  return ReportSchema.safeParse(fallback).success ? fallback : null;
}

/** Runs one instance's script once and returns the report for it (status ok or failed). */
export async function runInstance(
  instance: InstanceConfig,
  global: GlobalConfig,
  opts: RunInstanceOptions,
): Promise<Report> {
  const script = await runScript({
    script: instance.script,
    timeoutSeconds: instance.timeoutSeconds,
    now: opts.now,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const identity: Identity = {
    report_id: randomUUID(),
    server_id: global.serverId,
    game_id: global.gameId,
    type: instance.type,
    instance: instance.instance,
    section: instance.name,
    created_at: iso(script.startedAtMs),
    finished_at: iso(Math.max(script.finishedAtMs, script.startedAtMs)),
    exit_code: script.exitCode,
    output_tail: script.outputTail,
    host_ip: global.myIp,
    priority: opts.priority,
    agent_version: UBACKUP_VERSION,
    transport: instance.transport,
    // The module only matters (and is only sent) for the rsync transport.
    rsync_model: instance.transport === 'rsync' ? instance.rsyncModel : null,
    // The daemon and `agent serve` listen here; storage nodes pull from host_ip on this port.
    pull_port: global.pullPort ?? (global.listen.port === 0 ? null : global.listen.port),
    pull_tls: Boolean(global.tls),
  };

  const report = await buildReport(instance, opts, script, identity);
  const checked = ReportSchema.safeParse(report);
  if (!checked.success) {
    const issues = checked.error.issues
      .map((issue) => `${issue.path.join('.') || '(report)'}: ${issue.message}`)
      .join('; ');
    const fallback = invalidReport(identity, report, issues);
    if (fallback === null) {
      // The identity itself is invalid (a config the config loader should have refused).
      throw new Error(`[${instance.name}] cannot build a valid report: ${issues}`);
    }
    return fallback;
  }

  if (checked.data.status === 'ok' && checked.data.kind === 'full' && checked.data.filename !== null) {
    try {
      await opts.state.recordFull(
        { type: instance.type, instance: instance.instance },
        { filename: checked.data.filename, createdAt: checked.data.created_at },
      );
    } catch (error) {
      const message =
        `[${instance.name}] could not save the full ${checked.data.filename} in the agent state: ` +
        `${describeError(error)}; the next incrementals may report no base_created_at`;
      (opts.warn ?? ((text: string) => process.stderr.write(`${text}\n`)))(message);
    }
  }
  return checked.data;
}

async function buildReport(
  instance: InstanceConfig,
  opts: RunInstanceOptions,
  script: ScriptResult,
  identity: Identity,
): Promise<Report> {
  if (script.spawnError !== null) {
    return failedReport(identity, '', `could not start the script with /bin/sh: ${script.spawnError}`);
  }
  if (script.aborted) {
    return failedReport(
      identity,
      '',
      'the script was interrupted because the agent stopped; its process group was killed',
    );
  }

  const backLog = await readLogSnapshot(instance.backLog, 'back_log');
  const lastAllLog =
    instance.lastAllLog === null ? null : await readLogSnapshot(instance.lastAllLog, 'last_all_log');
  const outcome = decide(script, instance, backLog, lastAllLog);
  if (outcome.status === 'failed') return failedReport(identity, outcome.log, outcome.error);

  const file: FailedFile = {
    kind: outcome.kind,
    filename: outcome.filename,
    baseFilename: outcome.baseFilename,
  };
  const resolved = await resolveBackupFile(instance.backDir, outcome.filename);
  if ('problem' in resolved) return failedReport(identity, outcome.log, resolved.problem, file);
  let digest: { blake3: string; size: number };
  try {
    digest = await blake3File(resolved.path);
  } catch (error) {
    return failedReport(
      identity,
      outcome.log,
      `cannot read ${join(instance.backDir, outcome.filename)} to hash it: ${describeError(error)}`,
      file,
    );
  }

  let baseCreatedAt: string | null = null;
  if (outcome.kind === 'incremental') {
    const last = await opts.state.lastFull({ type: instance.type, instance: instance.instance });
    baseCreatedAt = last !== null && last.filename === outcome.baseFilename ? last.createdAt : null;
  }
  return {
    ...identity,
    status: 'ok',
    kind: outcome.kind,
    filename: outcome.filename,
    size: digest.size,
    blake3: digest.blake3,
    base_filename: outcome.baseFilename,
    base_created_at: baseCreatedAt,
    error: null,
    log: outcome.log,
  };
}
