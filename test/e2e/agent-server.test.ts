import { readdir, readFile, writeFile } from 'node:fs/promises';
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
import { makeTempDir, type TempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait-for.js';

afterAll(stopSharedPostgres);

const SCRIPT = `#!/bin/sh
set -eu
dir="$1"; log="$2"
name="b-$(date +%s%N)-$$.bin"
head -c 4096 /dev/urandom > "$dir/$name"
printf 'ok\\n%s\\n' "$name" > "$log"
`;

/** An agent config with `count` instances whose script writes a real file on every run. */
async function writeAgentConfig(
  dir: string,
  serverUrl: string,
  enrollToken: string,
  count: number,
  interval: number,
) {
  await writeFile(join(dir, 'backup.sh'), SCRIPT);
  const lines = [
    '[global]',
    'server_id = 000777  # leading zeros are kept',
    'game_id = 31',
    `server_url = ${serverUrl}`,
    `enroll_token = ${enrollToken}`,
    `state_dir = ${join(dir, 'state')}`,
    'my_ip = 127.0.0.1',
    `listen = 127.0.0.1:${await freePort()}`,
    `interval = ${interval}`,
    'jitter = 0',
    'redis_host = 10.0.0.1  # obsolete: warned about, ignored',
  ];
  for (let i = 0; i < count; i += 1) {
    const back = join(dir, `back${i}`);
    await import('node:fs/promises').then((fs) => fs.mkdir(back, { recursive: true }));
    lines.push(
      `[db${i}]`,
      'back_type = mysql',
      `instance = ${3306 + i}`,
      `back_dir = ${back}`,
      `back_log = ${join(dir, `db${i}.log`)}`,
      `script = sh ${join(dir, 'backup.sh')} ${back} ${join(dir, `db${i}.log`)}`,
    );
  }
  // A broken section: reported, and the others still run.
  lines.push(
    '[broken]',
    'back_type = mysql',
    'instance = 9999',
    'back_dir = relative/dir',
    'back_log = /tmp/x.log',
    'script = true',
  );
  const path = join(dir, 'agent.conf');
  await writeFile(path, `${lines.join('\n')}\n`);
  return path;
}

async function filesOnHost(dir: string, count: number): Promise<string[]> {
  const names: string[] = [];
  for (let i = 0; i < count; i += 1) names.push(...(await readdir(join(dir, `back${i}`))));
  return names.sort();
}

async function spooled(dir: string): Promise<string[]> {
  const entries = await readdir(join(dir, 'state', 'spool')).catch(() => [] as string[]);
  return entries.filter((e) => e.endsWith('.json'));
}

describe.each(['sqlite', 'postgres'] as const)('agent and server as real processes (%s)', (backend) => {
  let dir: TempDir;
  let pc: ProcessCatalog;
  let server: ServerProcess | undefined;
  let agent: CliDaemon | undefined;

  const storedFiles = (): Promise<string[]> =>
    readCatalog(pc.location, async (catalog) => {
      const rows = await catalog.db.selectFrom('backups').select(['filename', 'report_id']).execute();
      expect(new Set(rows.map((r) => r.report_id)).size).toBe(rows.length);
      return rows.map((r) => r.filename ?? '').sort();
    });

  beforeEach(async () => {
    dir = await makeTempDir('ubackup-agent-e2e');
    pc = await processCatalog(backend, dir.path);
  });
  afterEach(async () => {
    await agent?.stop('SIGKILL');
    await server?.stop('SIGKILL');
    agent = undefined;
    server = undefined;
    await dir.cleanup();
  });

  const serverArgs = () => ({ dataDir: pc.dataDir, db: pc.db });
  const enrollToken = () => createEnrollToken(pc);

  it('run-once spools while the server is down; the daemon delivers every report exactly once', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const token = await enrollToken();
    const config = await writeAgentConfig(dir.path, url, token, 3, 3600);

    // The server is not running: each run-once spools its reports and exits 0 (nothing is lost).
    for (let round = 0; round < 3; round += 1) {
      const run = await runCli(['agent', 'run-once', '--config', config]);
      expect(run.code).toBe(0);
      expect(run.stderr).toContain('3 run(s), 0 failed');
    }
    expect(await spooled(dir.path)).toHaveLength(9);
    const onlyOne = await runCli(['agent', 'run-once', '--config', config, '--only', 'nope']);
    expect(onlyOne.code).toBe(2);
    expect(onlyOne.stderr).toContain('--only nope');

    server = await startServerProcess({ ...serverArgs(), port });
    agent = startCli(['agent', '--config', config]);
    await waitFor(async () => (await spooled(dir.path)).length === 0, {
      timeoutMs: 30_000,
      what: 'the spool to drain',
    });
    expect(await storedFiles()).toEqual(await filesOnHost(dir.path, 3));
    expect(agent.output()).toContain('[broken] back_dir');
    expect(agent.output()).toContain('redis_host');
  });

  it('keeps reporting through a server outage (kill -9 and restart) without loss or duplicates', async () => {
    const port = await freePort();
    server = await startServerProcess({ ...serverArgs(), port });
    const config = await writeAgentConfig(dir.path, server.url, await enrollToken(), 2, 1);
    agent = startCli(['agent', '--config', config]);
    await waitFor(async () => (await storedFiles()).length >= 4, {
      timeoutMs: 30_000,
      what: 'first reports',
    });

    await server.stop('SIGKILL');
    await waitFor(async () => (await spooled(dir.path)).length >= 4, {
      timeoutMs: 30_000,
      what: 'reports to pile up in the spool',
    });

    server = await startServerProcess({ ...serverArgs(), port });
    await waitFor(async () => (await spooled(dir.path)).length === 0, {
      timeoutMs: 60_000,
      what: 'the spool to drain',
    });
    expect(await agent.stop('SIGTERM')).toBe(0);

    // Every file a script wrote is in the catalog once, apart from reports still spooled at stop.
    const left = await Promise.all(
      (await spooled(dir.path)).map(
        async (f) => JSON.parse(await readFile(join(dir.path, 'state', 'spool', f), 'utf8')).filename,
      ),
    );
    const stored = await storedFiles();
    expect([...stored, ...left].filter((f) => f !== '').sort()).toEqual(await filesOnHost(dir.path, 2));
    expect(stored.length).toBeGreaterThanOrEqual(8);
  });
});
