import { sep } from 'node:path';

/** True when `path` is below `root` (both real paths), never `root` itself. */
export function isStrictlyInside(root: string, path: string): boolean {
  const prefix = root.endsWith(sep) ? root : `${root}${sep}`;
  return path.length > prefix.length && path.startsWith(prefix);
}
