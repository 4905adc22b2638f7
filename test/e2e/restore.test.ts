import { appendFile, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RESTORE_EXIT } from '../../src/restore/restore-error.js';
import { type CliDaemon, runCli } from '../support/cli-process.js';
import { type Cluster, startCluster } from '../support/cluster.js';
import { freePort } from '../support/free-port.js';
import { createToken, readCatalog } from '../support/process-catalog.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { waitFor } from '../support/wait-for.js';

/**
 * `ubackup restore` with real processes: a server, an agent whose script
 * makes a full and two incrementals, a storage node that stores them and
 * serves them back, and the built CLI restoring the chain into a directory
 * and handing it to a shell hook.
 */

const FULL_BYTES = 6 * 1024 * 1024;
const INC_BYTES = 512 * 1024;

/**
 * A type 2 script (DESIGN §4): its first run is a full (named in back_log and
 * last_all_log), later runs are incrementals (back_log only).
 */
function chainScript(dir: string, backDir: string, backLog: string, lastAllLog: string): string {
  const count = join(dir, 'runs');
  return [
    `n=$(cat ${count} 2>/dev/null || echo 0)`,
    'n=$((n+1))',
    `echo $n > ${count}`,
    `if [ $n -eq 1 ]; then name=full-$n.bin; head -c ${FULL_BYTES} /dev/urandom > ${backDir}/$name; printf 'ok\\n%s\\n' $name > ${lastAllLog}`,
    `else name=inc-$n.bin; head -c ${INC_BYTES} /dev/urandom > ${backDir}/$name; fi`,
    `printf 'ok\\n%s\\n' $name > ${backLog}`,
  ].join(';');
}

interface Setup {
  c: Cluster;
  token: string;
  node: CliDaemon;
  nodePort: number;
  nodeExtra: string[];
  files: string[];
}

describe('ubackup restore (sqlite)', () => {
  let cluster: Cluster | undefined;
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
    await cluster?.stop();
    cluster = undefined;
  });

  /** A stored chain of a full and two incrementals; `publicPort` is where the node says it is reached. */
  async function storedChain(publicPort?: (nodePort: number) => Promise<number>): Promise<Setup> {
    const c = await startCluster('sqlite', {
      instances: 1,
      fileBytes: 0,
      script: (_i, backDir, backLog) => chainScript(c0Dir(backDir), backDir, backLog, `${backLog}.all`),
    });
    cluster = c;
    await appendFile(c.agentConfig, `last_all_log = ${join(c.dir.path, 'host', 'db0.log.all')}\n`);
    // A full, then two incrementals on it.
    for (let run = 0; run < 3; run += 1) await c.runOnce();
    await c.serveFiles();
    const nodePort = await freePort();
    const nodeExtra = [`listen = 127.0.0.1:${nodePort}`];
    if (publicPort !== undefined)
      nodeExtra.push(`public_url = http://127.0.0.1:${await publicPort(nodePort)}`);
    const node = await c.startNode('node-r', nodeExtra);
    await waitFor(
      async () => (await c.jobs()).length === 3 && (await c.jobs()).every((j) => j.state === 'done'),
      {
        timeoutMs: 60_000,
        intervalMs: 200,
        what: 'the three backups to be stored',
      },
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}\n--- node ---\n${node.output()}`);
    });
    await waitFor(
      () =>
        readCatalog(c.pc.location, async (catalog) => {
          const row = await catalog.db
            .selectFrom('nodes')
            .select('address')
            .where('name', '=', 'node-r')
            .executeTakeFirst();
          return row?.address ?? null;
        }),
      { timeoutMs: 30_000, what: "the node's restore address in the catalog" },
    );
    const token = await createToken(c.pc, 'viewer', 'restore');
    const names = (await readdir(c.backDir(0))).sort(
      (a, b) => Number(a.split(/[-.]/)[1]) - Number(b.split(/[-.]/)[1]),
    );
    expect(names).toEqual(['full-1.bin', 'inc-2.bin', 'inc-3.bin']);
    return { c, token, node, nodePort, nodeExtra, files: names };
  }

  /** The directory beside back_dir, for the script's run counter. */
  function c0Dir(backDir: string): string {
    return join(backDir, '..');
  }

  function restoreArgs(s: Setup, extra: string[]): string[] {
    return [
      'restore',
      '--server',
      s.c.server.url,
      '--token',
      s.token,
      '--server-id',
      '5001',
      '--type',
      'mysql',
      '--instance',
      '4000',
      ...extra,
    ];
  }

  it('downloads the chain from the node, verifies it and runs the hook with the files in order', async () => {
    const s = await storedChain();
    const out = join(s.c.dir.path, 'restored');
    const record = join(s.c.dir.path, 'hook.txt');
    const hook = join(s.c.dir.path, 'hook.sh');
    await writeFile(
      hook,
      [
        `for f in "$@"; do echo "arg $f" >> ${record}; done`,
        `printf 'files %s\\n' "$UBACKUP_FILES" >> ${record}`,
        `echo "dir $UBACKUP_RESTORE_DIR" >> ${record}`,
        `cat "$@" > ${join(s.c.dir.path, 'concatenated')}`,
        // With --json the hook's stdout goes to stderr: stdout is the report alone.
        'echo "hook says hi"',
        '',
      ].join('\n'),
    );
    const run = await runCli(restoreArgs(s, ['--to', out, '--exec', `sh ${hook}`, '--json']));
    expect(run.code, `${run.stderr}\n--- node ---\n${s.node.output()}`).toBe(RESTORE_EXIT.ok);
    const result = JSON.parse(run.stdout);
    expect(result).toMatchObject({ ok: true, exit_code: 0, dir: out, hook: { exit_code: 0 } });
    expect(run.stderr).toContain('hook says hi');
    expect(
      result.files.map((f: { kind: string; filename: string; status: string }) => [
        f.kind,
        f.filename,
        f.status,
      ]),
    ).toEqual([
      ['full', 'full-1.bin', 'downloaded'],
      ['incremental', 'inc-2.bin', 'downloaded'],
      ['incremental', 'inc-3.bin', 'downloaded'],
    ]);
    const restored = s.files.map((name) => join(out, name));
    for (const name of s.files) {
      expect((await readFile(join(out, name))).equals(await readFile(join(s.c.backDir(0), name))), name).toBe(
        true,
      );
    }
    const lines = (await readFile(record, 'utf8')).split('\n');
    expect(lines.slice(0, 3)).toEqual(restored.map((p) => `arg ${p}`));
    expect((await readFile(record, 'utf8')).includes(`files ${restored.join('\n')}\n`)).toBe(true);
    expect(lines).toContain(`dir ${out}`);
    const originals = Buffer.concat(await Promise.all(s.files.map((n) => readFile(join(s.c.backDir(0), n)))));
    expect((await readFile(join(s.c.dir.path, 'concatenated'))).equals(originals)).toBe(true);
    expect(s.node.output()).toMatch(/serving stored files for restores on 127\.0\.0\.1:\d+/);

    // --dry-run prints the plan and downloads nothing.
    const dry = await runCli(restoreArgs(s, ['--to', join(s.c.dir.path, 'dry'), '--dry-run']));
    expect(dry.code).toBe(0);
    expect(dry.stderr).toMatch(/a chain of 3 file\(s\)/);
    expect(dry.stdout.trim().split('\n')).toEqual(s.files.map((n) => join(s.c.dir.path, 'dry', n)));
    await expect(stat(join(s.c.dir.path, 'dry'))).rejects.toThrow();

    // Exit codes: a failing hook, an instance without backups, bad flags.
    const hookFails = await runCli(restoreArgs(s, ['--to', out, '--exec', 'exit 4;']));
    expect(hookFails.code).toBe(RESTORE_EXIT.hookFailed);
    expect(hookFails.stderr).toContain('the hook exited with status 4');
    const none = await runCli([...restoreArgs(s, []).slice(0, -1), '9999']);
    expect(none.code, none.stderr).toBe(RESTORE_EXIT.planNotFound);
    const usage = await runCli(['restore', '--server', s.c.server.url, '--token', s.token]);
    expect(usage.code).toBe(RESTORE_EXIT.usage);
    const unknownFlag = await runCli(restoreArgs(s, ['--bogus']));
    expect(unknownFlag.code).toBe(RESTORE_EXIT.usage);
  });

  it('exits 6 when the node is killed mid-download, and resumes after it is restarted', async () => {
    let stallFirst = true;
    const s = await storedChain(async (nodePort) => {
      // Restores reach the node through a proxy that stalls the first download after 2 MiB.
      proxy = await startTcpProxy({
        target: { host: '127.0.0.1', port: nodePort },
        onResponse: (line) => {
          if (stallFirst && line.startsWith('GET /v1/stored/')) {
            stallFirst = false;
            return { stallAfter: 2 * 1024 * 1024 };
          }
          return 'forward';
        },
      });
      return proxy.port;
    });
    const proxyPort = proxy?.port ?? 0;
    const out = join(s.c.dir.path, 'restored');
    const part = join(out, 'full-1.bin.part');
    const running = runCli(restoreArgs(s, ['--to', out, '--json']));
    await waitFor(async () => ((await stat(part).catch(() => null))?.size ?? 0) > 1024 * 1024, {
      timeoutMs: 30_000,
      what: 'the download of the full to be under way',
    });
    const seen = (await stat(part)).size;
    // The node's host goes away: the node dies and its connections with it.
    await s.node.stop('SIGKILL');
    await proxy?.close();
    const first = await running;
    expect(first.code, first.stderr).toBe(RESTORE_EXIT.downloadFailed);
    expect(JSON.parse(first.stdout)).toMatchObject({ ok: false, exit_code: 6 });
    expect(first.stderr).toMatch(/run the restore again to resume/);
    // Every byte that arrived before the cut is kept (buffered bytes are flushed on the way out).
    const held = (await stat(part)).size;
    expect(held).toBeGreaterThanOrEqual(seen);
    expect(held).toBeLessThan(FULL_BYTES);

    proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: s.nodePort }, listenPort: proxyPort });
    const restarted = await s.c.startNode('node-r', s.nodeExtra);
    await waitFor(() => restarted.output().includes('serving stored files for restores'), {
      timeoutMs: 30_000,
      what: 'the restarted node to serve restores',
    });
    // Its first heartbeat brings the ticket key; until then it answers 503, which the restore retries.
    const second = await runCli(restoreArgs(s, ['--to', out, '--json']));
    expect(second.code, `${second.stderr}\n--- node ---\n${restarted.output()}`).toBe(RESTORE_EXIT.ok);
    const files = JSON.parse(second.stdout).files;
    expect(files[0]).toMatchObject({ filename: 'full-1.bin', status: 'downloaded', resumed_from: held });
    expect(files[0].bytes_transferred).toBe(FULL_BYTES - held);
    for (const name of s.files) {
      expect((await readFile(join(out, name))).equals(await readFile(join(s.c.backDir(0), name))), name).toBe(
        true,
      );
    }
    expect(restarted.output()).toMatch(new RegExp(`bytes ${held}-${FULL_BYTES - 1} of ${FULL_BYTES}`));
  });
});
