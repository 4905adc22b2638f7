import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type Cluster, startCluster } from '../support/cluster.js';
import { stopSharedPostgres } from '../support/postgres.js';
import { waitFor } from '../support/wait-for.js';

afterAll(stopSharedPostgres);

/** The node daemon clears leftovers of old transfers from `.incoming` when it starts. */
describe('a storage node starting with leftovers in .incoming', () => {
  let cluster: Cluster | undefined;
  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
  });

  it('deletes parts idle for a day, keeps a fresh one and a file it did not write', async () => {
    cluster = await startCluster('sqlite', { instances: 1, fileBytes: 1024 });
    const root = cluster.nodeRoot('node-j');
    const incoming = join(root, '.incoming');
    await mkdir(join(incoming, '77.rsync'), { recursive: true });
    const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000);
    for (const [name, old] of [
      ['71.part', true],
      ['72.part', false],
      ['73.ubmeta.tmp', true],
      ['notes.txt', true],
    ] as const) {
      await writeFile(join(incoming, name), 'x'.repeat(100));
      if (old) await utimes(join(incoming, name), twoDaysAgo, twoDaysAgo);
    }
    await utimes(join(incoming, '77.rsync'), twoDaysAgo, twoDaysAgo);

    const node = await cluster.startNode('node-j');
    await waitFor(async () => node.output().includes('leftover transfer file(s)'), {
      timeoutMs: 30_000,
      what: 'the sweep of .incoming',
    });
    expect((await readdir(incoming)).sort()).toEqual(['72.part', 'notes.txt']);
    expect(node.output()).toMatch(
      /deleted 3 leftover transfer file\(s\) from \S+ \(\d+ bytes, idle over 24 h\)/,
    );
    expect(node.output()).toContain('notes.txt: not a name the node writes in .incoming; left alone');
  });
});
