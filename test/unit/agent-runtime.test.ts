import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AgentStartError, startAgentDaemon } from '../../src/agent/agent-daemon.js';
import { AgentState } from '../../src/agent/agent-state.js';
import type { AgentLog } from '../../src/agent/delivery.js';
import { runOnce } from '../../src/agent/run-once.js';
import { Spool } from '../../src/agent/spool.js';
import { type Report, ReportSchema } from '../../src/shared/report.js';
import { type RunStart, RunStartSchema } from '../../src/shared/run-start.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait-for.js';

/** The daemon and run-once against a real local HTTP server that speaks the enroll and report API. */

interface FakeServer {
  url: string;
  enrollments: { auth: string | undefined; body: unknown }[];
  reports: Report[];
  /** Runs the daemon announced before running them. */
  runs: RunStart[];
  close(): Promise<void>;
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function startServer(port = 0): Promise<FakeServer> {
  const enrollments: FakeServer['enrollments'] = [];
  const reports: Report[] = [];
  const runs: RunStart[] = [];
  const server: Server = createServer((request, response) => {
    void readBody(request).then((text) => {
      // GET /api/v1/agents/ticket-key (the daemon's file server asks for the key) has no body.
      const body: unknown = text === '' ? null : JSON.parse(text);
      const send = (status: number, payload: unknown): void => {
        response.writeHead(status, { 'content-type': 'application/json' });
        response.end(JSON.stringify(payload));
      };
      if (request.url === '/api/v1/agents/enroll') {
        enrollments.push({ auth: request.headers.authorization, body });
        if (request.headers.authorization !== 'Bearer ube_enroll') {
          send(401, { error: { code: 'unauthenticated', message: 'bad token' } });
          return;
        }
        send(201, { server_id: '111111', credential: 'ubc_issued' });
        return;
      }
      if (request.url === '/api/v1/agents/ticket-key') {
        send(404, { error: { code: 'not_found', message: 'this stand-in server signs no tickets' } });
        return;
      }
      if (request.headers.authorization !== 'Bearer ubc_issued') {
        send(401, { error: { code: 'unauthenticated', message: 'the token is unknown' } });
        return;
      }
      if (request.url === '/api/v1/runs') {
        runs.push(RunStartSchema.parse(body));
        send(200, { registered: false, deadline_at: null });
        return;
      }
      const report = ReportSchema.parse(body);
      const duplicate = reports.some((r) => r.report_id === report.report_id);
      if (!duplicate) reports.push(report);
      send(duplicate ? 200 : 201, {
        backup_id: reports.length,
        report_id: report.report_id,
        duplicate,
        legality: 'legal',
        illegal_reason: null,
        job_id: null,
      });
    });
  });
  await new Promise<void>((resolveListen) => server.listen(port, '127.0.0.1', resolveListen));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    enrollments,
    reports,
    runs,
    close: () =>
      new Promise<void>((resolveClose) => {
        server.closeAllConnections();
        server.close(() => resolveClose());
      }),
  };
}

class MemoryLog implements AgentLog {
  readonly lines: { level: string; message: string }[] = [];
  info(message: string): void {
    this.lines.push({ level: 'info', message });
  }
  warn(message: string): void {
    this.lines.push({ level: 'warn', message });
  }
  error(message: string): void {
    this.lines.push({ level: 'error', message });
  }
  has(level: string, pattern: RegExp): boolean {
    return this.lines.some((line) => line.level === level && pattern.test(line.message));
  }
}

let dir: TempDir;
let log: MemoryLog;
const cleanups: (() => Promise<void>)[] = [];

beforeEach(async () => {
  dir = await makeTempDir('ubackup-agent');
  log = new MemoryLog();
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await dir.cleanup();
});

async function serve(): Promise<FakeServer> {
  const server = await startServer();
  cleanups.push(() => server.close());
  return server;
}

/** A backup script that writes a unique file, optionally sleeping first, and reports it. */
async function writeBackupScript(name: string, { sleepSeconds = 0, exitCode = 0 } = {}): Promise<string> {
  const backDir = join(dir.path, `${name}-backup`);
  await mkdir(backDir, { recursive: true });
  const path = join(dir.path, `${name}.sh`);
  await writeFile(
    path,
    [
      '#!/bin/sh',
      sleepSeconds > 0 ? `sleep ${sleepSeconds}` : '',
      'file=db_$(date +%s%N).gz',
      `echo "dump of ${name}" > '${backDir}'/"$file"`,
      `printf 'ok\\n%s\\n' "$file" > '${join(dir.path, `${name}.log`)}'`,
      `exit ${exitCode}`,
      '',
    ].join('\n'),
  );
  await chmod(path, 0o755);
  return path;
}

interface SectionSpec {
  name: string;
  instance: string;
  script: string;
  interval?: number;
}

async function writeConfig(serverUrl: string, sections: SectionSpec[], extraGlobal = ''): Promise<string> {
  const lines = [
    '[global]',
    'server_id = 111111',
    'game_id = 31',
    `server_url = ${serverUrl}`,
    'enroll_token = ube_enroll',
    `state_dir = ${join(dir.path, 'state')}`,
    'my_ip = 10.0.2.62',
    'jitter = 0',
    extraGlobal,
    '',
  ];
  for (const section of sections) {
    lines.push(
      `[${section.name}]`,
      'back_type = mysql',
      `instance = ${section.instance}`,
      `back_dir = ${join(dir.path, `${section.name}-backup`)}`,
      `back_log = ${join(dir.path, `${section.name}.log`)}`,
      `script = sh ${section.script}`,
      section.interval === undefined ? '' : `interval = ${section.interval}`,
      '',
    );
  }
  const path = join(dir.path, 'agent.conf');
  await writeFile(path, lines.join('\n'));
  return path;
}

describe('runOnce', () => {
  it('runs every instance, enrolls, spools and delivers; a failure is reported too', async () => {
    const server = await serve();
    const configPath = await writeConfig(server.url, [
      { name: 'mysql3306', instance: '3306', script: await writeBackupScript('mysql3306') },
      { name: 'mysql3307', instance: '3307', script: await writeBackupScript('mysql3307', { exitCode: 2 }) },
    ]);
    const result = await runOnce({ configPath, log, priority: 'high' });
    expect(result).toEqual({ reports: 2, failed: 1, undelivered: 0 });
    expect(server.enrollments).toHaveLength(1);
    expect(server.enrollments[0]?.body).toMatchObject({ server_id: '111111' });
    expect(server.reports.map((r) => [r.section, r.status, r.priority])).toEqual([
      ['mysql3306', 'ok', 'high'],
      ['mysql3307', 'failed', 'high'],
    ]);
    const { state } = await AgentState.open(join(dir.path, 'state'));
    expect(state.credentialFor('111111')).toBe('ubc_issued');

    // The second run uses the stored credential.
    const again = await runOnce({ configPath, log, only: 'mysql3306' });
    expect(again).toEqual({ reports: 1, failed: 0, undelivered: 0 });
    expect(server.enrollments).toHaveLength(1);
    expect(server.reports).toHaveLength(3);
    // No --priority and no `priority =` in the section: the server's registry decides.
    expect(server.reports[2]?.priority).toBeNull();
  });

  it('keeps the reports in the spool while the server is down, and sends them on the next run', async () => {
    const down = await startServer();
    await down.close(); // a port nothing listens on
    const script = await writeBackupScript('mysql3306');
    const sections = [{ name: 'mysql3306', instance: '3306', script }];
    const result = await runOnce({ configPath: await writeConfig(down.url, sections), log });
    expect(result).toEqual({ reports: 1, failed: 0, undelivered: 1 });
    expect(log.has('warn', /1 report\(s\) are kept in .*spool/)).toBe(true);

    const server = await serve();
    const next = await runOnce({ configPath: await writeConfig(server.url, sections), log });
    expect(next).toEqual({ reports: 1, failed: 0, undelivered: 0 });
    expect(server.reports).toHaveLength(2);
    // Oldest first.
    expect(Date.parse(server.reports[0]?.created_at ?? '')).toBeLessThan(
      Date.parse(server.reports[1]?.created_at ?? ''),
    );
  });

  it('names the available sections for an unknown --only', async () => {
    const server = await serve();
    const configPath = await writeConfig(server.url, [
      { name: 'mysql3306', instance: '3306', script: await writeBackupScript('mysql3306') },
    ]);
    await expect(runOnce({ configPath, log, only: 'redis6379' })).rejects.toThrow(
      /--only redis6379: there is no section \[redis6379\].*the sections that can run are: \[mysql3306\]/,
    );
    await expect(runOnce({ configPath, log, only: 'redis6379' })).rejects.toBeInstanceOf(AgentStartError);
  });

  it('refuses to start without a usable [global], naming the problem', async () => {
    const configPath = join(dir.path, 'bad.conf');
    await writeFile(configPath, '[global]\nserver_id = 1\n');
    await expect(runOnce({ configPath, log })).rejects.toThrow(/no usable \[global\] section[\s\S]*game_id/);
  });
});

describe('startAgentDaemon', () => {
  it('runs instances on schedule, never two copies at once, and delivers their reports', async () => {
    const server = await serve();
    const configPath = await writeConfig(server.url, [
      { name: 'fast', instance: '1', script: await writeBackupScript('fast'), interval: 1 },
      // Takes longer than its period: the slots that come while it runs are skipped.
      {
        name: 'slow',
        instance: '2',
        script: await writeBackupScript('slow', { sleepSeconds: 1.6 }),
        interval: 1,
      },
    ]);
    const daemon = await startAgentDaemon({ configPath, log });
    let stopped = false;
    cleanups.push(async () => {
      if (!stopped) await daemon.stop();
    });

    await waitFor(
      () =>
        server.reports.filter((r) => r.section === 'fast').length >= 2 &&
        server.reports.some((r) => r.section === 'slow'),
      { timeoutMs: 20_000, what: 'two fast reports and one slow report at the server' },
    );
    await waitFor(() => log.has('warn', /\[slow\] skipped the run planned for .*still going/), {
      timeoutMs: 10_000,
      what: 'a skipped slot of the slow instance',
    });
    await daemon.stop();
    stopped = true;

    expect(server.reports.every((r) => r.status === 'ok')).toBe(true);
    expect(new Set(server.reports.map((r) => r.report_id)).size).toBe(server.reports.length);
    // Each run was announced before it ran (for the stuck alert), with the section's timeout.
    const slowRun = server.runs.find((r) => r.instance === '2');
    expect(slowRun).toMatchObject({
      server_id: '111111',
      instance: '2',
      timeout_seconds: expect.any(Number),
    });
    const slowReport = server.reports.find((r) => r.section === 'slow');
    expect(Date.parse(slowRun?.started_at ?? '')).toBeLessThanOrEqual(
      Date.parse(slowReport?.created_at ?? '') + 1000,
    );
    expect(server.enrollments).toHaveLength(1);
    // A run interrupted by stop() is reported as failed and kept in the spool for the next start.
    const spool = await Spool.open(join(dir.path, 'state'));
    for (const entry of await spool.list()) {
      expect(entry.report.status).toBe('failed');
      expect(entry.report.error).toMatch(/interrupted because the agent stopped/);
    }
  });

  it('delivers what an earlier run left in the spool when it starts', async () => {
    const down = await startServer();
    await down.close();
    const script = await writeBackupScript('mysql3306');
    const sections = [{ name: 'mysql3306', instance: '3306', script, interval: 3600 }];
    expect((await runOnce({ configPath: await writeConfig(down.url, sections), log })).undelivered).toBe(1);

    const server = await serve();
    const daemon = await startAgentDaemon({ configPath: await writeConfig(server.url, sections), log });
    cleanups.push(() => daemon.stop());
    await waitFor(() => server.reports.length === 1, { timeoutMs: 10_000, what: 'the spooled report' });
    const spool = await Spool.open(join(dir.path, 'state'));
    await waitFor(async () => (await spool.count()) === 0, { timeoutMs: 10_000, what: 'an empty spool' });
  });
});
