import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TempDir {
  /** Absolute path of the new, empty directory (mode 0700, owned by the current user). */
  path: string;
  /** Removes the directory and everything in it. Safe to call more than once. */
  cleanup(): Promise<void>;
}

/** Creates `<os.tmpdir()>/<prefix>-XXXXXX`. */
export async function makeTempDir(prefix: string): Promise<TempDir> {
  const stem = prefix.endsWith('-') || prefix.endsWith('_') ? prefix : `${prefix}-`;
  const path = await mkdtemp(join(tmpdir(), stem));
  return {
    path,
    async cleanup(): Promise<void> {
      await rm(path, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
    },
  };
}
