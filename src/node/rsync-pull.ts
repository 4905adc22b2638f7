import { type ChildProcess, spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm, rmdir } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { Blake3Hasher } from '@napi-rs/blake-hash';
import type { FileDigest } from '../shared/blake3.js';
import { fsyncDir } from '../shared/fsync-dir.js';
import type { JobFailureCode, LeasedJob } from '../shared/node-protocol.js';
import { componentProblem, describeComponentProblem } from '../shared/path-component.js';
import { commitAndReport, type PullHttpResult } from './http-pull.js';
import { StoreConflictError } from './part-file.js';
import {
  incomingDir,
  partPath,
  StorageLayoutError,
  storedAbsolutePath,
  storedRelativePath,
} from './storage-layout.js';

/**
 * Pulls one leased file from the database host's rsync daemon (the old
 * system's transport: `transport = rsync`, `rsync_model = module[/dir…]` in the
 * agent's instance config) into the node's store, through the same
 * verify-and-commit path as the HTTP puller (DESIGN §3 invariants 3 and 5):
 *
 *   rsync ─► .incoming/<job>.rsync/<filename> ─hash+fsync─► .incoming/<job>.part ─► commitPart
 *
 * rsync runs as `rsync … -- rsync://<host>[:<port>]/<module>/<path> <dest>`
 * from an argv array (no shell); every piece is validated before anything is
 * spawned. rsync writes into a temp file and renames it, and an interrupted
 * transfer keeps what it received in `.incoming/<job>.rsync/.rsync-partial/`,
 * which the next attempt on this node uses as the basis of a delta transfer
 * (rsync's resume). `--inplace` is not used: rsync refuses it together with
 * `--partial-dir`, and the node never needs a half-written file under a name
 * it would take for whole. Only after rsync exits 0 is the received file
 * hashed, fsynced and moved to `<job>.part`, and commitPart compares its size
 * and BLAKE3 with what the agent reported, exactly as for HTTP.
 *
 * The node runs the rsync client; it needs rsync ≥ 3.1 (`--info=progress2`).
 * Production uses the daemon's default port 873: the job's source has no port;
 * `rsyncPort` exists for tests.
 */

export interface PullRsyncOptions {
  job: LeasedJob;
  /** The node's `server_root_path`. */
  root: string;
  /** This transfer's rate in bytes/s (rsync `--bwlimit`, rounded down to whole KiB/s, at least 1); 0 = unlimited. */
  bytesPerSecond: number;
  /** Aborts the transfer (shutdown, lease lost): rsync is killed, what it received is kept for a resume. */
  signal?: AbortSignal;
  /** rsync's `--timeout` (no data for this long) and `--contimeout` (daemon connection); at least 1. */
  timeoutSeconds: number;
  /** The rsync program; default `rsync` from PATH. */
  rsyncPath?: string;
  /** The daemon's TCP port; default rsync's own (873). The server's JobSource carries none: tests only. */
  rsyncPort?: number;
  /** Bytes of the file done so far (rsync's progress, matched basis data included). */
  onProgress?: (bytesDone: number) => void;
  /** Called with the pid of the rsync process once it is spawned (tests, logging). */
  onSpawn?: (pid: number) => void;
}

/** Same shape as the HTTP puller's result; `bytesTransferred` is rsync's "Total bytes received". */
export type PullRsyncResult = PullHttpResult;

/** A job's rsync source cannot be pulled safely; nothing was spawned. No retry fixes it. */
export class RsyncSourceError extends Error {
  override readonly name = 'RsyncSourceError';
}

/** The validated pieces of an rsync source. */
export interface RsyncTarget {
  /** `rsync://host[:port]/module/path`, daemon wildcards in the path escaped. */
  url: string;
  host: string;
  module: string;
  /** Directory components under the module, then the file name. */
  components: string[];
}

/** Directory under `.incoming` where rsync works for one job. */
export const RSYNC_WORK_SUFFIX = '.rsync';
/** rsync's `--partial-dir`, relative to the destination's directory. */
export const RSYNC_PARTIAL_DIR = '.rsync-partial';
/** SIGTERM first (rsync moves its temp file into the partial dir), SIGKILL after this. */
export const RSYNC_KILL_GRACE_MS = 5000;

const STDERR_TAIL_CHARS = 2000;
const STDOUT_TAIL_CHARS = 8192;
const FILE_MODE = 0o640;
const READ_BUFFER_BYTES = 1024 * 1024;

/** rsync exit codes that are network or protocol trouble (RERR_STARTCLIENT, SOCKETIO, STREAMIO, TIMEOUT, CONTIMEOUT). */
const TRANSIENT_EXIT_CODES: ReadonlySet<number> = new Set([5, 10, 12, 30, 35]);
/** RERR_PARTIAL and RERR_VANISHED: some files were not transferred. */
const PARTIAL_EXIT_CODES: ReadonlySet<number> = new Set([23, 24]);
const SOURCE_GONE = /No such file|file has vanished/;

/** `<root>/.incoming/<jobId>.rsync`: rsync's destination directory for a job. */
export function rsyncWorkDir(root: string, jobId: number): string {
  // partPath validates the job id.
  partPath(root, jobId);
  return join(incomingDir(root), `${jobId}${RSYNC_WORK_SUFFIX}`);
}

function checkComponent(what: string, value: string): void {
  const problem = componentProblem(value);
  if (problem !== null) {
    throw new RsyncSourceError(`rsync ${what} ${JSON.stringify(value)} ${describeComponentProblem(problem)}`);
  }
  // Harmless inside the rsync:// URL, but never let a name look like an option anywhere.
  if (value.startsWith('-')) {
    throw new RsyncSourceError(`rsync ${what} ${JSON.stringify(value)} starts with "-"`);
  }
}

/** The daemon expands wildcards in the requested path: escape them so the name is taken literally. */
function escapeDaemonWildcards(component: string): string {
  return component.replace(/[*?[\]]/g, (c) => `\\${c}`);
}

/**
 * Validates a job's rsync source and builds its URL. Throws RsyncSourceError
 * when the host is not an IP address, when the module or a path component is
 * empty (the file name), `.`/`..`, has a separator, NUL or control character,
 * starts with `-`, or when the path's last component is not the job's file
 * name. Empty directory components (`rsync_model = backup/dir/`) are dropped.
 */
export function rsyncTarget(job: LeasedJob, port?: number): RsyncTarget {
  const source = job.source;
  if (source.transport !== 'rsync') {
    throw new RsyncSourceError(`job ${job.job_id} uses transport ${source.transport}, not rsync`);
  }
  const family = isIP(source.host);
  if (family === 0)
    throw new RsyncSourceError(`rsync host ${JSON.stringify(source.host)} is not an IP address`);
  if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535)) {
    throw new RsyncSourceError(`rsync port ${port} is not a TCP port`);
  }
  checkComponent('module', source.module);
  const parts = source.path.split('/');
  const filename = parts.pop() ?? '';
  const dirs = parts.filter((p) => p.length > 0);
  for (const dir of dirs) checkComponent('path component', dir);
  checkComponent('file name', filename);
  if (filename === RSYNC_PARTIAL_DIR) {
    throw new RsyncSourceError(
      `rsync file name ${JSON.stringify(filename)} is reserved for rsync's partial files`,
    );
  }
  if (filename !== job.filename) {
    throw new RsyncSourceError(
      `rsync path ${JSON.stringify(source.path)} does not end in the job's file name ${JSON.stringify(job.filename)}`,
    );
  }
  const components = [...dirs, filename];
  const host = family === 6 ? `[${source.host}]` : source.host;
  const authority = port === undefined ? host : `${host}:${port}`;
  const path = components.map(escapeDaemonWildcards).join('/');
  return {
    url: `rsync://${authority}/${source.module}/${path}`,
    host: source.host,
    module: source.module,
    components,
  };
}

/** rsync's `--bwlimit` value (KiB/s) for a rate in bytes/s, or null for unlimited. */
export function rsyncBwlimitKiB(bytesPerSecond: number): number | null {
  if (!Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0) return null;
  return Math.max(1, Math.floor(bytesPerSecond / 1024));
}

/**
 * The rate for one rsync transfer: `rsync_bwlimit` (per transfer), capped by an
 * equal share of the node-wide `max_bandwidth` over the node's slots (`weight`);
 * 0 = unlimited. The node-wide token bucket paces HTTP pulls byte by byte, but
 * an external rsync cannot take from it, so each rsync gets at most
 * max_bandwidth / weight, fixed when it starts: rsync transfers alone never
 * exceed max_bandwidth together, even when all slots run one. (Dividing by the
 * transfers running at start would let the sum exceed it as more start.) With a
 * mix of HTTP and rsync transfers the total can exceed max_bandwidth by up to
 * the rsync shares.
 */
export function rsyncTransferRate(perTransfer: number, nodeWide: number, slots: number): number {
  const share = nodeWide > 0 ? Math.max(1, Math.floor(nodeWide / Math.max(1, slots))) : 0;
  if (perTransfer > 0 && share > 0) return Math.min(perTransfer, share);
  return perTransfer > 0 ? perTransfer : share;
}

/** The argv (after the program) for one pull. */
export function rsyncArgs(options: {
  url: string;
  destination: string;
  timeoutSeconds: number;
  bytesPerSecond: number;
  maxSize: number;
}): string[] {
  const timeout = Math.max(1, Math.ceil(options.timeoutSeconds));
  const kib = rsyncBwlimitKiB(options.bytesPerSecond);
  return [
    '--no-motd',
    '--no-human-readable',
    '--info=progress2,skip1',
    '--stats',
    `--timeout=${timeout}`,
    `--contimeout=${timeout}`,
    '--partial',
    `--partial-dir=${RSYNC_PARTIAL_DIR}`,
    // A source larger than reported is skipped ("is over max-size") instead of filling the disk.
    `--max-size=${options.maxSize}`,
    ...(kib === null ? [] : [`--bwlimit=${kib}`]),
    '--',
    options.url,
    options.destination,
  ];
}

/**
 * Never throws for network, rsync or local I/O problems: those come back as
 * `{ ok: false }` (`transient` keeps rsync's partial file for a resume). It
 * throws only what no retry can fix: RsyncSourceError (before spawning
 * anything), StorageLayoutError (the job's names cannot be a path) and
 * StoreConflictError (a different file already sits at the final path).
 */
export async function pullRsync(options: PullRsyncOptions): Promise<PullRsyncResult> {
  const { job } = options;
  const relativePath = storedRelativePath(job);
  const target = rsyncTarget(job, options.rsyncPort);
  const root = resolve(options.root);
  const progress = { bytesTransferred: 0 };
  try {
    return await pull({ ...options, root }, target, relativePath, progress);
  } catch (error) {
    if (isPermanent(error)) throw error;
    const message = error instanceof Error ? error.message : String(error);
    return failure('transient', message, progress.bytesTransferred);
  }
}

function isPermanent(error: unknown): boolean {
  return (
    error instanceof StorageLayoutError ||
    error instanceof StoreConflictError ||
    error instanceof RsyncSourceError
  );
}

async function pull(
  options: PullRsyncOptions,
  target: RsyncTarget,
  relativePath: string,
  progress: { bytesTransferred: number },
): Promise<PullRsyncResult> {
  const { job, root } = options;
  const work = rsyncWorkDir(root, job.job_id);
  const part = partPath(root, job.job_id);
  const received = join(work, job.filename);

  // Crash after the move and before the sidecar: the file is in place and the part is gone.
  if ((await exists(storedAbsolutePath(root, relativePath))) && !(await exists(part))) {
    const result = await commitAndReport(options, relativePath, undefined, 0);
    await rm(work, { recursive: true, force: true });
    return result;
  }
  if (options.signal?.aborted)
    return failure('transient', `aborted: ${describeReason(options.signal.reason)}`, 0);

  await mkdir(work, { recursive: true });
  await prepareWorkDir(work, job.filename, part, received);

  const run = await runRsync(options, target, received);
  progress.bytesTransferred = run.bytesReceived;
  const outcome = classify(run, options, target);
  if (outcome !== null) {
    if (outcome.code === 'transient') await removeIfEmpty(work);
    else await rm(work, { recursive: true, force: true });
    return failure(outcome.code, outcome.error, progress.bytesTransferred);
  }

  const stats = await lstat(received).catch(() => null);
  if (stats === null || !stats.isFile()) {
    await rm(work, { recursive: true, force: true });
    const tail = lastLines(`${run.stdout}\n${run.stderr}`);
    return failure(
      'source_missing',
      `rsync exited 0 but delivered no regular file for ${target.url}${tail ? `: ${tail}` : ''}`,
      progress.bytesTransferred,
    );
  }
  const digest = stats.size === job.size ? await hashAndSync(received) : undefined;
  await rename(received, part);
  await fsyncDir(incomingDir(root));
  await rm(work, { recursive: true, force: true });
  return commitAndReport(options, relativePath, digest, progress.bytesTransferred);
}

/**
 * Leaves in the work directory only what helps rsync: the previous complete
 * file (a delta basis) and the partial dir. A part left by a crash between the
 * move and the commit goes back where rsync uses it as the basis; stray temp
 * files of a killed rsync (`.<name>.XXXXXX`) are removed.
 */
async function prepareWorkDir(work: string, filename: string, part: string, received: string): Promise<void> {
  const previous = await lstat(received).catch(() => null);
  if (previous !== null && !previous.isFile()) await rm(received, { recursive: true, force: true });
  if (await exists(part)) {
    if (await exists(received)) await rm(part, { force: true });
    else await rename(part, received);
  }
  for (const entry of await readdir(work)) {
    if (entry === filename || entry === RSYNC_PARTIAL_DIR) continue;
    await rm(join(work, entry), { recursive: true, force: true });
  }
}

interface RsyncRun {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** The pull was aborted through options.signal. */
  aborted: boolean;
  /** spawn failed (no such program, …). */
  spawnError: Error | null;
  stdout: string;
  stderr: string;
  bytesReceived: number;
}

function runRsync(options: PullRsyncOptions, target: RsyncTarget, destination: string): Promise<RsyncRun> {
  const { job, signal } = options;
  const args = rsyncArgs({
    url: target.url,
    destination,
    timeoutSeconds: options.timeoutSeconds,
    bytesPerSecond: options.bytesPerSecond,
    maxSize: job.size,
  });
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C' };
  // These would change how rsync sends or stores the path; ours are explicit.
  for (const name of ['RSYNC_OLD_ARGS', 'RSYNC_PROTECT_ARGS', 'RSYNC_PARTIAL_DIR']) delete env[name];

  return new Promise<RsyncRun>((resolveRun) => {
    const run: RsyncRun = {
      exitCode: null,
      signal: null,
      aborted: false,
      spawnError: null,
      stdout: '',
      stderr: '',
      bytesReceived: 0,
    };
    let child: ChildProcess;
    try {
      child = spawn(options.rsyncPath ?? 'rsync', args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    } catch (error) {
      run.spawnError = error instanceof Error ? error : new Error(String(error));
      resolveRun(run);
      return;
    }
    let killTimer: NodeJS.Timeout | null = null;
    const onAbort = (): void => {
      run.aborted = true;
      child.kill('SIGTERM');
      killTimer ??= setTimeout(() => child.kill('SIGKILL'), RSYNC_KILL_GRACE_MS);
    };
    if (child.pid !== undefined) options.onSpawn?.(child.pid);

    let pending = '';
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (text: string) => {
      run.stdout = (run.stdout + text).slice(-STDOUT_TAIL_CHARS);
      // progress2 rewrites its line with \r: "   1048576  25%  1.00MB/s  0:00:03".
      const pieces = (pending + text).split(/[\r\n]/);
      pending = pieces.pop() ?? '';
      for (const piece of pieces) {
        const match = /^\s*(\d+)\s+\d+%/.exec(piece);
        if (match?.[1] !== undefined) options.onProgress?.(Number(match[1]));
      }
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => {
      run.stderr = (run.stderr + text).slice(-STDERR_TAIL_CHARS);
    });
    child.on('error', (error) => {
      // Only a failed spawn ends here without a 'close'.
      if (child.pid === undefined) {
        run.spawnError = error;
        signal?.removeEventListener('abort', onAbort);
        resolveRun(run);
      }
    });
    // 'close' waits for every holder of the pipes, rsync's forked receiver included.
    child.once('close', (code, sig) => {
      if (killTimer) clearTimeout(killTimer);
      signal?.removeEventListener('abort', onAbort);
      run.exitCode = code;
      run.signal = sig;
      const received = /Total bytes received:\s*(\d+)/.exec(run.stdout);
      run.bytesReceived = received?.[1] !== undefined ? Number(received[1]) : 0;
      resolveRun(run);
    });
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** A failure to report, or null when rsync succeeded (the file is then checked). */
function classify(
  run: RsyncRun,
  options: PullRsyncOptions,
  target: RsyncTarget,
): { code: JobFailureCode; error: string } | null {
  if (run.spawnError) {
    return {
      code: 'transient',
      error: `cannot run ${options.rsyncPath ?? 'rsync'}: ${run.spawnError.message}`,
    };
  }
  if (run.aborted) {
    return {
      code: 'transient',
      error: `aborted: ${describeReason(options.signal?.reason)}; rsync was stopped`,
    };
  }
  const tail = lastLines(run.stderr);
  const detail = tail ? `: ${tail}` : '';
  if (run.exitCode === 0) {
    if (/is over max-size/.test(run.stdout)) {
      return {
        code: 'size_mismatch',
        error: `the rsync source ${target.url} is larger than the reported ${options.job.size} bytes`,
      };
    }
    return null;
  }
  if (run.exitCode === null) {
    return { code: 'transient', error: `rsync was killed by ${run.signal ?? 'a signal'}${detail}` };
  }
  if (PARTIAL_EXIT_CODES.has(run.exitCode) && SOURCE_GONE.test(run.stderr)) {
    return { code: 'source_missing', error: `rsync: ${target.url} is not on the host${detail}` };
  }
  const kind = TRANSIENT_EXIT_CODES.has(run.exitCode) ? 'network or daemon error' : 'error';
  return {
    code: 'transient',
    error: `rsync exited with code ${run.exitCode} (${kind}) for ${target.url}${detail}`,
  };
}

/** Hashes the received file, gives it the store's mode and fsyncs it (rsync itself does not). */
async function hashAndSync(path: string): Promise<FileDigest> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const hasher = new Blake3Hasher();
    const buffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
    let size = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, size);
      if (bytesRead === 0) break;
      hasher.update(buffer.subarray(0, bytesRead));
      size += bytesRead;
    }
    await handle.chmod(FILE_MODE);
    await handle.sync();
    return { size, blake3: hasher.digest('hex') };
  } finally {
    await handle.close();
  }
}

async function removeIfEmpty(dir: string): Promise<void> {
  await rmdir(dir).catch(() => undefined);
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

function lastLines(text: string, count = 3): string {
  return text
    .split(/[\r\n]+/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
    .slice(-count)
    .join(' | ');
}

function failure(code: JobFailureCode, error: string, bytesTransferred: number): PullRsyncResult {
  return { ok: false, code, error, bytesTransferred };
}

function describeReason(reason: unknown): string {
  return reason instanceof Error ? reason.message : String(reason);
}
