import { join } from 'node:path';
import { expect } from 'vitest';
import type { CatalogLocation } from '../../src/catalog/catalog-url.js';
import { type Catalog, openCatalog } from '../../src/catalog/database.js';
import type { BackendName } from './catalog-backends.js';
import { runCli } from './cli-process.js';
import { sharedPostgres } from './postgres.js';

/** The catalog a `ubackup server` process and the admin commands share in a test. */
export interface ProcessCatalog {
  dataDir: string;
  /** `--db` for the commands, or undefined for the SQLite default in dataDir. */
  db: string | undefined;
  dbArgs: string[];
  location: CatalogLocation;
}

/** SQLite in `<dir>/server`, or a fresh database on the shared PostgreSQL. */
export async function processCatalog(backend: BackendName, dir: string): Promise<ProcessCatalog> {
  const dataDir = join(dir, 'server');
  if (backend === 'postgres') {
    const db = await (await sharedPostgres()).createDatabase();
    return { dataDir, db, dbArgs: ['--db', db], location: { dialect: 'postgres', url: db } };
  }
  return {
    dataDir,
    db: undefined,
    dbArgs: [],
    location: { dialect: 'sqlite', path: join(dataDir, 'catalog.db') },
  };
}

/** `ubackup admin token create --role enroll`, as an operator would run it. */
export function createEnrollToken(pc: ProcessCatalog): Promise<string> {
  return createToken(pc, 'enroll', 'fleet');
}

/** `ubackup admin token create --role <role> --name <name>` against the catalog; returns the token. */
export async function createToken(pc: ProcessCatalog, role: string, name: string): Promise<string> {
  const created = await runCli([
    'admin',
    'token',
    'create',
    '--role',
    role,
    '--name',
    name,
    '--data-dir',
    pc.dataDir,
    ...pc.dbArgs,
  ]);
  expect(created.code, created.stderr).toBe(0);
  expect(created.stdout).toMatch(/^ubt_[A-Za-z0-9_-]{43}\n$/);
  return created.stdout.trim();
}

/** Opens the catalog beside the running processes, runs `read`, closes it. */
export async function readCatalog<T>(
  location: CatalogLocation,
  read: (catalog: Catalog) => Promise<T>,
): Promise<T> {
  const catalog = openCatalog(location);
  try {
    return await read(catalog);
  } finally {
    await catalog.close();
  }
}
