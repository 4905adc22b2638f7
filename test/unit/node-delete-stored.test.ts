import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createStoredDeleter, deleteStoredCopy } from '../../src/node/delete-stored.js';
import { type Sidecar, sidecarPath } from '../../src/node/storage-layout.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait-for.js';

const run = promisify(execFile);
const HASH = 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262';
const INSTANCE_DIR = '31/mysql/111111/3306';

function sidecarFor(backupId: number, filename: string): Sidecar {
  return {
    backup_id: backupId,
    report_id: `report-${backupId}`,
    blake3: HASH,
    size: 4,
    created_at: '2026-01-01T00:00:00.000Z',
    kind: 'full',
    base_backup_id: null,
    game_id: '31',
    type: 'mysql',
    server_id: '111111',
    instance: '3306',
    filename,
    stored_at: '2026-01-01T00:01:00.000Z',
  };
}

/** Every file under `dir` (relative, sorted), symlinks included. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => !e.isDirectory())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort();
}

let dir: TempDir;
let root: string;
let outside: string;

/** Writes a stored file and its sidecar under `base` (the root by default). */
async function store(relative: string, backupId: number, base = root): Promise<string> {
  const path = join(base, relative);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, 'data');
  const filename = relative.split('/').at(-1) as string;
  await writeFile(sidecarPath(path), JSON.stringify(sidecarFor(backupId, filename)));
  return path;
}

beforeEach(async () => {
  dir = await makeTempDir('ubackup-delete');
  root = join(dir.path, 'root');
  outside = join(dir.path, 'outside');
  await mkdir(root);
  await mkdir(outside);
  await writeFile(join(outside, 'x'), 'precious');
});
afterEach(async () => {
  await dir.cleanup();
});

describe('deleteStoredCopy', () => {
  it('removes the file and its sidecar; a copy already gone counts as deleted', async () => {
    await store(`${INSTANCE_DIR}/full-1.xb`, 7);
    await store(`${INSTANCE_DIR}/full-2.xb`, 8);
    const item = { backup_id: 7, path: `${INSTANCE_DIR}/full-1.xb` };
    expect(await deleteStoredCopy(root, item)).toEqual({ backup_id: 7, status: 'deleted' });
    expect(await filesUnder(root)).toEqual([
      `${INSTANCE_DIR}/full-2.xb`,
      `${INSTANCE_DIR}/full-2.xb.ubmeta.json`,
    ]);
    expect(await deleteStoredCopy(root, item)).toEqual({ backup_id: 7, status: 'gone' });
    // Never stored here at all (no directory either).
    expect(await deleteStoredCopy(root, { backup_id: 9, path: '32/redis/1/6379/dump.rdb' })).toEqual({
      backup_id: 9,
      status: 'gone',
    });
  });

  it('finishes a delete that stopped between the file and its sidecar', async () => {
    const path = await store(`${INSTANCE_DIR}/full-1.xb`, 7);
    await run('rm', [path]);
    expect(await deleteStoredCopy(root, { backup_id: 7, path: `${INSTANCE_DIR}/full-1.xb` })).toEqual({
      backup_id: 7,
      status: 'deleted',
    });
    expect(await filesUnder(root)).toEqual([]);
  });

  it('refuses every path that is not a stored path inside the root, touching nothing', async () => {
    await store(`${INSTANCE_DIR}/full-1.xb`, 7);
    await store('a/b/c/d/e', 8, outside);
    const before = { root: await filesUnder(root), outside: await filesUnder(outside) };
    const forged = [
      '../../etc/x',
      '../outside/x',
      `${INSTANCE_DIR}/..`,
      `${INSTANCE_DIR}/../3306/full-1.xb/x`,
      '../outside/a/b/c/d/e',
      '../a/b/c/d',
      '31/mysql/111111/../../outside',
      `/${INSTANCE_DIR}/full-1.xb`,
      `31//111111/3306/full-1.xb`,
      `${INSTANCE_DIR}/full-1.xb.ubmeta.json`,
      '.incoming/mysql/111111/3306/1.part',
      `${INSTANCE_DIR}/sub/full-1.xb`,
      `31/mysql/111111/3306/a\u0000b`,
      `31/mysql/111111/3306/a\\..\\b`,
    ];
    for (const path of forged) {
      const outcome = await deleteStoredCopy(root, { backup_id: 7, path });
      expect(outcome, path).toMatchObject({ backup_id: 7, status: 'refused' });
    }
    expect(await filesUnder(root)).toEqual(before.root);
    expect(await filesUnder(outside)).toEqual(before.outside);
    expect(await readFile(join(outside, 'x'), 'utf8')).toBe('precious');
  });

  it('refuses a path through a symlinked directory that leads out of the root', async () => {
    await store('3306/full-1.xb', 7, join(outside, 'elsewhere'));
    await mkdir(join(root, '31/mysql'), { recursive: true });
    await symlink(join(outside, 'elsewhere'), join(root, '31/mysql/111111'));
    const outcome = await deleteStoredCopy(root, { backup_id: 7, path: `${INSTANCE_DIR}/full-1.xb` });
    expect(outcome).toMatchObject({ status: 'refused', reason: expect.stringContaining('outside') });
    expect(await filesUnder(join(outside, 'elsewhere'))).toEqual([
      '3306/full-1.xb',
      '3306/full-1.xb.ubmeta.json',
    ]);
  });

  it('follows a symlinked directory that stays inside the root', async () => {
    await store('disk2/full-1.xb', 7);
    await mkdir(join(root, '31/mysql/111111'), { recursive: true });
    await symlink(join(root, 'disk2'), join(root, INSTANCE_DIR));
    expect(await deleteStoredCopy(root, { backup_id: 7, path: `${INSTANCE_DIR}/full-1.xb` })).toEqual({
      backup_id: 7,
      status: 'deleted',
    });
    expect(await filesUnder(join(root, 'disk2'))).toEqual([]);
  });

  it('removes a symlink in the file place, never what it points to', async () => {
    await mkdir(join(root, INSTANCE_DIR), { recursive: true });
    await symlink(join(outside, 'x'), join(root, INSTANCE_DIR, 'full-1.xb'));
    await symlink(join(outside, 'x'), sidecarPath(join(root, INSTANCE_DIR, 'full-1.xb')));
    expect(await deleteStoredCopy(root, { backup_id: 7, path: `${INSTANCE_DIR}/full-1.xb` })).toEqual({
      backup_id: 7,
      status: 'deleted',
    });
    expect(await filesUnder(root)).toEqual([]);
    expect(await readFile(join(outside, 'x'), 'utf8')).toBe('precious');
  });

  it("leaves a file whose sidecar names another backup, and a directory in the file's place", async () => {
    await store(`${INSTANCE_DIR}/full-1.xb`, 8);
    await mkdir(join(root, INSTANCE_DIR, 'full-2.xb'));
    const other = await deleteStoredCopy(root, { backup_id: 7, path: `${INSTANCE_DIR}/full-1.xb` });
    expect(other).toMatchObject({ status: 'refused', reason: expect.stringContaining('holds backup 8') });
    const directory = await deleteStoredCopy(root, { backup_id: 9, path: `${INSTANCE_DIR}/full-2.xb` });
    expect(directory).toMatchObject({ status: 'refused', reason: expect.stringContaining('directory') });
    expect(await filesUnder(root)).toEqual([
      `${INSTANCE_DIR}/full-1.xb`,
      `${INSTANCE_DIR}/full-1.xb.ubmeta.json`,
    ]);
  });
});

describe('createStoredDeleter', () => {
  it('confirms deleted and gone copies, not refused ones, and logs a refusal once', async () => {
    await store(`${INSTANCE_DIR}/full-1.xb`, 7);
    const lines: string[] = [];
    const log = {
      info: (m: string) => lines.push(`info ${m}`),
      warn: (m: string) => lines.push(`warn ${m}`),
      error: (m: string) => lines.push(`error ${m}`),
    };
    const confirmed: number[][] = [];
    const deleter = createStoredDeleter({
      root,
      log,
      confirm: async (ids) => {
        confirmed.push(ids);
        return { ok: true, confirmed: ids.length };
      },
    });
    const batch = [
      { backup_id: 7, path: `${INSTANCE_DIR}/full-1.xb` },
      { backup_id: 8, path: `${INSTANCE_DIR}/gone.xb` },
      { backup_id: 9, path: '../../etc/x' },
    ];
    deleter.offer(batch);
    deleter.offer([{ backup_id: 10, path: `${INSTANCE_DIR}/busy.xb` }]); // ignored: a batch is running
    await deleter.idle();
    deleter.offer(batch);
    await deleter.idle();
    expect(confirmed).toEqual([
      [7, 8],
      [7, 8],
    ]);
    expect(lines.filter((l) => l.startsWith('error'))).toEqual([
      expect.stringMatching(/^error retention: refused to delete backup 9: .*it stays pending$/),
    ]);
    expect(lines).toContain('info retention: deleted 1 stored copy (1 already gone); the server recorded 2');
    expect(await readFile(join(outside, 'x'), 'utf8')).toBe('precious');
  });
});

const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)('deleting on a read-only file system (real tmpfs, needs root to mount)', () => {
  let mountPoint: string;
  let mounted = false;

  afterEach(async () => {
    if (mounted) await run('umount', [mountPoint]);
    mounted = false;
  });

  it('reports the failure, confirms nothing, and deletes once the file system is writable again', async () => {
    mountPoint = join(root, INSTANCE_DIR);
    await mkdir(mountPoint, { recursive: true });
    await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountPoint]);
    mounted = true;
    await store(`${INSTANCE_DIR}/full-1.xb`, 7);
    await run('mount', ['-o', 'remount,ro', mountPoint]);
    const item = { backup_id: 7, path: `${INSTANCE_DIR}/full-1.xb` };
    const confirmed: number[][] = [];
    const errors: string[] = [];
    const deleter = createStoredDeleter({
      root,
      log: { info: () => undefined, warn: () => undefined, error: (m) => errors.push(m) },
      confirm: async (ids) => {
        confirmed.push(ids);
        return { ok: true, confirmed: ids.length };
      },
    });
    expect(await deleteStoredCopy(root, item)).toMatchObject({
      status: 'failed',
      reason: expect.stringMatching(/EROFS/),
    });
    deleter.offer([item]);
    await deleter.idle();
    expect(confirmed).toEqual([]);
    expect(errors).toEqual([expect.stringMatching(/could not delete backup 7: .*EROFS.*it stays pending/)]);
    expect(await filesUnder(mountPoint)).toEqual(['full-1.xb', 'full-1.xb.ubmeta.json']);

    await run('mount', ['-o', 'remount,rw', mountPoint]);
    deleter.offer([item]);
    await waitFor(() => confirmed.length === 1, { timeoutMs: 5000, what: 'the retried delete' });
    expect(confirmed).toEqual([[7]]);
    expect(await filesUnder(mountPoint)).toEqual([]);
  });
});
