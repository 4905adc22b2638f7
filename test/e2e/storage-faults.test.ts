import { execFileSync } from 'node:child_process';
import { mkdir, open, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { blake3File } from '../../src/shared/blake3.js';
import { type Cluster, startCluster } from '../support/cluster.js';
import { freePort } from '../support/free-port.js';
import { stopSharedPostgres } from '../support/postgres.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { waitFor } from '../support/wait-for.js';

afterAll(stopSharedPostgres);

async function filesUnder(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(root.length + 1));
}

describe.each(['sqlite', 'postgres'] as const)('storage faults (%s)', (backend) => {
  let cluster: Cluster | undefined;
  let proxy: TcpProxy | undefined;
  const mounts: string[] = [];
  afterEach(async () => {
    // Lazy unmount first: the temp dir under it can only be removed once it is a plain directory again.
    for (const m of mounts.splice(0)) execFileSync('umount', ['-l', m]);
    await cluster?.stop();
    await proxy?.close();
    cluster = undefined;
    proxy = undefined;
  });

  it('survives a reset and then a stall mid-file: the file is resumed, verified, and no partial file is visible', async () => {
    const size = 3 * 1024 * 1024;
    const proxyPort = await freePort();
    const c = await startCluster(backend, {
      instances: 1,
      fileBytes: size,
      retryBaseSeconds: 1,
      // Nodes are told to pull from the proxy; the file server listens behind it.
      agentGlobal: [`pull_port = ${proxyPort}`],
    });
    cluster = c;
    const verdicts: string[] = [];
    let pulls = 0;
    proxy = await startTcpProxy({
      listenPort: proxyPort,
      target: { host: '127.0.0.1', port: c.filePort },
      onResponse: (requestLine) => {
        if (!requestLine.startsWith('GET /v1/files/')) return 'forward';
        pulls += 1;
        const verdict =
          pulls === 1 ? { cutAfter: 1024 * 1024 } : pulls === 2 ? { stallAfter: 2 * 1024 * 1024 } : 'forward';
        verdicts.push(typeof verdict === 'string' ? verdict : JSON.stringify(verdict));
        return verdict;
      },
    });
    await c.runOnce();
    await c.serveFiles();
    const node = await c.startNode('node-a', ['stall_timeout = 3']);
    // While the transfer is broken, nothing may appear under the final path.
    const root = c.nodeRoot('node-a');
    await waitFor(async () => pulls >= 2, { timeoutMs: 60_000, what: 'the second pull' });
    expect((await filesUnder(root)).filter((f) => !f.startsWith('.incoming/'))).toEqual([]);
    await waitFor(async () => (await c.jobs())[0]?.state === 'done', {
      timeoutMs: 90_000,
      what: 'the job to be done',
    });
    const [job] = await c.jobs();
    expect(verdicts.slice(0, 3)).toEqual(['{"cutAfter":1048576}', '{"stallAfter":2097152}', 'forward']);
    expect((await blake3File(join(root, job?.stored_path ?? ''))).blake3).toBe(job?.blake3);
    expect(job?.attempts, node.output()).toBe(3);
    expect(await readdir(join(root, '.incoming'))).toEqual([]);
    // The last attempt fetched only what the part did not hold yet.
    const stored = /(\d+) bytes transferred, resumed/.exec(node.output());
    expect(stored, node.output()).not.toBeNull();

    expect(Number(stored?.[1])).toBeLessThan(size);
  });

  it('never stores a file that changed after the report: the job is retried, then dead', async () => {
    const c = await startCluster(backend, {
      instances: 1,
      fileBytes: 65536,
      maxAttempts: 2,
      retryBaseSeconds: 1,
    });
    cluster = c;
    await c.runOnce();
    // Flip one bit of the reported file on the database host.
    const [name] = await readdir(c.backDir(0));
    const handle = await open(join(c.backDir(0), name ?? ''), 'r+');
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, 1000);
    byte[0] = (byte[0] ?? 0) ^ 0x01;
    await handle.write(byte, 0, 1, 1000);
    await handle.close();
    await c.serveFiles();
    await c.startNode('node-a');
    await waitFor(async () => (await c.jobs())[0]?.state === 'dead', {
      timeoutMs: 60_000,
      what: 'the job to die',
    });
    const [job] = await c.jobs();
    expect(job).toMatchObject({ state: 'dead', attempts: 2, stored_node: null });
    expect(job?.last_error).toContain('checksum_mismatch');
    // Nothing stored as good, nothing partial left.
    expect(await filesUnder(c.nodeRoot('node-a'))).toEqual([]);
    const dead = await fetch(`${c.server.url}/api/v1/jobs?state=dead`, {
      headers: { authorization: `Bearer ${await adminToken(c)}` },
    });
    expect(((await dead.json()) as { items: unknown[] }).items).toHaveLength(1);
  });

  it('pauses a node whose free space falls under its reserve; the other node carries on; space returning resumes it', async () => {
    const c = await startCluster(backend, { instances: 6, fileBytes: 512 * 1024 });
    cluster = c;
    // node-a stores on an 8 MiB tmpfs with a 3 MiB reserve; other data fills it to under the reserve.
    const small = join(c.dir.path, 'small-disk');
    await mkdir(small, { recursive: true });
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', small]);
    } catch (error) {
      throw new Error(`this test mounts a tmpfs and must run as root: ${String(error)}`);
    }
    mounts.push(small);
    const filler = join(small, 'other-data.bin');
    await writeFile(filler, Buffer.alloc(5 * 1024 * 1024 + 512 * 1024));
    await c.runOnce();
    await c.serveFiles();
    const a = await c.startNode('node-a', ['reserve = 3M', 'work_thread = 2'], join(small, 'store'));
    await waitFor(async () => /under the reserve/.test(a.output()), {
      timeoutMs: 30_000,
      what: 'node-a to pause at its reserve',
    });
    const nodes = async () => {
      const res = await fetch(`${c.server.url}/api/v1/nodes`, {
        headers: { authorization: `Bearer ${await adminToken(c)}` },
      });
      return ((await res.json()) as { items: Array<{ id: number; name: string; state: string }> }).items;
    };
    await waitFor(async () => (await nodes()).find((n) => n.name === 'node-a')?.state === 'paused_reserve', {
      timeoutMs: 20_000,
      what: 'the server to see node-a paused by its reserve',
    });
    // The rest of the cluster carries on.
    await c.startNode('node-b');
    await waitFor(async () => (await c.jobs()).every((j) => j.state === 'done'), {
      timeoutMs: 60_000,
      what: 'node-b to take every job',
    });
    expect((await c.jobs()).filter((j) => j.stored_node === 'node-a')).toHaveLength(0);
    // Space returns: node-a resumes by itself and takes work again, never crossing its reserve.
    await rm(filler);
    await waitFor(async () => /above the reserve again/.test(a.output()), {
      timeoutMs: 30_000,
      what: 'node-a to resume',
    });
    await waitFor(async () => (await nodes()).find((n) => n.name === 'node-a')?.state === 'active', {
      timeoutMs: 20_000,
      what: 'the server to see node-a active',
    });
    // node-b is paused by an admin: it finishes what it has and leases nothing, so node-a must take the next round.
    const nodeB = (await nodes()).find((n) => n.name === 'node-b');
    const paused = await fetch(`${c.server.url}/api/v1/nodes/${nodeB?.id}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${await adminToken(c)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ paused_by_admin: true }),
    });
    expect(paused.status).toBe(200);
    await waitFor(async () => (await nodes()).find((n) => n.name === 'node-b')?.state === 'paused_admin', {
      timeoutMs: 20_000,
      what: 'node-b to be paused by the admin',
    });
    await c.runOnce();
    await waitFor(
      async () => (await c.jobs()).length === 12 && (await c.jobs()).every((j) => j.state === 'done'),
      {
        timeoutMs: 60_000,
        what: 'the second round to be stored',
      },
    );
    const second = (await c.jobs()).slice(6);
    expect(second.every((j) => j.stored_node === 'node-a')).toBe(true);
    const avail = Number(
      execFileSync('df', ['-B1', '--output=avail', small]).toString().trim().split('\n').pop(),
    );
    expect(avail).toBeGreaterThanOrEqual(3 * 1024 * 1024);
  });
});

const tokens = new WeakMap<Cluster, string>();
async function adminToken(c: Cluster): Promise<string> {
  const known = tokens.get(c);
  if (known) return known;
  const { runCli } = await import('../support/cli-process.js');
  const made = await runCli([
    'admin',
    'token',
    'create',
    '--role',
    'operator',
    '--name',
    'faults',
    '--data-dir',
    c.pc.dataDir,
    ...c.pc.dbArgs,
  ]);
  const token = made.stdout.trim();
  tokens.set(c, token);
  return token;
}
