import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { blake3 } from '@napi-rs/blake-hash';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pullHttp } from '../../src/node/http-pull.js';
import { readSidecar, StoreConflictError } from '../../src/node/part-file.js';
import {
  partPath,
  StorageLayoutError,
  sidecarPath,
  storedAbsolutePath,
} from '../../src/node/storage-layout.js';
import { TokenBucket } from '../../src/node/token-bucket.js';
import type { LeasedJob } from '../../src/shared/node-protocol.js';
import { leasedJobFor } from '../support/leased-job.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';

const run = promisify(execFile);
const TICKET = 'ticket-for-job';

/** How the test agent answers the next request. */
type Behaviour =
  | 'serve' // 200, or 206/416 for a Range request
  | 'ignore-range' // always 200 with the whole file
  | 'missing' // 404
  | 'fail' // 503
  | 'fail-stall' // 503 headers, a few bytes of body, then silence
  | 'stall-half' // 200 headers, half the bytes, then silence with the connection open
  | 'too-long' // 200 with the file's Content-Length, then extra bytes on the connection
  | 'chunked'; // 200 with the file, chunked (no Content-Length)

interface SeenRequest {
  range: string | undefined;
  authorization: string | undefined;
}

/** A real HTTP file server on 127.0.0.1:<random> that serves one file and honours Range. */
class TestAgent {
  readonly requests: SeenRequest[] = [];
  /** Behaviours for the next requests, in order; 'serve' once they run out. */
  script: Behaviour[] = [];
  private readonly server: Server;

  private constructor(
    private readonly file: string,
    server: Server,
  ) {
    this.server = server;
  }

  static async start(file: string): Promise<TestAgent> {
    const server = createServer();
    const agent = new TestAgent(file, server);
    server.on('request', (req, res) => {
      void agent.handle(req, res).catch((error: unknown) => res.destroy(error as Error));
    });
    await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
    return agent;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/files/backup`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((closed) => this.server.close(() => closed()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.requests.push({ range: req.headers.range, authorization: req.headers.authorization });
    if (req.headers.authorization !== `Bearer ${TICKET}`) {
      res.writeHead(401).end('bad ticket');
      return;
    }
    const behaviour = this.script.shift() ?? 'serve';
    const size = (await stat(this.file)).size;
    switch (behaviour) {
      case 'missing':
        res.writeHead(404, { 'content-type': 'text/plain' }).end('no such file');
        return;
      case 'fail':
        res.writeHead(503, { 'content-type': 'text/plain' }).end('busy');
        return;
      case 'fail-stall':
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.write('overloaded');
        return;
      case 'stall-half': {
        res.writeHead(200, { 'content-length': String(size) });
        const half = await readFile(this.file);
        res.write(half.subarray(0, Math.floor(size / 2)));
        return; // never ends: the client must notice the silence
      }
      case 'too-long': {
        const content = await readFile(this.file);
        res.socket?.end(
          Buffer.concat([
            Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${content.length}\r\n\r\n`),
            content,
            Buffer.from('trailing garbage'),
          ]),
        );
        return;
      }
      case 'chunked': {
        res.writeHead(200);
        res.write(await readFile(this.file));
        res.end();
        return;
      }
      case 'ignore-range':
        this.sendWhole(res, size);
        return;
      case 'serve': {
        const match = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
        if (!match) {
          this.sendWhole(res, size);
          return;
        }
        const start = Number(match[1]);
        if (start >= size) {
          res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
          return;
        }
        res.writeHead(206, {
          'content-length': String(size - start),
          'content-range': `bytes ${start}-${size - 1}/${size}`,
        });
        createReadStream(this.file, { start }).pipe(res);
        return;
      }
    }
  }

  private sendWhole(res: ServerResponse, size: number): void {
    res.writeHead(200, { 'content-length': String(size) });
    createReadStream(this.file).pipe(res);
  }
}

/** Byte-for-byte equality (vitest's deep equality is far too slow for megabytes). */
function expectSameBytes(actual: Buffer, expected: Buffer): void {
  expect(actual.length).toBe(expected.length);
  expect(actual.equals(expected), 'contents differ').toBe(true);
}

function hex(data: Buffer): string {
  return blake3(data).toString('hex');
}

let dir: TempDir;
let root: string;
let agent: TestAgent | null = null;
let sourceFile: string;

beforeEach(async () => {
  dir = await makeTempDir('ubackup-http-pull');
  root = join(dir.path, 'root');
  await mkdir(root);
  sourceFile = join(dir.path, 'source.bin');
});

afterEach(async () => {
  await agent?.close();
  agent = null;
  await dir.cleanup();
});

async function serve(data: Buffer): Promise<TestAgent> {
  await writeFile(sourceFile, data);
  agent = await TestAgent.start(sourceFile);
  return agent;
}

function jobFor(data: Buffer, url: string, overrides: Partial<LeasedJob> = {}): LeasedJob {
  return leasedJobFor(data, url, TICKET, overrides);
}

const RELATIVE = '31/mysql/011111/3306/full-20260115.tar.gz';

async function filesUnder(base: string): Promise<string[]> {
  const entries = await readdir(base, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(base, join(e.parentPath, e.name)))
    .sort();
}

async function writeHalfPart(data: Buffer, jobId: number): Promise<number> {
  await mkdir(join(root, '.incoming'), { recursive: true });
  const half = Math.floor(data.length / 2);
  await writeFile(partPath(root, jobId), data.subarray(0, half));
  return half;
}

describe('pullHttp', () => {
  it('pulls, verifies and stores a file with its sidecar', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const server = await serve(data);
    const progress: number[] = [];
    const job = jobFor(data, server.url);
    const result = await pullHttp({
      job,
      root,
      limiters: [],
      onProgress: (n) => progress.push(n),
      timeoutMs: 5000,
    });
    expect(result).toEqual({
      ok: true,
      path: storedAbsolutePath(root, RELATIVE),
      relativePath: RELATIVE,
      size: data.length,
      blake3: hex(data),
      bytesTransferred: data.length,
      alreadyPresent: false,
    });
    expectSameBytes(await readFile(storedAbsolutePath(root, RELATIVE)), data);
    const sidecar = await readSidecar(sidecarPath(storedAbsolutePath(root, RELATIVE)));
    expect(sidecar).toMatchObject({ backup_id: 42, blake3: hex(data), size: data.length, kind: 'full' });
    expect(server.requests).toEqual([{ range: undefined, authorization: `Bearer ${TICKET}` }]);
    expect(progress.at(-1)).toBe(data.length);
    expect(await filesUnder(root)).toEqual([RELATIVE, `${RELATIVE}.ubmeta.json`]);
  });

  it('resumes a half-written part with a Range request and verifies the whole', async () => {
    const data = randomBytes(2 * 1024 * 1024 + 3);
    const server = await serve(data);
    const half = await writeHalfPart(data, 7);
    const progress: number[] = [];
    const result = await pullHttp({
      job: jobFor(data, server.url),
      root,
      limiters: [],
      onProgress: (n) => progress.push(n),
      timeoutMs: 5000,
    });
    expect(result).toMatchObject({ ok: true, bytesTransferred: data.length - half });
    expect(server.requests.map((r) => r.range)).toEqual([`bytes=${half}-`]);
    expect(progress[0]).toBe(half);
    expectSameBytes(await readFile(storedAbsolutePath(root, RELATIVE)), data);
  });

  it('starts over when the agent answers 200 to a Range request', async () => {
    const data = randomBytes(1024 * 1024);
    const server = await serve(data);
    // A part whose first half is wrong: only a restart from zero can produce the right file.
    await mkdir(join(root, '.incoming'), { recursive: true });
    await writeFile(partPath(root, 7), randomBytes(data.length / 2));
    server.script = ['ignore-range'];
    const result = await pullHttp({ job: jobFor(data, server.url), root, limiters: [], timeoutMs: 5000 });
    expect(result).toMatchObject({ ok: true, bytesTransferred: data.length });
    expect(server.requests.map((r) => r.range)).toEqual([`bytes=${data.length / 2}-`]);
    expectSameBytes(await readFile(storedAbsolutePath(root, RELATIVE)), data);
  });

  it('goes straight to verification when the part already holds every byte', async () => {
    const data = randomBytes(100_000);
    const server = await serve(data);
    await mkdir(join(root, '.incoming'), { recursive: true });
    await writeFile(partPath(root, 7), data);
    const result = await pullHttp({ job: jobFor(data, server.url), root, limiters: [], timeoutMs: 5000 });
    expect(result).toMatchObject({ ok: true, bytesTransferred: 0 });
    expect(server.requests).toEqual([]);
  });

  it('verifies on 416 and reports a source shorter than the lease said as size_mismatch', async () => {
    const data = randomBytes(100_000);
    const server = await serve(data.subarray(0, 40_000)); // the agent's file shrank
    const half = await writeHalfPart(data, 7); // 50,000 bytes: past the end of the agent's file
    const result = await pullHttp({ job: jobFor(data, server.url), root, limiters: [], timeoutMs: 5000 });
    expect(server.requests.map((r) => r.range)).toEqual([`bytes=${half}-`]);
    expect(result).toMatchObject({ ok: false, code: 'size_mismatch' });
    expect(await filesUnder(root)).toEqual([]);
  });

  it('reports 404 as source_missing', async () => {
    const data = randomBytes(1000);
    const server = await serve(data);
    server.script = ['missing'];
    const result = await pullHttp({ job: jobFor(data, server.url), root, limiters: [], timeoutMs: 5000 });
    expect(result).toEqual({
      ok: false,
      code: 'source_missing',
      error: `agent answered 404 for ${server.url}: no such file`,
      bytesTransferred: 0,
    });
    expect(await filesUnder(root)).toEqual([]);
  });

  it('reports a 5xx, a refused ticket and a refused connection as transient', async () => {
    const data = randomBytes(1000);
    const server = await serve(data);
    server.script = ['fail'];
    expect(
      await pullHttp({ job: jobFor(data, server.url), root, limiters: [], timeoutMs: 5000 }),
    ).toMatchObject({
      ok: false,
      code: 'transient',
      error: expect.stringContaining('503'),
    });
    const badTicket = jobFor(data, server.url, { ticket: 'forged' });
    expect(await pullHttp({ job: badTicket, root, limiters: [], timeoutMs: 5000 })).toMatchObject({
      ok: false,
      code: 'transient',
      error: expect.stringContaining('401'),
    });
    const url = server.url;
    await server.close();
    agent = null;
    expect(await pullHttp({ job: jobFor(data, url), root, limiters: [], timeoutMs: 5000 })).toMatchObject({
      ok: false,
      code: 'transient',
      error: expect.stringMatching(/ECONNREFUSED/),
    });
  });

  it('does not hang on an error answer whose body stalls', async () => {
    const data = randomBytes(1000);
    const server = await serve(data);
    server.script = ['fail-stall'];
    const result = await pullHttp({ job: jobFor(data, server.url), root, limiters: [], timeoutMs: 300 });
    expect(result).toEqual({
      ok: false,
      code: 'transient',
      error: `agent answered 503 for ${server.url}: overloaded`,
      bytesTransferred: 0,
    });
    expect(await filesUnder(root)).toEqual([]);
  });

  it('aborts a stalled transfer as transient, keeps the part, and the next pull resumes and completes', async () => {
    const data = randomBytes(4 * 1024 * 1024);
    const server = await serve(data);
    server.script = ['stall-half'];
    const started = performance.now();
    const first = await pullHttp({ job: jobFor(data, server.url), root, limiters: [], timeoutMs: 300 });
    expect(first).toMatchObject({
      ok: false,
      code: 'transient',
      error: 'no data from the agent for 300 ms',
      bytesTransferred: data.length / 2,
    });
    expect(performance.now() - started).toBeLessThan(10_000);
    expect((await stat(partPath(root, 7))).size).toBe(data.length / 2);
    expect(await filesUnder(root)).toEqual(['.incoming/7.part']);

    const second = await pullHttp({ job: jobFor(data, server.url), root, limiters: [], timeoutMs: 5000 });
    expect(second).toMatchObject({ ok: true, bytesTransferred: data.length / 2 });
    expect(server.requests.map((r) => r.range)).toEqual([undefined, `bytes=${data.length / 2}-`]);
    expectSameBytes(await readFile(storedAbsolutePath(root, RELATIVE)), data);
    expect(await filesUnder(root)).toEqual([RELATIVE, `${RELATIVE}.ubmeta.json`]);
  });

  it('reports a flipped bit as checksum_mismatch and stores nothing', async () => {
    const data = randomBytes(1024 * 1024);
    const served = Buffer.from(data);
    served[123_456] = (served[123_456] ?? 0) ^ 0x10;
    const server = await serve(served);
    const result = await pullHttp({ job: jobFor(data, server.url), root, limiters: [], timeoutMs: 5000 });
    expect(result).toMatchObject({ ok: false, code: 'checksum_mismatch', bytesTransferred: data.length });
    expect(await filesUnder(root)).toEqual([]);
  });

  it('takes exactly Content-Length bytes when more follow on the connection', async () => {
    const data = randomBytes(200_000);
    const server = await serve(data);
    server.script = ['too-long'];
    const result = await pullHttp({ job: jobFor(data, server.url), root, limiters: [], timeoutMs: 5000 });
    expect(result).toMatchObject({ ok: true, bytesTransferred: data.length });
    expectSameBytes(await readFile(storedAbsolutePath(root, RELATIVE)), data);
  });

  it('refuses a body without Content-Length (chunked) as transient and stores nothing', async () => {
    const data = randomBytes(200_000);
    const server = await serve(data);
    server.script = ['chunked'];
    const result = await pullHttp({ job: jobFor(data, server.url), root, limiters: [], timeoutMs: 5000 });
    expect(result).toMatchObject({
      ok: false,
      code: 'transient',
      error: expect.stringMatching(/Transfer-Encoding "chunked"; a Content-Length is required/),
      bytesTransferred: 0,
    });
    expect(await filesUnder(root)).toEqual([]);
  });

  it('refuses a 206 whose total is not the leased size (size_mismatch) and removes the part', async () => {
    const data = randomBytes(200_000);
    const server = await serve(Buffer.concat([data, Buffer.from('more')]));
    await writeHalfPart(data, 7);
    const result = await pullHttp({ job: jobFor(data, server.url), root, limiters: [], timeoutMs: 5000 });
    expect(result).toMatchObject({ ok: false, code: 'size_mismatch', bytesTransferred: 0 });
    expect(result.ok === false && result.error).toBe('agent serves 200004 bytes, expected 200000');
    expect(await filesUnder(root)).toEqual([]);
  });

  it('refuses a Content-Length that disagrees with the lease before downloading', async () => {
    const data = randomBytes(200_000);
    const server = await serve(Buffer.concat([data, Buffer.from('more')]));
    const result = await pullHttp({ job: jobFor(data, server.url), root, limiters: [], timeoutMs: 5000 });
    expect(result).toMatchObject({ ok: false, code: 'size_mismatch', bytesTransferred: 0 });
    expect(result.ok === false && result.error).toBe('agent serves 200004 bytes, expected 200000');
  });

  it('finishes a retry after a crash between the move and the sidecar without downloading', async () => {
    const data = randomBytes(10_000);
    const server = await serve(data);
    const target = storedAbsolutePath(root, RELATIVE);
    await mkdir(join(target, '..'), { recursive: true });
    await writeFile(target, data);
    const result = await pullHttp({ job: jobFor(data, server.url), root, limiters: [], timeoutMs: 5000 });
    expect(result).toMatchObject({ ok: true, alreadyPresent: true, bytesTransferred: 0 });
    expect(server.requests).toEqual([]);
    expect(await readSidecar(sidecarPath(target))).toMatchObject({ backup_id: 42 });
  });

  it('throws for what no retry can fix: a different file in place, a name that is not a path', async () => {
    const data = randomBytes(10_000);
    const server = await serve(data);
    const target = storedAbsolutePath(root, RELATIVE);
    await mkdir(join(target, '..'), { recursive: true });
    await writeFile(target, randomBytes(10_000));
    await expect(
      pullHttp({ job: jobFor(data, server.url), root, limiters: [], timeoutMs: 5000 }),
    ).rejects.toThrow(StoreConflictError);
    const reserved = jobFor(data, server.url, { filename: 'x.ubmeta.json' });
    await expect(pullHttp({ job: reserved, root, limiters: [], timeoutMs: 5000 })).rejects.toThrow(
      StorageLayoutError,
    );
  });

  it('keeps the part when the caller aborts', async () => {
    const data = randomBytes(4 * 1024 * 1024);
    const server = await serve(data);
    const controller = new AbortController();
    const slow = new TokenBucket({ bytesPerSecond: 1024 * 1024 });
    const result = await pullHttp({
      job: jobFor(data, server.url),
      root,
      limiters: [slow],
      signal: controller.signal,
      onProgress: (n) => {
        if (n >= 256 * 1024) controller.abort(new Error('shutting down'));
      },
      timeoutMs: 5000,
    });
    expect(result).toMatchObject({ ok: false, code: 'transient', error: 'aborted: shutting down' });
    const kept = (await stat(partPath(root, 7))).size;
    expect(kept).toBeGreaterThanOrEqual(256 * 1024);
    expect(kept).toBeLessThan(data.length);
  });

  it('passes every byte through all limiters: 1 MiB at 4 MiB/s takes at least 200 ms', async () => {
    const data = randomBytes(1024 * 1024);
    const server = await serve(data);
    const nodeWide = new TokenBucket({ bytesPerSecond: 4 * 1024 * 1024 });
    const perTransfer = new TokenBucket({ bytesPerSecond: 0 });
    const started = performance.now();
    const result = await pullHttp({
      job: jobFor(data, server.url),
      root,
      limiters: [nodeWide, perTransfer],
      timeoutMs: 5000,
    });
    const elapsed = performance.now() - started;
    expect(result.ok).toBe(true);
    expect(elapsed).toBeGreaterThanOrEqual(200);
    expect(elapsed).toBeLessThan(10_000);
  });
});

const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)('pullHttp onto a full disk (real tmpfs, needs root to mount)', () => {
  let mountPoint: string;
  let mounted = false;

  afterEach(async () => {
    if (mounted) await run('umount', [mountPoint]);
    mounted = false;
  });

  it('reports ENOSPC as transient and stores nothing', async () => {
    mountPoint = join(dir.path, 'small');
    await mkdir(mountPoint);
    await run('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mountPoint]);
    mounted = true;
    const data = randomBytes(3 * 1024 * 1024);
    const server = await serve(data);
    const result = await pullHttp({
      job: jobFor(data, server.url),
      root: mountPoint,
      limiters: [],
      timeoutMs: 5000,
    });
    expect(result).toMatchObject({ ok: false, code: 'transient', error: expect.stringMatching(/ENOSPC/) });
    expect((await filesUnder(mountPoint)).filter((f) => !f.startsWith('.incoming/'))).toEqual([]);
  });
});
