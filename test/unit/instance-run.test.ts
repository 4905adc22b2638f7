import { mkdir, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AgentState } from '../../src/agent/agent-state.js';
import type { GlobalConfig, InstanceConfig } from '../../src/agent/config.js';
import { runInstance } from '../../src/agent/instance-run.js';
import { blake3File } from '../../src/shared/blake3.js';
import { type Report, ReportSchema } from '../../src/shared/report.js';
import { UBACKUP_VERSION } from '../../src/shared/version.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';

let dir: TempDir;
let backDir: string;
let backLog: string;
let lastAllLog: string;
let stateDir: string;
let global: GlobalConfig;

beforeEach(async () => {
  dir = await makeTempDir('ubackup-instance-run');
  backDir = join(dir.path, 'backup');
  backLog = join(dir.path, 'logs', 'back.log');
  lastAllLog = join(dir.path, 'logs', 'last_all.log');
  stateDir = join(dir.path, 'state');
  await mkdir(backDir);
  await mkdir(join(dir.path, 'logs'));
  global = {
    serverId: '111111',
    gameId: '31',
    serverUrl: 'http://127.0.0.1:9',
    enrollToken: null,
    stateDir,
    myIp: '10.0.2.62',
    listen: { host: '127.0.0.1', port: 0 },
    intervalSeconds: 3600,
    timezone: 'UTC',
    jitterSeconds: 0,
  };
});

afterEach(async () => {
  await dir.cleanup();
});

function instance(script: string, overrides: Partial<InstanceConfig> = {}): InstanceConfig {
  return {
    name: 'mysql3306',
    type: 'mysql',
    instance: '3306',
    backDir,
    backLog,
    lastAllLog: null,
    script,
    schedule: { kind: 'interval', seconds: 3600 },
    priority: 'normal',
    timeoutSeconds: 30,
    transport: 'http',
    rsyncModel: null,
    ...overrides,
  };
}

async function openState(): Promise<AgentState> {
  return (await AgentState.open(stateDir)).state;
}

async function run(inst: InstanceConfig, state?: AgentState): Promise<Report> {
  const report = await runInstance(inst, global, {
    priority: null,
    now: Date.now,
    state: state ?? (await openState()),
  });
  // Every report the runner builds passes the wire schema.
  expect(ReportSchema.safeParse(report).success).toBe(true);
  return report;
}

/** A script that writes `content` to back_dir/name and "ok\nname" to back_log (and last_all_log if full). */
function backupScript(name: string, content: string, { full = false } = {}): string {
  const lines = [
    `printf '%s' '${content}' > '${join(backDir, name)}'`,
    `printf 'ok\\n%s\\n' '${name}' > '${backLog}'`,
    full ? `printf 'ok\\n%s\\n' '${name}' > '${lastAllLog}'` : '',
    `echo "backed up ${name}"`,
  ];
  return lines.filter((line) => line !== '').join('; ');
}

describe('runInstance', () => {
  it('reports a single backup: digest and size of the file, identity from the config', async () => {
    const before = Date.now();
    const report = await run(instance(backupScript('db_20260115.tar.gz', 'hello backup')));
    const digest = await blake3File(join(backDir, 'db_20260115.tar.gz'));
    expect(report).toMatchObject({
      status: 'ok',
      kind: 'single',
      filename: 'db_20260115.tar.gz',
      size: 12,
      blake3: digest.blake3,
      base_filename: null,
      base_created_at: null,
      error: null,
      exit_code: 0,
      log: 'ok\ndb_20260115.tar.gz\n',
      output_tail: 'backed up db_20260115.tar.gz\n',
      server_id: '111111',
      game_id: '31',
      type: 'mysql',
      instance: '3306',
      section: 'mysql3306',
      host_ip: '10.0.2.62',
      priority: null,
      agent_version: UBACKUP_VERSION,
    });
    expect(digest.size).toBe(12);
    expect(Date.parse(report.created_at)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(report.finished_at)).toBeGreaterThanOrEqual(Date.parse(report.created_at));
  });

  it('passes the run priority through', async () => {
    const report = await runInstance(instance(backupScript('a.gz', 'x')), global, {
      priority: 'high',
      now: Date.now,
      state: await openState(),
    });
    expect(report.priority).toBe('high');
  });

  it('reports a full, then an incremental whose base_created_at comes from the agent state', async () => {
    const state = await openState();
    const type2 = (script: string) => instance(script, { lastAllLog });
    const full = await run(type2(backupScript('full_0400.xb', 'full data', { full: true })), state);
    expect(full).toMatchObject({ status: 'ok', kind: 'full', filename: 'full_0400.xb', base_filename: null });
    expect(await state.lastFull({ type: 'mysql', instance: '3306' })).toEqual({
      filename: 'full_0400.xb',
      createdAt: full.created_at,
    });

    // A restarted agent reads the same state from disk.
    const incremental = await run(type2(backupScript('inc_0500.xb', 'incremental')), await openState());
    expect(incremental).toMatchObject({
      status: 'ok',
      kind: 'incremental',
      filename: 'inc_0500.xb',
      base_filename: 'full_0400.xb',
      base_created_at: full.created_at,
      blake3: (await blake3File(join(backDir, 'inc_0500.xb'))).blake3,
    });
  });

  it('reports no base_created_at for an incremental whose full this agent never saw', async () => {
    await writeFile(lastAllLog, 'ok\nfull_old.xb\n2016-01-01 04:00:00\n');
    const report = await run(instance(backupScript('inc.xb', 'i'), { lastAllLog }));
    expect(report).toMatchObject({
      status: 'ok',
      kind: 'incremental',
      base_filename: 'full_old.xb',
      base_created_at: null,
    });
  });

  it('reports the last full failing as a failed incremental', async () => {
    await writeFile(lastAllLog, 'wrong\nxtrabackup: disk full\n');
    const report = await run(instance(backupScript('inc.xb', 'i'), { lastAllLog }));
    expect(report.status).toBe('failed');
    expect(report.error).toMatch(/last full backup failed: xtrabackup: disk full/);
  });

  it('reports "wrong" with the script error text', async () => {
    const report = await run(instance(`printf 'wrong\\nmysqldump: access denied\\n' > '${backLog}'`));
    expect(report).toMatchObject({ status: 'failed', kind: null, filename: null, size: null, blake3: null });
    expect(report.error).toBe('script reported wrong in back_log: mysqldump: access denied');
    expect(report.log).toBe('wrong\nmysqldump: access denied\n');
  });

  it('reports a nonzero exit code as a failure whatever the log says', async () => {
    const report = await run(instance(`${backupScript('a.gz', 'x')}; echo boom >&2; exit 7`));
    expect(report).toMatchObject({ status: 'failed', exit_code: 7, blake3: null });
    expect(report.error).toMatch(/^script exited with code 7/);
    expect(report.output_tail).toContain('boom');
  });

  it('reports a file that does not exist, naming it', async () => {
    const report = await run(instance(`printf 'ok\\nnot-there.gz\\n' > '${backLog}'`));
    expect(report).toMatchObject({
      status: 'failed',
      filename: 'not-there.gz',
      kind: 'single',
      blake3: null,
    });
    expect(report.error).toBe(
      `back_log names "not-there.gz", but ${join(backDir, 'not-there.gz')} does not exist`,
    );
  });

  it('refuses a symbolic link that points outside back_dir', async () => {
    const outside = join(dir.path, 'secret.txt');
    await writeFile(outside, 'not a backup');
    await symlink(outside, join(backDir, 'escape.gz'));
    const report = await run(instance(`printf 'ok\\nescape.gz\\n' > '${backLog}'`));
    expect(report.status).toBe('failed');
    expect(report.blake3).toBeNull();
    expect(report.error).toContain(`resolves to ${outside}, outside back_dir`);
    expect(report.error).toContain('a symbolic link out of back_dir is refused');
  });

  it('accepts a symbolic link to a file inside back_dir', async () => {
    await mkdir(join(backDir, 'daily'));
    await writeFile(join(backDir, 'daily', 'real.gz'), 'inside');
    await symlink(join(backDir, 'daily', 'real.gz'), join(backDir, 'latest.gz'));
    const report = await run(instance(`printf 'ok\\nlatest.gz\\n' > '${backLog}'`));
    expect(report).toMatchObject({ status: 'ok', filename: 'latest.gz', size: 6 });
  });

  it('refuses a name that is not a regular file', async () => {
    await mkdir(join(backDir, 'adir'));
    const report = await run(instance(`printf 'ok\\nadir\\n' > '${backLog}'`));
    expect(report.status).toBe('failed');
    expect(report.error).toMatch(/is a directory, not a regular file/);
  });

  it('refuses a name that escapes back_dir', async () => {
    const report = await run(instance(`printf 'ok\\n../etc/passwd\\n' > '${backLog}'`));
    expect(report.status).toBe('failed');
    expect(report.filename).toBeNull();
    expect(report.error).toMatch(/escapes back_dir/);
  });

  it('reports a stale back_log: the script did not write it', async () => {
    await writeFile(backLog, 'ok\nyesterday.gz\n');
    await writeFile(join(backDir, 'yesterday.gz'), 'old');
    const hourAgo = new Date(Date.now() - 3_600_000);
    await utimes(backLog, hourAgo, hourAgo);
    const report = await run(instance('echo "forgot to write the log"'));
    expect(report.status).toBe('failed');
    expect(report.error).toMatch(/^script did not write back_log: it is older than this run's start/);
    // The stale content is kept as the log, for the operator to see what was there.
    expect(report.log).toBe('ok\nyesterday.gz\n');
    expect(report.filename).toBeNull();
  });

  it('reports a missing back_log', async () => {
    const report = await run(instance('true'));
    expect(report.status).toBe('failed');
    expect(report.error).toBe('script did not write back_log: the file does not exist');
  });

  it('reports a back_log that is not a file precisely', async () => {
    await mkdir(backLog);
    const report = await run(instance('true'));
    expect(report.status).toBe('failed');
    expect(report.error).toBe(`back_log ${backLog} is a directory, not a regular file`);
  });

  it('reports a timeout', async () => {
    const report = await run(instance('sleep 30', { timeoutSeconds: 0.3 }));
    expect(report).toMatchObject({ status: 'failed', exit_code: null });
    expect(report.error).toMatch(/timed out after 0.3 seconds; its process group was killed/);
  });

  it('reports a script interrupted by the agent stopping', async () => {
    const controller = new AbortController();
    const running = runInstance(instance(`echo started > '${join(dir.path, 'started')}'; sleep 30`), global, {
      priority: null,
      now: Date.now,
      state: await openState(),
      signal: controller.signal,
    });
    setImmediate(() => controller.abort());
    const report = await running;
    expect(report.status).toBe('failed');
    expect(report.error).toMatch(/interrupted because the agent stopped/);
    expect(ReportSchema.safeParse(report).success).toBe(true);
  });

  it('reports a script command that is not found', async () => {
    // sh says so on stderr and exits 127.
    const report = await run(instance('/nonexistent/backup.sh'));
    expect(report).toMatchObject({ status: 'failed', exit_code: 127 });
    expect(report.output_tail).toMatch(/not found|No such file/);
  });
});
