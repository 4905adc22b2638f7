import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';

/**
 * Runs an operator's backup script (DESIGN §4): `/bin/sh -c <script>` in its
 * own process group, stdin closed, stdout and stderr kept only as a bounded
 * tail, with a timeout that kills the whole group (SIGTERM, then SIGKILL).
 */

/** How much of the script's combined output the report keeps, in bytes. */
export const OUTPUT_TAIL_BYTES = 4096;
/** Time between SIGTERM and SIGKILL of the script's process group, in milliseconds. */
export const KILL_GRACE_MS = 10_000;
/**
 * After the shell exits, how long to keep reading output that background
 * children still write into the inherited pipes, in milliseconds. A script that
 * leaves a daemon running (`something &`) must not hold the run open forever.
 */
export const PIPE_DRAIN_MS = 2_000;

/** setTimeout's largest delay; longer ones would fire at once. */
const MAX_TIMER_MS = 2_147_483_647;

export interface RunScriptOptions {
  /** Shell text, run as `/bin/sh -c <script>` (the operator's own config). */
  script: string;
  timeoutSeconds: number;
  /** The whole environment of the script; default: the agent's own. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Aborting kills the script's group like a timeout does (used when the agent stops). */
  signal?: AbortSignal;
  /** Epoch-ms clock for startedAtMs / finishedAtMs; default Date.now. */
  now?: () => number;
  /** Default KILL_GRACE_MS. */
  killGraceMs?: number;
}

export interface ScriptResult {
  /** null when the shell was killed by a signal (or could not be started). */
  exitCode: number | null;
  /** e.g. 'SIGTERM'. */
  signal: string | null;
  /** The run hit its timeout and its process group was killed. */
  timedOut: boolean;
  /** `signal` was aborted and the process group was killed. */
  aborted: boolean;
  /** Why the shell could not be started (e.g. cwd missing), or null. */
  spawnError: string | null;
  /** Taken before the process is spawned. */
  startedAtMs: number;
  finishedAtMs: number;
  /** The last OUTPUT_TAIL_BYTES of stdout+stderr as they arrived, UTF-8 with replacement. */
  outputTail: string;
}

/** Keeps the last `limit` bytes written to it; never more in memory than `limit` + one chunk. */
export class OutputTail {
  private buffer: Buffer = Buffer.alloc(0);

  constructor(private readonly limit: number = OUTPUT_TAIL_BYTES) {}

  push(chunk: Buffer): void {
    if (chunk.length >= this.limit) {
      this.buffer = Buffer.from(chunk.subarray(chunk.length - this.limit));
      return;
    }
    const joined = Buffer.concat([this.buffer, chunk]);
    this.buffer = joined.length > this.limit ? joined.subarray(joined.length - this.limit) : joined;
  }

  /** Raw bytes kept. */
  bytes(): Buffer {
    return this.buffer;
  }

  /**
   * The tail as text. When the cut fell inside a multi-byte character, its
   * leftover continuation bytes (at most 3) are dropped rather than shown as
   * U+FFFD; anything else invalid becomes U+FFFD.
   */
  text(): string {
    let start = 0;
    while (start < 3 && start < this.buffer.length && isContinuationByte(this.buffer[start] ?? 0)) start += 1;
    // Only drop them if the tail really was cut (a full buffer); a short output is shown as it is.
    if (this.buffer.length < this.limit) start = 0;
    return this.buffer.subarray(start).toString('utf8');
  }
}

function isContinuationByte(byte: number): boolean {
  return (byte & 0xc0) === 0x80;
}

function killGroup(pid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false; // ESRCH: the group is gone
  }
}

/**
 * Whether the process group still has a member that is not a zombie. A zombie
 * (an orphan its new parent has not reaped yet) still answers kill(-pgid, 0)
 * but holds nothing; /proc tells them apart (without /proc: any member counts).
 */
async function groupHasLiveMembers(pgid: number): Promise<boolean> {
  if (!killGroup(pgid, 0)) return false;
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return true;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = await readFile(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid pgrp …"; comm may contain spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pgid && fields[0] !== 'Z') return true;
  }
  return false;
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Runs the script to the end (or its timeout) and reports how it ended. Never rejects. */
export function runScript(options: RunScriptOptions): Promise<ScriptResult> {
  const now = options.now ?? Date.now;
  const killGraceMs = options.killGraceMs ?? KILL_GRACE_MS;
  const tail = new OutputTail();
  const startedAtMs = now();

  return new Promise<ScriptResult>((resolveRun) => {
    let timedOut = false;
    let aborted = false;
    let killing = false;
    let settled = false;
    let timeoutTimer: NodeJS.Timeout | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    let drainTimer: NodeJS.Timeout | undefined;
    let killDeadlineReached = false;
    let exited = false;

    const child = spawn('/bin/sh', ['-c', options.script], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: options.env ?? process.env,
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    });
    const pid = child.pid;

    const onAbort = (): void => {
      if (killing || exited) return;
      aborted = true;
      terminate();
    };

    function cleanup(): void {
      if (timeoutTimer) clearTimeout(timeoutTimer);
      if (killTimer) clearTimeout(killTimer);
      if (drainTimer) clearTimeout(drainTimer);
      options.signal?.removeEventListener('abort', onAbort);
    }

    function finish(result: Omit<ScriptResult, 'startedAtMs' | 'finishedAtMs' | 'outputTail'>): void {
      if (settled) return;
      settled = true;
      cleanup();
      resolveRun({
        ...result,
        startedAtMs,
        finishedAtMs: Math.max(now(), startedAtMs),
        outputTail: tail.text(),
      });
    }

    function terminate(): void {
      // After the shell exited the run is over: background children it left are not killed
      // (and its process group id may no longer be ours).
      if (killing || exited || pid === undefined) return;
      killing = true;
      killGroup(pid, 'SIGTERM');
      killTimer = setTimeout(() => {
        killDeadlineReached = true;
        killGroup(pid, 'SIGKILL');
      }, killGraceMs);
    }

    child.stdout?.on('data', (chunk: Buffer) => tail.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => tail.push(chunk));

    child.once('error', (error) => {
      // Spawning failed (no 'close' follows when there is no process).
      if (pid === undefined) {
        finish({
          exitCode: null,
          signal: null,
          timedOut: false,
          aborted: false,
          spawnError: describeError(error),
        });
      }
    });

    if (pid === undefined) return;

    timeoutTimer = setTimeout(
      () => {
        timedOut = true;
        terminate();
      },
      Math.min(options.timeoutSeconds * 1000, MAX_TIMER_MS),
    );
    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });

    child.once('exit', () => {
      exited = true;
      if (timeoutTimer) clearTimeout(timeoutTimer);
      // Background children may keep the pipes open; stop waiting for them after a while.
      drainTimer = setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
      }, PIPE_DRAIN_MS);
    });

    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      const result = { exitCode: code, signal, timedOut, aborted, spawnError: null };
      if (!killing) {
        finish(result);
        return;
      }
      // Killed on timeout/abort and the shell is gone, but part of its group may ignore
      // SIGTERM: wait for the group to empty or for the SIGKILL. While the group has
      // members its id cannot be reused, so the SIGKILL cannot hit a stranger.
      void (async () => {
        while (!killDeadlineReached && (await groupHasLiveMembers(pid))) {
          await new Promise<void>((wake) => setTimeout(wake, 50));
        }
        finish(result);
      })();
    });
  });
}
