import { lstat } from 'node:fs/promises';
import { type BodySink, type HttpResponse, HttpStallError, httpGet } from '../shared/http-get.js';
import type { JobFailureCode, LeasedJob } from '../shared/node-protocol.js';
import type { PartFile } from '../shared/part-file.js';
import { UBACKUP_VERSION } from '../shared/version.js';
import { commitPart, openPart, removePart, StoreConflictError } from './part-file.js';
import {
  partPath,
  type Sidecar,
  StorageLayoutError,
  storedAbsolutePath,
  storedRelativePath,
} from './storage-layout.js';
import type { Limiter } from './token-bucket.js';

/**
 * Pulls one leased file from the database host's agent over HTTP(S) into the
 * node's store (DESIGN §3 invariants 3 and 5): resumes from the job's `.part`
 * with a Range request, receives the body (http-get.ts) straight into the
 * part's buffers, which are hashed and written as they fill, passes every byte
 * through the bandwidth limiters, then verifies and commits the part.
 */

export interface PullHttpOptions {
  job: LeasedJob;
  /** The node's `server_root_path`. */
  root: string;
  /** Every bucket a byte must pass: the node-wide one and the transfer's own. */
  limiters: readonly Limiter[];
  /** Bytes in the part so far (resumed bytes included); called as data arrives. */
  onProgress?: (bytesDone: number) => void;
  /** Aborts the transfer (shutdown, lease lost); the part is kept for a resume. */
  signal?: AbortSignal;
  /** No byte from the agent for this long (connecting, waiting for headers, or mid-body) aborts the pull. */
  timeoutMs: number;
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

const ERROR_SNIPPET_BYTES = 300;

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
  const start = part.size;
  const headers: Record<string, string> = {
    authorization: `Bearer ${job.ticket}`,
    'user-agent': `ubackup-node/${UBACKUP_VERSION}`,
  };
  if (start > 0) headers.range = `bytes=${start}-`;

  let response: HttpResponse | null = null;
  try {
    response = await httpGet({
      url,
      headers,
      // Silence from the agent; time spent throttled or waiting for the disk does not count.
      timeoutMs: options.timeoutMs,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const { status } = response;

    if (status === 404 || status === 410) {
      const text = await snippet(response);
      return failure('source_missing', `agent answered ${status} for ${url}${text}`, 0);
    }
    if (status === 416) {
      // Nothing past what we hold: verify what is there (a shorter source fails as size_mismatch).
      return null;
    }
    // http-get guarantees a Content-Length for 200 and 206.
    const length = response.contentLength ?? 0;
    if (status === 200) {
      if (length !== job.size) {
        return sizeMismatch(options, part, `agent serves ${length} bytes, expected ${job.size}`);
      }
      // The agent ignored our Range (or we sent none): start over.
      if (part.size > 0) await part.reset();
    } else if (status === 206) {
      const header = response.headers.get('content-range');
      const range = contentRange(header);
      if (range === null || range.start !== start || range.end - range.start + 1 !== length) {
        return failure(
          'transient',
          `agent answered 206 with Content-Range ${String(header)} and Content-Length ${length} to Range bytes=${start}-`,
          0,
        );
      }
      if ((range.total !== null && range.total !== job.size) || range.end >= job.size) {
        return sizeMismatch(
          options,
          part,
          `agent serves ${range.total ?? `more than ${range.end}`} bytes, expected ${job.size}`,
        );
      }
    } else {
      const text = await snippet(response);
      return failure('transient', `agent answered ${status} for ${url}${text}`, 0);
    }

    await response.receive(partSink(options, part, progress));
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
    if (error instanceof HttpStallError) {
      return failure(
        'transient',
        `no data from the agent for ${error.timeoutMs} ms`,
        progress.bytesTransferred,
      );
    }
    throw error;
  } finally {
    response?.close();
  }
}

/**
 * The body goes straight into the part's buffer, which is written as it
 * fills. Limiters are consulted only when one of them is limited; then reads
 * are kept within its burst and the socket waits (does not read) while the
 * tokens come.
 */
function partSink(
  options: PullHttpOptions,
  part: PartFile,
  progress: { bytesTransferred: number },
): BodySink {
  const { limiters, signal } = options;
  return {
    space(): Uint8Array {
      const space = part.space();
      let most = space.length;
      for (const limiter of limiters) {
        if (limiter.bytesPerSecond > 0) most = Math.min(most, limiter.burstBytes);
      }
      return most < space.length ? space.subarray(0, most) : space;
    },
    written(bytes: number): Promise<void> | undefined {
      part.commit(bytes);
      progress.bytesTransferred += bytes;
      options.onProgress?.(part.size);
      for (const limiter of limiters) {
        if (limiter.bytesPerSecond > 0) return throttle(limiters, bytes, signal);
      }
      return undefined;
    },
  };
}

/** Passes `bytes` through every limiter in turn. */
async function throttle(
  limiters: readonly Limiter[],
  bytes: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  for (const limiter of limiters) await limiter.take(bytes, signal);
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

/** `: <first bytes of the body>` for error messages; closes the response. */
async function snippet(response: HttpResponse): Promise<string> {
  const text = (await response.text(ERROR_SNIPPET_BYTES)).trim();
  return text ? `: ${text.replace(/\s+/g, ' ')}` : '';
}

function contentRange(
  header: string | undefined,
): { start: number; end: number; total: number | null } | null {
  if (header === undefined) return null;
  const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header.trim());
  if (!match) return null;
  const [, start, end, total] = match;
  return {
    start: Number(start),
    end: Number(end),
    total: total === '*' || total === undefined ? null : Number(total),
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}
