import { lstat, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { blake3File, type FileDigest } from '../shared/blake3.js';
import { describeError } from '../shared/describe-error.js';
import { errnoCode } from '../shared/errno-code.js';
import { fsyncDir } from '../shared/fsync-dir.js';
import { type HttpResponse, httpGet } from '../shared/http-get.js';
import { openPartFile, type PartFile, PartWriteError } from '../shared/part-file.js';
import { UBACKUP_VERSION } from '../shared/version.js';
import { RESTORE_EXIT, RestoreError } from './restore-error.js';
/**
 * Downloads one file of a restore chain from the node that stores it, into
 * `<dest>.part`, then checks its size and BLAKE3 and renames it to `dest`.
 *
 * - A `dest` that is already there with the right size and digest is kept
 *   (a run that finished this file before); any other `dest` is replaced.
 * - A `.part` left by an interrupted download, in this run or an earlier
 *   one, is hashed and the rest is asked for with `Range: bytes=<n>-`. A node
 *   that answers 200 instead of 206 sends the whole file, which replaces the
 *   part.
 * - A cut connection, a stall (`timeoutMs` without a byte), a 5xx or a 503
 *   is tried again, up to `attempts` times in all, each time from what the
 *   part holds. What is left after the last try stays for the next run.
 * - More bytes than the plan's size, or a whole file whose size or BLAKE3
 *   differs from the plan's, is an integrity failure: the part is removed.
 *
 * Failures are RestoreErrors: exit code 5 (integrity) or 6 (download).
 */

export const PART_SUFFIX = '.part';
export const DEFAULT_ATTEMPTS = 3;
export const DEFAULT_STALL_TIMEOUT_MS = 60_000;
/** Largest error body read from a node, for its message. */
const MAX_ERROR_BODY_BYTES = 4096;

export interface DownloadFileOptions {
  url: string;
  ticket: string;
  /** Absolute path of the downloaded file; its part is `<dest>.part`. */
  dest: string;
  size: number;
  blake3: string;
  /** Tries in this run, the first included (default 3). */
  attempts?: number;
  /** Wait before try n + 1 (default 1 s × 2^(n − 1)). */
  retryDelayMs?: (attempt: number) => number;
  /** No byte from the node for this long cuts the try (default 60 s). */
  timeoutMs?: number;
  /** Bytes of the file on disk so far (what a part held, then each chunk written). */
  onProgress?: (bytes: number) => void;
  /** One line per event worth telling (a resume, a retry). */
  note?: (line: string) => void;
  signal?: AbortSignal;
}

export interface DownloadFileResult {
  path: string;
  size: number;
  blake3: string;
  /** The file was already there, whole and verified: nothing was downloaded. */
  reused: boolean;
  /** Bytes a part held when this run started. */
  resumedFrom: number;
  /** Bytes received from the node in this run. */
  bytesTransferred: number;
}

/** Size of a regular file at `path`, null when there is none; throws when something else is there. */
async function fileSize(path: string): Promise<number | null> {
  try {
    const stats = await lstat(path);
    if (!stats.isFile()) {
      throw new RestoreError(
        RESTORE_EXIT.usage,
        'not_a_file',
        `${path} is in the way: it is not a regular file (move it, or restore --to another directory)`,
      );
    }
    return stats.size;
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return null;
    throw error;
  }
}

/** A try that failed; `retry` says whether another try may help. */
class TryFailed extends Error {
  constructor(
    message: string,
    readonly retry: boolean,
    readonly code: string,
  ) {
    super(message);
  }
}

/** The node's error as one phrase: `code: message` from its JSON body, else the start of the text. */
function errorText(body: string): string {
  try {
    const json = JSON.parse(body) as { error?: { code?: unknown; message?: unknown } };
    if (typeof json.error?.code === 'string') {
      return `${json.error.code}: ${typeof json.error.message === 'string' ? json.error.message : ''}`;
    }
  } catch {
    // not JSON
  }
  return body.slice(0, 300).trim();
}

/** The message of an error and of its cause. */
function describeWithCause(error: unknown): string {
  const cause = error instanceof Error && error.cause instanceof Error ? ` (${error.cause.message})` : '';
  return `${describeError(error)}${cause}`;
}

export async function downloadFile(options: DownloadFileOptions): Promise<DownloadFileResult> {
  const { dest, size, blake3 } = options;
  const partPath = `${dest}${PART_SUFFIX}`;
  const attempts = Math.max(1, options.attempts ?? DEFAULT_ATTEMPTS);
  const progress = options.onProgress ?? (() => undefined);
  const note = options.note ?? (() => undefined);

  const existing = await fileSize(dest);
  if (existing !== null) {
    if (existing === size && (await blake3File(dest)).blake3 === blake3) {
      progress(size);
      return { path: dest, size, blake3, reused: true, resumedFrom: size, bytesTransferred: 0 };
    }
    note(`${dest} is there but is not this backup's file: downloading it again`);
    await rm(dest, { force: true });
  }
  // Something in the way of the part (a directory, a link) is the operator's to move.
  await fileSize(partPath);

  const part = await openPartFile(partPath);
  const state = { transferred: 0 };
  let digest: FileDigest;
  try {
    if (part.size > size) {
      note(`${partPath} is longer than the file (${part.size} > ${size} bytes): starting again`);
      await part.reset();
    }
    const resumedFrom = part.size;
    if (resumedFrom > 0 && resumedFrom < size) note(`resuming ${partPath} at byte ${resumedFrom} of ${size}`);
    progress(resumedFrom);

    for (let attempt = 1; part.size < size; attempt += 1) {
      try {
        await oneTry(options, part, state);
      } catch (error) {
        if (!(error instanceof TryFailed)) throw error;
        if (!error.retry || attempt >= attempts || options.signal?.aborted) {
          throw new RestoreError(
            RESTORE_EXIT.downloadFailed,
            error.code,
            `${dest}: ${error.message}${part.size > 0 ? ` (${partPath} keeps ${part.size} bytes: run the restore again to resume)` : ''}`,
          );
        }
        const delay = options.retryDelayMs?.(attempt) ?? 1000 * 2 ** (attempt - 1);
        note(
          `${error.message}; trying again in ${Math.round(delay / 100) / 10} s (${attempt + 1} of ${attempts})`,
        );
        await sleep(delay);
      }
    }
    // Written, fsynced, closed; an empty file needs no download and is checked like any other.
    digest = await part.finish();
    if (digest.size !== size || digest.blake3 !== blake3) {
      await rm(partPath, { force: true });
      const why =
        digest.size !== size
          ? `it is ${digest.size} bytes, the catalog says ${size}`
          : `its BLAKE3 is ${digest.blake3}, the catalog says ${blake3}`;
      throw new RestoreError(
        RESTORE_EXIT.integrity,
        digest.size !== size ? 'size_mismatch' : 'checksum_mismatch',
        `${dest} failed verification: ${why}; removed ${partPath}`,
      );
    }
    await rename(partPath, dest);
    await fsyncDir(dirname(dest));
    return { path: dest, size, blake3, reused: false, resumedFrom, bytesTransferred: state.transferred };
  } catch (error) {
    if (error instanceof RestoreError) throw error;
    // The part could not be written (a full disk, a read-only mount): trying again does not help.
    throw new RestoreError(
      RESTORE_EXIT.downloadFailed,
      'write_failed',
      `cannot write ${partPath}: ${describeWithCause(error)}`,
    );
  } finally {
    // What arrived stays in the part for the next run (a no-op after finish).
    await part.close();
  }
}

/** One request for the bytes the part lacks; they go straight into the part's buffers. */
async function oneTry(
  options: DownloadFileOptions,
  part: PartFile,
  state: { transferred: number },
): Promise<void> {
  const { size } = options;
  const progress = options.onProgress ?? (() => undefined);
  const offset = part.size;
  const headers: Record<string, string> = {
    authorization: `Bearer ${options.ticket}`,
    'user-agent': `ubackup-restore/${UBACKUP_VERSION}`,
  };
  if (offset > 0) headers.range = `bytes=${offset}-`;
  let response: HttpResponse;
  try {
    response = await httpGet({
      url: options.url,
      headers,
      timeoutMs: options.timeoutMs ?? DEFAULT_STALL_TIMEOUT_MS,
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    });
  } catch (error) {
    throw new TryFailed(`cannot reach the node: ${describeWithCause(error)}`, true, 'node_unreachable');
  }
  try {
    const { status } = response;
    const length = response.contentLength ?? 0;
    if (status === 200) {
      if (length > size) {
        await part.close();
        await rm(`${options.dest}${PART_SUFFIX}`, { force: true });
        throw new RestoreError(
          RESTORE_EXIT.integrity,
          'size_mismatch',
          `the node sent more than the file's ${size} bytes (${length}); removed ${options.dest}${PART_SUFFIX}`,
        );
      }
      if (offset > 0) {
        // The node sent the whole file: it replaces the part.
        options.note?.(
          `the node sent the whole file instead of bytes ${offset}-: starting ${options.dest}${PART_SUFFIX} again`,
        );
        await part.reset();
        progress(0);
      }
    } else if (status === 206) {
      const header = response.headers.get('content-range') ?? '';
      const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(header);
      if (
        range === null ||
        Number(range[1]) !== offset ||
        Number(range[3]) !== size ||
        Number(range[2]) - offset + 1 !== length
      ) {
        throw new TryFailed(
          `the node answered a different range (${header}) than bytes ${offset}-${size - 1}/${size}`,
          false,
          'bad_range',
        );
      }
    } else {
      const text = errorText(await response.text(MAX_ERROR_BODY_BYTES));
      throw new TryFailed(
        `the node answered ${status}${text === '' ? '' : ` (${text})`}`,
        status >= 500,
        status === 416 ? 'range_not_satisfiable' : `node_http_${status}`,
      );
    }
    const before = part.size;
    try {
      await response.receive({
        space: () => part.space(),
        written: (bytes) => {
          part.commit(bytes);
          state.transferred += bytes;
          progress(part.size);
          return undefined;
        },
      });
    } catch (error) {
      // A write that failed (a full disk) is not a network problem: no retry helps it.
      if (error instanceof PartWriteError) throw error;
      throw new TryFailed(
        `the download stopped after ${part.size - before} bytes (${part.size} of ${size}): ${describeWithCause(error)}`,
        true,
        'download_interrupted',
      );
    }
    if (part.size === before) throw new TryFailed('the node sent no bytes', true, 'download_interrupted');
  } finally {
    response.close();
  }
}
