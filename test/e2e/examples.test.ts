import { type ChildProcess, spawn } from 'node:child_process';
import { chown, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/free-port.js';
import { findTool, INSTALL_HINTS, requireTool } from '../support/required-tool.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait-for.js';

// The scripts in examples/ against real servers: MariaDB (mariadb-backup physical full + two
// incrementals, mariadb-dump logical), Redis (BGSAVE + RDB copy) and PostgreSQL (pg_basebackup,
// pg_dump). Each backup script must follow the back_log contract (DESIGN §4); each restore hook must
// bring up a server whose data equals the source at the time of the last backup.
//
// Servers run in temp dirs: MariaDB as root (`--user=root`) on a unix socket only (skip-networking),
// Redis on a free 127.0.0.1 port, PostgreSQL as the `postgres` OS user (initdb and postgres refuse
// root) on a free port. Every server runs in its own process group, stopped after the tests.

const EXAMPLES = resolve(import.meta.dirname, '../../examples');
const READY_MS = 60_000;
const SCRIPT_MS = 90_000;
const STOP_MS = 20_000;
const AS_ROOT = process.getuid?.() === 0;

function aptHint(debianPackage: string): string {
  return `run "apt-get install -y --no-install-recommends ${debianPackage}" (scripts/install-deps.sh installs it)`;
}
const MARIADB_BACKUP_HINT = aptHint('mariadb-backup');
const MARIADB_CLIENT_HINT = aptHint('mariadb-client');
const REDIS_TOOLS_HINT = aptHint('redis-tools');

// ---------------------------------------------------------------------------------------------------
// Processes: commands to completion, and servers in their own process groups.

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Environment for every child: nothing of ours (PG*, MARIADB_*, REDIS*) leaks into the scripts. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin',
    HOME: process.env.HOME ?? '/root',
    TMPDIR: process.env.TMPDIR ?? '/tmp',
    LANG: 'C',
    LC_ALL: 'C',
    // The physical MariaDB script picks full or incremental by the local hour.
    ...(process.env.TZ === undefined ? {} : { TZ: process.env.TZ }),
    ...extra,
  };
}

const liveGroups = new Set<number>();
process.on('exit', () => {
  for (const pid of liveGroups) signalGroup(pid, 'SIGKILL');
});

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // already gone
  }
}

/** Runs a command to completion in its own process group (killed whole on timeout). */
function run(
  argv: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  const [command, ...args] = argv;
  if (command === undefined) throw new Error('run: empty argv');
  const timeoutMs = options.timeoutMs ?? SCRIPT_MS;
  return new Promise<RunResult>((done, fail) => {
    const child = spawn(command, args, {
      env: options.env ?? cleanEnv(),
      cwd: options.cwd,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      detached: true,
    });
    const pid = child.pid;
    if (pid !== undefined) liveGroups.add(pid);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => err.push(chunk));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (pid !== undefined) signalGroup(pid, 'SIGKILL');
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      fail(error);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      if (pid !== undefined) liveGroups.delete(pid);
      const result = { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
      if (timedOut) {
        fail(
          new Error(`${argv.join(' ')} timed out after ${timeoutMs} ms\n${result.stdout}${result.stderr}`),
        );
      } else {
        done(result);
      }
    });
    if (child.stdin) {
      // A child that exits without reading its input must not crash the test run.
      child.stdin.on('error', () => undefined);
      child.stdin.end(options.input);
    }
  });
}

/** Like run, but a nonzero exit is an error that shows the output. */
async function must(argv: string[], options: Parameters<typeof run>[1] = {}): Promise<string> {
  const result = await run(argv, options);
  if (result.code !== 0) {
    throw new Error(`${argv.join(' ')} exited with ${result.code}:\n${result.stdout}\n${result.stderr}`);
  }
  return result.stdout;
}

interface Server {
  name: string;
  child: ChildProcess;
  logs(): string;
  /** Sends the stop signal to the group, waits, then SIGKILLs the group. Safe to call twice. */
  stop(): Promise<void>;
}

const servers = new Set<Server>();

function startServer(name: string, argv: string[], stopSignal: NodeJS.Signals, cwd: string): Server {
  const [command, ...args] = argv;
  if (command === undefined) throw new Error('startServer: empty argv');
  const child = spawn(command, args, {
    env: cleanEnv(),
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const pid = child.pid;
  if (pid !== undefined) liveGroups.add(pid);
  let log = '';
  const append = (chunk: Buffer): void => {
    log = (log + chunk.toString()).slice(-32_768);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const exited = new Promise<void>((done) => {
    if (child.exitCode !== null || child.signalCode !== null) done();
    child.once('exit', () => done());
    child.once('error', () => done());
  });
  const server: Server = {
    name,
    child,
    logs: () => log,
    async stop(): Promise<void> {
      servers.delete(server);
      if (pid === undefined) return;
      if (child.exitCode === null && child.signalCode === null) {
        signalGroup(pid, stopSignal);
        const gone = await Promise.race([
          exited.then(() => true),
          new Promise<boolean>((done) => setTimeout(() => done(false), STOP_MS).unref()),
        ]);
        if (!gone) {
          signalGroup(pid, 'SIGKILL');
          await exited;
        }
      }
      // Children that outlived the leader (e.g. a postgres backend) go with the group.
      signalGroup(pid, 'SIGKILL');
      liveGroups.delete(pid);
    },
  };
  servers.add(server);
  return server;
}

/** Waits until `probe` succeeds; fails early, with the server's log, if the server exits. */
async function waitReady(server: Server, what: string, probe: () => Promise<boolean>): Promise<void> {
  const died = new Promise<never>((_done, fail) => {
    const onExit = (code: number | null, sig: string | null): void =>
      fail(
        new Error(`${server.name} exited (code ${code}, signal ${sig}) before ${what}:\n${server.logs()}`),
      );
    if (server.child.exitCode !== null || server.child.signalCode !== null) {
      onExit(server.child.exitCode, server.child.signalCode);
    }
    server.child.once('exit', onExit);
  });
  died.catch(() => undefined);
  try {
    await Promise.race([waitFor(probe, { timeoutMs: READY_MS, intervalMs: 100, what }), died]);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`${message}\n--- ${server.name} log ---\n${server.logs()}`);
  }
}

const tempDirs: TempDir[] = [];

async function tempDir(prefix: string): Promise<string> {
  const dir = await makeTempDir(prefix);
  tempDirs.push(dir);
  return dir.path;
}

afterAll(async () => {
  for (const server of [...servers]) await server.stop();
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

interface MariaTools {
  mariadbd: string;
  installDb: string;
  client: string;
}

function mariaTools(): MariaTools {
  requireTool('mariadb-backup', MARIADB_BACKUP_HINT);
  requireTool('mariadb-dump', MARIADB_CLIENT_HINT);
  return {
    mariadbd: requireTool('mariadbd', INSTALL_HINTS.mariadbd),
    installDb: requireTool('mariadb-install-db', INSTALL_HINTS.mariadbd),
    client: requireTool('mariadb', MARIADB_CLIENT_HINT),
  };
}

interface Maria {
  server: Server;
  socket: string;
  /** Runs SQL, returns tab-separated rows without the header. */
  sql(statements: string): Promise<string>;
}

/**
 * Options for a server on a unix socket only. `--user=root` lets mariadbd run as root (it refuses
 * otherwise); as another user it is not needed.
 */
function mariaServerOptions(dataDir: string, socket: string): string[] {
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

async function startMaria(tools: MariaTools, name: string, dir: string, args: string[], socket: string) {
  const server = startServer(name, [tools.mariadbd, ...args], 'SIGTERM', dir);
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
  return { server, socket, sql } satisfies Maria;
}

/** A fresh, empty server: mariadb-install-db, then mariadbd. root@localhost logs in by unix socket. */
async function freshMaria(tools: MariaTools, name: string, dir: string): Promise<Maria> {
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

/** CHECKSUM TABLE of every user table, keyed `schema.table`. */
async function mariaChecksums(db: Maria): Promise<Record<string, string>> {
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
    const notNow = String((new Date().getHours() + 12) % 24).padStart(2, '0');
    return {
      BACKUP_DIR: backDir(),
      BACK_LOG: backLog(),
      LAST_ALL_LOG: lastAllLog(),
      FULL_HOUR: notNow,
      ...extra,
    };
  }

  beforeAll(async () => {
    tools = mariaTools();
    dir = await tempDir('ubackup-examples-mariadb');
    const dataDir = join(dir, 'source-data');
    const socket = join(dir, 'source.sock');
    // The server's own option file, as on a real host: the backup script reads it too (the
    // old script's `mysql_backup.sh /etc/my.cnf`).
    myCnf = join(dir, 'my.cnf');
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
    source = await startMaria(tools, 'mariadb-source', dir, [`--defaults-file=${myCnf}`], socket);
    await source.sql(`
      CREATE DATABASE shop;
      CREATE TABLE shop.orders (id INT PRIMARY KEY, customer VARCHAR(64), total DECIMAL(10,2), note TEXT) ENGINE=InnoDB;
      INSERT INTO shop.orders SELECT seq, CONCAT('c', seq % 97), seq * 1.25, REPEAT(MD5(seq), 4) FROM shop.seq_1_to_5000;
      CREATE TABLE shop.audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(100)) ENGINE=Aria;
      INSERT INTO shop.audit (what) VALUES ('created'), ('loaded');
      CREATE DATABASE crm;
      CREATE TABLE crm.contacts (id INT PRIMARY KEY, email VARCHAR(100), blob_col BLOB) ENGINE=InnoDB;
      INSERT INTO crm.contacts SELECT seq, CONCAT('u', seq, '@example.com'), UNHEX(SHA2(seq, 256)) FROM crm.seq_1_to_800;
      CREATE PROCEDURE shop.count_orders() SELECT COUNT(*) FROM shop.orders;
    `);
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

/** Every key with its type and value, sorted, as JSON (one round trip, inside the server). */
const REDIS_SNAPSHOT_LUA = `
local out = {}
for _, k in ipairs(redis.call('KEYS', '*')) do
  local t = redis.call('TYPE', k)['ok']
  local v
  if t == 'string' then v = redis.call('GET', k)
  elseif t == 'list' then v = redis.call('LRANGE', k, 0, -1)
  elseif t == 'set' then v = redis.call('SMEMBERS', k); table.sort(v)
  elseif t == 'zset' then v = redis.call('ZRANGE', k, 0, -1, 'WITHSCORES')
  elseif t == 'hash' then
    local flat = redis.call('HGETALL', k)
    v = {}
    for i = 1, #flat, 2 do v[#v + 1] = flat[i] .. '=' .. flat[i + 1] end
    table.sort(v)
  else v = t end
  out[#out + 1] = { k, t, v, redis.call('TTL', k) > 0 }
end
table.sort(out, function(a, b) return a[1] < b[1] end)
return cjson.encode(out)
`;

describe('Redis examples', () => {
  let cli = '';
  let redisServer = '';
  let dir = '';
  let port = 0;
  let source: Server;

  const redis = async (p: number, ...args: string[]): Promise<string> =>
    (await must([cli, '-h', '127.0.0.1', '-p', String(p), ...args])).trim();

  async function startRedis(name: string, dataDir: string): Promise<{ server: Server; port: number }> {
    // freePort can race with another process: try again on another port if the bind fails.
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const candidate = await freePort();
      const server = startServer(
        name,
        [
          redisServer,
          '--port',
          String(candidate),
          '--bind',
          '127.0.0.1',
          '--dir',
          dataDir,
          '--dbfilename',
          'dump.rdb',
          '--save',
          '',
          '--appendonly',
          'no',
        ],
        'SIGTERM',
        dataDir,
      );
      try {
        await waitReady(server, `${name} to answer PING on port ${candidate}`, async () => {
          const result = await run([cli, '-h', '127.0.0.1', '-p', String(candidate), 'PING'], {
            timeoutMs: 5_000,
          });
          return result.stdout.trim() === 'PONG';
        });
        return { server, port: candidate };
      } catch (error) {
        lastError = error;
        await server.stop();
        if (!/Address already in use/i.test(server.logs())) throw error;
      }
    }
    throw lastError;
  }

  const snapshot = async (p: number): Promise<unknown> =>
    JSON.parse(await redis(p, 'EVAL', REDIS_SNAPSHOT_LUA, '0')) as unknown;

  beforeAll(async () => {
    redisServer = requireTool('redis-server', INSTALL_HINTS['redis-server']);
    cli = requireTool('redis-cli', REDIS_TOOLS_HINT);
    dir = await tempDir('ubackup-examples-redis');
    await mkdir(join(dir, 'source'));
    ({ server: source, port } = await startRedis('redis-source', join(dir, 'source')));
    await redis(
      port,
      'EVAL',
      `for i = 1, 2000 do redis.call('SET', 'k:' .. i, string.rep('v' .. i, 1 + i % 7)) end
       for i = 1, 300 do redis.call('HSET', 'h:big', 'f' .. i, i) end
       redis.call('RPUSH', 'list', 'a', 'b', 'c', 'b')
       redis.call('SADD', 'set', 'x', 'y', 'z')
       redis.call('ZADD', 'zset', 1, 'one', 2.5, 'two', -3, 'minus')
       redis.call('SET', 'expiring', 'still here', 'EX', 86400)
       redis.call('SET', 'bytes', 'line1\\nline2\\ttab')
       return 1`,
      '0',
    );
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

interface PgTools {
  initdb: string;
  postgres: string;
  psql: string;
  pgDump: string;
  /** Prefix that runs a command as the `postgres` OS user (empty when we are not root). */
  asPostgres: string[];
  owner?: { uid: number; gid: number };
}

async function pgTools(): Promise<PgTools> {
  const tools: PgTools = {
    initdb: requireTool('initdb', INSTALL_HINTS.postgres),
    postgres: requireTool('postgres', INSTALL_HINTS.postgres),
    psql: requireTool('psql', INSTALL_HINTS.postgres),
    pgDump: requireTool('pg_dump', INSTALL_HINTS.postgres),
    asPostgres: [],
  };
  requireTool('pg_basebackup', INSTALL_HINTS.postgres);
  requireTool('pg_restore', INSTALL_HINTS.postgres);
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

describe('PostgreSQL examples', () => {
  let tools: PgTools;
  let dir = '';
  let port = 0;
  let source: Server;

  const libpqEnv = (p: number): Record<string, string> => ({
    PGHOST: '127.0.0.1',
    PGPORT: String(p),
    PGUSER: 'postgres',
  });
  const psql = (p: number, db: string, sql: string): Promise<string> =>
    must([tools.psql, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-At', '-d', db, '-c', sql], {
      env: cleanEnv(libpqEnv(p)),
    });
  /** Plain pg_dump of a database, without the per-run random \restrict key lines. */
  const dumpText = async (p: number, db: string): Promise<string> =>
    (await must([tools.pgDump, '-d', db], { env: cleanEnv(libpqEnv(p)) }))
      .split('\n')
      .filter((line) => !/^\\(un)?restrict /.test(line))
      .join('\n');

  async function startPg(name: string, dataDir: string): Promise<{ server: Server; port: number }> {
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const candidate = await freePort();
      const server = startServer(
        name,
        [
          ...tools.asPostgres,
          tools.postgres,
          '-D',
          dataDir,
          '-p',
          String(candidate),
          '-k',
          dir,
          '-c',
          'listen_addresses=127.0.0.1',
          '-c',
          'fsync=off',
        ],
        'SIGINT',
        dir,
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

  beforeAll(async () => {
    tools = await pgTools();
    dir = await tempDir('ubackup-examples-pg');
    if (tools.owner) await chown(dir, tools.owner.uid, tools.owner.gid);
    const dataDir = join(dir, 'source-data');
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
    ({ server: source, port } = await startPg('postgres-source', dataDir));
    await psql(port, 'postgres', 'CREATE DATABASE shop');
    await psql(
      port,
      'shop',
      `CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL, total numeric(10,2), placed timestamptz);
       INSERT INTO orders SELECT g, 'c' || (g % 97), g * 1.25, '2024-01-01'::timestamptz + g * interval '1 hour'
         FROM generate_series(1, 5000) g;
       CREATE INDEX orders_customer ON orders (customer);
       CREATE SEQUENCE invoice_no START 1000;
       SELECT nextval('invoice_no');
       CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 1000;
       CREATE FUNCTION order_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM orders';
       CREATE TABLE docs (id serial PRIMARY KEY, body jsonb, raw bytea);
       INSERT INTO docs (body, raw) SELECT jsonb_build_object('n', g), decode(md5(g::text), 'hex') FROM generate_series(1, 200) g;`,
    );
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
