import { constants, writeSync } from 'node:fs';
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
const FILE_MODE = 0o640;

/** A write to the part failed (a full disk, an I/O error); `cause` is the system's error. No retry of the transfer helps it. */
export class PartWriteError extends Error {
  override readonly name = 'PartWriteError';
}

/**
 * A transfer's `.part` file, opened for appending, with a BLAKE3 of everything
 * in it. Bytes are gathered in one buffer; a full buffer is hashed and written
 * at its place in the file at once, by a synchronous pwrite(2) in the calling
 * thread, as rsync's receiver writes. The write copies into the page cache
 * while the buffer is still in the CPU's cache, and costs no hand-off to
 * libuv's thread pool: measured, handing each write to the pool cost the
 * receiving thread about 0.4 s per GiB in wake-ups alone (docs/performance.md).
 * The storage node calls it from its receiver threads (receiver-pool.ts), so
 * a slow disk holds up transfers, never the node's heartbeats and leases.
 *
 * A failed write makes the part unusable (the file may hold fewer bytes than
 * were hashed): it throws PartWriteError at once, as does every later call, and only a
 * re-open (which re-hashes what is on disk) recovers.
 */
export class PartFile {
  private readonly buffer: Buffer;
  private buffered = 0;
  /** Bytes written to the file: present at open, then every full or flushed buffer. */
  private written: number;
  private handle: FileHandle | null;
  private broken: PartWriteError | null = null;
  private currentHasher: Blake3Hasher;

  constructor(
    readonly path: string,
    handle: FileHandle,
    /** Bytes that were already in the part when it was opened (resume point). */
    readonly bytesPresent: number,
    hasher: Blake3Hasher,
    buffer: Buffer,
  ) {
    if (buffer.length === 0) throw new RangeError('a part needs a buffer');
    this.handle = handle;
    this.written = bytesPresent;
    this.currentHasher = hasher;
    this.buffer = buffer;
  }

  /** Fed with every byte in the part: those present at open, then each buffer as it is written. */
  get hasher(): Blake3Hasher {
    return this.currentHasher;
  }

  /** Bytes in the part once everything appended is written: present at open + appended. */
  get size(): number {
    return this.written + this.buffered;
  }

  /** Where the next bytes may be placed (then `commit` them): the free end of the buffer; never empty. */
  space(): Uint8Array {
    this.assertUsable();
    return this.buffer.subarray(this.buffered);
  }

  /**
   * Takes `bytes` placed at the start of `space()`; a buffer that is now full
   * is hashed and written before this returns. Throws when the write fails.
   */
  commit(bytes: number): void {
    this.assertUsable();
    if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > this.buffer.length - this.buffered) {
      throw new RangeError(`cannot commit ${bytes} bytes: more than the space offered`);
    }
    this.buffered += bytes;
    if (this.buffered === this.buffer.length) this.writeBuffered();
  }

  /** Appends `chunk` (copied: the caller may reuse it). */
  append(chunk: Uint8Array): void {
    let offset = 0;
    while (offset < chunk.length) {
      const space = this.space();
      const n = Math.min(space.length, chunk.length - offset);
      space.set(chunk.subarray(offset, offset + n));
      offset += n;
      this.commit(n);
    }
  }

  /** Writes everything appended so far (no fsync). */
  flush(): void {
    this.assertUsable();
    this.writeBuffered();
  }

  /** Empties the part and starts a new hash (the source ignored our Range and sent the whole file). */
  async reset(): Promise<void> {
    const handle = this.assertUsable();
    this.buffered = 0;
    await handle.truncate(0);
    this.written = 0;
    this.currentHasher = new Blake3Hasher();
  }

  /** Flushes, fsyncs and closes the part; returns the size and BLAKE3 of its content. */
  async finish(): Promise<FileDigest> {
    const handle = this.assertUsable();
    this.flush();
    await handle.sync();
    await this.close();
    return { size: this.written, blake3: this.currentHasher.digest('hex') };
  }

  /**
   * Keeps what can be kept for a later resume: writes the buffered bytes (best
   * effort, no fsync — a resume re-hashes whatever is there) and closes. Idempotent.
   */
  async close(): Promise<void> {
    const handle = this.handle;
    if (handle === null) return;
    if (this.broken === null) {
      try {
        this.writeBuffered();
      } catch {
        // Kept as far as it went: a resume re-hashes what is on disk.
      }
    }
    this.handle = null;
    await handle.close();
  }

  private assertUsable(): FileHandle {
    if (this.broken) throw this.broken;
    if (this.handle === null) throw new Error(`part file ${this.path} is closed`);
    return this.handle;
  }

  /** Hashes the buffered bytes and writes them at their place in the file. */
  private writeBuffered(): void {
    if (this.buffered === 0) return;
    const handle = this.assertUsable();
    const data = this.buffer.subarray(0, this.buffered);
    try {
      let done = 0;
      while (done < data.length) {
        const n = writeSync(handle.fd, data, done, data.length - done, this.written + done);
        if (n <= 0) throw new Error('write(2) wrote nothing');
        done += n;
      }
    } catch (error) {
      // The file may now hold part of the buffer: only a re-open (re-hash) can recover.
      this.broken = new PartWriteError(`${this.path} could not be written`, { cause: error });
      throw this.broken;
    }
    this.currentHasher.update(data);
    this.written += data.length;
    this.buffered = 0;
  }
}

export interface OpenPartOptions {
  /** Size of the write buffer; default 256 KiB. */
  bufferBytes?: number;
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
    return new PartFile(path, handle, present, hasher, buffer);
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw error;
  }
}
