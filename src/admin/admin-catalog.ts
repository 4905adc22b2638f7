import { parseCatalogUrl } from '../catalog/catalog-url.js';
import { type Catalog, migrateCatalog, openCatalog } from '../catalog/database.js';

export interface CatalogFlags {
  dataDir: string;
  db?: string;
}

/** Opens and migrates the same catalog the server uses (same --data-dir / --db), runs `work`, closes. */
export async function withAdminCatalog<T>(
  flags: CatalogFlags,
  work: (catalog: Catalog) => Promise<T>,
): Promise<T> {
  const catalog = openCatalog(parseCatalogUrl(flags.db, flags.dataDir), { poolSize: 2 });
  try {
    await migrateCatalog(catalog);
    return await work(catalog);
  } finally {
    await catalog.close();
  }
}
