/**
 * Transfer benchmark: a storage node pulls backup files from a real agent file
 * server over HTTP on loopback (pullHttp: ticket, BLAKE3 while writing the
 * part, fsync, link into place, fsync of the directory, sidecar) and the same
 * files are pulled from a real rsync daemon in the same run, whole-file (`-W`)
 * and with rsync's defaults, with `--fsync` when the local rsync has it.
 *
 * The agent's file server runs in this process; the node's pulls run in a
 * child process (bench/transfer-worker.ts), so that its peak RSS and CPU time
 * are its own. Each measurement is repeated (`--runs`, default 3) with the
 * methods interleaved; the median is the figure. Before every run the
 * destination is deleted, the sources are read once (so every run reads them
 * from the page cache) and the machine is left alone for `--settle-s` seconds:
 * on a VM with free page reporting (virtio-balloon), pages freed by the delete
 * go back to the host after about 2 s and cost a host fault when touched
 * again, so a writer that starts at once (rsync) would otherwise reuse warm
 * pages and one that starts later (a node process) cold ones. A `dd
 * conv=fsync` copy of the same files on the same file system is printed as the
 * local ceiling (no network).
 *
 * When our pull is slower than rsync (`--profile auto`, the default) the node
 * side is profiled once (`node --cpu-prof`) and the hottest functions printed.
 *
 *   npm run bench:transfer -- [--size-mib 2048] [--parallel 8] [--parallel-size-mib 256]
 *                             [--runs 3] [--settle-s 3] [--profile auto|always|never] [--profile-dir <dir>]
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomFillSync, randomUUID } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Blake3Hasher } from '@napi-rs/blake-hash';
import { startFileServer } from '../src/agent/file-server.js';
import { freeSpace } from '../src/node/disk-space.js';
import { startRestoreServer } from '../src/node/restore-server.js';
import { storedAbsolutePath, storedRelativePath } from '../src/node/storage-layout.js';
import type { LeasedJob } from '../src/shared/node-protocol.js';
import { generateTicketKeys, signTicket, TICKET_VERSION, type TicketKeyPair } from '../src/shared/ticket.js';
import { freePort } from '../test/support/free-port.js';
import { INSTALL_HINTS, requireTool } from '../test/support/required-tool.js';
import { makeTempDir } from '../test/support/temp-dir.js';
import { waitFor } from '../test/support/wait-for.js';
import type { RestoreDownload } from './restore-worker.js';
import type { ThreadCpu, WorkerResult } from './worker-result.js';

const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '2048' },
    parallel: { type: 'string', default: '8' },
    'parallel-size-mib': { type: 'string', default: '256' },
    runs: { type: 'string', default: '3' },
    profile: { type: 'string', default: 'auto' },
    'profile-dir': { type: 'string' },
    'settle-s': { type: 'string', default: '3' },
  },
});

function positiveInt(name: string, text: string | undefined): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) {
    console.error(`--${name} must be a positive integer, got ${String(text)}`);
    process.exit(2);
  }
  return n;
}

const MiB = 1024 * 1024;
const MB = 1e6;
const SIZE_MIB = positiveInt('size-mib', values['size-mib']);
const PARALLEL = positiveInt('parallel', values.parallel);
const PARALLEL_SIZE_MIB = positiveInt('parallel-size-mib', values['parallel-size-mib']);
const RUNS = positiveInt('runs', values.runs);
const SETTLE_S = Number(values['settle-s']);
if (!(Number.isFinite(SETTLE_S) && SETTLE_S >= 0)) {
  console.error(`--settle-s must be a number ≥ 0, got ${values['settle-s']}`);
  process.exit(2);
}
const PROFILE = values.profile ?? 'auto';
if (!['auto', 'always', 'never'].includes(PROFILE)) {
  console.error(`--profile must be auto, always or never, got ${PROFILE}`);
  process.exit(2);
}
const WORKER = fileURLToPath(new URL('./transfer-worker.js', import.meta.url));
const RESTORE_WORKER = fileURLToPath(new URL('./restore-worker.js', import.meta.url));
const NODE_NAME = 'bench-node';

const SERVER_ID = 'bench-db-1';
const TYPE = 'mysql';
const INSTANCE = '3306';
const GAME_ID = '1';
const RSYNC_MODULE = 'bench';
/** Size of one generated chunk, and of one write(2) while generating. */
const GENERATE_CHUNK_BYTES = 16 * MiB;

// ---------------------------------------------------------------------------
// Clean-up, also on failure and on Ctrl-C: the temp dir holds gigabytes.

const children = new Set<ChildProcess>();
const cleanups: Array<() => Promise<void>> = [];
let cleaning: Promise<void> | null = null;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const child of children)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const step of cleanups.reverse()) {
      try {
        await step();
      } catch (error) {
        console.error(`clean-up: ${describe(error)}`);
      }
    }
  })();
  return cleaning;
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// ---------------------------------------------------------------------------
// Processes

interface Exited {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[]): { child: ChildProcess; exited: Promise<Exited> } {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<Exited>((resolveExit, rejectExit) => {
    child.once('error', rejectExit);
    child.once('close', (code, signal) => {
      children.delete(child);
      resolveExit({ code, signal, stdout, stderr });
    });
  });
  return { child, exited };
}

async function runOk(command: string, args: string[]): Promise<Exited> {
  const result = await run(command, args).exited;
  if (result.code !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} exited with ${result.code ?? result.signal}: ${result.stderr.trim()}`,
    );
  }
  return result;
}

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU time of the reaped children of `pid` (cutime and cstime of /proc/<pid>/stat). */
function reapedChildrenCpu(pid: number): CpuTime {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); cutime and cstime are fields 16 and 17.
  return { user: Number(fields[13]) / CLOCK_TICKS, system: Number(fields[14]) / CLOCK_TICKS };
}

/** Waits until `pid` has reaped its children (the daemon reaps its per-connection senders on SIGCHLD). */
async function childrenReaped(pid: number): Promise<void> {
  const file = `/proc/${pid}/task/${pid}/children`;
  if (!existsSync(file)) {
    await new Promise((r) => setTimeout(r, 300));
    return;
  }
  await waitFor(async () => (await readFile(file, 'utf8')).trim() === '', {
    timeoutMs: 10_000,
    intervalMs: 10,
    what: `process ${pid} to reap its children`,
  });
}

// ---------------------------------------------------------------------------
// Data

interface SourceFile {
  name: string;
  path: string;
  size: number;
  blake3: string;
}

/** A file of the restore chain as the node stores it (`path` is the node's copy). */
interface StoredFile extends SourceFile {
  backupId: number;
}

/** Writes `bytes` of random data with large writes; returns its BLAKE3. */
function writeRandomFile(path: string, bytes: number): string {
  const chunk = Buffer.allocUnsafe(Math.min(GENERATE_CHUNK_BYTES, bytes));
  const hasher = new Blake3Hasher();
  const fd = openSync(path, 'w', 0o640);
  try {
    for (let offset = 0; offset < bytes; ) {
      const n = Math.min(chunk.length, bytes - offset);
      const data = chunk.subarray(0, n);
      randomFillSync(data);
      hasher.update(data);
      for (let done = 0; done < n; ) done += writeSync(fd, data, done, n - done);
      offset += n;
    }
  } finally {
    closeSync(fd);
  }
  return hasher.digest('hex');
}

// ---------------------------------------------------------------------------
// Measurements

interface CpuTime {
  user: number;
  system: number;
}

interface Measurement {
  seconds: number;
  bytes: number;
  /** Peak RSS of the receiving side: our worker, or the largest rsync/dd process. */
  receiverRssBytes: number | null;
  receiverCpu: CpuTime | null;
  senderCpu: CpuTime | null;
  /** Ours only: the worker's RSS before its first pull. */
  rssBeforeBytes?: number;
  /** Ours only: the worker's CPU per thread name. */
  receiverThreads?: ThreadCpu[];
}

interface Context {
  tmp: string;
  dest: string;
  keys: TicketKeyPair;
  agentPort: number;
  rsyncPort: number;
  rsyncDaemonPid: number;
  rsyncFsync: boolean;
  time: string | undefined;
  nextJobId: number;
}

/** A ticket for `file` as backup `backupId` (a pull's job has the same id), valid for an hour. */
function benchTicket(ctx: Context, purpose: 'pull' | 'restore', backupId: number, file: SourceFile): string {
  return signTicket(
    {
      v: TICKET_VERSION,
      purpose,
      job_id: purpose === 'pull' ? backupId : null,
      backup_id: backupId,
      server_id: SERVER_ID,
      type: TYPE,
      instance: INSTANCE,
      filename: file.name,
      size: file.size,
      blake3: file.blake3,
      node: NODE_NAME,
      exp: Date.now() + 3_600_000,
    },
    ctx.keys.privateKey,
  );
}

function leasedJob(ctx: Context, file: SourceFile): LeasedJob {
  const jobId = ctx.nextJobId++;
  const now = Date.now();
  const ticket = benchTicket(ctx, 'pull', jobId, file);
  const path = [SERVER_ID, TYPE, INSTANCE, file.name].map(encodeURIComponent).join('/');
  return {
    job_id: jobId,
    backup_id: jobId,
    report_id: randomUUID(),
    attempt: 1,
    lease_expires_at: new Date(now + 3_600_000).toISOString(),
    game_id: GAME_ID,
    server_id: SERVER_ID,
    type: TYPE,
    instance: INSTANCE,
    filename: file.name,
    size: file.size,
    blake3: file.blake3,
    kind: 'single',
    created_at: new Date(now).toISOString(),
    base_backup_id: null,
    source: { transport: 'http', url: `http://127.0.0.1:${ctx.agentPort}/v1/files/${path}` },
    ticket,
  };
}

/** Reads the files once, so that the run reads them from the page cache. */
function warm(files: SourceFile[]): void {
  const buffer = Buffer.allocUnsafe(GENERATE_CHUNK_BYTES);
  for (const file of files) {
    const fd = openSync(file.path, 'r');
    try {
      while (readSync(fd, buffer, 0, buffer.length, null) > 0);
    } finally {
      closeSync(fd);
    }
  }
}

/** The same start for every run: an empty destination, warm sources, a quiet machine. */
async function prepareRun(ctx: Context, files: SourceFile[]): Promise<void> {
  await rm(ctx.dest, { recursive: true, force: true });
  await mkdir(ctx.dest);
  // No dirty pages left from the previous run's deletes.
  spawnSync('sync');
  warm(files);
  await new Promise((resolveSettle) => setTimeout(resolveSettle, SETTLE_S * 1000));
}

async function expectSize(path: string, size: number): Promise<void> {
  const stats = await stat(path);
  if (stats.size !== size) throw new Error(`${path} has ${stats.size} bytes, expected ${size}`);
}

/** Our pull, in a child process. `nodeArgs` go to node itself (e.g. --cpu-prof). */
async function measureOurs(ctx: Context, files: SourceFile[], nodeArgs: string[] = []): Promise<Measurement> {
  await prepareRun(ctx, files);
  const jobs = files.map((file) => leasedJob(ctx, file));
  const jobsFile = join(ctx.tmp, 'jobs.json');
  await writeFile(jobsFile, JSON.stringify(jobs));
  const agentCpu = process.cpuUsage();
  const result = await runOk(process.execPath, [...nodeArgs, WORKER, '--jobs', jobsFile, '--root', ctx.dest]);
  const sender = process.cpuUsage(agentCpu);
  const worker = JSON.parse(result.stdout) as WorkerResult;
  if (worker.failures.length > 0) throw new Error(`pullHttp failed: ${worker.failures.join('; ')}`);
  const expected = files.reduce((sum, file) => sum + file.size, 0);
  if (worker.bytes !== expected) throw new Error(`pulled ${worker.bytes} bytes, expected ${expected}`);
  for (const job of jobs) await expectSize(storedAbsolutePath(ctx.dest, storedRelativePath(job)), job.size);
  return {
    seconds: worker.seconds,
    bytes: worker.bytes,
    receiverRssBytes: Math.max(worker.maxRssBytes, worker.vmHwmBytes ?? 0),
    receiverCpu: { user: worker.cpuUserSeconds, system: worker.cpuSystemSeconds },
    senderCpu: { user: sender.user / 1e6, system: sender.system / 1e6 },
    rssBeforeBytes: worker.rssBeforeBytes,
    receiverThreads: worker.threads,
  };
}

/** Runs `command args` once per file at the same time, under /usr/bin/time when there is one. */
async function measureProcesses(
  ctx: Context,
  files: SourceFile[],
  argsFor: (file: SourceFile, index: number) => [string, string[]],
  senderPid: number | null,
): Promise<Measurement> {
  await prepareRun(ctx, files);
  const senderBefore = senderPid === null ? null : reapedChildrenCpu(senderPid);
  const timeFiles = files.map((_, index) => join(ctx.tmp, `time-${index}.txt`));
  const start = performance.now();
  await Promise.all(
    files.map((file, index) => {
      const [command, args] = argsFor(file, index);
      return ctx.time === undefined
        ? runOk(command, args)
        : runOk(ctx.time, ['-f', '%U %S %M', '-o', timeFiles[index] as string, command, ...args]);
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  let senderCpu: CpuTime | null = null;
  if (senderPid !== null && senderBefore !== null) {
    await childrenReaped(senderPid);
    const after = reapedChildrenCpu(senderPid);
    senderCpu = { user: after.user - senderBefore.user, system: after.system - senderBefore.system };
  }
  let receiverRssBytes: number | null = null;
  let receiverCpu: CpuTime | null = null;
  if (ctx.time !== undefined) {
    receiverRssBytes = 0;
    receiverCpu = { user: 0, system: 0 };
    for (const file of timeFiles) {
      const [user, system, maxRssKiB] = (await readFile(file, 'utf8')).trim().split(/\s+/).map(Number);
      receiverCpu.user += user ?? 0;
      receiverCpu.system += system ?? 0;
      receiverRssBytes = Math.max(receiverRssBytes, (maxRssKiB ?? 0) * 1024);
    }
  }
  for (const file of files) await expectSize(join(ctx.dest, file.name), file.size);
  return {
    seconds,
    bytes: files.reduce((sum, file) => sum + file.size, 0),
    receiverRssBytes,
    receiverCpu,
    senderCpu,
  };
}

function measureRsync(ctx: Context, files: SourceFile[], wholeFile: boolean): Promise<Measurement> {
  return measureProcesses(
    ctx,
    files,
    (file) => [
      'rsync',
      [
        ...(wholeFile ? ['-W'] : []),
        ...(ctx.rsyncFsync ? ['--fsync'] : []),
        `rsync://127.0.0.1:${ctx.rsyncPort}/${RSYNC_MODULE}/${file.name}`,
        `${ctx.dest}/`,
      ],
    ],
    ctx.rsyncDaemonPid,
  );
}

function measureDd(ctx: Context, files: SourceFile[]): Promise<Measurement> {
  return measureProcesses(
    ctx,
    files,
    (file) => [
      'dd',
      [`if=${file.path}`, `of=${join(ctx.dest, file.name)}`, 'bs=1M', 'conv=fsync', 'status=none'],
    ],
    null,
  );
}

/**
 * `ubackup restore`'s download of a stored chain from a node's restore server
 * (in this process), in a child process: the files one after the other, each
 * verified and renamed into place, as `runRestore` does.
 */
async function measureRestore(ctx: Context, chain: StoredFile[], restorePort: number): Promise<Measurement> {
  // The node's copies are what is read: warm them, as the sources are for the pulls.
  await prepareRun(ctx, chain);
  const downloads: RestoreDownload[] = chain.map((file) => ({
    url: `http://127.0.0.1:${restorePort}/v1/stored/${file.backupId}`,
    ticket: benchTicket(ctx, 'restore', file.backupId, file),
    dest: join(ctx.dest, file.name),
    size: file.size,
    blake3: file.blake3,
  }));
  const filesJson = join(ctx.tmp, 'restore.json');
  await writeFile(filesJson, JSON.stringify(downloads));
  const nodeCpu = process.cpuUsage();
  const result = await runOk(process.execPath, [RESTORE_WORKER, '--files', filesJson]);
  const sender = process.cpuUsage(nodeCpu);
  const worker = JSON.parse(result.stdout) as WorkerResult;
  if (worker.failures.length > 0) throw new Error(`restore download failed: ${worker.failures.join('; ')}`);
  for (const file of downloads) await expectSize(file.dest, file.size);
  return {
    seconds: worker.seconds,
    bytes: worker.bytes,
    receiverRssBytes: Math.max(worker.maxRssBytes, worker.vmHwmBytes ?? 0),
    receiverCpu: { user: worker.cpuUserSeconds, system: worker.cpuSystemSeconds },
    senderCpu: { user: sender.user / 1e6, system: sender.system / 1e6 },
    rssBeforeBytes: worker.rssBeforeBytes,
    receiverThreads: worker.threads,
  };
}

/** Pulls `files` into `root` with our pull (not measured): the node's stored chain. */
async function storeChain(ctx: Context, files: SourceFile[], root: string): Promise<StoredFile[]> {
  const jobs = files.map((file) => leasedJob(ctx, file));
  const jobsFile = join(ctx.tmp, 'chain-jobs.json');
  await writeFile(jobsFile, JSON.stringify(jobs));
  const worker = JSON.parse(
    (await runOk(process.execPath, [WORKER, '--jobs', jobsFile, '--root', root])).stdout,
  ) as WorkerResult;
  if (worker.failures.length > 0) throw new Error(`storing the chain failed: ${worker.failures.join('; ')}`);
  return jobs.map((job, index) => ({
    ...(files[index] as SourceFile),
    path: storedAbsolutePath(root, storedRelativePath(job)),
    backupId: job.backup_id,
  }));
}

// ---------------------------------------------------------------------------
// The rsync daemon

async function startRsyncDaemon(
  tmp: string,
  moduleDir: string,
): Promise<{ port: number; pid: number; stop: () => Promise<void> }> {
  const conf = join(tmp, 'rsyncd.conf');
  const log = join(tmp, 'rsyncd.log');
  for (let attempt = 1; ; attempt += 1) {
    const port = await freePort();
    const lines = [
      `pid file = ${join(tmp, 'rsyncd.pid')}`,
      `log file = ${log}`,
      'use chroot = no',
      'max connections = 0',
      // The daemon runs as whoever runs the benchmark (as root it would switch to nobody).
      ...(process.getuid?.() === 0 ? ['uid = root', 'gid = root'] : []),
      `[${RSYNC_MODULE}]`,
      `  path = ${moduleDir}`,
      '  read only = yes',
      '  list = yes',
    ];
    await writeFile(conf, `${lines.join('\n')}\n`);
    const { child, exited } = run('rsync', [
      '--daemon',
      '--no-detach',
      `--config=${conf}`,
      '--address=127.0.0.1',
      `--port=${port}`,
    ]);
    let gone: Exited | null = null;
    void exited.then((result) => {
      gone = result;
    });
    const stop = async (): Promise<void> => {
      if (gone === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited.catch(() => undefined);
      clearTimeout(timer);
    };
    try {
      await waitFor(
        () => {
          if (gone !== null) throw new Error(`rsync --daemon exited: ${(gone as Exited).stderr.trim()}`);
          return new Promise<boolean>((resolveProbe) => {
            const socket = connect({ host: '127.0.0.1', port }, () => {
              socket.destroy();
              resolveProbe(true);
            });
            socket.once('error', () => resolveProbe(false));
          });
        },
        { timeoutMs: 10_000, what: `rsync --daemon on port ${port}` },
      );
      if (child.pid === undefined) throw new Error('rsync --daemon has no pid');
      return { port, pid: child.pid, stop };
    } catch (error) {
      await stop();
      // Someone may have taken the port between freePort and bind: try another one.
      if (attempt >= 3) throw error;
    }
  }
}

// ---------------------------------------------------------------------------
// Profile summary

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function area(url: string): string {
  if (url === '') return '(native / V8)';
  if (url.startsWith('node:')) return url.replace(/^node:internal\/([^/]+).*$/, 'node:$1');
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1] as string;
  const ours = /\/dist\/(.*)$/.exec(url);
  return ours ? (ours[1] as string) : url;
}

function summarizeProfile(profile: CpuProfile): string[] {
  const byId = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const selfByFunction = new Map<string, number>();
  const selfByArea = new Map<string, number>();
  let total = 0;
  for (const [index, id] of profile.samples.entries()) {
    const micros = profile.timeDeltas[index] ?? 0;
    const frame = byId.get(id);
    if (frame === undefined) continue;
    total += micros;
    const name = frame.functionName || '(anonymous)';
    const where = frame.url === '' ? '' : ` ${basename(frame.url)}:${frame.lineNumber + 1}`;
    const key = `${name}${where}`;
    selfByFunction.set(key, (selfByFunction.get(key) ?? 0) + micros);
    const group = name.startsWith('(') ? name : area(frame.url);
    selfByArea.set(group, (selfByArea.get(group) ?? 0) + micros);
  }
  const lines = [`  profile: ${(total / 1e6).toFixed(2)} s sampled on the worker's main thread`];
  const show = (title: string, map: Map<string, number>, count: number): void => {
    lines.push(`  ${title}:`);
    for (const [key, micros] of [...map.entries()].sort((a, b) => b[1] - a[1]).slice(0, count)) {
      lines.push(
        `    ${((micros / total) * 100).toFixed(1).padStart(5)} %  ${(micros / 1000).toFixed(0).padStart(6)} ms  ${key}`,
      );
    }
  };
  show('self time by area', selfByArea, 10);
  show('self time by function', selfByFunction, 15);
  return lines;
}

// ---------------------------------------------------------------------------
// Report

function median(numbers: number[]): number {
  const sorted = [...numbers].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

const rate = (m: Measurement): number => m.bytes / MB / m.seconds;
const mb = (bytes: number | null): string => (bytes === null ? '—' : `${(bytes / MB).toFixed(0)} MB`);
/** `user + system = total s`. */
const cpu = (time: CpuTime | null): string =>
  time === null
    ? '—'
    : `${time.user.toFixed(2)} + ${time.system.toFixed(2)} = ${(time.user + time.system).toFixed(2)} s`;

interface Row {
  method: string;
  runs: Measurement[];
}

function medianRate(row: Row): number {
  return median(row.runs.map(rate));
}

/** The run whose throughput is the median (for its CPU and RSS figures). */
function medianRun(row: Row): Measurement {
  const sorted = [...row.runs].sort((a, b) => rate(a) - rate(b));
  return sorted[Math.floor((sorted.length - 1) / 2)] as Measurement;
}

/** A column of ratios: filled in on one row only. */
interface RatioColumn {
  header: string;
  row: Row;
  value: string;
}

/** One table of measurements, one row per method; `perProcess` rows' RSS is per process. */
function printTable(
  title: string,
  rows: Row[],
  ratios: RatioColumn[],
  perProcess: (row: Row) => boolean,
): void {
  console.log(`\n${title}`);
  const runs = Math.max(...rows.map((row) => row.runs.length));
  const header = [
    'method',
    'MB/s (median)',
    ...Array.from({ length: runs }, (_, i) => `run ${i + 1}`),
    ...ratios.map((r) => r.header),
    'receiver peak RSS',
    'CPU receiver (user + sys)',
    'CPU sender (user + sys)',
  ];
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map(() => '---').join('|')}|`);
  for (const row of rows) {
    const mid = medianRun(row);
    const peakRss = row.runs.every((m) => m.receiverRssBytes !== null)
      ? Math.max(...row.runs.map((m) => m.receiverRssBytes as number))
      : null;
    const cells = [
      row.method,
      `**${medianRate(row).toFixed(0)}**`,
      ...row.runs.map((m) => `${rate(m).toFixed(0)} (${m.seconds.toFixed(2)} s)`),
      ...ratios.map((r) => (r.row === row ? r.value : '')),
      `${mb(peakRss)}${perProcess(row) ? ' per process' : ''}`,
      cpu(mid.receiverCpu),
      cpu(mid.senderCpu),
    ];
    console.log(`| ${cells.join(' | ')} |`);
  }
  for (const row of rows) {
    const threads = medianRun(row).receiverThreads;
    if (threads === undefined || threads.length === 0) continue;
    const parts = threads
      .filter((t) => t.userSeconds + t.systemSeconds >= 0.05)
      .map(
        (t) =>
          `${t.name}${t.threads > 1 ? ` ×${t.threads}` : ''} ${cpu({ user: t.userSeconds, system: t.systemSeconds })}`,
      );
    console.log(`  ${row.method}, receiver CPU by thread (median run): ${parts.join('; ')}`);
  }
}

/** One set of pulls; `processes` > 1: the peers ran one process per file. */
function printSet(
  title: string,
  processes: number,
  [ours, rsyncWhole, rsyncDefault, ceiling]: [Row, Row, Row, Row],
): void {
  printTable(
    title,
    [ours, rsyncWhole, rsyncDefault, ceiling],
    [
      { header: 'ours / rsync -W', row: ours, value: (medianRate(ours) / medianRate(rsyncWhole)).toFixed(2) },
      {
        header: 'ours / rsync default',
        row: ours,
        value: (medianRate(ours) / medianRate(rsyncDefault)).toFixed(2),
      },
    ],
    (row) => row !== ours && processes > 1,
  );
}

/** The restore set: its runs beside the single-file pull's. */
function printRestore(chain: StoredFile[], restore: Row, pull: Row): void {
  const sizes = chain.map((f) => `${(f.size / MiB).toFixed(0)} MiB`).join(' + ');
  printTable(
    `Restore download of a chain of ${chain.length} (${sizes}), one file after the other`,
    [restore, { ...pull, method: 'transfer: the single-file pull above' }],
    [
      {
        header: 'restore / transfer',
        row: restore,
        value: (medianRate(restore) / medianRate(pull)).toFixed(2),
      },
    ],
    () => false,
  );
}

// ---------------------------------------------------------------------------
// Main

const singleBytes = SIZE_MIB * MiB;
const parallelBytes = PARALLEL * PARALLEL_SIZE_MIB * MiB;
/** The restore chain: a full of half the single file's size and two incrementals of a quarter. */
const chainSizes = [singleBytes / 2, singleBytes / 4, singleBytes / 4].map((n) => Math.floor(n));
const chainBytes = chainSizes.reduce((sum, n) => sum + n, 0);
// The chain is there twice more: the node's copy and the restored one.
const dataBytes = singleBytes + parallelBytes + 3 * chainBytes;
const base = tmpdir();
const { freeBytes } = await freeSpace(base);
if (freeBytes < 3 * dataBytes) {
  console.error(
    `refusing to run: ${base} has ${(freeBytes / 2 ** 30).toFixed(1)} GiB free (df "Avail"), and this benchmark ` +
      `needs 3 × its ${(dataBytes / 2 ** 30).toFixed(1)} GiB of data = ${((3 * dataBytes) / 2 ** 30).toFixed(1)} GiB ` +
      '(sources + one destination copy + headroom). Free some space, set TMPDIR to a bigger file system, ' +
      'or pass a smaller --size-mib / --parallel-size-mib.',
  );
  process.exit(2);
}

requireTool('rsync', INSTALL_HINTS.rsync);
const rsyncHelp = spawnSync('rsync', ['--help'], { encoding: 'utf8' }).stdout;
const rsyncFsync = /^\s*--fsync\b/m.test(rsyncHelp);
const rsyncVersion = /rsync\s+version\s+(\S+)/.exec(rsyncHelp)?.[1] ?? 'unknown';
const time = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;

const dir = await makeTempDir('ubackup-bench-transfer');
cleanups.push(() => dir.cleanup());
try {
  const backDir = join(dir.path, 'back');
  await mkdir(backDir);

  console.log(
    `transfer benchmark: 1 × ${SIZE_MIB} MiB, then ${PARALLEL} × ${PARALLEL_SIZE_MIB} MiB in parallel; ` +
      `${RUNS} run${RUNS === 1 ? '' : 's'} each, median; MB = 10^6 bytes`,
  );
  console.log(
    `  node ${process.version}, rsync ${rsyncVersion} (${rsyncFsync ? 'with --fsync' : 'no --fsync: rsync does not fsync!'}), ` +
      `temp dir ${dir.path} (${(freeBytes / 2 ** 30).toFixed(0)} GiB free)`,
  );
  console.log(
    `  before each run: destination deleted, sources read once (every run reads them from the page cache), ` +
      `${SETTLE_S} s pause; load average ${loadavg()
        .map((n) => n.toFixed(2))
        .join(' ')}`,
  );

  const generateStart = performance.now();
  const single: SourceFile[] = [
    { name: 'single.bin', path: join(backDir, 'single.bin'), size: singleBytes, blake3: '' },
  ];
  const parallel: SourceFile[] = Array.from({ length: PARALLEL }, (_, i) => ({
    name: `parallel-${i}.bin`,
    path: join(backDir, `parallel-${i}.bin`),
    size: PARALLEL_SIZE_MIB * MiB,
    blake3: '',
  }));
  const chainSources: SourceFile[] = chainSizes.map((size, i) => ({
    name: i === 0 ? 'chain-full.bin' : `chain-inc-${i}.bin`,
    path: join(backDir, i === 0 ? 'chain-full.bin' : `chain-inc-${i}.bin`),
    size,
    blake3: '',
  }));
  for (const file of [...single, ...parallel, ...chainSources])
    file.blake3 = writeRandomFile(file.path, file.size);
  spawnSync('sync');
  console.log(
    `  generated ${(dataBytes / 2 ** 30).toFixed(2)} GiB of random data in ${((performance.now() - generateStart) / 1000).toFixed(1)} s`,
  );

  const keys = generateTicketKeys();
  const agent = await startFileServer({
    listen: { host: '127.0.0.1', port: 0 },
    tls: null,
    serverId: SERVER_ID,
    instances: [{ type: TYPE, instance: INSTANCE, backDir }],
    publicKey: () => keys.publicKey,
    log: { info: () => undefined, warn: (m) => console.error(m), error: (m) => console.error(m) },
  });
  cleanups.push(() => agent.close());
  const rsyncd = await startRsyncDaemon(dir.path, backDir);
  cleanups.push(() => rsyncd.stop());

  const ctx: Context = {
    tmp: dir.path,
    dest: join(dir.path, 'dest'),
    keys,
    agentPort: agent.port,
    rsyncPort: rsyncd.port,
    rsyncDaemonPid: rsyncd.pid,
    rsyncFsync,
    time,
    nextJobId: 1,
  };
  // The restore set's chain, stored once by our pull into a node root that a restore server serves.
  const nodeRoot = join(dir.path, 'node');
  const chain = await storeChain(ctx, chainSources, nodeRoot);
  const restoreServer = await startRestoreServer({
    listen: { host: '127.0.0.1', port: 0 },
    root: nodeRoot,
    nodeName: NODE_NAME,
    publicKey: () => keys.publicKey,
    log: { info: () => undefined, warn: (m) => console.error(m), error: (m) => console.error(m) },
  });
  cleanups.push(() => restoreServer.close());
  const restoreRow: Row = { method: 'ours: ubackup restore download (BLAKE3, rename into place)', runs: [] };

  const fsyncFlag = rsyncFsync ? ' --fsync' : '';
  const sets = [
    { title: `Single file, ${SIZE_MIB} MiB`, files: single },
    { title: `${PARALLEL} × ${PARALLEL_SIZE_MIB} MiB in parallel (aggregate)`, files: parallel },
  ];
  const results: Array<{ title: string; files: SourceFile[]; rows: [Row, Row, Row, Row] }> = [];
  for (const set of sets) {
    const rows: [Row, Row, Row, Row] = [
      { method: 'ours: pullHttp (BLAKE3, fsync, sidecar)', runs: [] },
      { method: `rsync -W${fsyncFlag}`, runs: [] },
      { method: `rsync${fsyncFlag} (defaults)`, runs: [] },
      { method: 'ceiling: dd bs=1M conv=fsync (local copy)', runs: [] },
    ];
    for (let r = 1; r <= RUNS; r += 1) {
      process.stderr.write(`  ${set.title}: run ${r}/${RUNS} …`);
      rows[0].runs.push(await measureOurs(ctx, set.files));
      rows[1].runs.push(await measureRsync(ctx, set.files, true));
      rows[2].runs.push(await measureRsync(ctx, set.files, false));
      rows[3].runs.push(await measureDd(ctx, set.files));
      // The restore download is measured beside the single-file pull, interleaved with it.
      if (set.files === single) restoreRow.runs.push(await measureRestore(ctx, chain, restoreServer.port));
      process.stderr.write(
        ` ours ${rate(rows[0].runs.at(-1) as Measurement).toFixed(0)}, rsync -W ${rate(rows[1].runs.at(-1) as Measurement).toFixed(0)}, ` +
          `rsync ${rate(rows[2].runs.at(-1) as Measurement).toFixed(0)}, dd ${rate(rows[3].runs.at(-1) as Measurement).toFixed(0)} MB/s` +
          `${set.files === single ? `, restore ${rate(restoreRow.runs.at(-1) as Measurement).toFixed(0)} MB/s` : ''}\n`,
      );
    }
    results.push({ ...set, rows });
  }
  await rm(ctx.dest, { recursive: true, force: true });

  for (const { title, files, rows } of results) printSet(title, files.length, rows);
  const singlePull = results[0]?.rows[0];
  if (singlePull !== undefined) printRestore(chain, restoreRow, singlePull);

  console.log(
    `\nload average at the end ${loadavg()
      .map((n) => n.toFixed(2))
      .join(' ')} (other work on the machine slows every method alike; compare the ratios)`,
  );
  console.log('\nTargets');
  let worst: { title: string; files: SourceFile[]; ratio: number } | null = null;
  let peakRss = 0;
  let rssBefore = 0;
  for (const { title, files, rows } of results) {
    const [ours, whole, defaults] = rows;
    const ratio = Math.min(medianRate(ours) / medianRate(whole), medianRate(ours) / medianRate(defaults));
    console.log(
      `  ${title}: ours / rsync = ${ratio.toFixed(2)} (the lower of -W and defaults; target ≥ 1.00) ${ratio >= 1 ? 'met' : 'MISSED'}`,
    );
    if (worst === null || ratio < worst.ratio) worst = { title, files, ratio };
    for (const m of ours.runs) {
      peakRss = Math.max(peakRss, m.receiverRssBytes ?? 0);
      rssBefore = Math.max(rssBefore, m.rssBeforeBytes ?? 0);
    }
  }
  if (singlePull !== undefined) {
    const restoreRatio = medianRate(restoreRow) / medianRate(singlePull);
    console.log(
      `  Restore download of the ${(chainBytes / MiB).toFixed(0)} MiB chain: restore / transfer = ${restoreRatio.toFixed(2)} ` +
        `(beside our single-file pull; target ≥ 0.90) ${restoreRatio >= 0.9 ? 'met' : 'MISSED'}`,
    );
  }
  console.log(
    `  node peak RSS ${mb(peakRss)} over all runs (${mb(rssBefore)} before the first pull; target < 200 MB) ${peakRss < 200 * MB ? 'met' : 'MISSED'}`,
  );

  if (worst !== null && (PROFILE === 'always' || (PROFILE === 'auto' && worst.ratio < 1))) {
    const profileDir = join(dir.path, 'profile');
    const m = await measureOurs(ctx, worst.files, ['--cpu-prof', `--cpu-prof-dir=${profileDir}`]);
    console.log(
      `\nProfile of one pull of "${worst.title}" (node --cpu-prof on the worker): ${rate(m).toFixed(0)} MB/s under the profiler, ` +
        `worker CPU ${cpu(m.receiverCpu)} in ${m.seconds.toFixed(2)} s, agent CPU ${cpu(m.senderCpu)}`,
    );
    const [name] = (await readdir(profileDir)).filter((f) => f.endsWith('.cpuprofile'));
    if (name === undefined) {
      console.log('  (no .cpuprofile was written)');
    } else {
      const profile = JSON.parse(await readFile(join(profileDir, name), 'utf8')) as CpuProfile;
      for (const line of summarizeProfile(profile)) console.log(line);
      if (values['profile-dir'] !== undefined) {
        await mkdir(values['profile-dir'], { recursive: true });
        const kept = join(values['profile-dir'], `transfer-worker-${Date.now()}.cpuprofile`);
        await copyFile(join(profileDir, name), kept);
        console.log(`  kept ${kept}`);
      }
    }
    await rm(ctx.dest, { recursive: true, force: true });
  }
} catch (error) {
  console.error(
    `transfer benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
  );
  process.exitCode = 1;
} finally {
  await cleanup();
}
