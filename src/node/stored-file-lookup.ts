import { constants } from 'node:fs';
import { type FileHandle, open, readdir, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { describeError } from '../shared/describe-error.js';
import { errnoCode } from '../shared/errno-code.js';
import { isStrictlyInside } from '../shared/strictly-inside.js';
import type { TicketClaims } from '../shared/ticket.js';
import { layoutProblem, type Sidecar, SidecarSchema, sidecarPath } from './storage-layout.js';

/**
 * Finds and opens the stored file a restore ticket names (DESIGN §9).
 *
 * The ticket names type, server_id, instance, filename and backup_id, but not
 * the business (game_id), which is the first directory of the stored path.
 * The candidates are `<root>/<g>/<type>/<server_id>/<instance>/<filename>` for
 * every directory `<g>` at the top of the root that is a valid game_id (not
 * `.incoming`); the one whose sidecar names the ticket's backup_id, type,
 * server_id, instance, filename and `<g>` is the file. The top directory holds
 * one entry per business, so this is a directory read and a few failed
 * lookups per request.
 *
 * Every component is held to the storage layout's rules before it touches
 * the file system. The file and its sidecar are opened by their real paths,
 * which must be strictly inside the real path of the root (a symlink that
 * stays inside is followed; one that leaves is refused), with O_NOFOLLOW (a
 * symlink swapped in afterwards is refused) and O_NONBLOCK (a FIFO cannot
 * hang the open). The file must be a regular file whose size is the ticket's
 * and whose sidecar has the ticket's size and BLAKE3.
 */

/** A sidecar is a few hundred bytes; anything longer is not one. */
const MAX_SIDECAR_BYTES = 64 * 1024;

export type StoredFileProblem =
  | 'invalid_path'
  | 'not_stored'
  | 'outside_root'
  | 'not_a_file'
  | 'ambiguous'
  | 'size_mismatch'
  | 'checksum_mismatch'
  | 'read_error';

export type StoredFileLookup =
  | {
      ok: true;
      handle: FileHandle;
      /** The real path of the opened file. */
      path: string;
      /** `<game_id>/<type>/<server_id>/<instance>/<filename>`. */
      relativePath: string;
      size: number;
      mtime: Date;
      sidecar: Sidecar;
    }
  | { ok: false; problem: StoredFileProblem; reason: string };

type Claims = Pick<
  TicketClaims,
  'backup_id' | 'type' | 'server_id' | 'instance' | 'filename' | 'size' | 'blake3'
>;

function failure(problem: StoredFileProblem, reason: string): StoredFileLookup {
  return { ok: false, problem, reason };
}

type Candidate =
  | { kind: 'absent' }
  | { kind: 'outside'; reason: string }
  | { kind: 'other'; reason: string }
  | { kind: 'error'; reason: string }
  | { kind: 'match'; real: string; relativePath: string; sidecar: Sidecar };

/** Opens `path` (a real path) without following a final symlink, and reads at most `limit` bytes. */
async function readSmallFile(path: string, limit: number): Promise<Buffer | null> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const stats = await handle.stat();
    if (!stats.isFile() || stats.size > limit) return null;
    const buffer = Buffer.alloc(stats.size);
    const { bytesRead } = await handle.read(buffer, 0, stats.size, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

async function examine(root: string, gameId: string, claims: Claims): Promise<Candidate> {
  const relativePath = [gameId, claims.type, claims.server_id, claims.instance, claims.filename].join('/');
  const requested = join(root, gameId, claims.type, claims.server_id, claims.instance, claims.filename);
  let real: string;
  try {
    real = await realpath(requested);
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'absent' };
    if (code === 'ELOOP') return { kind: 'outside', reason: `${relativePath} is a symlink loop` };
    return { kind: 'error', reason: `cannot resolve ${relativePath}: ${describeError(error)}` };
  }
  if (!isStrictlyInside(root, real)) {
    return {
      kind: 'outside',
      reason: `${relativePath} resolves to ${real}, outside the node's root ${root}`,
    };
  }
  let sidecarReal: string;
  let text: Buffer | null;
  try {
    sidecarReal = await realpath(sidecarPath(requested));
    if (!isStrictlyInside(root, sidecarReal)) {
      return { kind: 'outside', reason: `the sidecar of ${relativePath} resolves outside the node's root` };
    }
    text = await readSmallFile(sidecarReal, MAX_SIDECAR_BYTES);
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      return { kind: 'other', reason: `${relativePath} has no sidecar (not stored by a UBackup node)` };
    }
    return { kind: 'error', reason: `cannot read the sidecar of ${relativePath}: ${describeError(error)}` };
  }
  if (text === null)
    return { kind: 'other', reason: `the sidecar of ${relativePath} is not a small regular file` };
  let json: unknown;
  try {
    json = JSON.parse(text.toString('utf8'));
  } catch {
    return { kind: 'other', reason: `the sidecar of ${relativePath} is not JSON` };
  }
  const parsed = SidecarSchema.safeParse(json);
  if (!parsed.success) return { kind: 'other', reason: `the sidecar of ${relativePath} is not valid` };
  const sidecar = parsed.data;
  const same =
    sidecar.backup_id === claims.backup_id &&
    sidecar.game_id === gameId &&
    sidecar.type === claims.type &&
    sidecar.server_id === claims.server_id &&
    sidecar.instance === claims.instance &&
    sidecar.filename === claims.filename;
  if (!same) {
    return {
      kind: 'other',
      reason: `${relativePath} is backup ${sidecar.backup_id} by its sidecar, not backup ${claims.backup_id}`,
    };
  }
  return { kind: 'match', real, relativePath, sidecar };
}

/** The stored file of `claims` under `root`, open for reading; or why it cannot be served. */
export async function openStoredFile(root: string, claims: Claims): Promise<StoredFileLookup> {
  for (const field of ['type', 'server_id', 'instance', 'filename'] as const) {
    const problem = layoutProblem(field, claims[field]);
    if (problem !== null) {
      return failure('invalid_path', `the ticket's ${field} cannot be a stored path component (${problem})`);
    }
  }
  let realRoot: string;
  let names: string[];
  try {
    realRoot = await realpath(root);
    const entries = await readdir(realRoot, { withFileTypes: true });
    names = entries
      .filter((e) => (e.isDirectory() || e.isSymbolicLink()) && layoutProblem('game_id', e.name) === null)
      .map((e) => e.name)
      .sort();
  } catch (error) {
    return failure('read_error', `cannot read the node's root ${root}: ${describeError(error)}`);
  }
  const candidates = await Promise.all(names.map((name) => examine(realRoot, name, claims)));
  const matches = candidates.filter((c) => c.kind === 'match');
  if (matches.length > 1) {
    return failure(
      'ambiguous',
      `backup ${claims.backup_id} is stored more than once: ${matches.map((m) => m.relativePath).join(', ')}`,
    );
  }
  const match = matches[0];
  if (match === undefined) {
    const outside = candidates.find((c) => c.kind === 'outside');
    if (outside !== undefined) return failure('outside_root', outside.reason);
    const error = candidates.find((c) => c.kind === 'error');
    if (error !== undefined) return failure('read_error', error.reason);
    const other = candidates.find((c) => c.kind === 'other');
    const path = `*/${claims.type}/${claims.server_id}/${claims.instance}/${claims.filename}`;
    return failure(
      'not_stored',
      `backup ${claims.backup_id} is not stored on this node (${path})${other !== undefined ? `: ${other.reason}` : ''}`,
    );
  }
  if (match.sidecar.size !== claims.size || match.sidecar.blake3 !== claims.blake3) {
    return failure(
      match.sidecar.size !== claims.size ? 'size_mismatch' : 'checksum_mismatch',
      `${match.relativePath} was stored with size ${match.sidecar.size} and blake3 ${match.sidecar.blake3}, ` +
        `the ticket names size ${claims.size} and blake3 ${claims.blake3}`,
    );
  }
  let handle: FileHandle;
  try {
    handle = await open(match.real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'ENOENT' || code === 'ENOTDIR')
      return failure('not_stored', `${match.relativePath} is gone`);
    if (code === 'ELOOP') return failure('outside_root', `${match.relativePath} was replaced by a symlink`);
    return failure('read_error', `cannot open ${match.relativePath}: ${describeError(error)}`);
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) {
      await handle.close();
      return failure('not_a_file', `${match.relativePath} is not a regular file`);
    }
    if (stats.size !== claims.size) {
      await handle.close();
      return failure(
        'size_mismatch',
        `${match.relativePath} is ${stats.size} bytes on disk, the ticket names ${claims.size}`,
      );
    }
    return {
      ok: true,
      handle,
      path: match.real,
      relativePath: match.relativePath,
      size: stats.size,
      mtime: stats.mtime,
      sidecar: match.sidecar,
    };
  } catch (error) {
    await handle.close().catch(() => undefined);
    return failure('read_error', `cannot stat ${match.relativePath}: ${describeError(error)}`);
  }
}
