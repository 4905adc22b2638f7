import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Blake3Hasher } from '@napi-rs/blake-hash';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { downloadFile } from '../../src/restore/download-file.js';
import { RESTORE_EXIT, RestoreError } from '../../src/restore/restore-error.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';

/**
 * The restore's download of one file: a real HTTP server serving real bytes
 * (with ranges), connections cut mid-file, resumes within a run and across
 * runs, and verification.
 */

const SIZE = 3 * 1024 * 1024 + 777;
const execFileAsync = promisify(execFile);
const TICKET = 'payload.signature';

function digestOf(bytes: Buffer): string {
  const hasher = new Blake3Hasher();
  hasher.update(bytes);
  return hasher.digest('hex');
}

interface Seen {
  range: string | undefined;
  authorization: string | undefined;
}

/** Serves `content` at /f with single ranges; `behave` may take over a request (by its index). */
class FileHost {
  readonly seen: Seen[] = [];
  behave: (index: number, req: IncomingMessage, res: ServerResponse) => boolean = () => false;
  private server: Server | null = null;
  port = 0;
  constructor(public content: Buffer) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const index = this.seen.length;
      this.seen.push({ range: req.headers.range, authorization: req.headers.authorization });
      if (this.behave(index, req, res)) return;
      this.send(req, res);
    });
    const server = this.server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
  }

  /** Sends the whole file or the asked range; with `cutAfter`, destroys the socket after that many body bytes. */
  send(req: IncomingMessage, res: ServerResponse, cutAfter?: number): void {
    const size = this.content.length;
    const match = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = match ? Number(match[1]) : 0;
    if (start >= size && match) {
      res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
      return;
    }
    const body = this.content.subarray(start);
    res.writeHead(match ? 206 : 200, {
      'content-length': body.length,
      ...(match ? { 'content-range': `bytes ${start}-${size - 1}/${size}` } : {}),
    });
    if (cutAfter === undefined) {
      res.end(body);
      return;
    }
    res.write(body.subarray(0, cutAfter), () => {
      setTimeout(() => res.destroy(), 50);
    });
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/f`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }
}

let dir: TempDir;
let host: FileHost;
let content: Buffer;
let dest: string;

beforeEach(async () => {
  dir = await makeTempDir('restore-download');
  content = randomBytes(SIZE);
  host = new FileHost(content);
  await host.start();
  dest = join(dir.path, 'full-1.xb');
});

afterEach(async () => {
  await host.stop();
  await dir.cleanup();
});

const base = () => ({
  url: host.url,
  ticket: TICKET,
  dest,
  size: SIZE,
  blake3: digestOf(content),
  retryDelayMs: () => 10,
});

async function failure(promise: Promise<unknown>): Promise<RestoreError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof RestoreError) return error;
    throw error;
  }
  throw new Error('expected the download to fail');
}

describe('downloading one file', () => {
  it('downloads, verifies and renames, sending the ticket as a bearer token', async () => {
    const progress: number[] = [];
    const result = await downloadFile({ ...base(), onProgress: (n) => progress.push(n) });
    expect(result).toMatchObject({ reused: false, resumedFrom: 0, bytesTransferred: SIZE, size: SIZE });
    expect((await readFile(dest)).equals(content)).toBe(true);
    expect(await readdir(dir.path)).toEqual(['full-1.xb']);
    expect(host.seen).toEqual([{ range: undefined, authorization: `Bearer ${TICKET}` }]);
    expect(progress.at(-1)).toBe(SIZE);
  });

  it('resumes with Range after a connection cut mid-file, in the same run', async () => {
    const cut = 1024 * 1024 + 5;
    host.behave = (index, req, res) => {
      if (index !== 0) return false;
      host.send(req, res, cut);
      return true;
    };
    const notes: string[] = [];
    const result = await downloadFile({ ...base(), note: (line) => notes.push(line) });
    expect(host.seen.map((s) => s.range)).toEqual([undefined, `bytes=${cut}-`]);
    expect(result.bytesTransferred).toBe(SIZE);
    expect((await readFile(dest)).equals(content)).toBe(true);
    expect(notes.join('\n')).toMatch(/trying again/);
  });

  it('keeps the part when every try fails (exit 6), and the next run resumes from it', async () => {
    const cut = 2 * 1024 * 1024;
    host.behave = (_index, req, res) => {
      host.send(req, res, cut);
      return true;
    };
    const first = await failure(downloadFile({ ...base(), attempts: 1 }));
    expect(first.exitCode).toBe(RESTORE_EXIT.downloadFailed);
    expect(first.message).toMatch(/run the restore again to resume/);
    expect((await readFile(`${dest}.part`)).equals(content.subarray(0, cut))).toBe(true);

    // A new run (a new call, as a new process would make it) asks only for the rest.
    host.behave = () => false;
    const second = await downloadFile(base());
    expect(second).toMatchObject({ resumedFrom: cut, bytesTransferred: SIZE - cut, reused: false });
    expect(host.seen.at(-1)?.range).toBe(`bytes=${cut}-`);
    expect((await readFile(dest)).equals(content)).toBe(true);
    expect(await readdir(dir.path)).toEqual(['full-1.xb']);
  });

  it('fails with exit 6 when the node cannot be reached, and does not retry a 4xx', async () => {
    await host.stop();
    const down = await failure(downloadFile({ ...base(), attempts: 2 }));
    expect([down.exitCode, down.code]).toEqual([RESTORE_EXIT.downloadFailed, 'node_unreachable']);

    await host.start();
    host.behave = (_index, _req, res) => {
      const body = JSON.stringify({
        error: { code: 'wrong_node', message: 'the ticket is for node node-b' },
      });
      res
        .writeHead(403, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
        .end(body);
      return true;
    };
    const refused = await failure(downloadFile({ ...base(), attempts: 3 }));
    expect(refused.exitCode).toBe(RESTORE_EXIT.downloadFailed);
    expect(refused.message).toContain('403 (wrong_node: the ticket is for node node-b)');
    expect(host.seen).toHaveLength(1);
  });

  it('retries a 503 (the node has no key yet)', async () => {
    host.behave = (index, _req, res) => {
      if (index > 0) return false;
      res.writeHead(503, { 'content-length': 0 }).end();
      return true;
    };
    await downloadFile(base());
    expect(host.seen).toHaveLength(2);
    expect((await readFile(dest)).equals(content)).toBe(true);
  });

  it('replaces the part when the node answers a range with the whole file', async () => {
    await writeFile(`${dest}.part`, Buffer.alloc(1000, 0x55));
    host.behave = (_index, req, res) => {
      // No range support.
      delete req.headers.range;
      host.send(req, res);
      return true;
    };
    const result = await downloadFile(base());
    expect(result.resumedFrom).toBe(1000);
    expect((await readFile(dest)).equals(content)).toBe(true);
  });

  it('fails verification with exit 5 and removes the part when the bytes differ', async () => {
    const changed = Buffer.from(content);
    changed.writeUInt8(changed.readUInt8(SIZE - 1) ^ 1, SIZE - 1);
    host.content = changed;
    const error = await failure(downloadFile(base()));
    expect([error.exitCode, error.code]).toEqual([RESTORE_EXIT.integrity, 'checksum_mismatch']);
    expect(await readdir(dir.path)).toEqual([]);
  });

  it('fails verification with exit 5 when a resumed part held other bytes', async () => {
    // A part from some other file: its first bytes are wrong, the rest comes from the node.
    await writeFile(`${dest}.part`, randomBytes(4096));
    const error = await failure(downloadFile(base()));
    expect(error.exitCode).toBe(RESTORE_EXIT.integrity);
    expect(await readdir(dir.path)).toEqual([]);
    // The next run starts from nothing and succeeds.
    await downloadFile(base());
    expect((await readFile(dest)).equals(content)).toBe(true);
  });

  it('fails with exit 5 when the node sends more than the size', async () => {
    host.content = Buffer.concat([content, Buffer.from('extra')]);
    const error = await failure(downloadFile(base()));
    expect([error.exitCode, error.code]).toEqual([RESTORE_EXIT.integrity, 'size_mismatch']);
    expect(await readdir(dir.path)).toEqual([]);
  });

  it('fails with exit 6 when the node has less than the size', async () => {
    host.content = content.subarray(0, SIZE - 10);
    const error = await failure(downloadFile({ ...base(), attempts: 2 }));
    // It asks for the missing tail, which the node does not have.
    expect([error.exitCode, error.code]).toEqual([RESTORE_EXIT.downloadFailed, 'range_not_satisfiable']);
    expect(await readdir(dir.path)).toEqual(['full-1.xb.part']);
  });

  it('keeps a file that is already there and verified, and replaces one that is not', async () => {
    await writeFile(dest, content);
    const kept = await downloadFile(base());
    expect(kept.reused).toBe(true);
    expect(host.seen).toHaveLength(0);
    await writeFile(dest, randomBytes(SIZE));
    const replaced = await downloadFile(base());
    expect(replaced.reused).toBe(false);
    expect((await readFile(dest)).equals(content)).toBe(true);
  });

  it('verifies a complete part left by a run that stopped before the rename, without a request', async () => {
    await writeFile(`${dest}.part`, content);
    const result = await downloadFile(base());
    expect(result).toMatchObject({ resumedFrom: SIZE, bytesTransferred: 0 });
    expect(host.seen).toHaveLength(0);
    expect((await readFile(dest)).equals(content)).toBe(true);
  });

  it('handles an empty file', async () => {
    host.content = Buffer.alloc(0);
    const result = await downloadFile({ ...base(), size: 0, blake3: digestOf(Buffer.alloc(0)) });
    expect(result.size).toBe(0);
    expect((await readFile(dest)).length).toBe(0);
  });

  it('cuts a stalled download after the stall timeout and resumes', async () => {
    const cut = 4096;
    host.behave = (index, req, res) => {
      if (index !== 0) return false;
      const body = content;
      res.writeHead(200, { 'content-length': body.length });
      res.write(body.subarray(0, cut));
      // ...and then nothing.
      void req;
      return true;
    };
    const result = await downloadFile({ ...base(), timeoutMs: 300 });
    expect(host.seen.map((s) => s.range)).toEqual([undefined, `bytes=${cut}-`]);
    expect(result.bytesTransferred).toBe(SIZE);
  });
});

describe.skipIf(process.getuid?.() !== 0)(
  'downloadFile onto a full disk (real tmpfs, needs root to mount)',
  () => {
    let mountPoint = '';

    afterEach(async () => {
      if (mountPoint !== '') await execFileAsync('umount', [mountPoint]);
      mountPoint = '';
    });

    it('fails with exit 6 and says the disk is full, without retrying', async () => {
      const target = join(dir.path, 'small');
      await mkdir(target);
      await execFileAsync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', target]);
      mountPoint = target;
      const error = await failure(downloadFile({ ...base(), dest: join(target, 'full-1.xb') }));
      expect([error.exitCode, error.code]).toEqual([RESTORE_EXIT.downloadFailed, 'write_failed']);
      expect(error.message).toMatch(/ENOSPC/);
      expect(host.seen).toHaveLength(1);
    });
  },
);
