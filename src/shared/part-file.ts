import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { Blake3Hasher } from '@napi-rs/blake-hash';
import type { FileDigest } from './blake3.js';

/**
 * A part file: a download in progress, appended to with a running BLAKE3 of
 * everything in it, so that a resume re-hashes what is there and goes on. The
 * storage node's pulls and `ubackup restore`'s downloads both write through it.
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
 * Opens (or creates) the part file at `path` for appending, never through a
 * symbolic link. What is already there is re-hashed, so a download resumes
 * where it stopped.
 */
export async function openPartFile(path: string, options: OpenPartOptions = {}): Promise<PartFile> {
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
