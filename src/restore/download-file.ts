import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, open, rename, rm, truncate, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { Blake3Hasher } from '@napi-rs/blake-hash';
import { type Dispatcher, request } from 'undici';
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
const READ_CHUNK_BYTES = 1024 * 1024;

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
  dispatcher?: Dispatcher;
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

function errnoCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error
    ? String((error as { code: unknown }).code)
    : undefined;
}

function describeError(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause instanceof Error ? ` (${error.cause.message})` : '';
    return `${error.message}${cause}`;
  }
  return String(error);
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

/** Feeds the first `length` bytes of `path` to `hasher`. */
async function hashPrefix(path: string, length: number, hasher: Blake3Hasher): Promise<void> {
  if (length === 0) return;
  const stream = createReadStream(path, { start: 0, end: length - 1, highWaterMark: READ_CHUNK_BYTES });
  for await (const chunk of stream as AsyncIterable<Buffer>) hasher.update(chunk);
}

async function digestOf(path: string, length: number): Promise<string> {
  const hasher = new Blake3Hasher();
  await hashPrefix(path, length, hasher);
  return hasher.digest('hex');
}

async function fsyncPath(path: string, flags: string): Promise<void> {
  const handle = await open(path, flags);
  try {
    await handle.sync();
  } finally {
    await handle.close();
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

async function errorBodyText(body: Dispatcher.ResponseData['body']): Promise<string> {
  let text = '';
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      text += chunk.toString('utf8');
      if (text.length >= MAX_ERROR_BODY_BYTES) break;
    }
  } catch {
    // the message is a courtesy
  }
  body.destroy();
  try {
    const json = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    if (typeof json.error?.code === 'string') {
      return `${json.error.code}: ${typeof json.error.message === 'string' ? json.error.message : ''}`;
    }
  } catch {
    // not JSON
  }
  return text.slice(0, 300).trim();
}

export async function downloadFile(options: DownloadFileOptions): Promise<DownloadFileResult> {
  const { dest, size, blake3 } = options;
  const part = `${dest}${PART_SUFFIX}`;
  const attempts = Math.max(1, options.attempts ?? DEFAULT_ATTEMPTS);
  const timeoutMs = options.timeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
  const progress = options.onProgress ?? (() => undefined);
  const note = options.note ?? (() => undefined);

  const existing = await fileSize(dest);
  if (existing !== null) {
    if (existing === size && (await digestOf(dest, size)) === blake3) {
      progress(size);
      return { path: dest, size, blake3, reused: true, resumedFrom: size, bytesTransferred: 0 };
    }
    note(`${dest} is there but is not this backup's file: downloading it again`);
    await rm(dest, { force: true });
  }

  let hasher = new Blake3Hasher();
  let offset = (await fileSize(part)) ?? 0;
  if (offset > size) {
    note(`${part} is longer than the file (${offset} > ${size} bytes): starting again`);
    await truncate(part, 0);
    offset = 0;
  }
  await hashPrefix(part, offset, hasher);
  const resumedFrom = offset;
  if (offset > 0 && offset < size) note(`resuming ${part} at byte ${offset} of ${size}`);
  progress(offset);
  let transferred = 0;

  const oneTry = async (): Promise<void> => {
    const headers: Record<string, string> = { authorization: `Bearer ${options.ticket}` };
    if (offset > 0) headers.range = `bytes=${offset}-`;
    let response: Dispatcher.ResponseData;
    try {
      response = await request(options.url, {
        method: 'GET',
        headers,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: options.signal,
        ...(options.dispatcher !== undefined ? { dispatcher: options.dispatcher } : {}),
      });
    } catch (error) {
      throw new TryFailed(`cannot reach the node: ${describeError(error)}`, true, 'node_unreachable');
    }
    const { statusCode, body } = response;
    if (statusCode === 200 && offset > 0) {
      // The node sent the whole file: it replaces the part.
      note(`the node sent the whole file instead of bytes ${offset}-: starting ${part} again`);
      offset = 0;
      hasher = new Blake3Hasher();
      progress(0);
    } else if (statusCode === 206) {
      const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(String(response.headers['content-range'] ?? ''));
      if (range === null || Number(range[1]) !== offset || Number(range[3]) !== size) {
        body.destroy();
        throw new TryFailed(
          `the node answered a different range (${String(response.headers['content-range'])}) than bytes ${offset}-${size - 1}/${size}`,
          false,
          'bad_range',
        );
      }
    } else if (statusCode !== 200) {
      const text = await errorBodyText(body);
      const retry = statusCode >= 500;
      throw new TryFailed(
        `the node answered ${statusCode}${text === '' ? '' : ` (${text})`}`,
        retry,
        statusCode === 416 ? 'range_not_satisfiable' : `node_http_${statusCode}`,
      );
    }
    if (offset === 0) await rm(part, { force: true });
    else await truncate(part, offset);
    let tooLong = false;
    const counting = new Transform({
      transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
        if (offset + chunk.length > size) {
          tooLong = true;
          callback(new Error(`the node sent more than the file's ${size} bytes`));
          return;
        }
        hasher.update(chunk);
        offset += chunk.length;
        transferred += chunk.length;
        progress(offset);
        callback(null, chunk);
      },
    });
    const hashedBefore = offset;
    try {
      await pipeline(
        body,
        counting,
        createWriteStream(part, { flags: 'a', highWaterMark: READ_CHUNK_BYTES }),
      );
    } catch (error) {
      if (tooLong) {
        await rm(part, { force: true });
        throw new RestoreError(
          RESTORE_EXIT.integrity,
          'size_mismatch',
          `${describeError(error)}; removed ${part}`,
        );
      }
      // What reached the disk is what the next try resumes from; the digest must cover exactly that.
      const onDisk = (await fileSize(part)) ?? 0;
      if (onDisk !== offset) {
        offset = Math.min(onDisk, size);
        hasher = new Blake3Hasher();
        await hashPrefix(part, offset, hasher);
        progress(offset);
      }
      throw new TryFailed(
        `the download stopped after ${offset - hashedBefore} bytes (${offset} of ${size} on disk): ${describeError(error)}`,
        true,
        'download_interrupted',
      );
    }
    if (offset === hashedBefore) throw new TryFailed('the node sent no bytes', true, 'download_interrupted');
  };

  // An empty file needs no download: its digest is checked like any other.
  if (size === 0) await writeFile(part, '');
  for (let attempt = 1; offset < size; attempt += 1) {
    try {
      await oneTry();
    } catch (error) {
      if (!(error instanceof TryFailed)) throw error;
      if (!error.retry || attempt >= attempts || options.signal?.aborted) {
        throw new RestoreError(
          RESTORE_EXIT.downloadFailed,
          error.code,
          `${dest}: ${error.message}${offset > 0 ? ` (${part} keeps ${offset} bytes: run the restore again to resume)` : ''}`,
        );
      }
      const delay = options.retryDelayMs?.(attempt) ?? 1000 * 2 ** (attempt - 1);
      note(
        `${error.message}; trying again in ${Math.round(delay / 100) / 10} s (${attempt + 1} of ${attempts})`,
      );
      await sleep(delay);
    }
  }

  const onDisk = (await fileSize(part)) ?? 0;
  const digest = hasher.digest('hex');
  if (onDisk !== size || offset !== size || digest !== blake3) {
    await rm(part, { force: true });
    const why =
      onDisk !== size
        ? `it is ${onDisk} bytes, the catalog says ${size}`
        : `its BLAKE3 is ${digest}, the catalog says ${blake3}`;
    throw new RestoreError(
      RESTORE_EXIT.integrity,
      onDisk !== size ? 'size_mismatch' : 'checksum_mismatch',
      `${dest} failed verification: ${why}; removed ${part}`,
    );
  }
  await fsyncPath(part, 'r+');
  await rename(part, dest);
  await fsyncPath(dirname(dest), 'r');
  return { path: dest, size, blake3, reused: false, resumedFrom, bytesTransferred: transferred };
}
