import { constants } from 'node:fs';
import { type FileHandle, link, lstat, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Blake3Hasher } from '@napi-rs/blake-hash';
import { blake3File, type FileDigest } from '../shared/blake3.js';
import {
  incomingDir,
  partPath,
  type Sidecar,
  SidecarSchema,
  sidecarPath,
  sidecarTempPath,
  storedAbsolutePath,
  storedRelativePath,
} from './storage-layout.js';

/**
 * The node's durable write path (DESIGN §3 invariants 3 and 5):
 *
 *   .incoming/<job>.part  ─append+hash─►  fsync  ─verify─►  link into place  ─►  fsync dir
 *                                                          ─►  sidecar (tmp, fsync, rename, fsync dir)
 *
 * At every instant the final path holds nothing or a whole, verified file: the
 * file only appears there after its content was checked against the expected
 * size and BLAKE3 and fsynced. A file without a sidecar is the leftover of a
 * crash between the two steps; `node reindex` re-verifies it.
 */

/** Bytes gathered before one write(2); also the read size when re-hashing. */
export const DEFAULT_WRITE_BUFFER_BYTES = 256 * 1024;
/** Buffers per part: while one fills, the others may be in write(2). */
export const DEFAULT_WRITE_BUFFER_COUNT = 8;
const FILE_MODE = 0o640;
const NO_SPACE = new Uint8Array(0);

/**
 * A transfer's `.part` file, opened for appending, with a BLAKE3 of everything
 * in it. Bytes are gathered in a small pool of buffers: a full buffer is
 * hashed (in file order, when it is full) and handed to a positional write,
 * which runs in libuv's thread pool while the next buffer fills, so several
 * writes may be in flight and receiving rarely waits for the disk. Memory is
 * bounded by the pool: when every buffer is being written, `space()` is empty
 * until one of them is done.
 *
 * A failed write makes the part unusable (the file may hold fewer bytes than
 * were hashed): every later call throws, and only a re-open (which re-hashes
 * what is on disk) recovers.
 */
export class PartFile {
  /** The buffer being filled; null when none was free. */
  private fill: Buffer | null = null;
  private buffered = 0;
  private readonly idle: Buffer[];
  /** Writes in flight; each settles (never rejects) when its write has ended. */
  private readonly writes = new Set<Promise<void>>();
  /** Bytes handed to write(2): on disk, or in a write in flight. */
  private queued: number;
  private handle: FileHandle | null;
  private broken: Error | null = null;
  private currentHasher: Blake3Hasher;

  constructor(
    readonly path: string,
    handle: FileHandle,
    /** Bytes that were already in the part when it was opened (resume point). */
    readonly bytesPresent: number,
    hasher: Blake3Hasher,
    buffers: readonly Buffer[],
  ) {
    if (buffers.length === 0) throw new RangeError('a part needs at least one buffer');
    this.handle = handle;
    this.queued = bytesPresent;
    this.currentHasher = hasher;
    this.idle = [...buffers];
  }

  /** Fed with every byte in the part: those present at open, then each buffer as it is written. */
  get hasher(): Blake3Hasher {
    return this.currentHasher;
  }

  /** Bytes in the part once everything appended is written: present at open + appended. */
  get size(): number {
    return this.queued + this.buffered;
  }

  /**
   * Where the next bytes may be placed (then `commit` them): the free end of
   * the buffer being filled. Empty while every buffer is being written; the
   * promise `commit` returned says when that is over.
   */
  space(): Uint8Array {
    this.assertUsable();
    if (this.fill === null) {
      const next = this.idle.pop();
      if (next === undefined) return NO_SPACE;
      this.fill = next;
    }
    return this.fill.subarray(this.buffered);
  }

  /**
   * Takes `bytes` placed at the start of `space()`. Returns a promise when no
   * buffer is free any more: `space()` is empty until it resolves, and it
   * rejects when a write failed. A write error surfaces from a later call.
   */
  commit(bytes: number): Promise<void> | undefined {
    this.assertUsable();
    const fill = this.fill;
    if (fill === null || !Number.isSafeInteger(bytes) || bytes < 0 || bytes > fill.length - this.buffered) {
      throw new RangeError(`cannot commit ${bytes} bytes: more than the space offered`);
    }
    this.buffered += bytes;
    if (this.buffered < fill.length) return undefined;
    this.startWrite();
    const next = this.idle.pop();
    if (next === undefined) return this.bufferFreed();
    this.fill = next;
    return undefined;
  }

  /**
   * Appends `chunk`. It is copied before this resolves, so the caller may reuse it.
   * A write error surfaces from a later append, flush or finish.
   */
  async append(chunk: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      const space = this.space();
      if (space.length === 0) {
        await this.bufferFreed();
        continue;
      }
      const n = Math.min(space.length, chunk.length - offset);
      space.set(chunk.subarray(offset, offset + n));
      offset += n;
      const wait = this.commit(n);
      if (wait !== undefined) await wait;
    }
  }

  /** Writes everything appended so far (no fsync). */
  async flush(): Promise<void> {
    this.assertUsable();
    this.startWrite();
    await this.drain();
  }

  /** Empties the part and starts a new hash (the source ignored our Range and sent the whole file). */
  async reset(): Promise<void> {
    const handle = this.assertUsable();
    await this.drain();
    this.buffered = 0;
    await handle.truncate(0);
    this.queued = 0;
    this.currentHasher = new Blake3Hasher();
  }

  /** Flushes, fsyncs and closes the part; returns the size and BLAKE3 of its content. */
  async finish(): Promise<FileDigest> {
    const handle = this.assertUsable();
    await this.flush();
    await handle.sync();
    await this.close();
    return { size: this.queued, blake3: this.currentHasher.digest('hex') };
  }

  /**
   * Keeps what can be kept for a later resume: writes the buffered bytes (best
   * effort, no fsync — a resume re-hashes whatever is there) and closes. Idempotent.
   */
  async close(): Promise<void> {
    const handle = this.handle;
    if (handle === null) return;
    if (this.broken === null) await this.flush().catch(() => undefined);
    else await Promise.all([...this.writes]);
    this.handle = null;
    await handle.close();
  }

  private assertUsable(): FileHandle {
    if (this.broken)
      throw new Error(`part file ${this.path} is unusable after a failed write`, { cause: this.broken });
    if (this.handle === null) throw new Error(`part file ${this.path} is closed`);
    return this.handle;
  }

  /** Resolves when a buffer is free again; rejects when a write failed. */
  private async bufferFreed(): Promise<void> {
    while (this.idle.length === 0 && this.writes.size > 0) await Promise.race(this.writes);
    this.assertUsable();
  }

  /** Waits for every write in flight; throws if one failed. */
  private async drain(): Promise<void> {
    while (this.writes.size > 0) await Promise.all([...this.writes]);
    this.assertUsable();
  }

  /** Hashes the buffered bytes and starts writing them at their place in the file. */
  private startWrite(): void {
    const fill = this.fill;
    if (fill === null || this.buffered === 0) return;
    const handle = this.assertUsable();
    const data = fill.subarray(0, this.buffered);
    const position = this.queued;
    this.currentHasher.update(data);
    this.queued += data.length;
    this.fill = null;
    this.buffered = 0;
    const write: Promise<void> = writeFully(handle, data, position).then(
      () => {
        this.writes.delete(write);
        this.idle.push(fill);
      },
      (error: unknown) => {
        this.writes.delete(write);
        // The file may now hold fewer bytes than were hashed: only a re-open (re-hash) can recover.
        this.broken ??= error instanceof Error ? error : new Error(String(error));
      },
    );
    this.writes.add(write);
  }
}

async function writeFully(handle: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    if (bytesWritten <= 0) throw new Error('write(2) wrote nothing');
    done += bytesWritten;
  }
}

export interface OpenPartOptions {
  /** Size of each write buffer; default 256 KiB. */
  bufferBytes?: number;
  /** Number of write buffers, and so the most writes in flight; default 4. */
  bufferCount?: number;
}

/**
 * Opens (or creates) `<root>/.incoming/<jobId>.part` for appending. What is
 * already there is re-hashed, so a retried job resumes where it stopped.
 */
export async function openPart(
  root: string,
  jobId: number,
  options: OpenPartOptions = {},
): Promise<PartFile> {
  const path = partPath(root, jobId);
  await mkdirDurable(incomingDir(root));
  const handle = await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, FILE_MODE);
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw new Error(`${path} is not a regular file`);
    const bufferBytes = options.bufferBytes ?? DEFAULT_WRITE_BUFFER_BYTES;
    const buffer = Buffer.allocUnsafe(bufferBytes);
    const hasher = new Blake3Hasher();
    let present = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, present);
      if (bytesRead === 0) break;
      hasher.update(buffer.subarray(0, bytesRead));
      present += bytesRead;
    }
    const count = Math.max(1, options.bufferCount ?? DEFAULT_WRITE_BUFFER_COUNT);
    const buffers = [buffer];
    while (buffers.length < count) buffers.push(Buffer.allocUnsafe(bufferBytes));
    return new PartFile(path, handle, present, hasher, buffers);
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw error;
  }
}

/** Deletes a job's part file, if any. */
export async function removePart(root: string, jobId: number): Promise<void> {
  await unlinkIfPresent(partPath(root, jobId));
  await fsyncDir(incomingDir(root));
}

/** The stored file already holds different content: the node never overwrites it silently. */
export class StoreConflictError extends Error {
  override readonly name = 'StoreConflictError';
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

export interface CommitPartOptions {
  root: string;
  jobId: number;
  /** `<game_id>/<type>/<server_id>/<instance>/<filename>`; must match the sidecar's identity. */
  relativePath: string;
  expected: { size: number; blake3: string };
  sidecar: Sidecar;
  /**
   * The digest computed while the part was written (PartFile.finish). When it is
   * missing, or its size disagrees with the file, the part is re-read and hashed.
   */
  actual?: FileDigest;
}

export type CommitMismatchCode = 'size_mismatch' | 'checksum_mismatch';

export type CommitResult =
  | {
      ok: true;
      /** Absolute path of the stored file. */
      path: string;
      relativePath: string;
      /** The file was already in place with the expected content (a retry after a crash). */
      alreadyPresent: boolean;
    }
  | { ok: false; code: CommitMismatchCode; detail: string };

/**
 * Verifies a finished part and moves it into place (see the file comment).
 * On a size or checksum mismatch the part is deleted and nothing appears
 * under the final path. Throws StoreConflictError when the final path already
 * holds a different file (the part is kept), and on I/O errors.
 */
export async function commitPart(options: CommitPartOptions): Promise<CommitResult> {
  const { root, jobId, relativePath, expected, sidecar } = options;
  if (storedRelativePath(sidecar) !== relativePath) {
    throw new Error(`sidecar identity ${storedRelativePath(sidecar)} does not match ${relativePath}`);
  }
  if (sidecar.blake3 !== expected.blake3 || sidecar.size !== expected.size) {
    throw new Error('sidecar blake3/size differ from the expected digest');
  }
  const part = partPath(root, jobId);
  const target = storedAbsolutePath(root, relativePath);
  const targetDir = dirname(target);

  const partStats = await lstatIfPresent(part);
  if (partStats === null) {
    // No part: a retry after a crash between the move and the sidecar finds the file in place.
    if ((await lstatIfPresent(target)) === null) throw new Error(`no part file ${part} to commit`);
    await adoptExisting(target, expected);
    await writeSidecar(root, jobId, target, sidecar, true);
    return { ok: true, path: target, relativePath, alreadyPresent: true };
  }
  if (!partStats.isFile()) throw new Error(`${part} is not a regular file`);

  if (partStats.size !== expected.size) {
    await removePart(root, jobId);
    return {
      ok: false,
      code: 'size_mismatch',
      detail: `received ${partStats.size} bytes, expected ${expected.size}`,
    };
  }
  const digest =
    options.actual !== undefined && options.actual.size === partStats.size
      ? options.actual
      : await blake3File(part);
  if (digest.blake3 !== expected.blake3) {
    await removePart(root, jobId);
    return {
      ok: false,
      code: 'checksum_mismatch',
      detail: `blake3 of the received ${partStats.size} bytes is ${digest.blake3}, expected ${expected.blake3}`,
    };
  }

  // Durable before it becomes visible (a no-op when PartFile.finish already did it).
  await fsyncFile(part);
  await mkdirDurable(targetDir);
  let alreadyPresent = false;
  try {
    // link(2) never replaces an existing file, unlike rename(2): no window for a silent overwrite.
    await link(part, target);
  } catch (error) {
    const code = errorCode(error);
    if (code === 'EEXIST') {
      await adoptExisting(target, expected);
      alreadyPresent = true;
    } else if (code !== undefined && LINK_UNSUPPORTED.has(code)) {
      if ((await lstatIfPresent(target)) !== null) {
        await adoptExisting(target, expected);
        alreadyPresent = true;
      } else {
        await rename(part, target);
      }
    } else {
      throw error;
    }
  }
  await fsyncDir(targetDir);
  await removePart(root, jobId);
  await writeSidecar(root, jobId, target, sidecar, alreadyPresent);
  return { ok: true, path: target, relativePath, alreadyPresent };
}

/** File systems without hard links: fall back to check-then-rename. */
const LINK_UNSUPPORTED = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EMLINK', 'EXDEV']);

/** Accepts a file already at `target` only when it is exactly the expected content. */
async function adoptExisting(target: string, expected: { size: number; blake3: string }): Promise<void> {
  const stats = await lstat(target);
  if (!stats.isFile()) {
    throw new StoreConflictError(
      target,
      `${target} already exists and is not a regular file; refusing to replace it`,
    );
  }
  const existing = stats.size === expected.size ? await blake3File(target) : { size: stats.size, blake3: '' };
  if (existing.size !== expected.size || existing.blake3 !== expected.blake3) {
    throw new StoreConflictError(
      target,
      `${target} already exists with different content (${existing.size} bytes${
        existing.blake3 ? `, blake3 ${existing.blake3}` : ''
      }; expected ${expected.size} bytes, blake3 ${expected.blake3}); refusing to overwrite it`,
    );
  }
}

/**
 * Writes `<target>.ubmeta.json` atomically. When the file was already in place,
 * a valid sidecar for the same backup is kept as it is, and one naming another
 * backup is a conflict (two catalog entries must not share one file).
 */
async function writeSidecar(
  root: string,
  jobId: number,
  target: string,
  sidecar: Sidecar,
  alreadyPresent: boolean,
): Promise<void> {
  const finalPath = sidecarPath(target);
  if (alreadyPresent) {
    const existing = await readSidecar(finalPath);
    if (existing !== null && existing.blake3 === sidecar.blake3) {
      if (existing.backup_id === sidecar.backup_id) return;
      throw new StoreConflictError(
        target,
        `${target} is already stored for backup ${existing.backup_id} (report ${existing.report_id}); not recording it again for backup ${sidecar.backup_id}`,
      );
    }
  }
  const tmp = sidecarTempPath(root, jobId);
  await mkdirDurable(incomingDir(root));
  const handle = await open(tmp, 'w', FILE_MODE);
  try {
    await handle.writeFile(`${JSON.stringify(SidecarSchema.parse(sidecar), null, 2)}\n`, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, finalPath);
  await fsyncDir(dirname(finalPath));
}

/** A sidecar's content, or null when it is missing or not a valid sidecar. */
export async function readSidecar(path: string): Promise<Sidecar | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return null;
    throw error;
  }
  try {
    const parsed = SidecarSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** mkdir -p that also fsyncs the parent of every directory it created. */
async function mkdirDurable(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true });
  if (first === undefined) return;
  // Created: first … dir. Each one's entry lives in its parent.
  const created: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    created.push(d);
    if (d === first || dirname(d) === d) break;
  }
  for (const d of created.reverse()) await fsyncDir(dirname(d));
}

async function fsyncDir(dir: string): Promise<void> {
  await fsyncFile(dir);
}

async function fsyncFile(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function unlinkIfPresent(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if (errorCode(error) !== 'ENOENT') throw error;
  }
}

async function lstatIfPresent(path: string): Promise<Awaited<ReturnType<typeof lstat>> | null> {
  try {
    return await lstat(path);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return null;
    throw error;
  }
}

function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error
    ? String((error as { code: unknown }).code)
    : undefined;
}
