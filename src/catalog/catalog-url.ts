import { isAbsolute, join, resolve } from 'node:path';

/** Where the catalog lives: a SQLite file or a PostgreSQL connection string. */
export type CatalogLocation = { dialect: 'sqlite'; path: string } | { dialect: 'postgres'; url: string };

export class CatalogUrlError extends Error {
  override name = 'CatalogUrlError';
}

/**
 * Parses `--db`: `sqlite:<path>` (relative paths resolve against the working
 * directory), `sqlite://<abs path>`, `postgres://…` or `postgresql://…`.
 * Without `--db` the catalog is `<data-dir>/catalog.db`.
 */
export function parseCatalogUrl(value: string | undefined, dataDir: string): CatalogLocation {
  if (value === undefined || value === '')
    return { dialect: 'sqlite', path: join(resolve(dataDir), 'catalog.db') };
  if (value.startsWith('postgres://') || value.startsWith('postgresql://')) {
    try {
      new URL(value);
    } catch {
      throw new CatalogUrlError(`--db: not a valid PostgreSQL URL: ${redactCatalogUrl(value)}`);
    }
    return { dialect: 'postgres', url: value };
  }
  if (value.startsWith('sqlite:')) {
    const rest = value.slice('sqlite:'.length).replace(/^\/\//, '');
    if (rest === '')
      throw new CatalogUrlError('--db: sqlite: needs a file path, e.g. sqlite:/var/lib/ubackup/catalog.db');
    return { dialect: 'sqlite', path: isAbsolute(rest) ? rest : resolve(rest) };
  }
  throw new CatalogUrlError(`--db must start with sqlite: or postgres:// (got "${redactCatalogUrl(value)}")`);
}

/** The URL with any password replaced, for logs and errors. */
export function redactCatalogUrl(value: string): string {
  return value.replace(/(\/\/[^:/@]*:)[^@]*@/, '$1***@');
}
