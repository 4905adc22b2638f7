import { lstat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { type Dispatcher, request } from 'undici';
import type { JobFailureCode, LeasedJob } from '../shared/node-protocol.js';
import { UBACKUP_VERSION } from '../shared/version.js';
import { commitPart, openPart, type PartFile, removePart, StoreConflictError } from './part-file.js';
import {
  partPath,
  type Sidecar,
  StorageLayoutError,
  storedAbsolutePath,
  storedRelativePath,
} from './storage-layout.js';
import type { TokenBucket } from './token-bucket.js';

/**
 * Pulls one leased file from the database host's agent over HTTP(S) into the
 * node's store (DESIGN §3 invariants 3 and 5): resumes from the job's `.part`
 * with a Range request, streams the body through the bandwidth limiters into
 * the part while hashing it, then verifies and commits it.
 */

export interface PullHttpOptions {
  job: LeasedJob;
  /** The node's `server_root_path`. */
  root: string;
  /** Every bucket a byte must pass: the node-wide one and the transfer's own. */
  limiters: readonly TokenBucket[];
  /** Bytes in the part so far (resumed bytes included); called as data arrives. */
  onProgress?: (bytesDone: number) => void;
  /** Aborts the transfer (shutdown, lease lost); the part is kept for a resume. */
  signal?: AbortSignal;
  /** No byte from the agent for this long (connecting, waiting for headers, or mid-body) aborts the pull. */
  timeoutMs: number;
  /** HTTP client to use; default: undici's global keep-alive agent. */
  dispatcher?: Dispatcher;
}

export type PullHttpResult =
  | {
      ok: true;
      /** Absolute path of the stored file. */
      path: string;
      /** Relative to the root, as `complete` reports it. */
      relativePath: string;
      size: number;
      blake3: string;
      /** Bytes received over the network by this call (excludes resumed bytes). */
      bytesTransferred: number;
      /** The verified file was already in place (a retry after a crash); nothing was downloaded. */
      alreadyPresent: boolean;
    }
  | {
      ok: false;
      code: JobFailureCode;
      error: string;
      bytesTransferred: number;
    };

/** Bytes the HTTP body may buffer ahead of the writer. */
const BODY_HIGH_WATER_MARK = 256 * 1024;
const ERROR_SNIPPET_BYTES = 300;

class StallError extends Error {
  override readonly name = 'StallError';
}

/** The sidecar written next to the file, from the job as the server leased it. */
export function sidecarForJob(job: LeasedJob, storedAt: Date): Sidecar {
  return {
    backup_id: job.backup_id,
    report_id: job.report_id,
    blake3: job.blake3,
    size: job.size,
    created_at: job.created_at,
    kind: job.kind,
    base_backup_id: job.base_backup_id,
    game_id: job.game_id,
    type: job.type,
    server_id: job.server_id,
    instance: job.instance,
    filename: job.filename,
    stored_at: storedAt.toISOString(),
  };
}

/**
 * Never throws for network, HTTP or local I/O problems: those come back as
 * `{ ok: false }` (`transient` keeps the part for a resume). It throws only
 * what no retry can fix: StorageLayoutError (the job's names cannot be a path)
 * and StoreConflictError (a different file already sits at the final path).
 */
export async function pullHttp(options: PullHttpOptions): Promise<PullHttpResult> {
  const { job } = options;
  if (job.source.transport !== 'http') {
    throw new Error(`job ${job.job_id} uses transport ${job.source.transport}, not http`);
  }
  const relativePath = storedRelativePath(job);
  const progress = { bytesTransferred: 0 };
  try {
    return await pull(options, job.source.url, relativePath, progress);
  } catch (error) {
    if (error instanceof StorageLayoutError || error instanceof StoreConflictError) throw error;
    return failure('transient', describe(error, options), progress.bytesTransferred);
  }
}

async function pull(
  options: PullHttpOptions,
  url: string,
  relativePath: string,
  progress: { bytesTransferred: number },
): Promise<PullHttpResult> {
  const { job, root } = options;

  // Crash after the move and before the sidecar: the file is in place and the part is gone.
  if ((await exists(storedAbsolutePath(root, relativePath))) && !(await exists(partPath(root, job.job_id)))) {
    return commitAndReport(options, relativePath, undefined, 0);
  }

  const part = await openPart(root, job.job_id);
  let result: PullHttpResult | undefined;
  try {
    if (part.size > job.size) await part.reset();
    options.onProgress?.(part.size);
    if (part.size < job.size) result = (await download(options, url, part, progress)) ?? undefined;
    // Here the part holds all the bytes the agent has (or said it has): verify and commit.
    result ??= await commitAndReport(options, relativePath, await part.finish(), progress.bytesTransferred);
    return result;
  } finally {
    await part.close();
    // Keep a part only when it can help a resume: not an empty one, not one whose source is gone.
    if (result?.ok !== true && (part.size === 0 || result?.code === 'source_missing')) {
      await removePart(root, job.job_id).catch(() => undefined);
    }
  }
}

/**
 * Verifies the job's part against what the agent reported and commits it
 * (rename, sidecar); the one ending of every pull, whatever the transport.
 */
export async function commitAndReport(
  options: { job: LeasedJob; root: string },
  relativePath: string,
  digest: { size: number; blake3: string } | undefined,
  bytesTransferred: number,
): Promise<PullHttpResult> {
  const { job, root } = options;
  const result = await commitPart({
    root,
    jobId: job.job_id,
    relativePath,
    expected: { size: job.size, blake3: job.blake3 },
    sidecar: sidecarForJob(job, new Date()),
    ...(digest ? { actual: digest } : {}),
  });
  if (!result.ok) return failure(result.code, result.detail, bytesTransferred);
  return {
    ok: true,
    path: result.path,
    relativePath: result.relativePath,
    size: job.size,
    blake3: job.blake3,
    bytesTransferred,
    alreadyPresent: result.alreadyPresent,
  };
}

/**
 * Fetches the missing bytes into the part. Returns null when the part should
 * now be verified, or a failure to report.
 */
async function download(
  options: PullHttpOptions,
  url: string,
  part: PartFile,
  progress: { bytesTransferred: number },
): Promise<PullHttpResult | null> {
  const { job } = options;
  const watchdog = new Watchdog(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, watchdog.signal]) : watchdog.signal;
  const start = part.size;
  const headers: Record<string, string> = {
    authorization: `Bearer ${job.ticket}`,
    'user-agent': `ubackup-node/${UBACKUP_VERSION}`,
  };
  if (start > 0) headers.range = `bytes=${start}-`;

  try {
    watchdog.arm();
    const response = await request(url, {
      method: 'GET',
      headers,
      signal,
      highWaterMark: BODY_HIGH_WATER_MARK,
      // The watchdog measures silence; undici's own timers would also count time we spend throttled.
      headersTimeout: 0,
      bodyTimeout: 0,
      ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
    });
    // Headers arrived: the silence clock restarts, and keeps running while an error body is read.
    watchdog.arm();
    const { statusCode, body } = response;

    if (statusCode === 404 || statusCode === 410) {
      const text = await snippet(body);
      return failure('source_missing', `agent answered ${statusCode} for ${url}${text}`, 0);
    }
    if (statusCode === 416) {
      // Nothing past what we hold: verify what is there (a shorter source fails as size_mismatch).
      await discard(body);
      return null;
    }
    if (statusCode === 200) {
      const length = contentLength(response.headers['content-length']);
      if (length !== null && length !== job.size) {
        await discard(body);
        return sizeMismatch(options, part, `agent serves ${length} bytes, expected ${job.size}`);
      }
      // The agent ignored our Range (or we sent none): start over.
      if (part.size > 0) await part.reset();
    } else if (statusCode === 206) {
      const range = contentRange(response.headers['content-range']);
      if (range === null || range.start !== start) {
        await discard(body);
        return failure(
          'transient',
          `agent answered 206 with Content-Range ${String(response.headers['content-range'])} to Range bytes=${start}-`,
          0,
        );
      }
      if (range.total !== null && range.total !== job.size) {
        await discard(body);
        return sizeMismatch(options, part, `agent serves ${range.total} bytes, expected ${job.size}`);
      }
    } else {
      const text = await snippet(body);
      return failure('transient', `agent answered ${statusCode} for ${url}${text}`, 0);
    }

    const limiterSignal = options.signal;
    watchdog.arm();
    for await (const data of body as AsyncIterable<Buffer>) {
      watchdog.disarm();
      if (part.size + data.length > job.size) {
        body.destroy();
        return sizeMismatch(options, part, `agent sent more than the expected ${job.size} bytes`, progress);
      }
      for (const limiter of options.limiters) await limiter.take(data.length, limiterSignal);
      await part.append(data);
      progress.bytesTransferred += data.length;
      options.onProgress?.(part.size);
      watchdog.arm();
    }
    watchdog.disarm();
    if (part.size < job.size) {
      // Keep the part: the next attempt asks for the rest, and a source that is
      // really this short answers 416 and fails verification then.
      return failure(
        'transient',
        `the response ended after ${part.size} of ${job.size} bytes`,
        progress.bytesTransferred,
      );
    }
    return null;
  } catch (error) {
    if (watchdog.fired !== null)
      return failure('transient', watchdog.fired.message, progress.bytesTransferred);
    throw error;
  } finally {
    watchdog.disarm();
  }
}

async function sizeMismatch(
  options: PullHttpOptions,
  part: PartFile,
  detail: string,
  progress: { bytesTransferred: number } = { bytesTransferred: 0 },
): Promise<PullHttpResult> {
  await part.close();
  await removePart(options.root, options.job.job_id);
  return failure('size_mismatch', detail, progress.bytesTransferred);
}

function failure(code: JobFailureCode, error: string, bytesTransferred: number): PullHttpResult {
  return { ok: false, code, error, bytesTransferred };
}

function describe(error: unknown, options: PullHttpOptions): string {
  if (options.signal?.aborted) return `aborted: ${describeReason(options.signal.reason)}`;
  const message = error instanceof Error ? error.message : String(error);
  const cause = error instanceof Error && error.cause instanceof Error ? ` (${error.cause.message})` : '';
  return `${message}${cause}`;
}

function describeReason(reason: unknown): string {
  return reason instanceof Error ? reason.message : String(reason);
}

/** Aborts its signal when armed for `timeoutMs` without being disarmed. */
class Watchdog {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | null = null;
  /** The stall that aborted the request, if one did. */
  fired: StallError | null = null;

  constructor(private readonly timeoutMs: number) {}

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  arm(): void {
    if (this.timer !== null) {
      this.timer.refresh();
      return;
    }
    this.timer = setTimeout(() => {
      this.fired = new StallError(`no data from the agent for ${this.timeoutMs} ms`);
      this.controller.abort(this.fired);
    }, this.timeoutMs);
  }

  disarm(): void {
    if (this.timer === null) return;
    clearTimeout(this.timer);
    this.timer = null;
  }
}

/** `: <first bytes of the body>` for error messages, then drops the rest. */
async function snippet(body: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  let length = 0;
  try {
    for await (const data of body as AsyncIterable<Buffer>) {
      chunks.push(data);
      length += data.length;
      if (length >= ERROR_SNIPPET_BYTES) break;
    }
  } catch {
    // the text is only decoration
  } finally {
    body.destroy();
  }
  const text = Buffer.concat(chunks).subarray(0, ERROR_SNIPPET_BYTES).toString('utf8').trim();
  return text ? `: ${text.replace(/\s+/g, ' ')}` : '';
}

/** Drops a body we do not need (read to its end when small, so the connection can be reused). */
async function discard(body: Dispatcher.ResponseData['body']): Promise<void> {
  await body.dump({ limit: 64 * 1024 }).catch(() => undefined);
}

function contentLength(header: string | string[] | undefined): number | null {
  if (typeof header !== 'string' || !/^\d+$/.test(header.trim())) return null;
  return Number(header.trim());
}

function contentRange(header: string | string[] | undefined): { start: number; total: number | null } | null {
  if (typeof header !== 'string') return null;
  const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header.trim());
  if (!match) return null;
  const [, start, , total] = match;
  return { start: Number(start), total: total === '*' || total === undefined ? null : Number(total) };
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}
