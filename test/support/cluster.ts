import { mkdir, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { BackendName } from './catalog-backends.js';
import { type CliDaemon, runCli, type ServerProcess, startCli, startServerProcess } from './cli-process.js';
import { freePort } from './free-port.js';
import { createEnrollToken, type ProcessCatalog, processCatalog, readCatalog } from './process-catalog.js';
import { makeTempDir, type TempDir } from './temp-dir.js';
import { waitFor } from './wait-for.js';

/**
 * A whole UBackup on loopback for storage tests: a server process, one
 * database host (its instances' scripts write real files of a chosen size;
 * `agent serve` is its file server) and as many storage node processes as a
 * test starts.
 */
export interface ClusterOptions {
  instances: number;
  fileBytes: number;
  leaseSeconds?: number;
  maxAttempts?: number;
  retryBaseSeconds?: number;
  /** Extra `[global]` lines for the host's agent config. */
  agentGlobal?: string[];
  /** Use this port for the agent's file server instead of a free one. */
  filePort?: number;
  /** Extra `ubackup server` flags, e.g. `['--alert-sweep-seconds', '1']`. */
  serverArgs?: string[];
  /**
   * The `script` line of instance i, given its back_dir and back_log; by
   * default a script writing `fileBytes` random bytes and reporting them.
   */
  script?: (i: number, backDir: string, backLog: string) => string;
}

export interface JobRow {
  id: number;
  state: string;
  attempts: number;
  lease_node: string | null;
  last_error: string | null;
  stored_node: string | null;
  stored_path: string | null;
  filename: string | null;
  blake3: string | null;
}

export interface Cluster {
  dir: TempDir;
  pc: ProcessCatalog;
  server: ServerProcess;
  enrollToken: string;
  agentConfig: string;
  /** Where the host's file server listens. */
  filePort: number;
  /** The host's back_dir of instance i. */
  backDir(i: number): string;
  /** Runs every instance once (`agent run-once`): one report and one queued job each. */
  runOnce(): Promise<void>;
  /** Starts the host's file server (`agent serve`). */
  /** Starts `ubackup agent serve` and resolves once its file server accepts connections. */
  serveFiles(): Promise<CliDaemon>;
  nodeRoot(name: string): string;
  /** Writes `<dir>/<name>.conf` and starts `ubackup node` with it. */
  startNode(name: string, extra?: string[], root?: string): Promise<CliDaemon>;
  jobs(): Promise<JobRow[]>;
  stop(): Promise<void>;
}

export async function startCluster(backend: BackendName, options: ClusterOptions): Promise<Cluster> {
  const dir = await makeTempDir('ubackup-cluster');
  const pc = await processCatalog(backend, dir.path);
  const enrollToken = await createEnrollToken(pc);
  const server = await startServerProcess({
    dataDir: pc.dataDir,
    db: pc.db,
    extraArgs: [
      '--lease-seconds',
      String(options.leaseSeconds ?? 60),
      '--max-attempts',
      String(options.maxAttempts ?? 5),
      '--retry-base-seconds',
      String(options.retryBaseSeconds ?? 1),
      '--heartbeat-seconds',
      '1',
      ...(options.serverArgs ?? []),
    ],
  });
  const daemons: CliDaemon[] = [];
  const restorePorts = new Map<string, number>();
  const restorePort = async (name: string): Promise<number> => {
    const port = restorePorts.get(name) ?? (await freePort());
    restorePorts.set(name, port);
    return port;
  };
  const filePort = options.filePort ?? (await freePort());
  const backDir = (i: number) => join(dir.path, 'host', `db${i}`);
  const lines = [
    '[global]',
    'server_id = 5001',
    'game_id = 31',
    `server_url = ${server.url}`,
    `enroll_token = ${enrollToken}`,
    `state_dir = ${join(dir.path, 'agent-state')}`,
    'my_ip = 127.0.0.1',
    `listen = 127.0.0.1:${filePort}`,
    ...(options.agentGlobal ?? []),
  ];
  for (let i = 0; i < options.instances; i += 1) {
    await mkdir(backDir(i), { recursive: true });
    const log = join(dir.path, 'host', `db${i}.log`);
    lines.push(
      `[db${i}]`,
      'back_type = mysql',
      `instance = ${4000 + i}`,
      `back_dir = ${backDir(i)}`,
      `back_log = ${log}`,
      `script = ${
        options.script?.(i, backDir(i), log) ??
        `name=b-$(date +%s%N).bin; head -c ${options.fileBytes} /dev/urandom > ${backDir(i)}/$name && printf 'ok\\n%s\\n' $name > ${log}`
      }`,
    );
  }
  const agentConfig = join(dir.path, 'agent.conf');
  await writeFile(agentConfig, `${lines.join('\n')}\n`);

  const nodeRoot = (name: string) => join(dir.path, 'nodes', name);
  return {
    dir,
    pc,
    server,
    enrollToken,
    agentConfig,
    filePort,
    backDir,
    runOnce: async () => {
      const run = await runCli(['agent', 'run-once', '--config', agentConfig, '--log-level', 'warn']);
      if (
        run.code !== 0 ||
        !run.stderr.includes(`${options.instances} run(s), 0 failed, 0 report(s) waiting`)
      ) {
        throw new Error(`run-once did not report every instance:\n${run.stderr}`);
      }
    },
    serveFiles: async () => {
      const daemon = startCli(['agent', 'serve', '--config', agentConfig, '--log-level', 'warn']);
      daemons.push(daemon);
      await waitFor(() => accepts(filePort), {
        timeoutMs: 30_000,
        what: `the file server on port ${filePort}`,
      });
      return daemon;
    },
    nodeRoot,
    startNode: async (name, extra = [], root = nodeRoot(name)) => {
      await mkdir(root, { recursive: true });
      const config = join(dir.path, `${name}.conf`);
      await writeFile(
        config,
        [
          '[global]',
          `server_url = ${server.url}`,
          `enroll_token = ${enrollToken}`,
          `state_dir = ${join(dir.path, `${name}-state`)}`,
          `name = ${name}`,
          `server_root_path = ${root}`,
          'reserve = 1M',
          'work_thread = 4',
          'heartbeat = 1',
          // Each node serves restores on a port of its own (kept across restarts of the same name).
          ...(extra.some((line) => /^\s*listen\s*=/.test(line))
            ? []
            : [`listen = 127.0.0.1:${await restorePort(name)}`]),
          ...extra,
          '',
        ].join('\n'),
      );
      const daemon = startCli(['node', '--config', config, '--log-level', 'info']);
      daemons.push(daemon);
      return daemon;
    },
    jobs: () =>
      readCatalog(pc.location, (catalog) =>
        catalog.db
          .selectFrom('transfer_jobs')
          .innerJoin('backups', 'backups.id', 'transfer_jobs.backup_id')
          .select([
            'transfer_jobs.id',
            'transfer_jobs.state',
            'transfer_jobs.attempts',
            'transfer_jobs.lease_node',
            'transfer_jobs.last_error',
            'backups.stored_node',
            'backups.stored_path',
            'backups.filename',
            'backups.blake3',
          ])
          .orderBy('transfer_jobs.id')
          .execute(),
      ),
    stop: async () => {
      await Promise.all(daemons.map((d) => d.stop('SIGKILL')));
      await server.stop('SIGKILL');
      await dir.cleanup();
    },
  };
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
