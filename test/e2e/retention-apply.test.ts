import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { BACKENDS } from '../support/catalog-backends.js';
import { runCli } from '../support/cli-process.js';
import { type Cluster, startCluster } from '../support/cluster.js';
import { stopSharedPostgres } from '../support/postgres.js';
import { readCatalog } from '../support/process-catalog.js';
import { waitFor } from '../support/wait-for.js';

/**
 * Retention applied with real processes: a server that runs a retention round
 * every second, an agent with five instances that back up once, and a storage
 * node that stores them. The type keeps no fulls for their own sake, and three
 * backups are then made 40 days old in the catalog (one with a forged stored
 * path): the node deletes the two real ones (file and sidecar) and confirms,
 * refuses the forged one without touching anything, and keeps the recent ones;
 * restore plans and the permanent mark see it.
 */

afterAll(stopSharedPostgres);

const DAY = 86_400_000;

interface StoredRow {
  id: number;
  instance: string;
  created_at: number;
  stored_path: string | null;
  deleted_at: number | null;
  delete_requested_at: number | null;
}

describe.each(BACKENDS)('retention applied end to end on %s', (backend) => {
  let cluster: Cluster | undefined;
  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
  });

  it('deletes expired copies on the node, refuses a forged path, and a permanent mark withdraws a pending delete', async () => {
    const c = await startCluster(backend, {
      instances: 5,
      fileBytes: 64 * 1024,
      serverArgs: ['--retention-seconds', '1'],
    });
    cluster = c;
    await c.runOnce();
    await c.serveFiles();
    const node = await c.startNode('node-r');
    await waitFor(async () => (await c.jobs()).filter((j) => j.state === 'done').length === 5, {
      timeoutMs: 30_000,
      intervalMs: 200,
      what: 'the five backups to be stored',
    }).catch((error: unknown) => {
      throw new Error(`${String(error)}\n--- node ---\n${node.output()}`);
    });

    const rows = () =>
      readCatalog(c.pc.location, (catalog) =>
        catalog.db
          .selectFrom('backups')
          .select(['id', 'instance', 'created_at', 'stored_path', 'deleted_at', 'delete_requested_at'])
          .orderBy('instance')
          .execute(),
      );
    const stored = await rows();
    expect(stored).toHaveLength(5);
    const [a, b, forged, d, e] = stored as [StoredRow, StoredRow, StoredRow, StoredRow, StoredRow];
    const root = c.nodeRoot('node-r');
    const onDisk = async () =>
      (await readdir(root, { recursive: true, withFileTypes: true }))
        .filter((entry) => entry.isFile())
        .map((entry) => join(entry.parentPath, entry.name).slice(root.length + 1))
        .filter((path) => !path.startsWith('.incoming'))
        .sort();
    const withSidecars = (row: StoredRow) => [row.stored_path as string, `${row.stored_path}.ubmeta.json`];
    expect(await onDisk()).toEqual(stored.flatMap(withSidecars).sort());

    // Where the forged path leads from the node's root: it must survive.
    const victim = join(root, '..', '..', 'etc', 'x');
    await mkdir(join(victim, '..'), { recursive: true });
    await writeFile(victim, 'not a backup');

    // Three backups become 40 days old; the forged one claims a path outside the root.
    await readCatalog(c.pc.location, async (catalog) => {
      await catalog.db.transaction().execute(async (trx) => {
        await trx
          .insertInto('backup_types')
          .values({ name: 'mysql', description: '', created_at: Date.now(), keep_fulls: 0 })
          .execute();
        for (const row of [a, b, forged]) {
          await trx
            .updateTable('backups')
            .set((eb) => ({
              created_at: eb('created_at', '-', 40 * DAY),
              finished_at: eb('finished_at', '-', 40 * DAY),
              received_at: eb('received_at', '-', 40 * DAY),
              ...(row === forged ? { stored_path: '../../etc/x' } : {}),
            }))
            .where('id', '=', row.id)
            .execute();
        }
      });
    });

    await waitFor(
      async () => {
        const now = await rows();
        return now.filter((r) => r.deleted_at !== null).length === 2;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: 'the node to confirm two deletes' },
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}\n--- node ---\n${node.output()}`);
    });
    const after = new Map((await rows()).map((r) => [r.id, r]));
    expect(after.get(a.id)).toMatchObject({ deleted_at: expect.any(Number), delete_requested_at: null });
    expect(after.get(b.id)).toMatchObject({ deleted_at: expect.any(Number), delete_requested_at: null });
    expect(after.get(forged.id)).toMatchObject({ deleted_at: null, delete_requested_at: expect.any(Number) });
    expect(after.get(d.id)).toMatchObject({ deleted_at: null, delete_requested_at: null });
    expect(after.get(e.id)).toMatchObject({ deleted_at: null, delete_requested_at: null });
    // Files and sidecars of the deleted ones are gone; the kept ones and the forged one's real file stay.
    expect(await onDisk()).toEqual([forged, d, e].flatMap((r) => withSidecars({ ...r })).sort());
    expect(await readFile(victim, 'utf8')).toBe('not a backup');
    await waitFor(() => node.output().includes(`refused to delete backup ${forged.id}`), {
      timeoutMs: 10_000,
      what: 'the node to log that it refused the forged path',
    });
    expect(node.output()).toMatch(/retention: deleted 2 stored copies; the server recorded 2/);

    const token = await runCli([
      'admin',
      'token',
      'create',
      '--role',
      'operator',
      '--name',
      'ops',
      '--data-dir',
      c.pc.dataDir,
      ...c.pc.dbArgs,
    ]);
    expect(token.code, token.stderr).toBe(0);
    const call = (method: string, path: string, body?: unknown) =>
      fetch(`${c.server.url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token.stdout.trim()}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });

    // A restore to the time of a deleted backup says that it was deleted.
    const identity = `server_id=5001&type=mysql&instance=${b.instance}`;
    const at = new Date(b.created_at - 40 * DAY + 1000).toISOString();
    const plan = await call('GET', `/api/v1/restore-plan?${identity}&at=${at}`);
    expect(plan.status).toBe(409);
    const answer = (await plan.json()) as { error: { code: string; message: string } };
    expect(answer.error.code).toBe('chain_broken');
    expect(answer.error.message).toMatch(new RegExp(`#${b.id} .*was deleted`));

    // Marking the forged one permanent withdraws its pending delete.
    const marked = await call('PUT', `/api/v1/backups/${forged.id}/permanent`, { permanent: true });
    expect(marked.status).toBe(200);
    expect(await marked.json()).toEqual({
      id: forged.id,
      permanent: true,
      delete_cancelled: [forged.id],
      needs_deleted: [],
    });
    const final = (await rows()).find((r) => r.id === forged.id);
    expect(final).toMatchObject({ deleted_at: null, delete_requested_at: null });
    expect(await readFile(victim, 'utf8')).toBe('not a backup');
    expect(await onDisk()).toEqual([forged, d, e].flatMap((r) => withSidecars({ ...r })).sort());
  });
});
