import { type ChildProcess, spawn } from 'node:child_process';
import { waitFor } from './wait-for.js';

// Real database servers and their command-line tools for the end-to-end tests: commands run to
// completion, servers run in their own process groups (stopped whole), with a clean environment so
// nothing of the test's own (PG*, MARIADB_*, REDIS*) leaks into a server, a tool or an example script.

export const READY_MS = 60_000;
export const COMMAND_MS = 90_000;
const STOP_MS = 20_000;

export const AS_ROOT = process.getuid?.() === 0;

/** How to install a Debian package, for requireTool's message. */
export function aptHint(debianPackage: string): string {
  return `run "apt-get install -y --no-install-recommends ${debianPackage}" (scripts/install-deps.sh installs it)`;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Environment for every child: nothing of ours (PG*, MARIADB_*, REDIS*) leaks into the scripts. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
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

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
  input?: string;
}

/** Runs a command to completion in its own process group (killed whole on timeout). */
export function run(argv: string[], options: RunOptions = {}): Promise<RunResult> {
  const [command, ...args] = argv;
  if (command === undefined) throw new Error('run: empty argv');
  const timeoutMs = options.timeoutMs ?? COMMAND_MS;
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
export async function must(argv: string[], options: RunOptions = {}): Promise<string> {
  const result = await run(argv, options);
  if (result.code !== 0) {
    throw new Error(`${argv.join(' ')} exited with ${result.code}:\n${result.stdout}\n${result.stderr}`);
  }
  return result.stdout;
}

export interface DbServer {
  name: string;
  child: ChildProcess;
  logs(): string;
  /** Sends the stop signal to the group, waits, then SIGKILLs the group. Safe to call twice. */
  stop(): Promise<void>;
}

const servers = new Set<DbServer>();

/** Starts a long-running server in its own process group; `stopDbServers` stops what is left. */
export function startDbServer(
  name: string,
  argv: string[],
  stopSignal: NodeJS.Signals,
  cwd: string,
): DbServer {
  const [command, ...args] = argv;
  if (command === undefined) throw new Error('startDbServer: empty argv');
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
  let stopping: Promise<void> | undefined;
  const server: DbServer = {
    name,
    child,
    logs: () => log,
    stop(): Promise<void> {
      stopping ??= (async () => {
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
      })();
      return stopping;
    },
  };
  servers.add(server);
  return server;
}

/** Stops every server started with startDbServer that is still running (for afterAll). */
export async function stopDbServers(): Promise<void> {
  for (const server of [...servers]) await server.stop();
}

/** Waits until `probe` succeeds; fails early, with the server's log, if the server exits. */
export async function waitReady(
  server: DbServer,
  what: string,
  probe: () => Promise<boolean>,
): Promise<void> {
  const died = new Promise<never>((_done, fail) => {
    const onExit = (code: number | null, sig: string | null): void =>
      fail(
        new Error(`${server.name} exited (code ${code}, signal ${sig}) before ${what}:\n${server.logs()}`),
      );
    if (server.child.exitCode !== null || server.child.signalCode !== null) {
      onExit(server.child.exitCode, server.child.signalCode);
    }
    server.child.once('exit', onExit);
    // A program or working directory that does not exist: no 'exit', only 'error'.
    server.child.once('error', (error) =>
      fail(new Error(`${server.name} could not be started before ${what}: ${error.message}`)),
    );
  });
  died.catch(() => undefined);
  try {
    await Promise.race([waitFor(probe, { timeoutMs: READY_MS, intervalMs: 100, what }), died]);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`${message}\n--- ${server.name} log ---\n${server.logs()}`);
  }
}
