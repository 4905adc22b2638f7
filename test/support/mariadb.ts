import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { AS_ROOT, aptHint, type DbServer, must, run, startDbServer, waitReady } from './db-process.js';
import { INSTALL_HINTS, requireTool } from './required-tool.js';

// Real MariaDB servers in temp dirs: run as root (`--user=root`) on a unix socket only
// (skip-networking), in their own process groups (see db-process.ts).

export const MARIADB_BACKUP_HINT = aptHint('mariadb-backup');
export const MARIADB_CLIENT_HINT = aptHint('mariadb-client');

export interface MariaTools {
  mariadbd: string;
  installDb: string;
  client: string;
}

/** The server, its installer and client; fails (never skips) when one is missing, mariadb-backup too. */
export function mariaTools(): MariaTools {
  requireTool('mariadb-backup', MARIADB_BACKUP_HINT);
  requireTool('mariadb-dump', MARIADB_CLIENT_HINT);
  return {
    mariadbd: requireTool('mariadbd', INSTALL_HINTS.mariadbd),
    installDb: requireTool('mariadb-install-db', INSTALL_HINTS.mariadbd),
    client: requireTool('mariadb', MARIADB_CLIENT_HINT),
  };
}

export interface Maria {
  server: DbServer;
  socket: string;
  /** Runs SQL, returns tab-separated rows without the header. */
  sql(statements: string): Promise<string>;
}

/**
 * Options for a server on a unix socket only. `--user=root` lets mariadbd run as root (it refuses
 * otherwise); as another user it is not needed.
 */
export function mariaServerOptions(dataDir: string, socket: string): string[] {
  return [
    `--datadir=${dataDir}`,
    `--socket=${socket}`,
    `--pid-file=${socket}.pid`,
    '--skip-networking',
    '--skip-log-bin',
    '--innodb-buffer-pool-size=32M',
    '--innodb-log-file-size=16M',
    ...(AS_ROOT ? ['--user=root'] : []),
  ];
}

/** Starts mariadbd with `args` and waits until it answers on `socket`. */
export async function startMaria(
  tools: MariaTools,
  name: string,
  dir: string,
  args: string[],
  socket: string,
): Promise<Maria> {
  const server = startDbServer(name, [tools.mariadbd, ...args], 'SIGTERM', dir);
  const sql = async (statements: string): Promise<string> =>
    must([tools.client, '--no-defaults', `--socket=${socket}`, '--batch', '--skip-column-names'], {
      input: statements,
    });
  await waitReady(server, `${name} to accept connections on ${socket}`, async () => {
    const result = await run([tools.client, '--no-defaults', `--socket=${socket}`, '-e', 'SELECT 1'], {
      timeoutMs: 10_000,
    });
    return result.code === 0;
  });
  return { server, socket, sql };
}

/** A fresh, empty server: mariadb-install-db, then mariadbd. root@localhost logs in by unix socket. */
export async function freshMaria(tools: MariaTools, name: string, dir: string): Promise<Maria> {
  const dataDir = join(dir, `${name}-data`);
  const socket = join(dir, `${name}.sock`);
  await must([
    tools.installDb,
    '--no-defaults',
    `--datadir=${dataDir}`,
    '--auth-root-authentication-method=socket',
    '--skip-test-db',
    ...(AS_ROOT ? ['--user=root'] : []),
  ]);
  return startMaria(tools, name, dir, ['--no-defaults', ...mariaServerOptions(dataDir, socket)], socket);
}

export interface ConfiguredMaria {
  maria: Maria;
  /** The server's own option file (`[client]` socket, `[mysqld]` options), as on a real host. */
  myCnf: string;
  dataDir: string;
  socket: string;
  /** Starts the server again with the same option file (e.g. on a restored datadir); named `mariadb-<name>`. */
  restart(serverName?: string): Promise<Maria>;
}

/**
 * A fresh server configured by its own option file `<dir>/<name>.cnf`, the way a host's
 * /etc/my.cnf is: the backup scripts read it too (the old `mysql_backup.sh /etc/my.cnf`).
 */
export async function configuredMaria(
  tools: MariaTools,
  name: string,
  dir: string,
): Promise<ConfiguredMaria> {
  const dataDir = join(dir, `${name}-data`);
  const socket = join(dir, `${name}.sock`);
  const myCnf = join(dir, `${name}.cnf`);
  await writeFile(
    myCnf,
    [
      '[client]',
      `socket=${socket}`,
      '[mysqld]',
      ...mariaServerOptions(dataDir, socket).map((option) => option.slice(2)),
      '',
    ].join('\n'),
  );
  await must([
    tools.installDb,
    `--defaults-file=${myCnf}`,
    '--auth-root-authentication-method=socket',
    '--skip-test-db',
  ]);
  const restart = (serverName = `mariadb-${name}`): Promise<Maria> =>
    startMaria(tools, serverName, dir, [`--defaults-file=${myCnf}`], socket);
  return { maria: await restart(), myCnf, dataDir, socket, restart };
}

/** Two databases with InnoDB, Aria and a procedure: what the MariaDB example tests back up. */
export const MARIA_SAMPLE_DATA = `
  CREATE DATABASE shop;
  CREATE TABLE shop.orders (id INT PRIMARY KEY, customer VARCHAR(64), total DECIMAL(10,2), note TEXT) ENGINE=InnoDB;
  INSERT INTO shop.orders SELECT seq, CONCAT('c', seq % 97), seq * 1.25, REPEAT(MD5(seq), 4) FROM shop.seq_1_to_5000;
  CREATE TABLE shop.audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(100)) ENGINE=Aria;
  INSERT INTO shop.audit (what) VALUES ('created'), ('loaded');
  CREATE DATABASE crm;
  CREATE TABLE crm.contacts (id INT PRIMARY KEY, email VARCHAR(100), blob_col BLOB) ENGINE=InnoDB;
  INSERT INTO crm.contacts SELECT seq, CONCAT('u', seq, '@example.com'), UNHEX(SHA2(seq, 256)) FROM crm.seq_1_to_800;
  CREATE PROCEDURE shop.count_orders() SELECT COUNT(*) FROM shop.orders;
`;

/** CHECKSUM TABLE … EXTENDED of every user table, keyed `` `schema`.`table` ``. */
export async function mariaChecksums(db: Maria): Promise<Record<string, string>> {
  const tables = (
    await db.sql(
      "SELECT CONCAT('`', table_schema, '`.`', table_name, '`') FROM information_schema.tables " +
        "WHERE table_schema NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') " +
        "AND table_type = 'BASE TABLE' ORDER BY table_schema, table_name;",
    )
  )
    .split('\n')
    .filter((line) => line !== '');
  expect(tables.length).toBeGreaterThan(0);
  const rows = await db.sql(`CHECKSUM TABLE ${tables.join(', ')} EXTENDED;`);
  const sums: Record<string, string> = {};
  for (const line of rows.split('\n').filter((l) => l !== '')) {
    const [table, sum] = line.split('\t');
    sums[table ?? ''] = sum ?? '';
  }
  return sums;
}

/** An hour (`00`–`23`) that is not now, for FULL_HOUR: the physical script then makes a full only without a base. */
export function fullHourNotNow(): string {
  return String((new Date().getHours() + 12) % 24).padStart(2, '0');
}
