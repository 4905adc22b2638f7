import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import { promisify } from 'node:util';
import { blake3 } from '@napi-rs/blake-hash';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freeSpace } from '../../src/node/disk-space.js';
import { commitPart, openPart, readSidecar, StoreConflictError } from '../../src/node/part-file.js';
import {
  LAYOUT_FIELDS,
  type LayoutField,
  partPath,
  type Sidecar,
  SidecarSchema,
  StorageLayoutError,
  type StoredFileIdentity,
  sidecarPath,
  storedAbsolutePath,
  storedRelativePath,
} from '../../src/node/storage-layout.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';

const run = promisify(execFile);

/** Byte-for-byte equality (vitest's deep equality is far too slow for megabytes). */
function expectSameBytes(actual: Buffer, expected: Buffer): void {
  expect(actual.length).toBe(expected.length);
  expect(actual.equals(expected), 'contents differ').toBe(true);
}

function hex(data: Buffer): string {
  return blake3(data).toString('hex');
}

const IDENTITY: StoredFileIdentity = {
  game_id: '31',
  type: 'mysql',
  server_id: '011111',
  instance: '3306',
  filename: 'full-20260115.tar.gz',
};

function sidecarFor(data: Buffer, overrides: Partial<Sidecar> = {}): Sidecar {
  return {
    backup_id: 42,
    report_id: '5d0f7b4e-7c1a-4c55-9a43-2f1f0d6c1a10',
    blake3: hex(data),
    size: data.length,
    created_at: '2026-01-15T04:00:00.000Z',
    kind: 'full',
    base_backup_id: null,
    ...IDENTITY,
    stored_at: '2026-01-15T04:10:00.000Z',
    ...overrides,
  };
}

describe('storage layout', () => {
  it('builds <game_id>/<type>/<server_id>/<instance>/<filename>', () => {
    expect(storedRelativePath(IDENTITY)).toBe('31/mysql/011111/3306/full-20260115.tar.gz');
    expect(storedAbsolutePath('/srv/ub', storedRelativePath(IDENTITY))).toBe(
      '/srv/ub/31/mysql/011111/3306/full-20260115.tar.gz',
    );
    expect(partPath('/srv/ub', 17)).toBe('/srv/ub/.incoming/17.part');
    expect(sidecarPath('/srv/ub/31/x.tar')).toBe('/srv/ub/31/x.tar.ubmeta.json');
  });

  const BAD_VALUES: readonly string[] = [
    '..',
    '.',
    '',
    '../etc',
    'a/b',
    '/abs',
    'a\\b',
    'x\0y',
    'tab\there',
    'del\u007f',
    'é'.repeat(128),
  ];

  for (const field of LAYOUT_FIELDS) {
    it(`refuses traversal and bad names in ${field}, naming the field`, () => {
      for (const value of BAD_VALUES) {
        let caught: unknown;
        try {
          storedRelativePath({ ...IDENTITY, [field]: value });
        } catch (error) {
          caught = error;
        }
        expect(caught, JSON.stringify(value)).toBeInstanceOf(StorageLayoutError);
        expect((caught as StorageLayoutError).field).toBe(field);
        expect((caught as StorageLayoutError).message).toContain(field);
      }
    });
  }

  it('refuses names the node uses itself', () => {
    expect(() => storedRelativePath({ ...IDENTITY, game_id: '.incoming' })).toThrow(/game_id.*reserved/);
    expect(() => storedRelativePath({ ...IDENTITY, filename: 'x.tar.ubmeta.json' })).toThrow(
      /filename.*reserved/,
    );
    expect(storedRelativePath({ ...IDENTITY, type: '.incoming' })).toBe(
      '31/.incoming/011111/3306/full-20260115.tar.gz',
    );
  });

  it('refuses a job id that is not a non-negative integer', () => {
    for (const id of [-1, 1.5, Number.NaN, Number.MAX_SAFE_INTEGER + 2]) {
      expect(() => partPath('/srv', id)).toThrow(StorageLayoutError);
    }
  });

  it('keeps every accepted path five components deep inside the root (property)', () => {
    const root = '/srv/ubackup';
    const component = fc.string({ unit: 'binary', minLength: 0, maxLength: 12 });
    const identity = fc.record<Record<LayoutField, string>>({
      game_id: component,
      type: component,
      server_id: component,
      instance: component,
      filename: component,
    });
    fc.assert(
      fc.property(identity, (id) => {
        let rel: string;
        try {
          rel = storedRelativePath(id);
        } catch (error) {
          return error instanceof StorageLayoutError;
        }
        const abs = resolve(storedAbsolutePath(root, rel));
        const inside = relative(root, abs);
        return !inside.startsWith('..') && inside.split(sep).length === 5 && !inside.startsWith('.incoming');
      }),
      { numRuns: 2000 },
    );
  });

  it('parses its own sidecars and refuses a traversal in one', () => {
    const data = Buffer.from('x');
    const sidecar = sidecarFor(data);
    expect(SidecarSchema.parse(JSON.parse(JSON.stringify(sidecar)))).toEqual(sidecar);
    expect(SidecarSchema.safeParse({ ...sidecar, instance: '..' }).success).toBe(false);
    expect(SidecarSchema.safeParse({ ...sidecar, blake3: 'nope' }).success).toBe(false);
    // Unknown keys from a newer node are ignored, not refused.
    expect(SidecarSchema.parse({ ...sidecar, future_field: 1 })).toEqual(sidecar);
  });
});

describe('part file and commit', () => {
  let dir: TempDir;
  let root: string;

  beforeEach(async () => {
    dir = await makeTempDir('ubackup-node-storage');
    root = join(dir.path, 'root');
    await mkdir(root);
  });

  afterEach(async () => {
    await dir.cleanup();
  });

  async function listTree(base: string): Promise<string[]> {
    const entries = await readdir(base, { recursive: true, withFileTypes: true });
    return entries
      .filter((e) => e.isFile())
      .map((e) => relative(base, join(e.parentPath, e.name)))
      .sort();
  }

  it('hashes while writing, in small and large chunks, and re-hashes on reopen', async () => {
    const data = randomBytes(10_000);
    const part = await openPart(root, 1, { bufferBytes: 1024 });
    expect(part.bytesPresent).toBe(0);
    part.append(data.subarray(0, 100)); // buffered
    part.append(data.subarray(100, 3000)); // crosses the buffer twice
    await part.close(); // flushes for a resume
    const again = await openPart(root, 1, { bufferBytes: 1024 });
    expect(again.bytesPresent).toBe(3000);
    expect(again.hasher.digest('hex')).toBe(hex(data.subarray(0, 3000)));
    again.append(data.subarray(3000, 3010));
    again.append(data.subarray(3010)); // larger than the buffer: written directly
    const digest = await again.finish();
    expect(digest).toEqual({ size: data.length, blake3: hex(data) });
    expectSameBytes(await readFile(partPath(root, 1)), data);
  });

  it('takes bytes in place and writes each full buffer at once, in file order', async () => {
    const data = randomBytes(50_000);
    const part = await openPart(root, 4, { bufferBytes: 1024 });
    const path = partPath(root, 4);
    let offset = 0;
    while (offset < data.length) {
      const space = part.space();
      expect(space.length).toBeGreaterThan(0);
      // Uneven pieces: some end exactly at the buffer's end, some do not.
      const n = Math.min(space.length, data.length - offset, 1 + ((offset * 7) % 700));
      space.set(data.subarray(offset, offset + n));
      offset += n;
      const before = part.size;
      part.commit(n);
      expect(part.size).toBe(before + n);
      // Everything up to the last full buffer is in the file already, nothing past it.
      const onDisk = (await stat(path)).size;
      expect(onDisk).toBe(Math.floor(offset / 1024) * 1024);
    }
    expect(() => part.commit(part.space().length + 1)).toThrow(RangeError);
    expect(await part.finish()).toEqual({ size: data.length, blake3: hex(data) });
    expectSameBytes(await readFile(path), data);
  });

  it('reset empties the part and the hash', async () => {
    const part = await openPart(root, 2);
    part.append(Buffer.from('stale bytes'));
    part.flush();
    await part.reset();
    part.append(Buffer.from('fresh'));
    expect(await part.finish()).toEqual({ size: 5, blake3: hex(Buffer.from('fresh')) });
    expect(await readFile(partPath(root, 2), 'utf8')).toBe('fresh');
  });

  async function writePart(jobId: number, data: Buffer): Promise<{ size: number; blake3: string }> {
    const part = await openPart(root, jobId);
    part.append(data);
    return part.finish();
  }

  it('commits a verified part: file in place, sidecar next to it, nothing left in .incoming', async () => {
    const data = randomBytes(50_000);
    const actual = await writePart(3, data);
    const relativePath = storedRelativePath(IDENTITY);
    const sidecar = sidecarFor(data);
    const result = await commitPart({
      root,
      jobId: 3,
      relativePath,
      expected: { size: data.length, blake3: hex(data) },
      sidecar,
      actual,
    });
    const target = storedAbsolutePath(root, relativePath);
    expect(result).toEqual({ ok: true, path: target, relativePath, alreadyPresent: false });
    expectSameBytes(await readFile(target), data);
    expect(await readSidecar(sidecarPath(target))).toEqual(sidecar);
    expect((await stat(target)).nlink).toBe(1);
    expect(await listTree(root)).toEqual([
      '31/mysql/011111/3306/full-20260115.tar.gz',
      '31/mysql/011111/3306/full-20260115.tar.gz.ubmeta.json',
    ]);
  });

  it('re-hashes the part when no digest is given', async () => {
    const data = randomBytes(1000);
    await writePart(4, data);
    const result = await commitPart({
      root,
      jobId: 4,
      relativePath: storedRelativePath(IDENTITY),
      expected: { size: data.length, blake3: hex(data) },
      sidecar: sidecarFor(data),
    });
    expect(result.ok).toBe(true);
  });

  it('on a checksum mismatch deletes the part and leaves nothing under the final path', async () => {
    const data = randomBytes(1000);
    const flipped = Buffer.from(data);
    flipped[500] = (flipped[500] ?? 0) ^ 0x01;
    await writePart(5, flipped);
    const result = await commitPart({
      root,
      jobId: 5,
      relativePath: storedRelativePath(IDENTITY),
      expected: { size: data.length, blake3: hex(data) },
      sidecar: sidecarFor(data),
    });
    expect(result).toMatchObject({ ok: false, code: 'checksum_mismatch' });
    expect(await listTree(root)).toEqual([]);
  });

  it('on a size mismatch deletes the part and leaves nothing under the final path', async () => {
    const data = randomBytes(1000);
    await writePart(6, data.subarray(0, 999));
    const result = await commitPart({
      root,
      jobId: 6,
      relativePath: storedRelativePath(IDENTITY),
      expected: { size: data.length, blake3: hex(data) },
      sidecar: sidecarFor(data),
    });
    expect(result).toMatchObject({
      ok: false,
      code: 'size_mismatch',
      detail: 'received 999 bytes, expected 1000',
    });
    expect(await listTree(root)).toEqual([]);
  });

  it('treats the same file already in place as done (a retry after a crash before the sidecar)', async () => {
    const data = randomBytes(2000);
    const relativePath = storedRelativePath(IDENTITY);
    const target = storedAbsolutePath(root, relativePath);
    await mkdir(join(target, '..'), { recursive: true });
    await writeFile(target, data);
    await writePart(7, data);
    const result = await commitPart({
      root,
      jobId: 7,
      relativePath,
      expected: { size: data.length, blake3: hex(data) },
      sidecar: sidecarFor(data),
    });
    expect(result).toMatchObject({ ok: true, alreadyPresent: true });
    expect(await readSidecar(sidecarPath(target))).toEqual(sidecarFor(data));
    expect(await listTree(join(root, '.incoming'))).toEqual([]);

    // Committing again with no part at all is also fine: the file is verified where it is.
    const repeat = await commitPart({
      root,
      jobId: 7,
      relativePath,
      expected: { size: data.length, blake3: hex(data) },
      sidecar: sidecarFor(data, { stored_at: '2030-01-01T00:00:00.000Z' }),
    });
    expect(repeat).toMatchObject({ ok: true, alreadyPresent: true });
    // The existing sidecar for the same backup is kept.
    expect((await readSidecar(sidecarPath(target)))?.stored_at).toBe('2026-01-15T04:10:00.000Z');
  });

  it('refuses to overwrite a different file at the final path and keeps the part', async () => {
    const data = randomBytes(2000);
    const other = randomBytes(2000);
    const relativePath = storedRelativePath(IDENTITY);
    const target = storedAbsolutePath(root, relativePath);
    await mkdir(join(target, '..'), { recursive: true });
    await writeFile(target, other);
    await writePart(8, data);
    const commit = commitPart({
      root,
      jobId: 8,
      relativePath,
      expected: { size: data.length, blake3: hex(data) },
      sidecar: sidecarFor(data),
    });
    await expect(commit).rejects.toBeInstanceOf(StoreConflictError);
    await expect(commit).rejects.toThrow(/already exists with different content/);
    expectSameBytes(await readFile(target), other);
    expectSameBytes(await readFile(partPath(root, 8)), data);
  });

  it('refuses to record the same file for another backup', async () => {
    const data = randomBytes(100);
    const relativePath = storedRelativePath(IDENTITY);
    await writePart(9, data);
    const first = await commitPart({
      root,
      jobId: 9,
      relativePath,
      expected: { size: data.length, blake3: hex(data) },
      sidecar: sidecarFor(data),
    });
    expect(first.ok).toBe(true);
    await writePart(10, data);
    await expect(
      commitPart({
        root,
        jobId: 10,
        relativePath,
        expected: { size: data.length, blake3: hex(data) },
        sidecar: sidecarFor(data, { backup_id: 43 }),
      }),
    ).rejects.toThrow(/already stored for backup 42/);
  });

  it('refuses a sidecar that does not describe the path', async () => {
    const data = randomBytes(100);
    await writePart(11, data);
    await expect(
      commitPart({
        root,
        jobId: 11,
        relativePath: '31/mysql/011111/3307/full-20260115.tar.gz',
        expected: { size: data.length, blake3: hex(data) },
        sidecar: sidecarFor(data),
      }),
    ).rejects.toThrow(/does not match/);
  });
});

const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)('free space on a real tmpfs (needs root to mount)', () => {
  let dir: TempDir;
  let mountPoint: string;
  let mounted = false;

  beforeEach(async () => {
    dir = await makeTempDir('ubackup-disk');
    mountPoint = join(dir.path, 'mnt');
    await mkdir(mountPoint);
    await run('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mountPoint]);
    mounted = true;
  });

  afterEach(async () => {
    if (mounted) await run('umount', [mountPoint]);
    mounted = false;
    await dir.cleanup();
  });

  it('reports the size and what is left after writing', async () => {
    const before = await freeSpace(mountPoint);
    expect(before.totalBytes).toBe(8 * 1024 * 1024);
    expect(before.freeBytes).toBe(8 * 1024 * 1024);
    await writeFile(join(mountPoint, 'two-mib'), randomBytes(2 * 1024 * 1024));
    const after = await freeSpace(mountPoint);
    expect(after.totalBytes).toBe(8 * 1024 * 1024);
    expect(after.freeBytes).toBe(6 * 1024 * 1024);
  });

  it('fails for a path that does not exist', async () => {
    await expect(freeSpace(join(mountPoint, 'missing'))).rejects.toThrow(/ENOENT/);
  });
});
