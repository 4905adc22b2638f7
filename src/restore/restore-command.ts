import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type DownloadFileResult, downloadFile } from './download-file.js';
import { defaultRestoreDirName } from './restore-dir.js';
import { RESTORE_EXIT, RestoreError, type RestoreExitCode } from './restore-error.js';
import type { RestoreOptions } from './restore-options.js';
import { fetchRestorePlan, type PlanFile, type RestorePlan } from './restore-plan.js';
import { type HookOutcome, runHook } from './run-hook.js';
import { formatBytes, transferProgress } from './transfer-progress.js';

/**
 * `ubackup restore`: fetch the plan, download and verify every file of the
 * chain in order, then run the `--exec` hook with them. Returns the exit
 * code (restore-error.ts); with `--json` one JSON document on stdout tells
 * the outcome, whatever it is. Messages for people go to stderr.
 */

export interface RestoreIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WriteStream;
  cwd: string;
  env: NodeJS.ProcessEnv;
}

export interface RestoreTuning {
  /** Tries per file in one run (default 3). */
  attempts?: number;
  retryDelayMs?: (attempt: number) => number;
  /** No byte from a node for this long cuts a try (default 60 s). */
  stallTimeoutMs?: number;
}

type FileStatus = 'planned' | 'downloaded' | 'reused' | 'failed' | 'pending';

interface FileReport {
  backup_id: number;
  kind: string | null;
  filename: string;
  created_at: string;
  node: string | null;
  size: number;
  blake3: string;
  path: string | null;
  status: FileStatus;
  resumed_from: number;
  bytes_transferred: number;
}

interface RestoreReport {
  ok: boolean;
  exit_code: RestoreExitCode;
  dry_run: boolean;
  at: string | null;
  target_backup_id: number | null;
  dir: string | null;
  files: FileReport[];
  skipped: Array<{ backup_id: number; reason: string }>;
  hook: { command: string; exit_code: number | null; signal: string | null } | null;
  error: { code: string; message: string; details?: unknown } | null;
}

function fileReport(file: PlanFile): FileReport {
  return {
    backup_id: file.backup_id,
    kind: file.kind,
    filename: file.filename,
    created_at: file.created_at,
    node: file.node,
    size: file.size,
    blake3: file.blake3,
    path: null,
    status: 'pending',
    resumed_from: 0,
    bytes_transferred: 0,
  };
}

function describeFile(file: PlanFile): string {
  return `backup ${file.backup_id} (${file.kind ?? 'single'}, ${file.created_at}) ${file.filename}, ${formatBytes(file.size)} on node ${file.node ?? '?'}`;
}

export async function runRestore(
  options: RestoreOptions,
  io: RestoreIo,
  tuning: RestoreTuning = {},
): Promise<RestoreExitCode> {
  const say = (line: string): void => {
    io.stderr.write(`${line}\n`);
  };
  const report: RestoreReport = {
    ok: false,
    exit_code: RESTORE_EXIT.unexpected,
    dry_run: options.dryRun,
    at: options.at,
    target_backup_id: null,
    dir: null,
    files: [],
    skipped: [],
    hook: null,
    error: null,
  };
  const finish = (code: RestoreExitCode): RestoreExitCode => {
    report.ok = code === RESTORE_EXIT.ok;
    report.exit_code = code;
    if (options.json) io.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return code;
  };
  try {
    const plan: RestorePlan = await fetchRestorePlan({
      server: options.server,
      token: options.token,
      serverId: options.serverId,
      type: options.type,
      instance: options.instance,
      at: options.at,
    });
    report.at = plan.at;
    report.target_backup_id = plan.target.backup_id;
    report.skipped = plan.skipped.map((s) => ({ backup_id: s.backup_id, reason: s.reason }));
    report.files = plan.chain.map(fileReport);
    const dir = resolve(io.cwd, options.to ?? defaultRestoreDirName(options, plan));
    report.dir = dir;

    const identity = `${options.serverId}/${options.type}/${options.instance}`;
    if (plan.skipped.length > 0) {
      say(`newer backups of ${identity} cannot be restored, so an older chain is used:`);
      for (const skipped of plan.skipped) say(`  skipped backup ${skipped.backup_id}: ${skipped.reason}`);
    }
    say(
      `restoring ${identity} as of ${plan.at}: backup ${plan.target.backup_id}, a chain of ${plan.chain.length} file(s), ` +
        `${formatBytes(plan.chain.reduce((sum, f) => sum + f.size, 0))}`,
    );
    plan.chain.forEach((file, index) => {
      say(`  ${index + 1}. ${describeFile(file)}`);
    });

    if (options.dryRun) {
      for (const file of report.files) {
        file.status = 'planned';
        file.path = join(dir, file.filename);
      }
      say(`dry run: nothing downloaded; the files would go to ${dir}`);
      if (!options.json) {
        for (const file of report.files) io.stdout.write(`${file.path}\n`);
      }
      return finish(RESTORE_EXIT.ok);
    }

    await mkdir(dir, { recursive: true });
    say(`into ${dir}`);
    const progress = transferProgress(io.stderr);
    for (const [index, file] of plan.chain.entries()) {
      const entry = report.files[index] as FileReport;
      const dest = join(dir, file.filename);
      entry.path = dest;
      if (file.download.url === null) {
        entry.status = 'failed';
        throw new RestoreError(
          RESTORE_EXIT.downloadFailed,
          'no_restore_address',
          `node ${file.node ?? '?'} has no restore address (its listen is off, its port could not be bound, ` +
            `or it runs a UBackup without restores): cannot download ${file.filename}`,
        );
      }
      const label = `[${index + 1}/${plan.chain.length}] ${file.filename}`;
      let begun = false;
      let result: DownloadFileResult;
      try {
        result = await downloadFile({
          url: file.download.url,
          ticket: file.download.ticket,
          dest,
          size: file.size,
          blake3: file.blake3,
          ...(tuning.attempts !== undefined ? { attempts: tuning.attempts } : {}),
          ...(tuning.retryDelayMs !== undefined ? { retryDelayMs: tuning.retryDelayMs } : {}),
          ...(tuning.stallTimeoutMs !== undefined ? { timeoutMs: tuning.stallTimeoutMs } : {}),
          note: (line) => say(`  ${line}`),
          onProgress: (bytes) => {
            if (!begun) {
              progress.begin(label, file.size, bytes);
              begun = true;
            } else progress.update(bytes);
          },
        });
      } catch (error) {
        progress.end(false);
        entry.status = 'failed';
        throw error;
      }
      progress.end(true);
      entry.status = result.reused ? 'reused' : 'downloaded';
      entry.resumed_from = result.resumedFrom;
      entry.bytes_transferred = result.bytesTransferred;
      say(
        result.reused
          ? `${label}: already here and verified`
          : `${label}: ${formatBytes(result.size)} verified (BLAKE3)` +
              (result.resumedFrom > 0 ? `, resumed at ${formatBytes(result.resumedFrom)}` : ''),
      );
    }
    const paths = report.files.map((f) => f.path as string);

    if (options.exec !== null) {
      say(`running the hook: ${options.exec} <${paths.length} file(s)>`);
      let outcome: HookOutcome;
      try {
        outcome = await runHook({
          command: options.exec,
          files: paths,
          restoreDir: dir,
          env: io.env,
          // stdout carries the JSON report alone.
          ...(options.json ? { stdio: 'stderr' as const } : {}),
        });
      } catch (error) {
        throw new RestoreError(
          RESTORE_EXIT.hookFailed,
          'hook_failed',
          `the hook could not start: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
      report.hook = { command: options.exec, exit_code: outcome.exitCode, signal: outcome.signal };
      if (outcome.exitCode !== 0) {
        throw new RestoreError(
          RESTORE_EXIT.hookFailed,
          'hook_failed',
          outcome.signal !== null
            ? `the hook was ended by ${outcome.signal}; the files stay in ${dir}`
            : `the hook exited with status ${outcome.exitCode}; the files stay in ${dir}`,
        );
      }
      say('the hook finished (exit status 0)');
    }
    say(`restored backup ${plan.target.backup_id} of ${identity} into ${dir}`);
    if (!options.json && options.exec === null) {
      for (const path of paths) io.stdout.write(`${path}\n`);
    }
    return finish(RESTORE_EXIT.ok);
  } catch (error) {
    const failure =
      error instanceof RestoreError
        ? error
        : new RestoreError(
            RESTORE_EXIT.unexpected,
            'unexpected',
            error instanceof Error ? (error.stack ?? error.message) : String(error),
          );
    report.error = {
      code: failure.code,
      message: failure.message,
      ...(failure.details !== undefined ? { details: failure.details } : {}),
    };
    say(`ubackup restore: ${failure.message}`);
    if (failure.details !== undefined) say(JSON.stringify(failure.details, null, 2));
    return finish(failure.exitCode);
  }
}
