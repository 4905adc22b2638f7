import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type CliDaemon,
  runCli,
  type ServerProcess,
  startCli,
  startServerProcess,
} from '../support/cli-process.js';
import { freePort } from '../support/free-port.js';
import { stopSharedPostgres } from '../support/postgres.js';
import {
  createEnrollToken,
  type ProcessCatalog,
  processCatalog,
  readCatalog,
} from '../support/process-catalog.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait-for.js';

afterAll(stopSharedPostgres);

/**
 * The server is killed between storing a report and answering it: the report
 * is durable, the agent never hears so, keeps it in its spool and sends it
 * again. The retry must find the stored report, not store a second one.
 */
describe.each(['sqlite', 'postgres'] as const)('server killed between receipt and answer (%s)', (backend) => {
  let dir: TempDir;
  let pc: ProcessCatalog;
  let server: ServerProcess | undefined;
  let agent: CliDaemon | undefined;
  let proxy: TcpProxy | undefined;

  beforeEach(async () => {
    dir = await makeTempDir('ubackup-crash');
    pc = await processCatalog(backend, dir.path);
  });
  afterEach(async () => {
    await agent?.stop('SIGKILL');
    await server?.stop('SIGKILL');
    await proxy?.close();
    agent = undefined;
    server = undefined;
    proxy = undefined;
    await dir.cleanup();
  });

  const backups = () =>
    readCatalog(pc.location, (catalog) =>
      catalog.db.selectFrom('backups').select(['report_id', 'filename']).execute(),
    );
  const spool = async () =>
    (await readdir(join(dir.path, 'state', 'spool')).catch(() => [] as string[])).filter((f) =>
      f.endsWith('.json'),
    );

  it('stores the report exactly once when the agent retries after the answer was lost', async () => {
    const token = await createEnrollToken(pc);
    const port = await freePort();
    server = await startServerProcess({ dataDir: pc.dataDir, db: pc.db, port });

    let killed = 0;
    proxy = await startTcpProxy({
      target: { host: '127.0.0.1', port },
      onResponse: async (requestLine) => {
        if (!requestLine.startsWith('POST /api/v1/reports') || killed > 0) return 'forward';
        killed += 1;
        // The server has committed and started to answer: kill it before a byte of the answer gets through.
        await server?.stop('SIGKILL');
        return 'drop';
      },
    });

    const back = join(dir.path, 'back');
    await mkdir(back);
    const config = join(dir.path, 'agent.conf');
    await writeFile(
      config,
      [
        '[global]',
        'server_id = 42',
        'game_id = 31',
        `server_url = ${proxy.url}`,
        `enroll_token = ${token}`,
        `state_dir = ${join(dir.path, 'state')}`,
        'my_ip = 127.0.0.1',
        `listen = 127.0.0.1:${await freePort()}`,
        '[db]',
        'back_type = mysql',
        'instance = 3306',
        `back_dir = ${back}`,
        `back_log = ${join(dir.path, 'db.log')}`,
        `script = head -c 1000 /dev/urandom > ${back}/one.bin && printf 'ok\\none.bin\\n' > ${join(dir.path, 'db.log')}`,
        '',
      ].join('\n'),
    );

    const run = await runCli(['agent', 'run-once', '--config', config]);
    expect(run.code).toBe(0);
    expect(killed).toBe(1);
    expect(run.stderr).toContain('1 run(s), 0 failed, 1 report(s) waiting in the spool');
    // Received and durable, though never acknowledged.
    const afterCrash = await backups();
    expect(afterCrash).toHaveLength(1);
    expect(await spool()).toHaveLength(1);

    server = await startServerProcess({ dataDir: pc.dataDir, db: pc.db, port });
    agent = startCli(['agent', '--config', config]);
    await waitFor(async () => (await spool()).length === 0, {
      timeoutMs: 30_000,
      what: 'the spooled report to be delivered',
    });
    const after = await backups();
    expect(after).toEqual(afterCrash);
    expect(after[0]?.filename).toBe('one.bin');
  });
});
