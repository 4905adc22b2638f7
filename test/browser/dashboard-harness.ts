import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expect } from 'vitest';
import { runCli, type ServerProcess, startServerProcess } from '../support/cli-process.js';
import {
  createEnrollToken,
  createToken,
  type ProcessCatalog,
  processCatalog,
} from '../support/process-catalog.js';
import { sampleReport } from '../support/report-fixture.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';

/** The built dashboard (`npm run -s build:web`). */
export const WEB_DIR = resolve(import.meta.dirname, '../../dist/web');
export const SCREENSHOT_DIR = resolve(import.meta.dirname, '../../test-output/screenshots');

export function requireBuiltDashboard(): void {
  if (!existsSync(join(WEB_DIR, 'index.html'))) {
    throw new Error(
      `${WEB_DIR}/index.html is missing: run "npm run -s build:web" (or "npm run build") first`,
    );
  }
}

export const PASSWORD = 'correct horse battery';

export interface Dashboard {
  dir: TempDir;
  pc: ProcessCatalog;
  server: ServerProcess;
  /** Where the browser opens the dashboard. */
  origin: string;
  adminToken: string;
  enrollToken: string;
  call(method: string, path: string, token: string, body?: unknown): Promise<ApiAnswer>;
  stop(): Promise<void>;
}

export interface ApiAnswer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: the tests read the answers field by field
  json: any;
}

/** Whether the server itself answers the dashboard at `/`. */
async function servesDashboard(url: string): Promise<boolean> {
  const res = await fetch(`${url}/instances`, { headers: { accept: 'text/html' } }).catch(() => null);
  if (!res?.ok) return false;
  return (await res.text()).includes('id="root"');
}

/** `ubackup admin user create` with the shared test password. */
export async function createUser(pc: ProcessCatalog, name: string, role: string): Promise<void> {
  const made = await runCli(
    [
      'admin',
      'user',
      'create',
      '--name',
      name,
      '--role',
      role,
      '--password-file',
      '-',
      '--data-dir',
      pc.dataDir,
      ...pc.dbArgs,
    ],
    { input: `${PASSWORD}\n` },
  );
  expect(made.code, made.stderr).toBe(0);
}

/** A `ubackup server` on a SQLite catalog file, with the dashboard reachable at `origin`. */
export async function startDashboard(): Promise<Dashboard> {
  requireBuiltDashboard();
  const dir = await makeTempDir('ubackup-dashboard');
  const pc = await processCatalog('sqlite', dir.path);
  const enrollToken = await createEnrollToken(pc);
  const adminToken = await createToken(pc, 'admin', 'seed');
  const server = await startServerProcess({
    dataDir: pc.dataDir,
    db: pc.db,
    // Alerts open within a second of a failed report.
    extraArgs: ['--alert-sweep-seconds', '1'],
  });
  if (!(await servesDashboard(server.url))) {
    await server.stop();
    await dir.cleanup();
    throw new Error(
      `${server.url} does not serve the dashboard from ${WEB_DIR}: build the server and the dashboard first`,
    );
  }
  const origin = server.url;
  const call = async (method: string, path: string, token: string, body?: unknown) => {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined
          ? {}
          : { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json' }),
      },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, json: text === '' ? null : JSON.parse(text) };
  };
  return {
    dir,
    pc,
    server,
    origin,
    adminToken,
    enrollToken,
    call,
    async stop() {
      await server.stop();
      await dir.cleanup();
    },
  };
}

/** Businesses 31 and 32, type mysql, and instances 5001/mysql/3306 (business 31) and 5002/mysql/3307 (32). */
export async function seedRegistry(d: Dashboard): Promise<void> {
  for (const [game_id, name] of [
    ['31', 'Dragon Realm'],
    ['32', 'Star Voyage'],
  ]) {
    expect((await d.call('POST', '/api/v1/businesses', d.adminToken, { game_id, name })).status).toBe(201);
  }
  for (const name of ['mysql', 'redis']) {
    expect(
      (await d.call('POST', '/api/v1/backup-types', d.adminToken, { name, description: `${name} dumps` }))
        .status,
    ).toBe(201);
  }
  for (const [server_id, instance, game_id] of [
    ['5001', '3306', '31'],
    ['5002', '3307', '32'],
  ]) {
    const made = await d.call('POST', '/api/v1/instances', d.adminToken, {
      name: `mysql-${server_id}`,
      server_id,
      type: 'mysql',
      instance,
      game_id,
    });
    expect(made.status, JSON.stringify(made.json)).toBe(201);
  }
}

/** Enrolls host `serverId` and posts its reports: a full, two incrementals, and optionally a failure. */
export async function seedBackups(
  d: Dashboard,
  serverId: string,
  instance: string,
  gameId: string,
  fail: boolean,
) {
  const enrolled = await d.call('POST', '/api/v1/agents/enroll', d.enrollToken, { server_id: serverId });
  expect(enrolled.status).toBe(201);
  const host = enrolled.json.credential as string;
  const base = { server_id: serverId, instance, game_id: gameId, section: `mysql${instance}` };
  const full = sampleReport({
    ...base,
    filename: 'full-20261125.tar.gz',
    size: 3 * 1024 ** 3,
    created_at: '2026-11-25T04:00:00.000Z',
    finished_at: '2026-11-25T04:05:00.000Z',
    log: 'ok\nfull-20261125.tar.gz\n',
  });
  const reports = [
    full,
    sampleReport({
      ...base,
      kind: 'incremental',
      filename: 'inc-20261125T1000.tar.gz',
      size: 52 * 1024 ** 2,
      base_filename: full.filename,
      base_created_at: full.created_at,
      created_at: '2026-11-25T10:00:00.000Z',
      finished_at: '2026-11-25T10:01:00.000Z',
      log: 'ok\ninc-20261125T1000.tar.gz\n',
    }),
    sampleReport({
      ...base,
      kind: 'incremental',
      filename: 'inc-20261125T1600.tar.gz',
      size: 1536,
      base_filename: full.filename,
      base_created_at: full.created_at,
      created_at: '2026-11-25T16:00:00.000Z',
      finished_at: '2026-11-25T16:01:00.000Z',
      log: 'ok\ninc-20261125T1600.tar.gz\n',
    }),
    sampleReport({
      ...base,
      filename: 'full-20261126.tar.gz',
      size: 3 * 1024 ** 3 + 7,
      created_at: '2026-11-26T04:00:00.000Z',
      finished_at: '2026-11-26T04:05:00.000Z',
    }),
  ];
  if (fail) {
    reports.push(
      sampleReport({
        ...base,
        status: 'failed',
        kind: null,
        filename: null,
        size: null,
        blake3: null,
        exit_code: 1,
        error: 'script exited with code 1',
        log: 'wrong\n',
        created_at: '2026-11-26T10:00:00.000Z',
        finished_at: '2026-11-26T10:00:30.000Z',
      }),
    );
  }
  for (const r of reports) {
    const posted = await d.call('POST', '/api/v1/reports', host, r);
    expect(posted.status, JSON.stringify(posted.json)).toBe(201);
  }
}
