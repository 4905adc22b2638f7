import { spawn } from 'node:child_process';

/**
 * Runs the operator's `--exec` hook once the chain is downloaded and
 * verified:
 *
 *   sh -c '<command> "$@"' ubackup-restore <file 1> <file 2> …
 *
 * The command is the operator's own text from the command line; the files
 * (absolute paths, in chain order: the full first) reach it only as
 * positional arguments, never inside the shell string, so no file name is
 * ever parsed by the shell. `--exec 'sh restore.sh'` runs
 * `sh restore.sh <file 1> <file 2> …`. The hook also gets
 * `UBACKUP_FILES` (the same paths, one per line) and `UBACKUP_RESTORE_DIR`,
 * and inherits stdin, stdout, stderr, the environment and the working
 * directory. With `stdio: 'stderr'` (`restore --json`) the hook's stdout goes
 * to stderr, so that stdout carries the JSON report alone.
 */

export const HOOK_ARGV0 = 'ubackup-restore';

export interface HookOutcome {
  /** The exit status, or null when a signal ended the hook. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
}

export interface RunHookOptions {
  command: string;
  /** Absolute paths, in chain order. */
  files: readonly string[];
  restoreDir: string;
  env?: NodeJS.ProcessEnv;
  /** Default 'inherit'; 'stderr': stdout goes to stderr too; tests capture the output with 'pipe'. */
  stdio?: 'inherit' | 'stderr' | 'pipe';
  /** With stdio 'pipe': receives the hook's stdout and stderr. */
  onOutput?: (chunk: Buffer) => void;
}

/** The argv that runs `command` with `files` as its arguments. */
export function hookArgv(command: string, files: readonly string[]): string[] {
  return ['-c', `${command} "$@"`, HOOK_ARGV0, ...files];
}

export function runHook(options: RunHookOptions): Promise<HookOutcome> {
  return new Promise((resolveOutcome, rejectOutcome) => {
    const child = spawn('sh', hookArgv(options.command, options.files), {
      stdio: options.stdio === 'stderr' ? ['inherit', 2, 'inherit'] : (options.stdio ?? 'inherit'),
      env: {
        ...(options.env ?? process.env),
        UBACKUP_FILES: options.files.join('\n'),
        UBACKUP_RESTORE_DIR: options.restoreDir,
      },
    });
    if (options.stdio === 'pipe') {
      child.stdin?.end();
      child.stdout?.on('data', (chunk: Buffer) => options.onOutput?.(chunk));
      child.stderr?.on('data', (chunk: Buffer) => options.onOutput?.(chunk));
    }
    child.once('error', rejectOutcome);
    child.once('close', (exitCode, signal) => resolveOutcome({ exitCode, signal }));
  });
}
