import type { Dirent } from 'node:fs';
import { lstat, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { AgentLog } from '../agent/delivery.js';
import { fsyncDir } from '../shared/fsync-dir.js';
import { type IncomingEntry, incomingJobId, staleIncoming } from './stale-incoming.js';
import { incomingDir } from './storage-layout.js';

/** How long a leftover in `.incoming` waits before it is deleted: a day. */
export const INCOMING_MAX_IDLE_MS = 24 * 3_600_000;

/** How often the node daemon looks. */
export const INCOMING_SWEEP_EVERY_MS = 3_600_000;

export interface IncomingSweepResult {
  removed: string[];
  bytes: number;
}

/**
 * Deletes what `staleIncoming` chooses in `<root>/.incoming`, asking
 * `busyJobIds` again right before each delete (a job may have been leased
 * meanwhile). A directory's size counts its top level only.
 */
export async function sweepIncoming(options: {
  root: string;
  busyJobIds: () => ReadonlySet<number>;
  now: () => number;
  maxIdleMs?: number;
  log: AgentLog;
}): Promise<IncomingSweepResult> {
  const dir = incomingDir(options.root);
  let names: Dirent[];
  try {
    names = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { removed: [], bytes: 0 };
    throw error;
  }
  const entries: IncomingEntry[] = [];
  for (const dirent of names) {
    const stats = await lstat(join(dir, dirent.name)).catch(() => null);
    if (!stats) continue;
    entries.push({
      name: dirent.name,
      kind: stats.isFile() ? 'file' : stats.isDirectory() ? 'directory' : 'other',
      mtimeMs: stats.mtimeMs,
      bytes: stats.size,
    });
  }
  const { stale, unknown } = staleIncoming(
    entries,
    options.busyJobIds(),
    options.now(),
    options.maxIdleMs ?? INCOMING_MAX_IDLE_MS,
  );
  for (const entry of unknown) {
    options.log.warn(`${join(dir, entry.name)}: not a name the node writes in .incoming; left alone`);
  }
  const removed: string[] = [];
  let bytes = 0;
  for (const entry of stale) {
    const jobId = incomingJobId(entry);
    if (jobId === null || options.busyJobIds().has(jobId)) continue;
    await rm(join(dir, entry.name), { recursive: entry.kind === 'directory', force: true });
    removed.push(entry.name);
    bytes += entry.bytes;
  }
  if (removed.length > 0) {
    await fsyncDir(dir);
    options.log.info(
      `deleted ${removed.length} leftover transfer file(s) from ${dir} (${bytes} bytes, idle over ` +
        `${Math.round((options.maxIdleMs ?? INCOMING_MAX_IDLE_MS) / 3_600_000)} h): ${removed.join(', ')}`,
    );
  }
  return { removed, bytes };
}
