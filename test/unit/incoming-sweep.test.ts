import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sweepIncoming } from '../../src/node/incoming-sweep.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';

const DAY = 86_400_000;

describe('sweepIncoming on a real directory', () => {
  let dir: TempDir;
  let incoming: string;
  const lines: string[] = [];
  const log = {
    info: (m: string) => lines.push(`info ${m}`),
    warn: (m: string) => lines.push(`warn ${m}`),
    error: (m: string) => lines.push(`error ${m}`),
  };
  const now = Date.now();
  const put = async (name: string, bytes: number, ageMs: number) => {
    await writeFile(join(incoming, name), Buffer.alloc(bytes, 7));
    const at = new Date(now - ageMs);
    await utimes(join(incoming, name), at, at);
  };

  beforeEach(async () => {
    dir = await makeTempDir('ubackup-incoming-');
    incoming = join(dir.path, '.incoming');
    await mkdir(incoming);
    lines.length = 0;
  });
  afterEach(async () => {
    await dir.cleanup();
  });

  it('deletes leftovers idle for a day, keeps running and fresh ones and what it does not know', async () => {
    await put('1.part', 1000, 2 * DAY);
    await put('2.part', 2000, 2 * DAY);
    await put('3.part', 3000, DAY / 2);
    await put('5.ubmeta.tmp', 50, 3 * DAY);
    await put('operator-notes.txt', 10, 9 * DAY);
    await mkdir(join(incoming, '4.rsync', '.rsync-partial'), { recursive: true });
    await writeFile(join(incoming, '4.rsync', '.rsync-partial', 'dump.sql'), 'partial');
    const old = new Date(now - 2 * DAY);
    await utimes(join(incoming, '4.rsync'), old, old);

    const result = await sweepIncoming({
      root: dir.path,
      busyJobIds: () => new Set([2]),
      now: () => now,
      log,
    });
    expect(result.removed.sort()).toEqual(['1.part', '4.rsync', '5.ubmeta.tmp']);
    expect((await readdir(incoming)).sort()).toEqual(['2.part', '3.part', 'operator-notes.txt']);
    expect(result.bytes).toBeGreaterThanOrEqual(1050);
    expect(lines.some((l) => l.startsWith('warn ') && l.includes('operator-notes.txt'))).toBe(true);
    expect(lines.some((l) => l.startsWith('info deleted 3 leftover'))).toBe(true);
  });

  it('keeps a part whose job was leased again between the listing and the delete', async () => {
    await put('7.part', 100, 2 * DAY);
    let calls = 0;
    const result = await sweepIncoming({
      root: dir.path,
      busyJobIds: () => (++calls === 1 ? new Set<number>() : new Set([7])),
      now: () => now,
      log,
    });
    expect(result.removed).toEqual([]);
    expect(await readdir(incoming)).toEqual(['7.part']);
  });

  it('does nothing when there is no .incoming yet', async () => {
    const bare = await makeTempDir('ubackup-incoming-bare-');
    try {
      expect(
        await sweepIncoming({ root: bare.path, busyJobIds: () => new Set(), now: () => now, log }),
      ).toEqual({
        removed: [],
        bytes: 0,
      });
    } finally {
      await bare.cleanup();
    }
  });
});
