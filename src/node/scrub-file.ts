import { constants } from 'node:fs';
import { type FileHandle, open, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { Blake3Hasher } from '@napi-rs/blake-hash';
import { describeError } from '../shared/describe-error.js';
import { errnoCode } from '../shared/errno-code.js';
import type { ScrubItem, ScrubResult } from '../shared/node-protocol.js';
import { isStrictlyInside } from '../shared/strictly-inside.js';
import { LAYOUT_FIELDS, layoutProblem } from './storage-layout.js';

/**
 * One stored copy re-hashed for the scrub (DESIGN §11): is the file at the
 * leased path still the one the catalog has (size and BLAKE3)?
 *
 * The path is trusted no more than any other path from the network: it must
 * be `<game_id>/<type>/<server_id>/<instance>/<filename>` with every component
 * valid by the storage layout, and the file's real path must be strictly
 * inside the root's real path. It is opened with O_NOFOLLOW (a symlink swapped
 * in afterwards is refused) and O_NONBLOCK (a FIFO cannot hang the open), and
 * must be a regular file. Every byte read is first taken from `limiter`, so
 * the scrub reads no faster than its own rate.
 *
 * Findings are reported to the server. A problem of the node's own that says
 * nothing about the copy (out of file descriptors, memory) is `transient`: not
 * reported, the copy comes again with a later lease. An aborted check throws
 * the signal's reason.
 */

/** What a check takes its read allowance from: a TokenBucket. */
export interface ReadLimiter {
  take(bytes: number, signal?: AbortSignal): Promise<void>;
}

export type ScrubCheck = { kind: 'finding'; result: ScrubResult } | { kind: 'transient'; reason: string };

export interface ScrubFileOptions {
  limiter: ReadLimiter;
  signal?: AbortSignal;
  /** Bytes per read (default 1 MiB). */
  chunkBytes?: number;
}

const DEFAULT_CHUNK_BYTES = 1024 * 1024;
const MISSING_CODES = new Set(['ENOENT', 'ENOTDIR']);
/** The node's trouble, not the file's: try again later. */
const TRANSIENT_CODES = new Set(['EMFILE', 'ENFILE', 'ENOMEM', 'EAGAIN', 'EINTR', 'EBUSY']);

/** Re-hashes the copy `item` names under `root`. */
export async function scrubFile(
  root: string,
  item: ScrubItem,
  options: ScrubFileOptions,
): Promise<ScrubCheck> {
  const shown = JSON.stringify(item.path);
  const finding = (outcome: ScrubResult['outcome'], detail?: string): ScrubCheck => ({
    kind: 'finding',
    result: { backup_id: item.backup_id, outcome, ...(detail === undefined ? {} : { detail }) },
  });
  const failed = (what: string, error: unknown): ScrubCheck => {
    const code = errnoCode(error);
    if (code !== undefined && MISSING_CODES.has(code)) return finding('missing', `${shown} is missing`);
    if (code !== undefined && TRANSIENT_CODES.has(code))
      return { kind: 'transient', reason: `cannot ${what} ${shown}: ${describeError(error)}` };
    return finding('unreadable', `cannot ${what} ${shown}: ${describeError(error)}`);
  };

  const parts = item.path.split('/');
  if (parts.length !== LAYOUT_FIELDS.length)
    return finding('unreadable', `refused ${shown}: not <game_id>/<type>/<server_id>/<instance>/<filename>`);
  for (const [i, field] of LAYOUT_FIELDS.entries()) {
    const problem = layoutProblem(field, parts[i] as string);
    if (problem !== null)
      return finding(
        'unreadable',
        `refused ${shown}: its ${field} cannot be a stored path component (${problem})`,
      );
  }

  let realRoot: string;
  try {
    realRoot = await realpath(root);
  } catch (error) {
    return { kind: 'transient', reason: `cannot resolve the node's root ${root}: ${describeError(error)}` };
  }
  let real: string;
  try {
    real = await realpath(join(realRoot, ...parts));
  } catch (error) {
    return failed('resolve', error);
  }
  if (!isStrictlyInside(realRoot, real))
    return finding(
      'unreadable',
      `refused ${shown}: it resolves to ${real}, outside the node's root ${realRoot}`,
    );

  let handle: FileHandle;
  try {
    handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    return failed('open', error);
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) return finding('unreadable', `${shown} is not a regular file`);
    if (stats.size !== item.size)
      return finding('size_mismatch', `${shown} is ${stats.size} bytes, expected ${item.size}`);
    let digest: { blake3: string; size: number };
    try {
      digest = await hashLimited(handle, item.size, options);
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      return failed('read', error);
    }
    if (digest.size !== item.size)
      return finding('size_mismatch', `${shown} ended after ${digest.size} bytes, expected ${item.size}`);
    if (digest.blake3 !== item.blake3)
      return finding('mismatch', `BLAKE3 differs (found ${digest.blake3}, expected ${item.blake3})`);
    return finding('ok');
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/** BLAKE3 of the first `size` bytes (fewer if the file ends early), each read first taken from the limiter. */
async function hashLimited(
  handle: FileHandle,
  size: number,
  options: ScrubFileOptions,
): Promise<{ blake3: string; size: number }> {
  const hasher = new Blake3Hasher();
  const buffer = Buffer.allocUnsafe(Math.max(1, Math.min(options.chunkBytes ?? DEFAULT_CHUNK_BYTES, size)));
  let position = 0;
  while (position < size) {
    options.signal?.throwIfAborted();
    const want = Math.min(buffer.length, size - position);
    await options.limiter.take(want, options.signal);
    const { bytesRead } = await handle.read(buffer, 0, want, position);
    if (bytesRead === 0) break;
    hasher.update(buffer.subarray(0, bytesRead));
    position += bytesRead;
  }
  return { blake3: hasher.digest('hex'), size: position };
}
