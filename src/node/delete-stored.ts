import { constants } from 'node:fs';
import { lstat, open, realpath, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { AgentLog } from '../agent/delivery.js';
import { describeError } from '../shared/describe-error.js';
import { errnoCode } from '../shared/errno-code.js';
import type { StoredDelete } from '../shared/node-protocol.js';
import { isStrictlyInside } from '../shared/strictly-inside.js';
import { LAYOUT_FIELDS, layoutProblem, SidecarSchema, sidecarPath } from './storage-layout.js';

/**
 * Retention's deletes on the node (DESIGN §11): the heartbeat reply names
 * stored copies (backup id and path relative to the root); the node removes
 * each file and its sidecar and confirms what is gone.
 *
 * A path is trusted no more than any other path from the network:
 *
 * - it must be exactly `<game_id>/<type>/<server_id>/<instance>/<filename>`,
 *   every component valid by the storage layout (no `..`, no separators, no
 *   NUL, not `.incoming`, not a sidecar name);
 * - the real path of its directory must be strictly inside the real path of
 *   the root (a symlinked directory that leads out is refused);
 * - a sidecar naming another backup means the file is not this backup's copy:
 *   it is left alone.
 *
 * Only directory entries inside the root are unlinked; a symlink in the
 * file's place is removed itself, never what it points to. A file already
 * missing counts as deleted. Refused and failed deletes are not confirmed, so
 * the server sends them again with a later heartbeat.
 */

export type DeleteOutcome =
  /** Removed now (`deleted`), or nothing was there any more (`gone`): confirm it. */
  | { backup_id: number; status: 'deleted' | 'gone' }
  /** The path is not one the node deletes (`refused`), or removing it failed (`failed`): try again later. */
  | { backup_id: number; status: 'refused' | 'failed'; reason: string };

/** A sidecar is a few hundred bytes; anything longer is not one. */
const MAX_SIDECAR_BYTES = 64 * 1024;

const GONE_CODES = new Set(['ENOENT', 'ENOTDIR']);

/** Removes the stored copy `item` names under `root`, file first, then its sidecar. */
export async function deleteStoredCopy(root: string, item: StoredDelete): Promise<DeleteOutcome> {
  const refused = (reason: string): DeleteOutcome => ({
    backup_id: item.backup_id,
    status: 'refused',
    reason,
  });
  const failed = (reason: string): DeleteOutcome => ({ backup_id: item.backup_id, status: 'failed', reason });
  const shown = JSON.stringify(item.path);

  const parts = item.path.split('/');
  if (parts.length !== LAYOUT_FIELDS.length)
    return refused(`${shown} is not <game_id>/<type>/<server_id>/<instance>/<filename>`);
  for (const [i, field] of LAYOUT_FIELDS.entries()) {
    const problem = layoutProblem(field, parts[i] as string);
    if (problem !== null)
      return refused(`${shown}: its ${field} cannot be a stored path component (${problem})`);
  }
  const filename = parts[4] as string;

  let realRoot: string;
  let realDir: string;
  try {
    realRoot = await realpath(root);
  } catch (error) {
    return failed(`cannot resolve the node's root ${root}: ${describeError(error)}`);
  }
  try {
    realDir = await realpath(join(realRoot, ...parts.slice(0, 4)));
  } catch (error) {
    const code = errnoCode(error);
    if (code !== undefined && GONE_CODES.has(code)) return { backup_id: item.backup_id, status: 'gone' };
    if (code === 'ELOOP') return refused(`${shown} leads through a symlink loop`);
    return failed(`cannot resolve the directory of ${shown}: ${describeError(error)}`);
  }
  if (!isStrictlyInside(realRoot, realDir))
    return refused(`${shown} resolves to ${realDir}, outside the node's root ${realRoot}`);

  const file = join(realDir, filename);
  try {
    const owner = await sidecarOwner(sidecarPath(file));
    if (owner !== null && owner !== item.backup_id)
      return refused(`${shown} holds backup ${owner} by its sidecar, not backup ${item.backup_id}`);
    const removedFile = await removeEntry(file);
    if (removedFile === 'directory') return refused(`${shown} is a directory, not a stored file`);
    const removedSidecar = await removeEntry(sidecarPath(file));
    if (removedSidecar === 'directory') return refused(`the sidecar of ${shown} is a directory`);
    if (removedFile === 'absent' && removedSidecar === 'absent')
      return { backup_id: item.backup_id, status: 'gone' };
    await syncDirectory(realDir);
    return { backup_id: item.backup_id, status: 'deleted' };
  } catch (error) {
    return failed(`cannot delete ${shown}: ${describeError(error)}`);
  }
}

/** The backup id the sidecar at `path` names; null when there is none or it is not a valid sidecar. */
async function sidecarOwner(path: string): Promise<number | null> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = errnoCode(error);
    // Missing, or a symlink (ELOOP) that is no sidecar of ours: removed as an entry like the rest.
    if (code === 'ENOENT' || code === 'ELOOP' || code === 'ENOTDIR') return null;
    throw error;
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile() || stats.size > MAX_SIDECAR_BYTES) return null;
    const text = await handle.readFile('utf8');
    const parsed = SidecarSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data.backup_id : null;
  } catch (error) {
    if (error instanceof SyntaxError) return null;
    throw error;
  } finally {
    await handle.close();
  }
}

/** Unlinks the entry at `path` (a file or a symlink, never a directory). */
async function removeEntry(path: string): Promise<'removed' | 'absent' | 'directory'> {
  try {
    if ((await lstat(path)).isDirectory()) return 'directory';
    await unlink(path);
    return 'removed';
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return 'absent';
    throw error;
  }
}

/** Makes the removals durable; a directory that cannot be synced is not worth a retry. */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // The entries are gone from the directory already; only their durability is in question.
  }
}

export interface StoredDeleter {
  /**
   * Takes the deletes of a heartbeat reply. They are carried out in the
   * background, one batch at a time: while a batch runs, new offers are
   * ignored (the server sends what is still pending again).
   */
  offer(deletes: readonly StoredDelete[]): void;
  /** Resolves when no batch is running. */
  idle(): Promise<void>;
}

/** Most refusals and failures remembered so each is logged once, not at every heartbeat. */
const MAX_REMEMBERED_PROBLEMS = 10_000;

/**
 * Deletes offered copies under `root` and confirms the deleted and already
 * gone ones with `confirm`, which answers how many the server counted, or an
 * error (the server sends them again, they are found gone and confirmed then).
 */
export function createStoredDeleter(options: {
  root: string;
  log: AgentLog;
  confirm: (backupIds: number[]) => Promise<{ ok: true; confirmed: number } | { ok: false; error: string }>;
}): StoredDeleter {
  const { root, log } = options;
  let running: Promise<void> | null = null;
  const reported = new Set<string>();

  const report = (outcome: Extract<DeleteOutcome, { reason: string }>): void => {
    const key = `${outcome.backup_id}\u0000${outcome.reason}`;
    if (reported.has(key)) return;
    if (reported.size >= MAX_REMEMBERED_PROBLEMS) reported.clear();
    reported.add(key);
    const verb = outcome.status === 'refused' ? 'refused to delete' : 'could not delete';
    log.error(`retention: ${verb} backup ${outcome.backup_id}: ${outcome.reason}; it stays pending`);
  };

  const runBatch = async (deletes: readonly StoredDelete[]): Promise<void> => {
    const done: number[] = [];
    let removed = 0;
    for (const item of deletes) {
      const outcome = await deleteStoredCopy(root, item);
      if ('reason' in outcome) {
        report(outcome);
        continue;
      }
      done.push(outcome.backup_id);
      if (outcome.status === 'deleted') removed += 1;
    }
    if (done.length === 0) return;
    const answer = await options.confirm(done);
    if (answer.ok) {
      log.info(
        `retention: deleted ${removed} stored cop${removed === 1 ? 'y' : 'ies'}` +
          `${done.length > removed ? ` (${done.length - removed} already gone)` : ''}; the server recorded ${answer.confirmed}`,
      );
    } else {
      log.warn(
        `retention: could not confirm ${done.length} deletes (${answer.error}); they are confirmed again later`,
      );
    }
  };

  return {
    offer(deletes) {
      if (running !== null || deletes.length === 0) return;
      running = runBatch(deletes)
        .catch((error: unknown) =>
          log.error(`retention: deleting stored copies failed: ${describeError(error)}`),
        )
        .finally(() => {
          running = null;
        });
    },
    async idle() {
      await running;
    },
  };
}
