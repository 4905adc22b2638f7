import { accessSync, constants, readdirSync, statSync } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';

// Tests use real programs. A missing program is a broken machine, not a reason to skip:
// requireTool throws with the exact command that installs it.

function aptHint(debianPackage: string): string {
  return `run "apt-get install -y --no-install-recommends ${debianPackage}" (CI installs it in .ci/run)`;
}

/** Install hints keyed by the command the tests need; values are the Debian package install instructions. */
export const INSTALL_HINTS = {
  postgres: aptHint('postgresql'),
  rsync: aptHint('rsync'),
  'redis-server': aptHint('redis-server'),
  mariadbd: aptHint('mariadb-server'),
  chromium: aptHint('chromium'),
  b3sum: aptHint('b3sum'),
} as const satisfies Record<string, string>;

const POSTGRES_LIB_ROOT = '/usr/lib/postgresql';

// Programs shipped in /usr/lib/postgresql/<version>/bin that Debian does not always put on PATH.
const POSTGRES_SERVER_TOOLS: ReadonlySet<string> = new Set([
  'postgres',
  'postmaster',
  'initdb',
  'psql',
  'createdb',
  'dropdb',
  'createuser',
  'dropuser',
  'vacuumdb',
  'reindexdb',
  'clusterdb',
  'pgbench',
]);

function isPostgresTool(command: string): boolean {
  return POSTGRES_SERVER_TOOLS.has(command) || command.startsWith('pg_');
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function compareVersionsDescending(a: string, b: string): number {
  const pa = a.split('.').map((part) => Number.parseInt(part, 10));
  const pb = b.split('.').map((part) => Number.parseInt(part, 10));
  for (let i = 0; i < Math.max(pa.length, pb.length); i += 1) {
    const da = pa[i] ?? 0;
    const db = pb[i] ?? 0;
    if (da !== db) return db - da;
  }
  return 0;
}

/** `/usr/lib/postgresql/<version>/bin` directories, newest version first. */
export function postgresBinDirs(): string[] {
  let versions: string[];
  try {
    versions = readdirSync(POSTGRES_LIB_ROOT).filter((name) => /^\d+(\.\d+)*$/.test(name));
  } catch {
    return [];
  }
  return versions.sort(compareVersionsDescending).map((version) => join(POSTGRES_LIB_ROOT, version, 'bin'));
}

/** Absolute path of `command`, or undefined. Searches PATH, then (PostgreSQL tools only) the versioned dirs. */
export function findTool(command: string): string | undefined {
  if (command.includes('/')) {
    const candidate = isAbsolute(command) ? command : resolve(command);
    return isExecutableFile(candidate) ? candidate : undefined;
  }
  const dirs = (process.env.PATH ?? '').split(delimiter).filter((dir) => dir.length > 0);
  if (isPostgresTool(command)) dirs.push(...postgresBinDirs());
  for (const dir of dirs) {
    const candidate = resolve(dir, command);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

/**
 * Absolute path of an executable. Throws (tests must fail, never skip) when it is missing:
 * `rsync is not installed: run "apt-get install -y --no-install-recommends rsync" (CI installs it in .ci/run)`.
 */
export function requireTool(command: string, installHint: string): string {
  const found = findTool(command);
  if (found === undefined) {
    throw new Error(`${command} is not installed: ${installHint}`);
  }
  return found;
}
