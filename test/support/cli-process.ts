import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { freePort } from './free-port.js';
import { waitFor } from './wait-for.js';

/** The built CLI; tests of real processes run what users run. */
const above = resolve(import.meta.dirname, '../..');
// From the sources (Vitest) or from dist/ (compiled benchmarks).
export const CLI = basename(above) === 'dist' ? join(above, 'src/cli.js') : join(above, 'dist/src/cli.js');

function assertBuilt(): void {
  if (!existsSync(CLI))
    throw new Error(`${CLI} is missing: run "npm run build" first (scripts/test-all.sh does)`);
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `ubackup <args>` to completion. */
export function runCli(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<CliResult> {
  assertBuilt();
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export interface CliDaemon {
  child: ChildProcess;
  output(): string;
  /** Sends a signal and waits for the process to exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts a long-running `ubackup <args>` and keeps its output. */
export function startCli(args: string[], env: NodeJS.ProcessEnv = {}): CliDaemon {
  assertBuilt();
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-256 * 1024);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((done) => {
    child.on('exit', (code) => {
      live.delete(child);
      done(code);
    });
  });
  return {
    child,
    output: () => output,
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export interface ServerProcess extends CliDaemon {
  url: string;
  port: number;
}

/** Starts `ubackup server` on a random loopback port and waits until /healthz answers. */
export async function startServerProcess(options: {
  dataDir: string;
  db?: string;
  port?: number;
  extraArgs?: string[];
}): Promise<ServerProcess> {
  const port = options.port ?? (await freePort());
  const args = [
    'server',
    '--listen',
    `127.0.0.1:${port}`,
    '--data-dir',
    options.dataDir,
    ...(options.extraArgs ?? []),
  ];
  if (options.db) args.push('--db', options.db);
  const daemon = startCli(args, { UBACKUP_LOG_LEVEL: process.env.UBACKUP_LOG_LEVEL ?? 'warn' });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor(
      async () => {
        if (daemon.child.exitCode !== null) throw new Error(`server exited early:\n${daemon.output()}`);
        const res = await fetch(`${url}/healthz`).catch(() => null);
        return res?.ok ?? false;
      },
      { timeoutMs: 30_000, intervalMs: 50, what: `ubackup server on ${url}` },
    );
  } catch (error) {
    await daemon.stop('SIGKILL');
    throw error;
  }
  return { ...daemon, url, port };
}
