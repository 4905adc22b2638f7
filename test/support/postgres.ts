import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, realpathSync, rmSync } from 'node:fs';
import { chown } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { freePort } from './free-port.js';
import { findTool, INSTALL_HINTS, requireTool } from './required-tool.js';
import { makeTempDir, type TempDir } from './temp-dir.js';
import { waitFor } from './wait-for.js';

export interface PostgresHandle {
  /** `postgres://postgres@127.0.0.1:PORT/postgres` (trust auth, no password). */
  url: string;
  port: number;
  /** The cluster's data directory (inside a temp dir that `stop` removes). */
  dataDir: string;
  /** Creates a fresh, empty database (default name `ub_<random hex>`) and returns its URL. */
  createDatabase(name?: string): Promise<string>;
  /** The tail of the server's stderr log. */
  logs(): string;
  /** Fast shutdown (SIGINT), SIGKILL after 10 s, then removes the temp dir. Safe to call more than once. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 30_000;
const FAST_SHUTDOWN_TIMEOUT_MS = 10_000;
const KILL_TIMEOUT_MS = 5_000;
const START_ATTEMPTS = 3;
const LOG_TAIL_BYTES = 64 * 1024;
const DATABASE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

interface RunAs {
  /** Prefix that runs a short-lived command as the `postgres` OS user (empty when we are not root). */
  prefix: string[];
  /**
   * Prefix for the server: like `prefix`, plus (when util-linux `setpriv` exists) parent-death signals,
   * so the server gets SIGINT (fast shutdown) even if this process is SIGKILLed: runuser dies with us
   * (SIGKILL), and postgres gets SIGINT when runuser dies.
   */
  serverPrefix: string[];
  /** Whether the spawned server process is the postmaster itself (no runuser in between). */
  childIsPostmaster: boolean;
  /** uid/gid to chown the temp dir to, when running as root. */
  owner?: { uid: number; gid: number };
}

interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

interface LiveServer {
  child: ChildProcess;
  dataDir: string;
  tempDir: string;
}

// ---------------------------------------------------------------------------------------------------
// Process bookkeeping: whatever is still running when the test process exits is killed synchronously.

const liveServers = new Set<LiveServer>();
let exitHookInstalled = false;

function killAllNow(): void {
  const servers = [...liveServers];
  liveServers.clear();
  killNow(servers, true);
}

/**
 * 'exit' covers process.exit(); Vitest ends its fork workers with SIGTERM (and SIGKILL 500 ms later),
 * which skips 'exit', so SIGTERM/SIGINT/SIGHUP clean up too and then re-raise the signal.
 */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', killAllNow);
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killAllNow();
      process.off(sig, onSignal);
      // Nobody else handles it: let the default action (termination) happen.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // A zombie still answers kill(0); it is dead for our purposes.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function signal(pid: number | undefined, sig: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** PID of the postmaster, read from `postmaster.pid` (the child we spawned may be `runuser`). */
function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number.parseInt(
      readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0] ?? '',
      10,
    );
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Synchronous last resort: immediate shutdown (SIGQUIT, so the postmaster still frees its shared
 * memory), a short wait (Vitest SIGKILLs its workers 500 ms after SIGTERM), then SIGKILL.
 */
function killNow(servers: LiveServer[], removeDirs: boolean): void {
  const pids = servers.map((server) => postmasterPid(server.dataDir));
  for (const pid of pids) signal(pid, 'SIGQUIT');
  const until = Date.now() + 300;
  while (pids.some((pid) => pid !== undefined && isAlive(pid)) && Date.now() < until) sleepSync(10);
  servers.forEach((server, i) => {
    if (server.child.pid !== undefined) signal(-server.child.pid, 'SIGKILL');
    signal(pids[i], 'SIGKILL');
    if (!removeDirs) return;
    try {
      rmSync(server.tempDir, { recursive: true, force: true });
    } catch {
      // best effort while the process exits
    }
  });
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (hasExited(child)) return Promise.resolve(true);
  return new Promise<boolean>((resolveExit) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolveExit(false);
    }, timeoutMs);
    const onExit = (): void => {
      clearTimeout(timer);
      resolveExit(true);
    };
    child.once('exit', onExit);
  });
}

function waitForClose(child: ChildProcess, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolveClose) => {
    const timer = setTimeout(done, timeoutMs);
    function done(): void {
      clearTimeout(timer);
      child.off('close', done);
      resolveClose();
    }
    child.once('close', done);
  });
}

// ---------------------------------------------------------------------------------------------------
// Helpers

function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    // PGDATA, PGPORT, PGHOST... would silently change what the server and tools do.
    if (!key.startsWith('PG') && !key.startsWith('LC_')) env[key] = value;
  }
  env.LANG = 'C';
  env.LC_ALL = 'C';
  return env;
}

function runCommand(argv: string[], cwd: string): Promise<CommandResult> {
  const [command, ...args] = argv;
  if (command === undefined) throw new Error('runCommand: empty argv');
  return new Promise<CommandResult>((resolveRun, reject) => {
    const child = spawn(command, args, { cwd, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.once('error', reject);
    child.once('close', (code, sig) =>
      resolveRun({ code, signal: sig, output: Buffer.concat(chunks).toString() }),
    );
  });
}

async function resolveRunAs(): Promise<RunAs> {
  const setpriv = findTool('setpriv');
  const deathSignal = (sig: NodeJS.Signals): string[] =>
    setpriv === undefined ? [] : [setpriv, '--pdeathsig', sig, '--'];
  if (process.getuid?.() !== 0) {
    return { prefix: [], serverPrefix: deathSignal('SIGINT'), childIsPostmaster: true };
  }
  // initdb and postgres refuse to run as root.
  const runuser = requireTool('runuser', 'run "apt-get install -y util-linux"');
  const ids: number[] = [];
  for (const flag of ['-u', '-g']) {
    const result = await runCommand(
      [requireTool('id', 'run "apt-get install -y coreutils"'), flag, 'postgres'],
      '/',
    );
    const id = Number.parseInt(result.output.trim(), 10);
    if (result.code !== 0 || !Number.isInteger(id)) {
      throw new Error(
        `OS user "postgres" does not exist (the postgresql package creates it): ${INSTALL_HINTS.postgres}; id said: ${result.output.trim()}`,
      );
    }
    ids.push(id);
  }
  const runuserPrefix = [runuser, '-u', 'postgres', '--'];
  return {
    prefix: runuserPrefix,
    // The SIGINT death signal is set after runuser switched to the postgres user (a uid change clears it).
    serverPrefix: [...deathSignal('SIGKILL'), ...runuserPrefix, ...deathSignal('SIGINT')],
    childIsPostmaster: false,
    owner: { uid: ids[0]!, gid: ids[1]! },
  };
}

/** `postgres` and an `initdb` of the same version (next to each other once symlinks are resolved). */
function resolveServerBinaries(): { postgres: string; initdb: string } {
  const postgres = requireTool('postgres', INSTALL_HINTS.postgres);
  let realPostgres: string;
  try {
    realPostgres = realpathSync(postgres);
  } catch {
    realPostgres = postgres;
  }
  const initdb =
    findTool(join(dirname(realPostgres), 'initdb')) ?? requireTool('initdb', INSTALL_HINTS.postgres);
  return { postgres, initdb };
}

function urlFor(port: number, database: string): string {
  return `postgres://postgres@127.0.0.1:${port}/${database}`;
}

async function withClient<T>(url: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, ssl: false, connectionTimeoutMillis: 5_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await use(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

class LogTail {
  private text = '';
  append(chunk: Buffer): void {
    this.text += chunk.toString();
    if (this.text.length > LOG_TAIL_BYTES) this.text = this.text.slice(-LOG_TAIL_BYTES);
  }
  toString(): string {
    return this.text;
  }
}

// ---------------------------------------------------------------------------------------------------
// Server

interface StartedServer {
  live: LiveServer;
  log: LogTail;
  port: number;
}

class StartFailure extends Error {
  constructor(
    message: string,
    readonly portTaken: boolean,
  ) {
    super(message);
  }
}

async function startServer(
  postgresBin: string,
  runAs: RunAs,
  dir: TempDir,
  dataDir: string,
): Promise<StartedServer> {
  const port = await freePort();
  const argv = [
    ...runAs.serverPrefix,
    postgresBin,
    '-D',
    dataDir,
    '-p',
    String(port),
    '-k',
    dir.path,
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    'fsync=off',
    '-c',
    'synchronous_commit=off',
    '-c',
    'full_page_writes=off',
    '-c',
    'max_connections=200',
  ];
  const [command, ...args] = argv as [string, ...string[]];
  // Own process group, so the whole tree (runuser + postmaster) can be SIGKILLed at once.
  const child = spawn(command, args, {
    cwd: dir.path,
    env: childEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const log = new LogTail();
  // Always drain the pipes: a full pipe would block the server's logging.
  child.stdout?.on('data', (chunk: Buffer) => log.append(chunk));
  child.stderr?.on('data', (chunk: Buffer) => log.append(chunk));
  const live: LiveServer = { child, dataDir, tempDir: dir.path };
  liveServers.add(live);
  installExitHook();

  const exited = new Promise<never>((_resolve, reject) => {
    const fail = (description: string): void =>
      reject(new StartFailure(`postgres ${description} before accepting connections`, false));
    child.once('error', (error) => fail(`could not be started (${error.message})`));
    child.once('exit', (code, sig) => fail(`exited (code ${code}, signal ${sig})`));
  });
  exited.catch(() => undefined);

  try {
    await Promise.race([
      waitFor(
        () =>
          withClient(
            urlFor(port, 'postgres'),
            async (client) => (await client.query('SELECT 1')).rowCount === 1,
          ),
        {
          timeoutMs: READY_TIMEOUT_MS,
          intervalMs: 50,
          what: `PostgreSQL on 127.0.0.1:${port} to accept connections`,
        },
      ),
      exited,
    ]);
  } catch (error) {
    liveServers.delete(live);
    // Keep the data dir: the caller may retry on another port, and removes the dir otherwise.
    killNow([live], false);
    await waitForExit(child, KILL_TIMEOUT_MS);
    // Let the pipes drain so the log has the reason (e.g. "could not bind IPv4 address").
    await waitForClose(child, 1_000);
    const logs = log.toString();
    const portTaken = /could not bind|address already in use|could not create any TCP\/IP sockets/i.test(
      logs,
    );
    const message = error instanceof Error ? error.message : String(error);
    throw new StartFailure(`${message}\n--- postgres stderr ---\n${logs.trim() || '(empty)'}`, portTaken);
  }
  return { live, log, port };
}

/**
 * Starts a throwaway PostgreSQL server: initdb into a fresh temp dir (owned by the `postgres` OS user
 * when we are root), then `postgres` on a free 127.0.0.1 port with durability turned off.
 * Fails (never skips) when the server binaries are missing.
 */
export async function startPostgres(): Promise<PostgresHandle> {
  const binaries = resolveServerBinaries();
  const runAs = await resolveRunAs();
  const dir = await makeTempDir('ubackup-pg');
  const dataDir = join(dir.path, 'data');
  let server: StartedServer | undefined;
  try {
    if (runAs.owner) await chown(dir.path, runAs.owner.uid, runAs.owner.gid);
    const init = await runCommand(
      [
        ...runAs.prefix,
        binaries.initdb,
        '-D',
        dataDir,
        '-A',
        'trust',
        '-U',
        'postgres',
        '--no-sync',
        '-E',
        'UTF8',
        '--locale=C',
      ],
      dir.path,
    );
    if (init.code !== 0) {
      throw new Error(
        `initdb failed (code ${init.code}, signal ${init.signal}) in ${dataDir}:\n${init.output.trim()}`,
      );
    }
    for (let attempt = 1; server === undefined; attempt += 1) {
      try {
        server = await startServer(binaries.postgres, runAs, dir, dataDir);
      } catch (error) {
        // Another process can grab the free port before postgres binds it; try a new one.
        if (!(error instanceof StartFailure && error.portTaken && attempt < START_ATTEMPTS)) throw error;
      }
    }
  } catch (error) {
    await dir.cleanup();
    throw error;
  }

  const { live, log, port } = server;
  const url = urlFor(port, 'postgres');
  let stopping: Promise<void> | undefined;

  return {
    url,
    port,
    dataDir,
    logs: () => log.toString(),
    async createDatabase(name?: string): Promise<string> {
      const database = name ?? `ub_${randomBytes(8).toString('hex')}`;
      if (!DATABASE_NAME.test(database)) {
        throw new Error(`createDatabase: ${JSON.stringify(database)} must match ${DATABASE_NAME}`);
      }
      await withClient(url, (client) => client.query(`CREATE DATABASE "${database}"`));
      return urlFor(port, database);
    },
    stop(): Promise<void> {
      stopping ??= (async () => {
        const { child } = live;
        if (!hasExited(child)) {
          // Signal the postmaster itself: runuser would turn SIGINT into SIGTERM (smart shutdown,
          // which waits for clients) and SIGKILL two seconds later.
          const pid = postmasterPid(dataDir) ?? (runAs.childIsPostmaster ? child.pid : undefined);
          if (pid !== undefined) signal(pid, 'SIGINT');
          if (pid === undefined || !(await waitForExit(child, FAST_SHUTDOWN_TIMEOUT_MS))) {
            if (child.pid !== undefined) signal(-child.pid, 'SIGKILL');
            signal(pid, 'SIGKILL');
            if (!(await waitForExit(child, KILL_TIMEOUT_MS))) {
              throw new Error(`postgres on port ${port} did not exit after SIGKILL\n${log.toString()}`);
            }
          }
        }
        liveServers.delete(live);
        await dir.cleanup();
      })();
      return stopping;
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// One server per test file

let shared: Promise<PostgresHandle> | undefined;

/**
 * A server shared by the tests of one file (module state is per test file under Vitest's default
 * isolation), started on first use. Give each test its own database with `createDatabase()`, and stop
 * the server in `afterAll(stopSharedPostgres)` (or `afterAll(async () => (await sharedPostgres()).stop())`).
 * A failed start is remembered, so every test of the file fails with the same error.
 */
export function sharedPostgres(): Promise<PostgresHandle> {
  if (shared === undefined) {
    const starting: Promise<PostgresHandle> = startPostgres().then((handle) => ({
      ...handle,
      stop: async (): Promise<void> => {
        if (shared === starting) shared = undefined;
        await handle.stop();
      },
    }));
    starting.catch(() => undefined);
    shared = starting;
  }
  return shared;
}

/** Stops the shared server if one was started (or is starting); a no-op otherwise. */
export async function stopSharedPostgres(): Promise<void> {
  const current = shared;
  shared = undefined;
  if (current === undefined) return;
  let handle: PostgresHandle;
  try {
    handle = await current;
  } catch {
    return; // the start failed; nothing is running
  }
  await handle.stop();
}
