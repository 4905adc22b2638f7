import { open } from 'node:fs/promises';

/** fsync of a directory, so that a rename, link or unlink in it is durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
