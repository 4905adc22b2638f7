import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackupListItem } from '../../src/server/routes/backups.js';
import { type DbCluster, shellWord, startDbCluster } from '../support/db-cluster.js';
import {
  type ConfiguredMaria,
  configuredMaria,
  fullHourNotNow,
  MARIA_SAMPLE_DATA,
  type Maria,
  type MariaTools,
  mariaChecksums,
  mariaTools,
} from '../support/mariadb.js';
import { type PostgresHandle, startPostgres } from '../support/postgres.js';
import { PG_SAMPLE_DATA, type PgTools, pgDumpText, pgTools, psql } from '../support/postgres-tools.js';
import {
  REDIS_SAMPLE_DATA_LUA,
  type RedisServer,
  type RedisTools,
  redisCommand,
  redisSnapshot,
  redisTools,
  startRedis,
} from '../support/redis.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';

// The whole way back, with real databases: the agent runs an example backup script (examples/) on
// a real server, a storage node pulls, verifies and stores every backup, the source's data is
// destroyed, and the built `ubackup restore --at <a backup's created_at> --exec <the example restore
// hook>` brings it back as it was at that backup — not as it is later, which the test checks differs.
// The time for --at is the backup's created_at as the API reports it (`backup_time`).

const EXAMPLES = resolve(import.meta.dirname, '../../examples');
const example = (script: string): string => shellWord(join(EXAMPLES, script));

interface RestoredFile {
  backup_id: number;
  kind: string;
  filename: string;
  status: string;
}

/** `ubackup restore --dry-run --json --at <backup's time>`: the plan's target and files (kind, name). */
async function planAt(db: DbCluster, target: BackupListItem, to: string) {
  const dry = await db.restore(['--at', target.backup_time, '--to', to, '--dry-run', '--json']);
  expect(dry.code, dry.stderr).toBe(0);
  const report = JSON.parse(dry.stdout) as { target_backup_id: number; files: RestoredFile[] };
  return {
    target: report.target_backup_id,
    files: report.files.map((f) => [f.kind, f.filename, f.status]),
  };
}

/**
 * The real restore of the backup at `target`'s time into `to`, then `exec` with the files; returns
 * the hook's output (its stdout is the command's).
 */
async function restoreAt(db: DbCluster, target: BackupListItem, to: string, exec: string): Promise<string> {
  // Not --json: the hook inherits stdout, so its own output would come before the JSON document.
  const run = await db.restore(['--at', target.backup_time, '--to', to, '--exec', exec]);
  expect(run.code, `${run.stdout}\n${run.stderr}\n--- node ---\n${db.node.output()}`).toBe(0);
  expect(run.stderr).toContain('the hook finished (exit status 0)');
  expect(run.stderr).toContain(`restored backup ${target.id} of `);
  return run.stdout;
}

// ---------------------------------------------------------------------------------------------------
// MariaDB: a physical full and incrementals (backup-physical.sh), restored with restore-physical.sh

/**
 * The MariaDB flow shared by its tests, in order: the chain is made and stored by the first test,
 * restored by the second; later steps (e.g. damaging a stored file and scrubbing it) append tests
 * that use the same `flow`.
 */
interface MariaFlow {
  tools: MariaTools;
  dir: TempDir;
  source: ConfiguredMaria;
  /** The running server (the source, then the one on the restored datadir). */
  maria: Maria;
  db: DbCluster;
  /** full, incr1, incr2, incr3 as the API lists them. */
  chain: BackupListItem[];
  /** CHECKSUM TABLE of every table right after incremental 2, and at the end (incremental 3). */
  atIncr2: Record<string, string>;
  atEnd: Record<string, string>;
}

describe('MariaDB: backup-physical.sh through the agent and a node, back with ubackup restore --at', () => {
  const flow = {} as MariaFlow;

  beforeAll(async () => {
    flow.tools = mariaTools();
    flow.dir = await makeTempDir('ubackup-roundtrip-mariadb');
    flow.source = await configuredMaria(flow.tools, 'source', flow.dir.path);
    flow.maria = flow.source.maria;
    await flow.maria.sql(MARIA_SAMPLE_DATA);
    const fullHour = fullHourNotNow();
    flow.db = await startDbCluster({
      type: 'mysql',
      instance: '3306',
      chain: true,
      // As the README's [mariadb3306] section: the variables in front, the server's my.cnf as argument.
      script: (p) =>
        `BACKUP_DIR=${shellWord(p.backDir)} BACK_LOG=${shellWord(p.backLog)} LAST_ALL_LOG=${shellWord(p.lastAllLog)} ` +
        `FULL_HOUR=${fullHour} sh ${example('mariadb/backup-physical.sh')} ${shellWord(flow.source.myCnf)}`,
    });
    flow.chain = [];
  });

  afterAll(async () => {
    await flow.maria?.server.stop();
    await flow.db?.stop();
    await flow.dir?.cleanup();
  });

  it('the agent makes a full and three incrementals with the script; the node stores and verifies each', async () => {
    const { db, maria } = flow;
    const full = await db.runBackup();
    expect(full).toMatchObject({ status: 'ok', kind: 'full' });
    expect(full.file_name).toMatch(/^mariadb_full_\d{8}_\d{6}(_\d+)?\.tar\.gz$/);

    await maria.sql(`
      INSERT INTO shop.orders SELECT seq, 'late', seq, 'second batch' FROM shop.seq_5001_to_6000;
      UPDATE shop.orders SET total = total + 1 WHERE id % 10 = 0;
      INSERT INTO shop.audit (what) VALUES ('incremental 1');
    `);
    const incr1 = await db.runBackup();

    await maria.sql(`
      DELETE FROM shop.orders WHERE id BETWEEN 100 AND 300;
      CREATE TABLE crm.notes (id INT PRIMARY KEY, body TEXT) ENGINE=MyISAM;
      INSERT INTO crm.notes SELECT seq, CONCAT('note ', seq) FROM crm.seq_1_to_50;
      UPDATE crm.contacts SET email = 'changed@example.com' WHERE id = 7;
      INSERT INTO shop.audit (what) VALUES ('incremental 2');
    `);
    const incr2 = await db.runBackup();
    flow.atIncr2 = await mariaChecksums(maria);

    // After incremental 2: what a restore to incremental 2's time must not bring back.
    await maria.sql(`
      INSERT INTO shop.audit (what) VALUES ('after incremental 2');
      UPDATE shop.orders SET customer = 'after' WHERE id <= 50;
      DELETE FROM crm.contacts WHERE id > 700;
      DROP TABLE crm.notes;
    `);
    const incr3 = await db.runBackup();
    flow.atEnd = await mariaChecksums(maria);
    expect(flow.atEnd).not.toEqual(flow.atIncr2);

    for (const incr of [incr1, incr2, incr3]) {
      expect(incr).toMatchObject({ status: 'ok', kind: 'incremental', full_name: full.file_name });
      expect(incr.file_name).toMatch(/^mariadb_incr_\d{8}_\d{6}(_\d+)?\.tar\.gz$/);
    }
    flow.chain = [full, incr1, incr2, incr3];
    expect(new Set(flow.chain.map((b) => b.file_name)).size).toBe(4);
    expect(new Set(flow.chain.map((b) => b.backup_time)).size).toBe(4);

    await db.waitStored(flow.chain.map((b) => b.id));
    for (const backup of await db.backups()) expect(backup.storage_node).toBe(db.nodeName);
    // The node's copy is the host's file, byte for byte.
    for (const backup of flow.chain) {
      const stored = await db.storedFile(backup.id);
      expect(stored.startsWith(`${db.nodeRoot}/`)).toBe(true);
      const original = await readFile(join(db.paths.backDir, backup.file_name ?? ''));
      expect((await readFile(stored)).equals(original), backup.file_name ?? '').toBe(true);
    }
  });

  it('ubackup restore --at incremental 2 brings the datadir back as it was then, through restore-physical.sh', async () => {
    const { db } = flow;
    expect(flow.chain).toHaveLength(4);
    const [full, incr1, incr2] = flow.chain as [BackupListItem, BackupListItem, BackupListItem];
    const download = join(flow.dir.path, 'download');

    // The plan for incremental 2's time: the full and incrementals 1 and 2, in that order (not 3).
    expect(await planAt(db, incr2, download)).toEqual({
      target: incr2.id,
      files: [
        ['full', full.file_name, 'planned'],
        ['incremental', incr1.file_name, 'planned'],
        ['incremental', incr2.file_name, 'planned'],
      ],
    });

    // The host loses its data: the server stops and its datadir is gone.
    await flow.maria.server.stop();
    await rm(flow.source.dataDir, { recursive: true, force: true });
    await expect(stat(flow.source.dataDir)).rejects.toThrow();

    const hookOutput = await restoreAt(
      db,
      incr2,
      download,
      `RESTORE_DATADIR=${shellWord(flow.source.dataDir)} sh ${example('mariadb/restore-physical.sh')}`,
    );
    expect(hookOutput).toContain(`restore-physical: restored 3 file(s) into ${flow.source.dataDir}`);
    // The server starts on the restored datadir with its own my.cnf, as it was at incremental 2.
    flow.maria = await flow.source.restart('mariadb-restored');
    const restored = await mariaChecksums(flow.maria);
    expect(restored).toEqual(flow.atIncr2);
    expect(restored).not.toEqual(flow.atEnd);
    expect((await flow.maria.sql('SELECT what FROM shop.audit ORDER BY id;')).trim().split('\n')).toEqual([
      'created',
      'loaded',
      'incremental 1',
      'incremental 2',
    ]);
    expect((await flow.maria.sql('SELECT COUNT(*) FROM crm.notes;')).trim()).toBe('50');
    // The downloaded files stay, as the documentation says.
    expect((await stat(join(download, incr2.file_name ?? ''))).isFile()).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------------
// Redis: RDB snapshots (backup-rdb.sh), restored with restore-rdb.sh

describe('Redis: backup-rdb.sh through the agent and a node, back with ubackup restore --at', () => {
  let tools: RedisTools;
  let dir: TempDir | undefined;
  let redis: RedisServer | undefined;
  let db: DbCluster | undefined;

  afterAll(async () => {
    await redis?.server.stop();
    await db?.stop();
    await dir?.cleanup();
  });

  it('restores the first of two snapshots: the same keys and values as at that backup', async () => {
    tools = redisTools();
    dir = await makeTempDir('ubackup-roundtrip-redis');
    const dataDir = join(dir.path, 'redis-data');
    await mkdir(dataDir);
    redis = await startRedis(tools, 'redis-source', dataDir);
    const port = redis.port;
    await redisCommand(tools, port, 'EVAL', REDIS_SAMPLE_DATA_LUA, '0');
    db = await startDbCluster({
      type: 'redis',
      instance: '6379',
      chain: false,
      script: (p) =>
        `BACKUP_DIR=${shellWord(p.backDir)} BACK_LOG=${shellWord(p.backLog)} REDIS_PORT=${port} ` +
        `sh ${example('redis/backup-rdb.sh')}`,
    });

    const first = await db.runBackup();
    const atFirst = await redisSnapshot(tools, port);
    await redisCommand(tools, port, 'DEL', 'k:1', 'k:2', 'list');
    await redisCommand(tools, port, 'SET', 'k:new', 'added between the backups');
    await redisCommand(tools, port, 'HSET', 'h:big', 'f1', 'changed');
    const second = await db.runBackup();
    await redisCommand(tools, port, 'SET', 'k:after', 'written after the last backup');
    const atEnd = await redisSnapshot(tools, port);
    expect(atEnd).not.toEqual(atFirst);
    for (const backup of [first, second]) {
      expect(backup).toMatchObject({ status: 'ok', kind: 'single' });
      expect(backup.file_name).toMatch(/^redis_\d{8}_\d{6}(_\d+)?\.rdb\.gz$/);
    }
    expect(second.file_name).not.toBe(first.file_name);
    await db.waitStored([first.id, second.id]);

    const download = join(dir.path, 'download');
    expect(await planAt(db, first, download)).toEqual({
      target: first.id,
      files: [['single', first.file_name, 'planned']],
    });

    // The host loses its data: the server stops and its directory is gone.
    await redis.server.stop();
    await rm(dataDir, { recursive: true, force: true });

    const hookOutput = await restoreAt(
      db,
      first,
      download,
      `RESTORE_DIR=${shellWord(dataDir)} sh ${example('redis/restore-rdb.sh')}`,
    );
    expect(hookOutput).toContain(`restore-rdb: restored ${join(dataDir, 'dump.rdb')}`);
    redis = await startRedis(tools, 'redis-restored', dataDir);
    const restored = await redisSnapshot(tools, redis.port);
    expect(restored).toEqual(atFirst);
    expect(restored).not.toEqual(atEnd);
    expect(await redisCommand(tools, redis.port, 'DBSIZE')).toBe(String(2000 + 6));
    expect(await redisCommand(tools, redis.port, 'GET', 'k:1')).toBe('v1v1');
  });
});

// ---------------------------------------------------------------------------------------------------
// PostgreSQL: pg_dump of one database (backup-dump.sh), restored with restore-dump.sh

describe('PostgreSQL: backup-dump.sh through the agent and a node, back with ubackup restore --at', () => {
  let tools: PgTools;
  let dir: TempDir | undefined;
  let pg: PostgresHandle | undefined;
  let db: DbCluster | undefined;

  afterAll(async () => {
    await pg?.stop();
    await db?.stop();
    await dir?.cleanup();
  });

  it('restores the first of two dumps into the dropped database: pg_dump shows the same database', async () => {
    tools = await pgTools();
    dir = await makeTempDir('ubackup-roundtrip-pg');
    pg = await startPostgres();
    const port = pg.port;
    const libpq = `PGHOST=127.0.0.1 PGPORT=${port} PGUSER=postgres`;
    await psql(tools, port, 'postgres', 'CREATE DATABASE shop');
    await psql(tools, port, 'shop', PG_SAMPLE_DATA);
    db = await startDbCluster({
      type: 'pgdump',
      instance: 'shop',
      chain: false,
      script: (p) =>
        `BACKUP_DIR=${shellWord(p.backDir)} BACK_LOG=${shellWord(p.backLog)} ${libpq} ` +
        `sh ${example('postgresql/backup-dump.sh')} shop`,
    });

    const first = await db.runBackup();
    const atFirst = await pgDumpText(tools, port, 'shop');
    expect(atFirst).toContain('CREATE TABLE public.orders');
    await psql(
      tools,
      port,
      'shop',
      "UPDATE orders SET customer = 'vip' WHERE id <= 10; DELETE FROM docs WHERE id > 150; DROP VIEW big_orders;",
    );
    const second = await db.runBackup();
    await psql(tools, port, 'shop', "INSERT INTO orders VALUES (999999, 'after', 1, now());");
    const atEnd = await pgDumpText(tools, port, 'shop');
    expect(atEnd).not.toBe(atFirst);
    for (const backup of [first, second]) {
      expect(backup).toMatchObject({ status: 'ok', kind: 'single' });
      expect(backup.file_name).toMatch(/^pg-dump_\d{8}_\d{6}(_\d+)?\.dump$/);
    }
    expect(second.file_name).not.toBe(first.file_name);
    await db.waitStored([first.id, second.id]);

    const download = join(dir.path, 'download');
    expect(await planAt(db, first, download)).toEqual({
      target: first.id,
      files: [['single', first.file_name, 'planned']],
    });

    // The database is lost; restore-dump.sh creates it again and loads the dump in one transaction.
    await psql(tools, port, 'postgres', 'DROP DATABASE shop');
    const hookOutput = await restoreAt(
      db,
      first,
      download,
      `${libpq} RESTORE_DBNAME=shop sh ${example('postgresql/restore-dump.sh')}`,
    );
    expect(hookOutput).toContain(`restore-dump: restored ${join(download, first.file_name ?? '')} into shop`);
    const restored = await pgDumpText(tools, port, 'shop');
    expect(restored).toBe(atFirst);
    expect(restored).not.toBe(atEnd);
    expect((await psql(tools, port, 'shop', 'SELECT count(*) FROM docs')).trim()).toBe('200');
  });
});
