import { chown, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AS_ROOT,
  cleanEnv,
  type DbServer,
  must,
  type RunResult,
  run,
  stopDbServers,
} from '../support/db-process.js';
import {
  configuredMaria,
  freshMaria,
  fullHourNotNow,
  MARIA_SAMPLE_DATA,
  type Maria,
  type MariaTools,
  mariaChecksums,
  mariaServerOptions,
  mariaTools,
  startMaria,
} from '../support/mariadb.js';
import {
  initPgDataDir,
  libpqEnv,
  PG_SAMPLE_DATA,
  type PgTools,
  pgDumpText,
  pgTools,
  psql as psqlOn,
  startPg as startPgOn,
} from '../support/postgres-tools.js';
import {
  REDIS_SAMPLE_DATA_LUA,
  type RedisTools,
  redisCommand,
  redisSnapshot,
  redisTools,
  startRedis as startRedisOn,
} from '../support/redis.js';
import { findTool } from '../support/required-tool.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';

// The scripts in examples/ against real servers: MariaDB (mariadb-backup physical full + two
// incrementals, mariadb-dump logical), Redis (BGSAVE + RDB copy) and PostgreSQL (pg_basebackup,
// pg_dump). Each backup script must follow the back_log contract (DESIGN §4); each restore hook must
// bring up a server whose data equals the source at the time of the last backup.
//
// Servers run in temp dirs: MariaDB as root (`--user=root`) on a unix socket only (skip-networking),
// Redis on a free 127.0.0.1 port, PostgreSQL as the `postgres` OS user (initdb and postgres refuse
// root) on a free port. Every server runs in its own process group, stopped after the tests.

const EXAMPLES = resolve(import.meta.dirname, '../../examples');

const tempDirs: TempDir[] = [];

async function tempDir(prefix: string): Promise<string> {
  const dir = await makeTempDir(prefix);
  tempDirs.push(dir);
  return dir.path;
}

afterAll(async () => {
  await stopDbServers();
  for (const dir of tempDirs) await dir.cleanup();
});

// ---------------------------------------------------------------------------------------------------
// The scripts and the contract

/** Runs examples/<script> with sh, only the given variables set. */
function runExample(script: string, args: string[], env: Record<string, string>): Promise<RunResult> {
  return run(['sh', join(EXAMPLES, script), ...args], { env: cleanEnv(env) });
}

async function mustExample(script: string, args: string[], env: Record<string, string>): Promise<string> {
  const result = await runExample(script, args, env);
  if (result.code !== 0) {
    throw new Error(`${script} exited with ${result.code}:\n${result.stdout}\n${result.stderr}`);
  }
  return result.stdout;
}

/** A log file's lines as the agent reads them (DESIGN §4): line 1 status, line 2 name or reason. */
async function logLines(path: string): Promise<string[]> {
  const text = await readFile(path, 'utf8');
  expect(text.endsWith('\n'), `${path} ends with a newline`).toBe(true);
  return text.slice(0, -1).split('\n');
}

/** The script succeeded by the contract; returns the file name (checked to exist in backDir). */
async function expectOk(backLog: string, backDir: string, pattern: RegExp): Promise<string> {
  const lines = await logLines(backLog);
  expect(lines).toHaveLength(2);
  expect(lines[0]).toBe('ok');
  const name = lines[1] ?? '';
  expect(name).toMatch(pattern);
  const info = await stat(join(backDir, name));
  expect(info.isFile()).toBe(true);
  expect(info.size).toBeGreaterThan(0);
  return name;
}

/** The script failed by the contract: `wrong` and a one-line reason matching `reason`. */
async function expectWrong(result: RunResult, backLog: string, reason: RegExp): Promise<string> {
  expect(result.code, `${result.stdout}\n${result.stderr}`).not.toBe(0);
  const lines = await logLines(backLog);
  expect(lines).toHaveLength(2);
  expect(lines[0]).toBe('wrong');
  expect(lines[1]).toMatch(reason);
  return lines[1] ?? '';
}

/** Files a backup script left in its directory, hidden ones (work dirs, partial files) excluded. */
async function visibleFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => !name.startsWith('.')).sort();
}

/** A backup dir must hold no temp leftovers once a script ended (only the state dir is hidden). */
async function expectNoLeftovers(dir: string, allowed: string[] = []): Promise<void> {
  const hidden = (await readdir(dir)).filter((name) => name.startsWith('.') && !allowed.includes(name));
  expect(hidden).toEqual([]);
}

// ---------------------------------------------------------------------------------------------------
// MariaDB

describe('MariaDB examples', () => {
  let tools: MariaTools;
  let dir = '';
  let source: Maria;
  let myCnf = '';
  const backDir = (): string => join(dir, 'backups');
  const backLog = (): string => join(dir, 'logs', 'mariadb.log');
  const lastAllLog = (): string => join(dir, 'logs', 'mariadb_last_full.log');
  let chain: string[] = [];
  let atLastBackup: Record<string, string> = {};

  /** The physical script's environment; FULL_HOUR defaults to an hour that is not now. */
  function physicalEnv(extra: Record<string, string> = {}): Record<string, string> {
    return {
      BACKUP_DIR: backDir(),
      BACK_LOG: backLog(),
      LAST_ALL_LOG: lastAllLog(),
      FULL_HOUR: fullHourNotNow(),
      ...extra,
    };
  }

  beforeAll(async () => {
    tools = mariaTools();
    dir = await tempDir('ubackup-examples-mariadb');
    // The server's own option file, as on a real host: the backup script reads it too (the
    // old script's `mysql_backup.sh /etc/my.cnf`).
    const configured = await configuredMaria(tools, 'source', dir);
    source = configured.maria;
    myCnf = configured.myCnf;
    await source.sql(MARIA_SAMPLE_DATA);
  });

  it('backup-physical.sh makes a full then incrementals, and restore-physical.sh brings the chain back', async () => {
    // 1. No base yet: a full, named in back_log and last_all_log.
    await mustExample('mariadb/backup-physical.sh', [myCnf], physicalEnv());
    const full = await expectOk(backLog(), backDir(), /^mariadb_full_\d{8}_\d{6}(_\d+)?\.tar\.gz$/);
    expect(await logLines(lastAllLog())).toEqual(['ok', full]);

    // 2. First incremental: back_log names it, last_all_log still names the base full.
    await source.sql(`
      INSERT INTO shop.orders SELECT seq, 'late', seq, 'second batch' FROM shop.seq_5001_to_6000;
      UPDATE shop.orders SET total = total + 1 WHERE id % 10 = 0;
      INSERT INTO shop.audit (what) VALUES ('incremental 1');
    `);
    await mustExample('mariadb/backup-physical.sh', [myCnf], physicalEnv());
    const incr1 = await expectOk(backLog(), backDir(), /^mariadb_incr_\d{8}_\d{6}(_\d+)?\.tar\.gz$/);
    expect(await logLines(lastAllLog())).toEqual(['ok', full]);

    // 3. Second incremental, with FULL_HOUR set to the hour of the full: a full was already made in
    // that hour (or the hour has passed), so it stays incremental. The options come from the
    // environment this time instead of the argument.
    await source.sql(`
      DELETE FROM shop.orders WHERE id BETWEEN 100 AND 300;
      CREATE TABLE crm.notes (id INT PRIMARY KEY, body TEXT) ENGINE=MyISAM;
      INSERT INTO crm.notes SELECT seq, CONCAT('note ', seq) FROM crm.seq_1_to_50;
      UPDATE crm.contacts SET email = 'changed@example.com' WHERE id = 7;
    `);
    // What a run killed by SIGKILL would leave behind; the next run removes it.
    await mkdir(join(backDir(), '.mariadb.work.killed', 'backup'), { recursive: true });
    await writeFile(join(backDir(), '.mariadb_incr_20000101_000000.tar.gz.partial'), 'half a file');
    const fullHour = full.slice('mariadb_full_YYYYMMDD_'.length, 'mariadb_full_YYYYMMDD_'.length + 2);
    await mustExample(
      'mariadb/backup-physical.sh',
      [],
      physicalEnv({ FULL_HOUR: fullHour, MARIADB_DEFAULTS_FILE: myCnf }),
    );
    const incr2 = await expectOk(backLog(), backDir(), /^mariadb_incr_\d{8}_\d{6}(_\d+)?\.tar\.gz$/);
    expect(await logLines(lastAllLog())).toEqual(['ok', full]);
    atLastBackup = await mariaChecksums(source);
    chain = [full, incr1, incr2];
    expect(new Set(chain).size).toBe(3);
    expect(await visibleFiles(backDir())).toEqual([...chain].sort());
    await expectNoLeftovers(backDir(), ['.mariadb-backup-state']);

    // Changes after the last backup must not show up in the restore.
    await source.sql("INSERT INTO shop.audit (what) VALUES ('after the last backup'); DROP TABLE crm.notes;");

    // 4. Restore the chain (positional arguments in chain order) into an empty datadir.
    const restored = join(dir, 'restored-data');
    await mustExample(
      'mariadb/restore-physical.sh',
      chain.map((name) => join(backDir(), name)),
      { RESTORE_DATADIR: restored },
    );
    const entries = await readdir(dir);
    expect(entries.filter((name) => name.startsWith('.ubackup-restore'))).toEqual([]);
    if (AS_ROOT && findTool('id') !== undefined) {
      // Owned by the mysql user, as the packaged server expects.
      const owner = (await must(['id', '-u', 'mysql'])).trim();
      expect(String((await stat(join(restored, 'ibdata1'))).uid)).toBe(owner);
    }
    const socket = join(dir, 'restored.sock');
    const copy = await startMaria(
      tools,
      'mariadb-restored',
      dir,
      ['--no-defaults', ...mariaServerOptions(restored, socket)],
      socket,
    );
    expect(await mariaChecksums(copy)).toEqual(atLastBackup);
    expect((await copy.sql('SELECT COUNT(*) FROM shop.audit;')).trim()).toBe('3');
    await copy.server.stop();
  });

  it('restore-physical.sh refuses a chain without its full, out of order, or a datadir that is not empty', async () => {
    expect(chain).toHaveLength(3);
    const [full, incr1, incr2] = chain.map((name) => join(backDir(), name)) as [string, string, string];
    const noFull = await runExample('mariadb/restore-physical.sh', [incr1, incr2], {
      RESTORE_DATADIR: join(dir, 'r-nofull'),
    });
    expect(noFull.code).not.toBe(0);
    expect(noFull.stderr).toMatch(/is not a full backup .*pass the base full first/);

    const swapped = await runExample('mariadb/restore-physical.sh', [full, incr2, incr1], {
      RESTORE_DATADIR: join(dir, 'r-swapped'),
    });
    expect(swapped.code).not.toBe(0);
    expect(swapped.stderr).toMatch(/does not follow the previous file|is older than the file before it/);

    const notEmpty = join(dir, 'r-notempty');
    await mkdir(join(notEmpty, 'x'), { recursive: true });
    const busy = await runExample('mariadb/restore-physical.sh', [full, incr1, incr2], {
      RESTORE_DATADIR: notEmpty,
    });
    expect(busy.code).not.toBe(0);
    expect(busy.stderr).toContain('is not empty');

    const none = await runExample('mariadb/restore-physical.sh', [], {
      RESTORE_DATADIR: join(dir, 'r-none'),
    });
    expect(none.code).not.toBe(0);
    expect(none.stderr).toContain('no backup files');
  });

  it('backup-logical.sh dumps, restore-logical.sh loads it into a fresh server', async () => {
    const dumpDir = join(dir, 'dumps');
    const dumpLog = join(dir, 'logs', 'mysql-dump.log');
    await mustExample('mysql/backup-logical.sh', [], {
      BACKUP_DIR: dumpDir,
      BACK_LOG: dumpLog,
      MARIADB_DEFAULTS_FILE: myCnf,
    });
    const name = await expectOk(dumpLog, dumpDir, /^mysql-dump_\d{8}_\d{6}(_\d+)?\.sql\.gz$/);
    await expectNoLeftovers(dumpDir);
    const atDump = await mariaChecksums(source);
    await source.sql("INSERT INTO shop.audit (what) VALUES ('after the dump');");

    const target = await freshMaria(tools, 'mariadb-logical', dir);
    // The file as `ubackup restore --exec` hands it over: in UBACKUP_FILES.
    await mustExample('mysql/restore-logical.sh', [], {
      UBACKUP_FILES: `${join(dumpDir, name)}\n`,
      MARIADB_SOCKET: target.socket,
    });
    expect(await mariaChecksums(target)).toEqual(atDump);
    expect((await target.sql('SHOW PROCEDURE STATUS WHERE Db = "shop";')).split('\t')[1]).toBe(
      'count_orders',
    );
    await target.server.stop();
  });

  it('every MariaDB script reports wrong with the reason when the server is down', async () => {
    await source.server.stop();

    // An incremental fails: back_log says why, last_all_log keeps the base full.
    const incr = await runExample('mariadb/backup-physical.sh', [myCnf], physicalEnv());
    await expectWrong(
      incr,
      backLog(),
      /^mariadb-backup --backup \(incremental on mariadb_full_.*\) failed .*connect/i,
    );
    expect(await logLines(lastAllLog())).toEqual(['ok', chain[0]]);
    await expectNoLeftovers(backDir(), ['.mariadb-backup-state']);

    // A full fails: last_all_log says wrong too, so the agent fails incrementals on this base.
    const full = await runExample('mariadb/backup-physical.sh', [myCnf], physicalEnv({ FORCE_FULL: '1' }));
    const reason = await expectWrong(full, backLog(), /^mariadb-backup --backup \(full\) failed .*connect/i);
    expect(await logLines(lastAllLog())).toEqual(['wrong', reason]);
    expect(await visibleFiles(backDir())).toEqual([...chain].sort());

    const dumpLog = join(dir, 'logs', 'mysql-dump.log');
    const dump = await runExample('mysql/backup-logical.sh', [], {
      BACKUP_DIR: join(dir, 'dumps'),
      BACK_LOG: dumpLog,
      MARIADB_DEFAULTS_FILE: myCnf,
    });
    await expectWrong(dump, dumpLog, /^mariadb-dump failed \(exit \d+\): .*connect/i);
    await expectNoLeftovers(join(dir, 'dumps'));

    // A setting that makes no sense is reported too, before anything runs.
    const bad = await runExample('mariadb/backup-physical.sh', [myCnf], physicalEnv({ FULL_HOUR: '25' }));
    await expectWrong(bad, backLog(), /FULL_HOUR must be an hour from 0 to 23/);
  });
});

// ---------------------------------------------------------------------------------------------------
// Redis

describe('Redis examples', () => {
  let tools: RedisTools;
  let dir = '';
  let port = 0;
  let source: DbServer;

  const redis = (p: number, ...args: string[]): Promise<string> => redisCommand(tools, p, ...args);
  const startRedis = (name: string, dataDir: string) => startRedisOn(tools, name, dataDir);
  const snapshot = (p: number): Promise<unknown> => redisSnapshot(tools, p);

  beforeAll(async () => {
    tools = redisTools();
    dir = await tempDir('ubackup-examples-redis');
    await mkdir(join(dir, 'source'));
    ({ server: source, port } = await startRedis('redis-source', join(dir, 'source')));
    await redis(port, 'EVAL', REDIS_SAMPLE_DATA_LUA, '0');
  });

  it('backup-rdb.sh snapshots with BGSAVE, restore-rdb.sh gives a server the same keys and values', async () => {
    const backDir = join(dir, 'backups');
    const backLog = join(dir, 'logs', 'redis.log');
    const env = { BACKUP_DIR: backDir, BACK_LOG: backLog, REDIS_PORT: String(port) };

    await mustExample('redis/backup-rdb.sh', [], env);
    const first = await expectOk(backLog, backDir, /^redis_\d{8}_\d{6}(_\d+)?\.rdb\.gz$/);

    await redis(port, 'DEL', 'k:1', 'k:2');
    await redis(port, 'SET', 'k:new', 'added between backups');
    await redis(port, 'HSET', 'h:big', 'f1', 'changed');
    await mustExample('redis/backup-rdb.sh', [], env);
    const second = await expectOk(backLog, backDir, /^redis_\d{8}_\d{6}(_\d+)?\.rdb\.gz$/);
    expect(second).not.toBe(first);
    const atBackup = await snapshot(port);
    expect(await visibleFiles(backDir)).toEqual([first, second].sort());
    await expectNoLeftovers(backDir);

    await redis(port, 'SET', 'k:after', 'written after the last backup');
    await redis(port, 'DEL', 'list');

    // The hook gets the file in UBACKUP_FILES, as `ubackup restore --exec` passes it.
    const restoreDir = join(dir, 'restored');
    await mustExample('redis/restore-rdb.sh', [], {
      UBACKUP_FILES: join(backDir, second),
      RESTORE_DIR: restoreDir,
    });
    expect((await readdir(restoreDir)).sort()).toEqual(['dump.rdb']);
    const copy = await startRedis('redis-restored', restoreDir);
    expect(await snapshot(copy.port)).toEqual(atBackup);
    expect(await redis(copy.port, 'DBSIZE')).toBe(String(2000 - 2 + 1 + 6));
    await copy.server.stop();

    // A second restore into the same directory refuses to overwrite the RDB file.
    const again = await runExample('redis/restore-rdb.sh', [join(backDir, first)], {
      RESTORE_DIR: restoreDir,
    });
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('already exists');
  });

  it('backup-rdb.sh reports wrong with the reason when Redis is down or refuses', async () => {
    const backDir = join(dir, 'backups');
    const backLog = join(dir, 'logs', 'redis.log');
    // A wrong password: the server refuses the commands.
    await redis(port, 'CONFIG', 'SET', 'requirepass', 'sesame');
    const refused = await runExample('redis/backup-rdb.sh', [], {
      BACKUP_DIR: backDir,
      BACK_LOG: backLog,
      REDIS_PORT: String(port),
      REDISCLI_AUTH: 'not-the-password',
    });
    await expectWrong(refused, backLog, /WRONGPASS|NOAUTH|invalid password/i);

    await source.stop();
    const down = await runExample('redis/backup-rdb.sh', [], {
      BACKUP_DIR: backDir,
      BACK_LOG: backLog,
      REDIS_PORT: String(port),
    });
    await expectWrong(
      down,
      backLog,
      /^connecting to Redis failed \(exit \d+\): Could not connect to Redis at 127\.0\.0\.1:\d+: Connection refused$/,
    );
    await expectNoLeftovers(backDir);
  });
});

// ---------------------------------------------------------------------------------------------------
// PostgreSQL

describe('PostgreSQL examples', () => {
  let tools: PgTools;
  let dir = '';
  let port = 0;
  let source: DbServer;

  const psql = (p: number, db: string, sql: string): Promise<string> => psqlOn(tools, p, db, sql);
  const dumpText = (p: number, db: string): Promise<string> => pgDumpText(tools, p, db);
  const startPg = (name: string, dataDir: string) => startPgOn(tools, name, dataDir, dir);

  beforeAll(async () => {
    tools = await pgTools();
    dir = await tempDir('ubackup-examples-pg');
    if (tools.owner) await chown(dir, tools.owner.uid, tools.owner.gid);
    const dataDir = join(dir, 'source-data');
    await initPgDataDir(tools, dataDir);
    ({ server: source, port } = await startPg('postgres-source', dataDir));
    await psql(port, 'postgres', 'CREATE DATABASE shop');
    await psql(port, 'shop', PG_SAMPLE_DATA);
  });

  it('backup-basebackup.sh and backup-dump.sh back up; the restore hooks bring back the same database', async () => {
    const backDir = join(dir, 'backups');
    const baseLog = join(dir, 'logs', 'pg-base.log');
    const dumpLog = join(dir, 'logs', 'pg-dump.log');

    await psql(
      port,
      'shop',
      "UPDATE orders SET customer = 'vip' WHERE id <= 10; DELETE FROM docs WHERE id > 150;",
    );
    await mustExample('postgresql/backup-basebackup.sh', [], {
      ...libpqEnv(port),
      BACKUP_DIR: backDir,
      BACK_LOG: baseLog,
    });
    const base = await expectOk(baseLog, backDir, /^pg-base_\d{8}_\d{6}(_\d+)?\.tar$/);
    await mustExample('postgresql/backup-dump.sh', ['shop'], {
      ...libpqEnv(port),
      BACKUP_DIR: backDir,
      BACK_LOG: dumpLog,
    });
    const dump = await expectOk(dumpLog, backDir, /^pg-dump_\d{8}_\d{6}(_\d+)?\.dump$/);
    const atBackup = await dumpText(port, 'shop');
    expect(atBackup).toContain('CREATE TABLE public.orders');
    expect(await visibleFiles(backDir)).toEqual([base, dump].sort());
    await expectNoLeftovers(backDir);

    // Changes after the backups must not show up in the restores.
    await psql(port, 'shop', "INSERT INTO orders VALUES (999999, 'after', 1, now()); DROP VIEW big_orders;");

    // Base backup: unpack into an empty PGDATA, start a server on it (it replays the included WAL).
    const restored = join(dir, 'restored-data');
    await mustExample('postgresql/restore-basebackup.sh', [join(backDir, base)], {
      RESTORE_PGDATA: restored,
    });
    if (tools.owner) expect((await stat(restored)).uid).toBe(tools.owner.uid);
    expect(((await stat(restored)).mode & 0o777).toString(8)).toBe('700');
    const copy = await startPg('postgres-restored', restored);
    expect(await dumpText(copy.port, 'shop')).toBe(atBackup);
    await copy.server.stop();

    // Dump: pg_restore into a new database on the running source server, file in UBACKUP_FILES.
    await mustExample('postgresql/restore-dump.sh', [], {
      ...libpqEnv(port),
      UBACKUP_FILES: `${join(backDir, dump)}\n`,
      RESTORE_DBNAME: 'shop_restored',
    });
    expect(await dumpText(port, 'shop_restored')).toBe(atBackup);

    // Restoring into a database that exists is refused (nothing is overwritten).
    const again = await runExample('postgresql/restore-dump.sh', [join(backDir, dump)], {
      ...libpqEnv(port),
      RESTORE_DBNAME: 'shop_restored',
    });
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('already exists');
    const notEmpty = await runExample('postgresql/restore-basebackup.sh', [join(backDir, base)], {
      RESTORE_PGDATA: restored,
    });
    expect(notEmpty.code).not.toBe(0);
    expect(notEmpty.stderr).toContain('is not empty');
  });

  it('both PostgreSQL backup scripts report wrong with the reason when the server is down', async () => {
    const backDir = join(dir, 'backups');
    const before = await visibleFiles(backDir);
    await source.stop();
    const baseLog = join(dir, 'logs', 'pg-base.log');
    const base = await runExample('postgresql/backup-basebackup.sh', [], {
      ...libpqEnv(port),
      BACKUP_DIR: backDir,
      BACK_LOG: baseLog,
    });
    await expectWrong(base, baseLog, /^pg_basebackup failed \(exit \d+\): .*(connection|connect).*refused/i);

    const dumpLog = join(dir, 'logs', 'pg-dump.log');
    const dump = await runExample('postgresql/backup-dump.sh', ['shop'], {
      ...libpqEnv(port),
      BACKUP_DIR: backDir,
      BACK_LOG: dumpLog,
    });
    await expectWrong(
      dump,
      dumpLog,
      /^pg_dump of shop failed \(exit \d+\): .*(connection|connect).*refused/i,
    );

    const noDb = await runExample('postgresql/backup-dump.sh', [], {
      ...libpqEnv(port),
      BACKUP_DIR: backDir,
      BACK_LOG: dumpLog,
    });
    await expectWrong(noDb, dumpLog, /no database to dump/);
    expect(await visibleFiles(backDir)).toEqual(before);
    await expectNoLeftovers(backDir);
  });
});
