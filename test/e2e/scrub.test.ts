import { appendFile, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { RESTORE_EXIT } from '../../src/restore/restore-error.js';
import { BACKENDS } from '../support/catalog-backends.js';
import { runCli } from '../support/cli-process.js';
import { type Cluster, startCluster } from '../support/cluster.js';
import { stopSharedPostgres } from '../support/postgres.js';
import { readCatalog } from '../support/process-catalog.js';
import { waitFor } from '../support/wait-for.js';

afterAll(stopSharedPostgres);

/**
 * The scrub with real processes: a server, an agent whose script makes a full
 * and two incrementals, and a storage node that stores them. On the node's
 * disk one incremental gets a flipped bit and the full disappears with its
 * sidecar; the node, restarted with a short scrub_period, re-hashes what the
 * server leases it and reports. The catalog, the alerts, the restore plan and
 * `ubackup restore` then say what the scrub found, until the original bytes
 * are back and the next scrub finds them whole.
 */

const FULL_BYTES = 1024 * 1024;
const INC_BYTES = 256 * 1024;
const IDENTITY = { server_id: '5001', type: 'mysql', instance: '4000' };
const SUBJECT = '5001/mysql/4000';

/** A type 2 script (DESIGN §4): the first run is a full, later runs are incrementals. */
function chainScript(count: string, backDir: string, backLog: string, lastAllLog: string): string {
  return [
    `n=$(cat ${count} 2>/dev/null || echo 0)`,
    'n=$((n+1))',
    `echo $n > ${count}`,
    `if [ $n -eq 1 ]; then name=full-$n.bin; head -c ${FULL_BYTES} /dev/urandom > ${backDir}/$name; printf 'ok\\n%s\\n' $name > ${lastAllLog}`,
    `else name=inc-$n.bin; head -c ${INC_BYTES} /dev/urandom > ${backDir}/$name; fi`,
    `printf 'ok\\n%s\\n' $name > ${backLog}`,
  ].join(';');
}

/** `<what> (…) … is not verified: scrub on node node-s at <time>: <finding>`. */
function notVerified(what: string, finding: string | RegExp): RegExp {
  const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const found = typeof finding === 'string' ? literal(finding) : finding.source;
  return new RegExp(
    `${literal(what)} \\([^)]*\\)[^;]* is not verified: scrub on node node-s at \\S+Z: ${found}`,
  );
}

interface CopyRow {
  id: number;
  filename: string | null;
  blake3: string | null;
  stored_path: string | null;
  verified_at: number | null;
  scrubbed_at: number | null;
  scrub_error: string | null;
}

describe.each(BACKENDS)('scrub (%s)', (backend) => {
  let cluster: Cluster | undefined;
  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
  });

  it('finds a flipped bit and a vanished full, marks them unverified with an alert, and clears them when the bytes are back', async () => {
    const c = await startCluster(backend, {
      instances: 1,
      fileBytes: 0,
      script: (_i, backDir, backLog) =>
        chainScript(join(backDir, '..', 'runs'), backDir, backLog, `${backLog}.all`),
    });
    cluster = c;
    await appendFile(c.agentConfig, `last_all_log = ${join(c.dir.path, 'host', 'db0.log.all')}\n`);
    for (let run = 0; run < 3; run += 1) await c.runOnce();
    await c.serveFiles();
    const node = await c.startNode('node-s');
    await waitFor(async () => (await c.jobs()).filter((j) => j.state === 'done').length === 3, {
      timeoutMs: 30_000,
      intervalMs: 200,
      what: 'the three backups to be stored',
    }).catch((error: unknown) => {
      throw new Error(`${String(error)}\n--- node ---\n${node.output()}`);
    });
    const made = await runCli([
      'admin',
      'token',
      'create',
      '--role',
      'viewer',
      '--name',
      'scrub-test',
      '--data-dir',
      c.pc.dataDir,
      ...c.pc.dbArgs,
    ]);
    expect(made.code, made.stderr).toBe(0);
    const token = made.stdout.trim();
    const api = async (path: string) =>
      fetch(`${c.server.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
    const copies = () =>
      readCatalog(c.pc.location, (catalog) =>
        catalog.db
          .selectFrom('backups')
          .select(['id', 'filename', 'blake3', 'stored_path', 'verified_at', 'scrubbed_at', 'scrub_error'])
          .orderBy('created_at')
          .orderBy('id')
          .execute(),
      );
    const stored = await copies();
    expect(stored.map((r) => r.filename)).toEqual(['full-1.bin', 'inc-2.bin', 'inc-3.bin']);
    // A transfer's verification counts as the first check.
    for (const row of stored)
      expect(row).toMatchObject({ scrub_error: null, scrubbed_at: expect.any(Number) });
    const [full, inc2, inc3] = stored as [CopyRow, CopyRow, CopyRow];
    const onDisk = (row: CopyRow) => join(c.nodeRoot('node-s'), ...(row.stored_path ?? '').split('/'));

    // Damage on the node's disk while it is stopped: a flipped bit, and a full gone with its sidecar.
    expect(await node.stop()).toBe(0);
    const fullSidecar = await readFile(`${onDisk(full)}.ubmeta.json`);
    const damaged = await readFile(onDisk(inc2));
    damaged[1000] = (damaged[1000] as number) ^ 0x01;
    await writeFile(onDisk(inc2), damaged);
    await rm(onDisk(full));
    await rm(`${onDisk(full)}.ubmeta.json`);

    // Every stored file is due again after a second.
    const extra = ['scrub_period = 1', 'scrub_bytes_per_second = 64M'];
    const restarted = await c.startNode('node-s', extra);
    const found = await waitFor(
      async () => {
        const rows = await copies();
        return rows.filter((r) => r.scrub_error !== null).length === 2 ? rows : null;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: 'the scrub to report both damaged copies' },
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}\n--- node ---\n${restarted.output()}`);
    });
    const [fullNow, inc2Now, inc3Now] = found as [CopyRow, CopyRow, CopyRow];
    // What each finding says after its time (a scrub pass every second writes it again).
    const fullFinding = `"${full.stored_path}" is missing`;
    const inc2Finding = /BLAKE3 differs \(found [0-9a-f]{64}, expected [0-9a-f]{64}\)/;
    expect(fullNow.verified_at).toBeNull();
    expect(fullNow.scrub_error).toMatch(
      new RegExp(`^scrub on node node-s at \\S+Z: "${full.stored_path}" is missing$`),
    );
    expect(inc2Now.verified_at).toBeNull();
    expect(inc2Now.scrub_error).toMatch(
      new RegExp(
        `^scrub on node node-s at \\S+Z: BLAKE3 differs \\(found [0-9a-f]{64}, expected ${inc2.blake3}\\)$`,
      ),
    );
    expect(inc3Now).toMatchObject({ scrub_error: null, verified_at: inc3.verified_at });
    expect(restarted.output()).toContain(
      `scrub: backup ${inc2.id} (${inc2.stored_path}) is not whole: mismatch`,
    );

    // An open integrity alert about the instance.
    const alerts = (await (await api('/api/v1/alerts?type=integrity')).json()) as { items: unknown[] };
    expect(alerts.items).toEqual([
      expect.objectContaining({
        type: 'integrity',
        subject: SUBJECT,
        state: 'open',
        summary: expect.stringContaining('on scrub of'),
      }),
    ]);

    // The restore plan refuses the chain and says what the scrub found.
    const query = new URLSearchParams(IDENTITY).toString();
    const plan = await api(`/api/v1/restore-plan?${query}`);
    expect(plan.status).toBe(409);
    const refusal = (await plan.json()) as {
      error: { code: string; message: string; details: { skipped: unknown[] } };
    };
    expect(refusal.error.code).toBe('chain_broken');
    expect(refusal.error.message).toMatch(notVerified(`full #${full.id}`, fullFinding));
    expect(refusal.error.message).toMatch(notVerified(`incremental #${inc2.id}`, inc2Finding));
    expect(refusal.error.details.skipped[0]).toMatchObject({
      backup_id: inc3.id,
      reason: expect.stringContaining('BLAKE3 differs'),
    });

    // `ubackup restore` exits with the chain-broken code and prints why.
    const restoreArgs = [
      'restore',
      '--server',
      c.server.url,
      '--token',
      token,
      '--server-id',
      IDENTITY.server_id,
      '--type',
      IDENTITY.type,
      '--instance',
      IDENTITY.instance,
    ];
    const broken = await runCli([...restoreArgs, '--to', join(c.dir.path, 'broken')]);
    expect(broken.code, broken.stderr).toBe(RESTORE_EXIT.chainBroken);
    expect(broken.stderr).toMatch(notVerified(`full #${full.id}`, fullFinding));
    expect(broken.stderr).toMatch(notVerified(`incremental #${inc2.id}`, inc2Finding));

    // An operator puts the original bytes back: the next scrub finds them whole.
    await writeFile(onDisk(full), await readFile(join(c.backDir(0), 'full-1.bin')));
    await writeFile(`${onDisk(full)}.ubmeta.json`, fullSidecar);
    await writeFile(onDisk(inc2), await readFile(join(c.backDir(0), 'inc-2.bin')));
    const healed = await waitFor(
      async () => {
        const rows = await copies();
        return rows.every((r) => r.scrub_error === null && r.verified_at !== null) ? rows : null;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: 'the scrub to find the copies whole again' },
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}\n--- node ---\n${restarted.output()}`);
    });
    expect((healed[0] as CopyRow).verified_at).toBeGreaterThan(fullNow.scrubbed_at ?? 0);
    const resolved = (await (await api('/api/v1/alerts?type=integrity&state=resolved')).json()) as {
      items: unknown[];
    };
    expect(resolved.items).toEqual([expect.objectContaining({ subject: SUBJECT, state: 'resolved' })]);

    // And the chain restores again, from the copies put back.
    const restored = await runCli([...restoreArgs, '--to', join(c.dir.path, 'restored'), '--json']);
    expect(restored.code, `${restored.stderr}\n--- node ---\n${restarted.output()}`).toBe(RESTORE_EXIT.ok);
    expect(JSON.parse(restored.stdout).files.map((f: { filename: string }) => f.filename)).toEqual([
      'full-1.bin',
      'inc-2.bin',
      'inc-3.bin',
    ]);
  });
});
