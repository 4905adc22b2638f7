import { statfs } from 'node:fs/promises';

export interface DiskSpace {
  /** Size of the file system holding the path. */
  totalBytes: number;
  /** Bytes an unprivileged writer can still use (f_bavail × f_bsize; excludes root's reserved blocks). */
  freeBytes: number;
}

/** Capacity of the file system that holds `path` (statfs(2)). */
export async function freeSpace(path: string): Promise<DiskSpace> {
  const stats = await statfs(path, { bigint: true });
  return {
    totalBytes: Number(stats.blocks * stats.bsize),
    freeBytes: Number(stats.bavail * stats.bsize),
  };
}
