/** The catalog's two back ends. */
export type CatalogDialect = 'sqlite' | 'postgres';

/** Column types that differ between the back ends. */
export interface ColumnTypes {
  id: 'integer' | 'bigserial';
  bigint: 'integer' | 'bigint';
}

export function columnTypes(dialect: CatalogDialect): ColumnTypes {
  return dialect === 'postgres'
    ? { id: 'bigserial', bigint: 'bigint' }
    : { id: 'integer', bigint: 'integer' };
}
