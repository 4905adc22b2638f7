/**
 * Fills a catalog with a synthetic fleet (src/demo/fleet-fixture.ts): businesses,
 * types, clusters, nodes, hosts, instances, two backups a day per instance with
 * their transfer jobs, alerts and audit entries. The catalog is migrated first;
 * it must not hold a fleet yet. Prints rows and time per table, and the size.
 *
 *   npm run fixture:fleet -- [--instances 200000] [--days 30] [--catalog <sqlite path | postgres://url>]
 *                            [--end <ISO time, default now>] [--seed 1] [--businesses 200]
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import { type CatalogLocation, parseCatalogUrl, redactCatalogUrl } from '../src/catalog/catalog-url.js';
import { type Catalog, migrateCatalog, openCatalog } from '../src/catalog/database.js';
import { FleetFixtureError, type FleetStep, fillFleet } from '../src/demo/fleet-fixture.js';

const { values } = parseArgs({
  options: {
    instances: { type: 'string', default: '200000' },
    days: { type: 'string', default: '30' },
    catalog: { type: 'string', default: 'fleet-catalog.db' },
    end: { type: 'string' },
    seed: { type: 'string', default: '1' },
    businesses: { type: 'string' },
  },
});

/** A PostgreSQL URL, `sqlite:<path>`, or a plain path (a SQLite file). */
function locationOf(value: string): CatalogLocation {
  return /^(postgres(ql)?|sqlite):/.test(value)
    ? parseCatalogUrl(value, process.cwd())
    : { dialect: 'sqlite', path: resolve(value) };
}

function timeOf(value: string | undefined): number {
  if (value === undefined) return Date.now();
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new FleetFixtureError(`--end: not an ISO time: ${value}`);
  return ms;
}

function line(step: FleetStep): string {
  return `  ${step.name.padEnd(28)} ${String(step.rows).padStart(11)} rows ${(step.ms / 1000).toFixed(1).padStart(8)} s`;
}

async function sizeOf(catalog: Catalog, location: CatalogLocation): Promise<string> {
  if (location.dialect === 'postgres') {
    const row = await sql<{
      size: string;
    }>`select pg_size_pretty(pg_database_size(current_database())) as size`.execute(catalog.db);
    return row.rows[0]?.size ?? '?';
  }
  return `${(statSync(location.path).size / 2 ** 20).toFixed(0)} MB`;
}

async function main(): Promise<void> {
  const location = locationOf(values.catalog);
  const where = location.dialect === 'postgres' ? redactCatalogUrl(location.url) : location.path;
  const options = {
    instances: Number(values.instances),
    days: Number(values.days),
    end: timeOf(values.end),
    seed: Number(values.seed),
    ...(values.businesses === undefined ? {} : { businesses: Number(values.businesses) }),
  };
  console.log(
    `fleet: ${options.instances} instances × ${options.days} days, end ${new Date(options.end).toISOString()}, seed ${options.seed} → ${location.dialect} ${where}`,
  );
  const catalog = openCatalog(location);
  try {
    const migrateStart = performance.now();
    const migrated = await migrateCatalog(catalog);
    console.log(
      line({
        name: `migrations (${migrated.applied.length} applied)`,
        rows: 0,
        ms: performance.now() - migrateStart,
      }),
    );
    const report = await fillFleet(catalog, {
      ...options,
      onStep: (step) => console.log(line(step)),
      onIndex: (name, ms) => console.log(`      ${name.padEnd(40)} ${(ms / 1000).toFixed(1).padStart(8)} s`),
    });
    console.log(`  ${'total'.padEnd(28)} ${' '.repeat(16)} ${(report.ms / 1000).toFixed(1).padStart(8)} s`);
    console.log(
      `cycles ${new Date(report.firstCycle).toISOString().slice(0, 10)} … ${new Date(report.lastCycle).toISOString().slice(0, 10)}; rows: ${Object.entries(
        report.rows,
      )
        .map(([table, n]) => `${table} ${n}`)
        .join(', ')}; catalog size ${await sizeOf(catalog, location)}`,
    );
  } finally {
    await catalog.close();
  }
}

try {
  await main();
} catch (error) {
  console.error(`fixture:fleet: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
