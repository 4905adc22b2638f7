import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ReceiverPool } from '../../src/node/receiver-pool.js';
import { partPath, storedAbsolutePath } from '../../src/node/storage-layout.js';
import { TokenBucket } from '../../src/node/token-bucket.js';
import type { LeasedJob } from '../../src/shared/node-protocol.js';
import { leasedJobFor } from '../support/leased-job.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait-for.js';

/**
 * The storage node's receiver threads: real worker threads running the
 * compiled receiver (dist/, as the node runs it) against a real HTTP server
 * on loopback.
 */

const THREAD = new URL('../../dist/src/node/receiver-thread.js', import.meta.url);
const TICKET = 'ticket-for-pool';

/** Serves `/files/<name>` from a map; `/stall/<name>` sends the head and half the body, then nothing. */
class FileServer {
  readonly files = new Map<string, Buffer>();
  private readonly server: Server;

  private constructor(server: Server) {
    this.server = server;
  }

  static async start(): Promise<FileServer> {
    const server = createServer();
    const files = new FileServer(server);
    server.on('request', (req, res) => {
      if (req.headers.authorization !== `Bearer ${TICKET}`) {
        res.writeHead(401).end();
        return;
      }
      const [, mode, name] = (req.url ?? '').split('/');
      const data = files.files.get(name ?? '');
      if (data === undefined) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-length': String(data.length) });
      if (mode === 'stall') res.write(data.subarray(0, data.length / 2));
      else res.end(data);
    });
    await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
    return files;
  }

  url(mode: 'files' | 'stall', name: string): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/${mode}/${name}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((closed) => this.server.close(() => closed()));
  }
}

let dir: TempDir;
let root: string;
let server: FileServer;
let pool: ReceiverPool | null = null;

beforeAll(() => {
  if (!existsSync(THREAD)) throw new Error(`${THREAD.pathname} is missing: run npm run build first`);
});

beforeEach(async () => {
  dir = await makeTempDir('ubackup-receiver-pool');
  root = join(dir.path, 'root');
  await mkdir(root);
  server = await FileServer.start();
});

afterEach(async () => {
  await pool?.close();
  pool = null;
  await server.close();
  await dir.cleanup();
});

function job(id: number, name: string, data: Buffer, mode: 'files' | 'stall' = 'files'): LeasedJob {
  return leasedJobFor(data, server.url(mode, name), TICKET, {
    job_id: id,
    backup_id: 100 + id,
    filename: name,
  });
}

function addFile(name: string, bytes: number): Buffer {
  const data = randomBytes(bytes);
  server.files.set(name, data);
  return data;
}

async function expectStored(leased: LeasedJob, data: Buffer): Promise<void> {
  const stored = await readFile(storedAbsolutePath(root, `31/mysql/011111/3306/${leased.filename}`));
  expect(stored.equals(data), `${leased.filename} differs`).toBe(true);
}

describe('ReceiverPool', () => {
  it('runs pulls on its threads; each file is stored whole and verified', async () => {
    pool = new ReceiverPool({
      threads: 2,
      nodeBucket: new TokenBucket({ bytesPerSecond: 0 }),
      entry: THREAD,
    });
    await pool.ready();
    expect(pool.threads).toBe(2);
    const jobs = Array.from({ length: 6 }, (_, i) => {
      const data = addFile(`f${i}.bin`, 1024 * 1024 + i * 4097);
      return { leased: job(i + 1, `f${i}.bin`, data), data };
    });
    const progress = new Map<number, number>();
    const results = await Promise.all(
      jobs.map(({ leased }) =>
        pool?.pull({
          job: leased,
          root,
          timeoutMs: 10_000,
          perTransferBytesPerSecond: 0,
          onProgress: (bytes) => progress.set(leased.job_id, bytes),
        }),
      ),
    );
    for (const [i, result] of results.entries()) {
      const { leased, data } = jobs[i] as { leased: LeasedJob; data: Buffer };
      expect(result).toMatchObject({
        ok: true,
        size: data.length,
        blake3: leased.blake3,
        alreadyPresent: false,
      });
      // The last progress report is the whole file.
      expect(progress.get(leased.job_id)).toBe(data.length);
      await expectStored(leased, data);
    }
  });

  it('keeps the node-wide limit across threads: 4 × 512 KiB at 2 MiB/s take at least 0.75 s', async () => {
    const nodeBucket = new TokenBucket({ bytesPerSecond: 2 * 1024 * 1024 });
    pool = new ReceiverPool({ threads: 2, nodeBucket, entry: THREAD });
    await pool.ready();
    const jobs = Array.from({ length: 4 }, (_, i) => {
      const data = addFile(`l${i}.bin`, 512 * 1024);
      return job(i + 1, `l${i}.bin`, data);
    });
    const started = performance.now();
    const results = await Promise.all(
      jobs.map((leased) =>
        pool?.pull({ job: leased, root, timeoutMs: 10_000, perTransferBytesPerSecond: 0 }),
      ),
    );
    const elapsed = performance.now() - started;
    expect(results.every((r) => r?.ok)).toBe(true);
    // 2 MiB through one 2 MiB/s bucket that starts empty: a second, less the reads in flight.
    // Each thread on its own would let its half through in half the time.
    expect(elapsed).toBeGreaterThanOrEqual(750);
  });

  it('applies a new node-wide rate to transfers already running', async () => {
    const nodeBucket = new TokenBucket({ bytesPerSecond: 64 * 1024 });
    pool = new ReceiverPool({ threads: 1, nodeBucket, entry: THREAD });
    await pool.ready();
    const data = addFile('r.bin', 4 * 1024 * 1024);
    let lifted = false;
    const result = await pool.pull({
      job: job(1, 'r.bin', data),
      root,
      timeoutMs: 10_000,
      perTransferBytesPerSecond: 0,
      onProgress: (bytes) => {
        if (!lifted && bytes > 0) {
          lifted = true;
          nodeBucket.setRate(0);
          pool?.nodeRateChanged();
        }
      },
    });
    // At 64 KiB/s, 4 MiB would take more than a minute: the lifted limit lets it finish.
    expect(lifted).toBe(true);
    expect(result).toMatchObject({ ok: true });
  });

  it('aborts a transfer on its thread and keeps the part for a resume', async () => {
    pool = new ReceiverPool({
      threads: 2,
      nodeBucket: new TokenBucket({ bytesPerSecond: 0 }),
      entry: THREAD,
    });
    await pool.ready();
    const data = addFile('s.bin', 2 * 1024 * 1024);
    const controller = new AbortController();
    const result = await pool.pull({
      job: job(9, 's.bin', data, 'stall'),
      root,
      timeoutMs: 60_000,
      perTransferBytesPerSecond: 0,
      signal: controller.signal,
      onProgress: (bytes) => {
        if (bytes >= data.length / 2) controller.abort(new Error('lease lost'));
      },
    });
    expect(result).toMatchObject({ ok: false, code: 'transient', error: 'aborted: lease lost' });
    expect((await stat(partPath(root, 9))).size).toBe(data.length / 2);
  });

  it('fails the transfers of a thread that dies, replaces it, and pulls on', async () => {
    // A fake thread for this test only: the real receiver, plus a crash on one file name.
    const entry = join(dir.path, 'crashing-receiver-thread.mjs');
    await writeFile(
      entry,
      `import { parentPort } from 'node:worker_threads';\n` +
        `parentPort.on('message', (m) => { if (m.type === 'pull' && m.job.filename === 'crash.bin') ` +
        `setImmediate(() => { throw new Error('fake receiver crash'); }); });\n` +
        `await import(${JSON.stringify(THREAD.href)});\n`,
    );
    const errors: string[] = [];
    pool = new ReceiverPool({
      threads: 1,
      nodeBucket: new TokenBucket({ bytesPerSecond: 0 }),
      entry: pathToFileURL(entry),
      onThreadError: (error) => errors.push(error.message),
    });
    await pool.ready();
    const crash = addFile('crash.bin', 1024);
    await expect(
      pool.pull({ job: job(1, 'crash.bin', crash), root, timeoutMs: 10_000, perTransferBytesPerSecond: 0 }),
    ).rejects.toThrow(/receiver thread failed: fake receiver crash/);
    expect(errors).toEqual(['fake receiver crash']);
    expect(pool.threads).toBe(1);
    await pool.ready();
    const data = addFile('after.bin', 300_000);
    const leased = job(2, 'after.bin', data);
    expect(
      await pool.pull({ job: leased, root, timeoutMs: 10_000, perTransferBytesPerSecond: 0 }),
    ).toMatchObject({ ok: true });
    await expectStored(leased, data);
  });

  it('pulls on the calling thread when its threads cannot start', async () => {
    const errors: string[] = [];
    pool = new ReceiverPool({
      threads: 2,
      nodeBucket: new TokenBucket({ bytesPerSecond: 0 }),
      entry: pathToFileURL(join(dir.path, 'no-such-thread.js')),
      onThreadError: (error) => errors.push(error.message),
    });
    await expect(pool.ready()).rejects.toThrow();
    await waitFor(() => pool?.threads === 0, { timeoutMs: 10_000, what: 'both threads to be given up' });
    const data = addFile('main.bin', 200_000);
    const leased = job(3, 'main.bin', data);
    expect(
      await pool.pull({ job: leased, root, timeoutMs: 10_000, perTransferBytesPerSecond: 0 }),
    ).toMatchObject({ ok: true });
    expect(errors).toHaveLength(2);
    await expectStored(leased, data);
  });
});
