import { parseCatalogUrl } from '../catalog/catalog-url.js';
import { type Catalog, migrateCatalog, openCatalog } from '../catalog/database.js';

export interface CatalogFlags {
  dataDir: string;
  db?: string;
}

/**
 * Opens the same catalog the server uses (same --data-dir / --db), brings it
 * to the newest schema unless told not to (the migrate command reports that
 * itself), runs `work`, closes.
 */
export async function withAdminCatalog<T>(
  flags: CatalogFlags,
  work: (catalog: Catalog) => Promise<T>,
  options: { migrate: boolean } = { migrate: true },
): Promise<T> {
  const catalog = openCatalog(parseCatalogUrl(flags.db, flags.dataDir), { poolSize: 2 });
  try {
    if (options.migrate) await migrateCatalog(catalog);
    return await work(catalog);
  } finally {
    await catalog.close();
  }
}
