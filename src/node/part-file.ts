import { link, lstat, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { blake3File, type FileDigest } from '../shared/blake3.js';
import { fsyncDir } from '../shared/fsync-dir.js';
import { type OpenPartOptions, openPartFile, type PartFile } from '../shared/part-file.js';
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

const FILE_MODE = 0o640;

/**
 * The node's durable write path (DESIGN §3 invariants 3 and 5):
 *
 *   .incoming/<job>.part  ─append+hash─►  fsync  ─verify─►  link into place
 *        ─►  sidecar (tmp in .incoming, fsync, rename beside the file)  ─►  fsync dir  ─►  unlink the part
 *
 * At every instant the final path holds nothing or a whole, verified file: the
 * file only appears there after its content was checked against the expected
 * size and BLAKE3 and fsynced. One directory fsync covers the link and the
 * sidecar's rename; the transfer is reported complete only after it. A crash
 * before it may leave the file without its sidecar, or (on file systems that
 * do not keep the order of operations in a directory) the sidecar without its
 * file; the part is still there, so a retry finishes the job, and `node
 * reindex` reports either leftover (re-verifying a file without a sidecar).
 */

/**
 * Opens (or creates) `<root>/.incoming/<jobId>.part` for appending. What is
 * already there is re-hashed, so a retried job resumes where it stopped.
 */
export async function openPart(
  root: string,
  jobId: number,
  options: OpenPartOptions = {},
): Promise<PartFile> {
  await mkdirDurable(incomingDir(root));
  return openPartFile(partPath(root, jobId), options);
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
   * The digest computed while the part was written, given only once the part's
   * content is fsynced (PartFile.finish; the rsync pull's hash-and-sync). When it
   * is missing, or its size disagrees with the file, the part is re-read, hashed
   * and fsynced here.
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

  // Durable before it becomes visible: a given digest comes with a synced part (see `actual`).
  if (digest !== options.actual) await fsyncFile(part);
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
  // One fsync of the directory makes both the link and the sidecar's rename durable; until
  // it returns nothing is reported, and the part is kept for a retry (which adopts the file).
  await writeSidecar(root, jobId, target, sidecar, alreadyPresent);
  // Not fsynced: should a crash bring the part back, the file is in place (a retry adopts it
  // after checking it) and the stale-part sweep deletes the part a day later. Each directory
  // fsync costs a journal commit, shared with every other transfer writing at the time.
  await unlinkIfPresent(part);
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
