import {
  AS_ROOT,
  aptHint,
  cleanEnv,
  type DbServer,
  must,
  run,
  startDbServer,
  waitReady,
} from './db-process.js';
import { freePort } from './free-port.js';
import { INSTALL_HINTS, requireTool } from './required-tool.js';

// PostgreSQL's own programs for the example-script tests: initdb, a server on a given data
// directory (a restored one too: postgres.ts starts only fresh clusters of its own), psql and
// pg_dump with libpq's variables. As root, initdb and postgres run as the `postgres` OS user.

export interface PgTools {
  initdb: string;
  postgres: string;
  psql: string;
  pgDump: string;
  /** Prefix that runs a command as the `postgres` OS user (empty when we are not root). */
  asPostgres: string[];
  /** The `postgres` OS user, when we are root: data directories and their parents must be its. */
  owner?: { uid: number; gid: number };
}

/** The server and client programs (pg_basebackup and pg_restore too); fails (never skips) when one is missing. */
export async function pgTools(): Promise<PgTools> {
  const tools: PgTools = {
    initdb: requireTool('initdb', INSTALL_HINTS.postgres),
    postgres: requireTool('postgres', INSTALL_HINTS.postgres),
    psql: requireTool('psql', INSTALL_HINTS.postgres),
    pgDump: requireTool('pg_dump', INSTALL_HINTS.postgres),
    asPostgres: [],
  };
  requireTool('pg_basebackup', INSTALL_HINTS.postgres);
  requireTool('pg_restore', INSTALL_HINTS.postgres);
  requireTool('createdb', INSTALL_HINTS.postgres);
  if (AS_ROOT) {
    // initdb and postgres refuse to run as root. setpriv execs (no fork), so the server is our child.
    const setpriv = requireTool('setpriv', aptHint('util-linux'));
    const uid = Number.parseInt((await must(['id', '-u', 'postgres'])).trim(), 10);
    const gid = Number.parseInt((await must(['id', '-g', 'postgres'])).trim(), 10);
    tools.asPostgres = [setpriv, `--reuid=${uid}`, `--regid=${gid}`, '--init-groups', '--'];
    tools.owner = { uid, gid };
  }
  return tools;
}

/** libpq's variables for the server on 127.0.0.1:port as the `postgres` role (trust auth). */
export function libpqEnv(port: number): Record<string, string> {
  return { PGHOST: '127.0.0.1', PGPORT: String(port), PGUSER: 'postgres' };
}

/** Runs SQL in `db` with psql (stop on the first error), unaligned tuples only. */
export function psql(tools: PgTools, port: number, db: string, sql: string): Promise<string> {
  return must([tools.psql, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-At', '-d', db, '-c', sql], {
    env: cleanEnv(libpqEnv(port)),
  });
}

/** Plain pg_dump of a database, without the per-run random \restrict key lines. */
export async function pgDumpText(tools: PgTools, port: number, db: string): Promise<string> {
  return (await must([tools.pgDump, '-d', db], { env: cleanEnv(libpqEnv(port)) }))
    .split('\n')
    .filter((line) => !/^\\(un)?restrict /.test(line))
    .join('\n');
}

/** initdb of a new cluster in `dataDir` (its parent must be writable by the postgres user). */
export async function initPgDataDir(tools: PgTools, dataDir: string): Promise<void> {
  await must([
    ...tools.asPostgres,
    tools.initdb,
    '-D',
    dataDir,
    '-U',
    'postgres',
    '--auth=trust',
    '-E',
    'UTF8',
    '--locale=C',
    '--no-sync',
  ]);
}

/** `postgres -D dataDir` on a free 127.0.0.1 port, its unix socket in `socketDir`; waits until it answers. */
export async function startPg(
  tools: PgTools,
  name: string,
  dataDir: string,
  socketDir: string,
): Promise<{ server: DbServer; port: number }> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const candidate = await freePort();
    const server = startDbServer(
      name,
      [
        ...tools.asPostgres,
        tools.postgres,
        '-D',
        dataDir,
        '-p',
        String(candidate),
        '-k',
        socketDir,
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'fsync=off',
      ],
      'SIGINT',
      socketDir,
    );
    try {
      await waitReady(server, `${name} to accept connections on port ${candidate}`, async () => {
        const result = await run([tools.psql, '-X', '-At', '-d', 'postgres', '-c', 'SELECT 1'], {
          env: cleanEnv(libpqEnv(candidate)),
          timeoutMs: 5_000,
        });
        return result.code === 0 && result.stdout.trim() === '1';
      });
      return { server, port: candidate };
    } catch (error) {
      lastError = error;
      await server.stop();
      if (!/could not bind|address already in use/i.test(server.logs())) throw error;
    }
  }
  throw lastError;
}

/** A shop database: orders with an index, a sequence, a view, a function, jsonb and bytea. */
export const PG_SAMPLE_DATA = `CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL, total numeric(10,2), placed timestamptz);
       INSERT INTO orders SELECT g, 'c' || (g % 97), g * 1.25, '2024-01-01'::timestamptz + g * interval '1 hour'
         FROM generate_series(1, 5000) g;
       CREATE INDEX orders_customer ON orders (customer);
       CREATE SEQUENCE invoice_no START 1000;
       SELECT nextval('invoice_no');
       CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 1000;
       CREATE FUNCTION order_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM orders';
       CREATE TABLE docs (id serial PRIMARY KEY, body jsonb, raw bytea);
       INSERT INTO docs (body, raw) SELECT jsonb_build_object('n', g), decode(md5(g::text), 'hex') FROM generate_series(1, 200) g;`;
