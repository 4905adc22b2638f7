import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  pullRsync,
  RSYNC_PARTIAL_DIR,
  RsyncSourceError,
  rsyncArgs,
  rsyncTransferRate,
  rsyncWorkDir,
} from '../../src/node/rsync-pull.js';
import { storedAbsolutePath } from '../../src/node/storage-layout.js';
import { blake3File } from '../../src/shared/blake3.js';
import type { LeasedJob } from '../../src/shared/node-protocol.js';
import { freePort } from '../support/free-port.js';
import { INSTALL_HINTS, requireTool } from '../support/required-tool.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait-for.js';

// A real rsync daemon on 127.0.0.1 serves module [backup]; the node side is the real rsync client.
const MODULE = 'backup';
const MODEL_DIR = 'database_3306';

let rsyncPath = '';
let tmp: TempDir | undefined;
let hostDir = '';
let port = 0;
let daemon: ChildProcess | undefined;
let nextJobId = 1;

function tmpPath(): string {
  if (!tmp) throw new Error('temp dir not created');
  return tmp.path;
}

async function portAccepts(p: number): Promise<boolean> {
  return new Promise<boolean>((resolveProbe) => {
    const socket = connect({ host: '127.0.0.1', port: p });
    socket.once('connect', () => {
      socket.destroy();
      resolveProbe(true);
    });
    socket.once('error', () => resolveProbe(false));
  });
}

async function startDaemon(): Promise<void> {
  const base = tmpPath();
  // freePort can race with another process: try a few ports.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const candidate = await freePort();
    const conf = join(base, `rsyncd-${candidate}.conf`);
    // As root the daemon would switch to "nobody", who cannot read the 0700 temp dir.
    const ids =
      process.getuid?.() === 0 ? [`uid = ${process.getuid?.()}`, `gid = ${process.getgid?.()}`] : [];
    await writeFile(
      conf,
      [
        `port = ${candidate}`,
        'address = 127.0.0.1',
        'use chroot = no',
        `pid file = ${join(base, `rsyncd-${candidate}.pid`)}`,
        `log file = ${join(base, `rsyncd-${candidate}.log`)}`,
        ...ids,
        `[${MODULE}]`,
        `path = ${hostDir}`,
        'read only = yes',
        '',
      ].join('\n'),
    );
    const child = spawn(rsyncPath, ['--daemon', '--no-detach', `--config=${conf}`], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let exited = false;
    child.once('exit', () => {
      exited = true;
    });
    try {
      await waitFor(
        async () => {
          if (exited) throw new Error('the rsync daemon exited');
          return portAccepts(candidate);
        },
        { timeoutMs: 10_000, what: `the rsync daemon on port ${candidate}` },
      );
      daemon = child;
      port = candidate;
      return;
    } catch (error) {
      lastError = error;
      await stopProcess(child);
    }
  }
  throw lastError;
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
  child.kill('SIGTERM');
  const deadline = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(deadline);
}

beforeAll(async () => {
  rsyncPath = requireTool('rsync', INSTALL_HINTS.rsync);
  tmp = await makeTempDir('ubackup-rsync');
  hostDir = join(tmp.path, 'host');
  await mkdir(join(hostDir, MODEL_DIR), { recursive: true });
  await startDaemon();
});

afterAll(async () => {
  if (daemon) await stopProcess(daemon);
  await tmp?.cleanup();
});

/** Writes a file on the "database host" under the module's rsync_model dir. */
async function hostFile(filename: string, content: Buffer): Promise<string> {
  const path = join(hostDir, MODEL_DIR, filename);
  await writeFile(path, content);
  return path;
}

/** A job as the server leases it for `rsync_model = backup/database_3306`, digest from the host file. */
async function leasedJob(
  filename: string,
  digest: { size: number; blake3: string },
  source: Partial<{ host: string; module: string; path: string }> = {},
): Promise<LeasedJob> {
  const jobId = nextJobId++;
  return {
    job_id: jobId,
    backup_id: 1000 + jobId,
    report_id: `00000000-0000-4000-8000-${String(jobId).padStart(12, '0')}`,
    attempt: 1,
    lease_expires_at: new Date(Date.now() + 60_000).toISOString(),
    game_id: 'g1',
    server_id: 'db-1',
    type: 'mysql',
    instance: '3306',
    filename,
    size: digest.size,
    blake3: digest.blake3,
    kind: 'single',
    created_at: new Date().toISOString(),
    base_backup_id: null,
    source: {
      transport: 'rsync',
      host: source.host ?? '127.0.0.1',
      module: source.module ?? MODULE,
      path: source.path ?? `${MODEL_DIR}/${filename}`,
    },
    ticket: 'unused-by-rsync',
  };
}

async function nodeRoot(): Promise<string> {
  const root = join(tmpPath(), `node-${nextJobId}-${randomBytes(4).toString('hex')}`);
  await mkdir(root);
  return root;
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/** Every entry left under `<root>/.incoming` (parts, rsync work dirs, temp files). */
async function incomingLeftovers(root: string): Promise<string[]> {
  return readdir(join(root, '.incoming'), { recursive: true }).catch(() => []);
}

function storedPath(root: string, job: LeasedJob): string {
  return storedAbsolutePath(root, `g1/mysql/db-1/3306/${job.filename}`);
}

describe('rsync transport against a real rsync daemon', () => {
  it('stores a good file, verified, with its sidecar, and leaves no temp files', async () => {
    const content = randomBytes(3 * 1024 * 1024 + 17);
    const source = await hostFile('full-2024-05-01.sql.gz', content);
    const job = await leasedJob('full-2024-05-01.sql.gz', await blake3File(source));
    const root = await nodeRoot();
    const progress: number[] = [];

    const result = await pullRsync({
      job,
      root,
      bytesPerSecond: 0,
      timeoutSeconds: 30,
      rsyncPath,
      rsyncPort: port,
      onProgress: (bytes) => progress.push(bytes),
    });

    expect(result).toMatchObject({
      ok: true,
      relativePath: 'g1/mysql/db-1/3306/full-2024-05-01.sql.gz',
      size: content.length,
      blake3: job.blake3,
      alreadyPresent: false,
    });
    if (!result.ok) throw new Error(result.error);
    expect(result.path).toBe(storedPath(root, job));
    expect(result.bytesTransferred).toBeGreaterThanOrEqual(content.length);
    expect((await readFile(result.path)).equals(content)).toBe(true);
    expect((await blake3File(result.path)).blake3).toBe(job.blake3);
    expect((await stat(result.path)).mode & 0o777).toBe(0o640);
    const sidecar: unknown = JSON.parse(await readFile(`${result.path}.ubmeta.json`, 'utf8'));
    expect(sidecar).toMatchObject({
      backup_id: job.backup_id,
      report_id: job.report_id,
      blake3: job.blake3,
      size: content.length,
      filename: job.filename,
    });
    expect(progress.at(-1)).toBe(content.length);
    expect(await incomingLeftovers(root)).toEqual([]);
  });

  it('fails checksum_mismatch and stores nothing when a bit flipped after the report', async () => {
    const content = randomBytes(256 * 1024);
    const source = await hostFile('flipped.sql.gz', content);
    const job = await leasedJob('flipped.sql.gz', await blake3File(source));
    const flipped = Buffer.from(content);
    flipped[1000] = (flipped[1000] ?? 0) ^ 0x04;
    await writeFile(source, flipped);
    const root = await nodeRoot();

    const result = await pullRsync({
      job,
      root,
      bytesPerSecond: 0,
      timeoutSeconds: 30,
      rsyncPath,
      rsyncPort: port,
    });

    expect(result).toMatchObject({ ok: false, code: 'checksum_mismatch' });
    expect(await exists(storedPath(root, job))).toBe(false);
    expect(await exists(`${storedPath(root, job)}.ubmeta.json`)).toBe(false);
    expect(await incomingLeftovers(root)).toEqual([]);
  });

  it('fails size_mismatch without receiving a source larger than reported', async () => {
    const source = await hostFile('grown.sql.gz', randomBytes(64 * 1024));
    const job = await leasedJob('grown.sql.gz', await blake3File(source));
    await writeFile(source, randomBytes(512 * 1024));
    const root = await nodeRoot();

    const result = await pullRsync({
      job,
      root,
      bytesPerSecond: 0,
      timeoutSeconds: 30,
      rsyncPath,
      rsyncPort: port,
    });

    expect(result).toMatchObject({ ok: false, code: 'size_mismatch' });
    expect(await exists(storedPath(root, job))).toBe(false);
    expect(await incomingLeftovers(root)).toEqual([]);
  });

  it('fails source_missing when the file is not on the host', async () => {
    const job = await leasedJob('never-written.sql.gz', { size: 10, blake3: 'a'.repeat(64) });
    const root = await nodeRoot();

    const result = await pullRsync({
      job,
      root,
      bytesPerSecond: 0,
      timeoutSeconds: 30,
      rsyncPath,
      rsyncPort: port,
    });

    expect(result).toMatchObject({ ok: false, code: 'source_missing' });
    if (result.ok) throw new Error('unexpected success');
    expect(result.error).toMatch(/No such file/);
    expect(await exists(storedPath(root, job))).toBe(false);
    expect(await incomingLeftovers(root)).toEqual([]);
  });

  it("fails transient, with rsync's own message, when the daemon is unreachable or has no such module", async () => {
    const source = await hostFile('unreachable.sql.gz', randomBytes(1000));
    const digest = await blake3File(source);
    const closedPort = await freePort();
    const root = await nodeRoot();

    const refused = await pullRsync({
      job: await leasedJob('unreachable.sql.gz', digest),
      root,
      bytesPerSecond: 0,
      timeoutSeconds: 5,
      rsyncPath,
      rsyncPort: closedPort,
    });
    expect(refused).toMatchObject({ ok: false, code: 'transient' });
    if (refused.ok) throw new Error('unexpected success');
    expect(refused.error).toMatch(/code 10 .*Connection refused/);

    const noModule = await pullRsync({
      job: await leasedJob('unreachable.sql.gz', digest, { module: 'nomodule' }),
      root,
      bytesPerSecond: 0,
      timeoutSeconds: 5,
      rsyncPath,
      rsyncPort: port,
    });
    expect(noModule).toMatchObject({ ok: false, code: 'transient' });
    if (noModule.ok) throw new Error('unexpected success');
    expect(noModule.error).toMatch(/code 5 .*Unknown module/);
    expect(await incomingLeftovers(root)).toEqual([]);
  });

  it('takes a file name with wildcard characters literally (the daemon would glob it)', async () => {
    const wanted = randomBytes(10_000);
    await hostFile('db*[1].gz', wanted);
    await hostFile('dbX1.gz', randomBytes(10_000));
    const job = await leasedJob('db*[1].gz', await blake3File(join(hostDir, MODEL_DIR, 'db*[1].gz')));
    const root = await nodeRoot();

    const result = await pullRsync({
      job,
      root,
      bytesPerSecond: 0,
      timeoutSeconds: 30,
      rsyncPath,
      rsyncPort: port,
    });

    expect(result.ok).toBe(true);
    expect((await readFile(storedPath(root, job))).equals(wanted)).toBe(true);
    expect(await incomingLeftovers(root)).toEqual([]);
  });

  it('refuses a source with "..", a leading "-", NUL or a non-IP host before spawning anything', async () => {
    const marker = join(tmpPath(), 'spawned-marker');
    const fakeRsync = join(tmpPath(), 'fake-rsync.sh');
    await writeFile(fakeRsync, `#!/bin/sh\ntouch '${marker}'\n`);
    await chmod(fakeRsync, 0o755);
    const digest = { size: 1, blake3: 'b'.repeat(64) };
    const bad: Array<[string, Partial<{ host: string; module: string; path: string }>, string]> = [
      ['ok.gz', { path: `${MODEL_DIR}/../etc/ok.gz` }, '".." in the path'],
      ['ok.gz', { path: '../ok.gz' }, 'a leading ".."'],
      ['ok.gz', { module: '..' }, 'module ".."'],
      ['ok.gz', { module: '-e' }, 'module "-e"'],
      ['ok.gz', { module: '--rsh=sh' }, 'module "--rsh=sh"'],
      ['ok.gz', { path: '--rsh=touch x/ok.gz' }, 'a path component "--rsh=…"'],
      ['-ok.gz', {}, 'a file name starting with "-"'],
      ['ok.gz', { path: `${MODEL_DIR}/a\0b/ok.gz` }, 'NUL in the path'],
      ['ok.gz', { module: 'back\0up' }, 'NUL in the module'],
      ['ok.gz', { host: 'db.example.com' }, 'a host name'],
      ['ok.gz', { host: '-oProxyCommand=x' }, 'an option as host'],
      ['ok.gz', { path: `${MODEL_DIR}/other.gz` }, "a path not ending in the job's file name"],
    ];
    for (const [filename, source, what] of bad) {
      const job = await leasedJob(filename, digest, source);
      const root = await nodeRoot();
      await expect(
        pullRsync({ job, root, bytesPerSecond: 0, timeoutSeconds: 5, rsyncPath: fakeRsync, rsyncPort: port }),
        what,
      ).rejects.toThrow(RsyncSourceError);
      expect(await exists(join(root, '.incoming')), what).toBe(false);
    }
    expect(await exists(marker)).toBe(false);
  });

  it('kills rsync on abort, keeps its partial file, and the next attempt resumes from it', async () => {
    const content = randomBytes(4 * 1024 * 1024);
    const source = await hostFile('slow.sql.gz', content);
    const job = await leasedJob('slow.sql.gz', await blake3File(source));
    const root = await nodeRoot();
    const abort = new AbortController();
    let pid: number | undefined;
    let done = 0;

    const pulling = pullRsync({
      job,
      root,
      bytesPerSecond: 256 * 1024,
      timeoutSeconds: 30,
      rsyncPath,
      rsyncPort: port,
      signal: abort.signal,
      onSpawn: (p) => {
        pid = p;
      },
      onProgress: (bytes) => {
        done = bytes;
      },
    });
    await waitFor(() => done > 0, { timeoutMs: 20_000, what: 'rsync to report progress' });
    const abortedAt = Date.now();
    abort.abort(new Error('lease lost'));
    const result = await pulling;

    expect(result).toMatchObject({ ok: false, code: 'transient' });
    if (result.ok) throw new Error('unexpected success');
    expect(result.error).toMatch(/aborted: lease lost/);
    // SIGTERM was enough: no wait for the SIGKILL grace.
    expect(Date.now() - abortedAt).toBeLessThan(4000);
    expect(pid).toBeDefined();
    expect(() => process.kill(pid ?? 0, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
    expect(await exists(storedPath(root, job))).toBe(false);
    const partial = join(rsyncWorkDir(root, job.job_id), RSYNC_PARTIAL_DIR, job.filename);
    const kept = (await stat(partial)).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(content.length);

    const resumed = await pullRsync({
      job,
      root,
      bytesPerSecond: 0,
      timeoutSeconds: 30,
      rsyncPath,
      rsyncPort: port,
    });

    expect(resumed).toMatchObject({ ok: true, size: content.length, blake3: job.blake3 });
    if (!resumed.ok) throw new Error(resumed.error);
    // The kept bytes were matched against the source, not sent again.
    expect(resumed.bytesTransferred).toBeLessThan(content.length - kept / 2);
    expect((await readFile(resumed.path)).equals(content)).toBe(true);
    expect(await incomingLeftovers(root)).toEqual([]);
  });

  it('builds an argv with the URL after "--" and converts the rate to KiB/s', () => {
    const args = rsyncArgs({
      url: 'rsync://127.0.0.1/backup/x.gz',
      destination: '/n/.incoming/1.rsync/x.gz',
      timeoutSeconds: 60,
      bytesPerSecond: 10 * 1024 * 1024,
      maxSize: 5,
    });
    expect(args.slice(-3)).toEqual(['--', 'rsync://127.0.0.1/backup/x.gz', '/n/.incoming/1.rsync/x.gz']);
    expect(args).toContain('--bwlimit=10240');
    expect(args).toContain('--timeout=60');
    expect(args).toContain('--max-size=5');
    expect(
      rsyncArgs({ url: 'u', destination: 'd', timeoutSeconds: 1, bytesPerSecond: 0, maxSize: 0 }),
    ).not.toContain(expect.stringMatching(/^--bwlimit/));
    expect(rsyncTransferRate(0, 0, 4)).toBe(0);
    expect(rsyncTransferRate(1000, 0, 4)).toBe(1000);
    expect(rsyncTransferRate(0, 4000, 4)).toBe(1000);
    expect(rsyncTransferRate(500, 4000, 4)).toBe(500);
  });
});
