import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { blake3File } from '../../src/shared/blake3.js';
import { type Cluster, startCluster } from '../support/cluster.js';
import { stopSharedPostgres } from '../support/postgres.js';
import { waitFor } from '../support/wait-for.js';

afterAll(stopSharedPostgres);

/** Every regular file under `root` that is not a sidecar or an incoming part, relative to root. */
async function storedFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile() && !e.name.endsWith('.ubmeta.json') && !e.name.endsWith('.part'))
    .map((e) => join(e.parentPath, e.name).slice(root.length + 1))
    .sort();
}

describe.each([
  ['sqlite', 2],
  ['sqlite', 3],
  ['postgres', 2],
  ['postgres', 3],
] as const)('storage cluster on %s with %d nodes', (backend, nodeCount) => {
  let cluster: Cluster | undefined;
  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
  });

  it('stores each of 200 jobs exactly once, on one node, verified', async () => {
    const c = await startCluster(backend, { instances: 200, fileBytes: 8192 });
    cluster = c;
    await c.runOnce();
    await c.serveFiles();
    const names = Array.from({ length: nodeCount }, (_, i) => `node-${i + 1}`);
    for (const name of names) await c.startNode(name);
    await waitFor(async () => (await c.jobs()).every((j) => j.state === 'done'), {
      timeoutMs: 120_000,
      intervalMs: 250,
      what: 'all 200 jobs to be done',
    });
    const jobs = await c.jobs();
    expect(jobs).toHaveLength(200);
    const perNode = new Map<string, string[]>();
    for (const name of names) perNode.set(name, await storedFiles(c.nodeRoot(name)));
    // Sum over nodes of stored files = 200, each file on exactly the node the catalog names.
    expect([...perNode.values()].reduce((n, files) => n + files.length, 0)).toBe(200);
    for (const job of jobs) {
      expect(job.stored_node).not.toBeNull();
      const holders = [...perNode]
        .filter(([, files]) => files.includes(job.stored_path ?? ''))
        .map(([n]) => n);
      expect(holders).toEqual([job.stored_node]);
      const path = join(c.nodeRoot(job.stored_node ?? ''), job.stored_path ?? '');
      expect((await blake3File(path)).blake3).toBe(job.blake3);
      const sidecar = JSON.parse(await readFile(`${path}.ubmeta.json`, 'utf8'));
      expect(sidecar).toMatchObject({ blake3: job.blake3, filename: job.filename });
    }
    // Every node did some of the work.
    for (const name of names) expect(perNode.get(name)?.length ?? 0).toBeGreaterThan(0);
    // No partial file left behind.
    for (const name of names) expect(await readdir(join(c.nodeRoot(name), '.incoming'))).toEqual([]);
  });
});

describe.each(['sqlite', 'postgres'] as const)('a storage node killed mid-transfer (%s)', (backend) => {
  let cluster: Cluster | undefined;
  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
  });

  it('resumes from its .part after a restart; the job is stored once', async () => {
    const size = 6 * 1024 * 1024;
    const c = await startCluster(backend, { instances: 1, fileBytes: size, leaseSeconds: 5 });
    cluster = c;
    await c.runOnce();
    await c.serveFiles();
    // 512 KiB/s per transfer: the 6 MiB file takes about 12 s.
    const limit = ['rsync_bwlimit = 512'];
    const first = await c.startNode('node-a', limit);
    const part = join(c.nodeRoot('node-a'), '.incoming');
    await waitFor(
      async () => {
        const parts = await readdir(part).catch(() => [] as string[]);
        const sizes = await Promise.all(parts.map(async (p) => (await stat(join(part, p))).size));
        return sizes.some((s) => s >= 1024 * 1024 && s < size);
      },
      { timeoutMs: 60_000, intervalMs: 100, what: 'a partial file of at least 1 MiB' },
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}\n--- node-a ---\n${first.output()}`);
    });
    await first.stop('SIGKILL');
    const second = await c.startNode('node-a', limit);
    await waitFor(async () => (await c.jobs())[0]?.state === 'done', {
      timeoutMs: 60_000,
      what: 'the job to be done',
    });
    const [job] = await c.jobs();
    expect(job).toMatchObject({ state: 'done', stored_node: 'node-a' });
    expect(await storedFiles(c.nodeRoot('node-a'))).toEqual([job?.stored_path]);
    expect((await blake3File(join(c.nodeRoot('node-a'), job?.stored_path ?? ''))).blake3).toBe(job?.blake3);
    // The restarted node fetched only the rest.
    const stored = /stored \S+ \((\d+) bytes, blake3 verified; (\d+) bytes transferred, resumed\)/.exec(
      second.output(),
    );
    expect(stored, second.output()).not.toBeNull();
    // Less than the whole file came over the network (nothing at all if the part was already whole).
    expect(Number(stored?.[2])).toBeLessThan(size);
  });

  it('a second node takes over when the lease of a killed node expires', async () => {
    const size = 4 * 1024 * 1024;
    const c = await startCluster(backend, { instances: 1, fileBytes: size, leaseSeconds: 5 });
    cluster = c;
    await c.runOnce();
    await c.serveFiles();
    const a = await c.startNode('node-a', ['rsync_bwlimit = 512']);
    await waitFor(async () => (await c.jobs())[0]?.lease_node === 'node-a', {
      timeoutMs: 30_000,
      what: 'node-a to lease the job',
    });
    await a.stop('SIGKILL');
    await c.startNode('node-b');
    await waitFor(async () => (await c.jobs())[0]?.state === 'done', {
      timeoutMs: 60_000,
      what: 'node-b to store the job',
    });
    const [job] = await c.jobs();
    expect(job).toMatchObject({ stored_node: 'node-b', attempts: 2 });
    expect(job?.last_error).toContain('the lease of node node-a expired');
    expect(await storedFiles(c.nodeRoot('node-b'))).toEqual([job?.stored_path]);
    expect(await storedFiles(c.nodeRoot('node-a'))).toEqual([]);
  });
});
