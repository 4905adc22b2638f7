import { randomBytes } from 'node:crypto';
import { mkdir, readFile, symlink, truncate, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ReadLimiter, scrubFile } from '../../src/node/scrub-file.js';
import { type ScrubServer, startScrubLoop } from '../../src/node/scrub-loop.js';
import { TokenBucket } from '../../src/node/token-bucket.js';
import { blake3File } from '../../src/shared/blake3.js';
import type { ScrubItem, ScrubResult } from '../../src/shared/node-protocol.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait-for.js';

const PATH = '31/mysql/111111/3306/full-1.xb';
const BYTES = 300 * 1024 + 17;

/** Lets anything through at once, and counts what it let through. */
class CountingLimiter implements ReadLimiter {
  taken = 0;
  async take(bytes: number): Promise<void> {
    this.taken += bytes;
  }
}

/** Never lets anything through until the signal aborts. */
const closedLimiter: ReadLimiter = {
  take: (_bytes, signal) =>
    new Promise<void>((_resolve, reject) => {
      if (signal?.aborted) reject(signal.reason);
      signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
    }),
};

const silentLog = { info: () => undefined, warn: () => undefined, error: () => undefined };

describe('the scrub of one stored file', () => {
  let dir: TempDir;
  let root: string;
  let item: ScrubItem;
  const file = () => join(root, ...PATH.split('/'));

  beforeEach(async () => {
    dir = await makeTempDir('ubackup-scrub');
    root = join(dir.path, 'root');
    await mkdir(dirname(file()), { recursive: true });
    await writeFile(file(), randomBytes(BYTES));
    const digest = await blake3File(file());
    item = { backup_id: 7, path: PATH, size: digest.size, blake3: digest.blake3 };
  });
  afterEach(async () => {
    await dir.cleanup();
  });

  const check = (what: ScrubItem = item, limiter: ReadLimiter = new CountingLimiter()) =>
    scrubFile(root, what, { limiter });

  it('finds a whole file ok, having taken every byte it read from the limiter', async () => {
    const limiter = new CountingLimiter();
    expect(await check(item, limiter)).toEqual({ kind: 'finding', result: { backup_id: 7, outcome: 'ok' } });
    expect(limiter.taken).toBe(BYTES);
  });

  it('finds one flipped bit: BLAKE3 differs, with both digests', async () => {
    const bytes = await readFile(file());
    bytes[BYTES >> 1] = (bytes[BYTES >> 1] as number) ^ 0x10;
    await writeFile(file(), bytes);
    const found = (await blake3File(file())).blake3;
    expect(await check()).toEqual({
      kind: 'finding',
      result: {
        backup_id: 7,
        outcome: 'mismatch',
        detail: `BLAKE3 differs (found ${found}, expected ${item.blake3})`,
      },
    });
  });

  it('finds a truncated file by its size, without reading it', async () => {
    await truncate(file(), 1000);
    const limiter = new CountingLimiter();
    expect(await check(item, limiter)).toEqual({
      kind: 'finding',
      result: {
        backup_id: 7,
        outcome: 'size_mismatch',
        detail: `"${PATH}" is 1000 bytes, expected ${BYTES}`,
      },
    });
    expect(limiter.taken).toBe(0);
  });

  it('finds a missing file, and a missing directory, missing', async () => {
    await unlink(file());
    expect(await check()).toMatchObject({ result: { outcome: 'missing', detail: `"${PATH}" is missing` } });
    expect(await check({ ...item, path: '31/mysql/999/3306/full-1.xb' })).toMatchObject({
      result: { outcome: 'missing' },
    });
  });

  it('refuses a path that leaves the root, by its components or through a symlink', async () => {
    const outside = join(dir.path, 'outside');
    await mkdir(outside, { recursive: true });
    await writeFile(join(outside, 'secret'), 'not a backup');
    for (const path of ['../outside/secret', '31/mysql/../../../outside/secret', '31/mysql/111111/3306/..']) {
      const found = await check({ ...item, path });
      expect(found, path).toMatchObject({ kind: 'finding', result: { outcome: 'unreadable' } });
      expect(found.kind === 'finding' && found.result.detail, path).toMatch(/^refused /);
    }
    // A directory inside the root that is a symlink leading out.
    await symlink(outside, join(root, '31', 'mysql', '111111', 'elsewhere'));
    const viaDir = await check({ ...item, path: '31/mysql/111111/elsewhere/secret' });
    expect(viaDir).toMatchObject({ result: { outcome: 'unreadable' } });
    expect(viaDir.kind === 'finding' && viaDir.result.detail).toContain("outside the node's root");
    // The stored file replaced by a symlink leading out.
    await unlink(file());
    await symlink(join(outside, 'secret'), file());
    const limiter = new CountingLimiter();
    expect(await check(item, limiter)).toMatchObject({
      result: { outcome: 'unreadable', detail: expect.stringContaining("outside the node's root") },
    });
    expect(limiter.taken).toBe(0);
  });

  it('finds a directory in the file’s place unreadable', async () => {
    await unlink(file());
    await mkdir(file());
    expect(await check()).toMatchObject({
      result: { outcome: 'unreadable', detail: `"${PATH}" is not a regular file` },
    });
  });

  it('stops at once when its signal aborts, before or while it waits for the limiter', async () => {
    const early = new AbortController();
    early.abort(new Error('node stopping'));
    await expect(
      scrubFile(root, item, { limiter: new CountingLimiter(), signal: early.signal }),
    ).rejects.toThrow('node stopping');
    const abort = new AbortController();
    let waiting = false;
    const running = scrubFile(root, item, {
      limiter: {
        take: (bytes, signal) => {
          waiting = true;
          return closedLimiter.take(bytes, signal);
        },
      },
      signal: abort.signal,
    });
    await waitFor(() => waiting, { timeoutMs: 10_000, what: 'the check to wait for its limiter' });
    abort.abort(new Error('node stopping'));
    await expect(running).rejects.toThrow('node stopping');
  });

  it('reads no faster than the rate: the bucket makes it wait size / rate (virtual time)', async () => {
    // A clock that moves only when the bucket sleeps: the time it reports is exactly the waiting the rate imposed.
    let now = 0;
    const bucket = new TokenBucket({
      bytesPerSecond: 64 * 1024,
      burstBytes: 16 * 1024,
      now: () => now,
      sleep: async (ms) => {
        now += ms;
      },
    });
    const taken: number[] = [];
    const limiter: ReadLimiter = {
      take: async (bytes, signal) => {
        await bucket.take(bytes, signal);
        taken.push(bytes);
      },
    };
    expect(await scrubFile(root, item, { limiter, chunkBytes: 32 * 1024 })).toMatchObject({
      result: { outcome: 'ok' },
    });
    expect(taken.reduce((a, b) => a + b, 0)).toBe(BYTES);
    // The bucket starts empty: every byte waited for its share of the rate, within a millisecond per sleep.
    const seconds = now / 1000;
    expect(seconds).toBeGreaterThanOrEqual(BYTES / (64 * 1024));
    expect(seconds).toBeLessThan(BYTES / (64 * 1024) + 0.1);
  });
});

describe('the scrub loop', () => {
  let dir: TempDir;
  beforeEach(async () => {
    dir = await makeTempDir('ubackup-scrub-loop');
  });
  afterEach(async () => {
    await dir.cleanup();
  });

  /** A server that leases `batches` one after the other, then nothing; it keeps what was reported. */
  function fakeServer(batches: ScrubItem[][]): ScrubServer & { leases: number[]; reported: ScrubResult[] } {
    const server = {
      leases: [] as number[],
      reported: [] as ScrubResult[],
      lease: async (limit: number, periodSeconds: number) => {
        server.leases.push(periodSeconds);
        return { ok: true as const, value: (batches.shift() ?? []).slice(0, limit) };
      },
      report: async (results: ScrubResult[]) => {
        server.reported.push(...results);
        return { ok: true as const, value: results.length };
      },
    };
    return server;
  }

  it('leases, re-hashes, reports every finding, then sleeps until stopped', async () => {
    const root = join(dir.path, 'root');
    const path = '31/mysql/111111/3306/a.xb';
    await mkdir(join(root, '31/mysql/111111/3306'), { recursive: true });
    await writeFile(join(root, path), 'whole');
    const digest = await blake3File(join(root, path));
    const server = fakeServer([
      [
        { backup_id: 1, path, size: digest.size, blake3: digest.blake3 },
        { backup_id: 2, path: '31/mysql/111111/3306/gone.xb', size: 3, blake3: digest.blake3 },
      ],
    ]);
    const loop = startScrubLoop({
      root,
      bytesPerSecond: 1024 * 1024,
      periodSeconds: 3600,
      server,
      log: silentLog,
      // Longer than the test: stop() must end the sleep.
      idleMs: 600_000,
    });
    await waitFor(() => server.leases.length >= 2, { timeoutMs: 10_000, what: 'the second lease' });
    expect(server.leases).toEqual([3600, 3600]);
    expect(server.reported).toEqual([
      { backup_id: 1, outcome: 'ok' },
      { backup_id: 2, outcome: 'missing', detail: '"31/mysql/111111/3306/gone.xb" is missing' },
    ]);
    await loop.stop();
  });

  it('stops at once in the middle of a file', async () => {
    const root = join(dir.path, 'root');
    const path = '31/mysql/111111/3306/a.xb';
    await mkdir(join(root, '31/mysql/111111/3306'), { recursive: true });
    await writeFile(join(root, path), 'whole');
    const digest = await blake3File(join(root, path));
    let waiting = false;
    const server = fakeServer([[{ backup_id: 1, path, size: digest.size, blake3: digest.blake3 }]]);
    const loop = startScrubLoop({
      root,
      bytesPerSecond: 1,
      periodSeconds: 3600,
      server,
      log: silentLog,
      limiter: {
        take: (bytes, signal) => {
          waiting = true;
          return closedLimiter.take(bytes, signal);
        },
      },
    });
    await waitFor(() => waiting, { timeoutMs: 10_000, what: 'the scrub to wait for its limiter' });
    await loop.stop();
    expect(server.reported).toEqual([]);
  });

  it('does nothing with scrub_bytes_per_second = 0', async () => {
    const server = fakeServer([]);
    const lines: string[] = [];
    const loop = startScrubLoop({
      root: dir.path,
      bytesPerSecond: 0,
      periodSeconds: 3600,
      server,
      log: { ...silentLog, info: (line) => lines.push(line) },
    });
    await loop.stop();
    expect(server.leases).toEqual([]);
    expect(lines).toEqual(['scrub_bytes_per_second = 0: this node does not scrub its stored files']);
  });
});
