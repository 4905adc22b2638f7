import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CatalogLocation } from '../../src/catalog/catalog-url.js';
import { openCatalog } from '../../src/catalog/database.js';
import { hashSecret } from '../../src/server/auth/secret.js';
import { runCli, startCli } from '../support/cli-process.js';
import { freePort } from '../support/free-port.js';
import { sharedPostgres, stopSharedPostgres } from '../support/postgres.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait-for.js';

afterAll(stopSharedPostgres);

describe.each(['sqlite', 'postgres'] as const)('ubackup server and admin commands (%s)', (backend) => {
  let dir: TempDir;
  let dbArgs: string[];
  let location: CatalogLocation;

  beforeEach(async () => {
    dir = await makeTempDir('ubackup-cli');
    if (backend === 'postgres') {
      const url = await (await sharedPostgres()).createDatabase();
      dbArgs = ['--db', url];
      location = { dialect: 'postgres', url };
    } else {
      dbArgs = [];
      location = { dialect: 'sqlite', path: join(dir.path, 'catalog.db') };
    }
  });
  afterEach(async () => {
    await dir.cleanup();
  });

  it('migrates once, then reports the catalog up to date', async () => {
    const first = await runCli(['admin', 'migrate', '--data-dir', dir.path, ...dbArgs]);
    expect(first).toMatchObject({ code: 0, stderr: 'applied: 0001-initial\n' });
    const second = await runCli(['admin', 'migrate', '--data-dir', dir.path, ...dbArgs]);
    expect(second).toMatchObject({ code: 0, stderr: 'catalog is up to date\n' });
  });

  it('creates users with argon2id passwords and refuses bad input', async () => {
    const short = join(dir.path, 'short');
    await writeFile(short, 'tooshort\n');
    const refused = await runCli([
      'admin',
      'user',
      'create',
      '--name',
      'ops',
      '--role',
      'admin',
      '--password-file',
      short,
      '--data-dir',
      dir.path,
      ...dbArgs,
    ]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('at least 10 characters');

    const good = join(dir.path, 'good');
    await writeFile(good, 'correct horse battery staple\n');
    const args = [
      'admin',
      'user',
      'create',
      '--name',
      'ops',
      '--role',
      'operator',
      '--password-file',
      good,
      '--data-dir',
      dir.path,
      ...dbArgs,
    ];
    expect((await runCli(args)).code).toBe(0);
    const again = await runCli(args);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('user "ops" already exists');
    const badRole = await runCli([
      'admin',
      'user',
      'create',
      '--name',
      'x',
      '--role',
      'root',
      '--password-file',
      good,
      '--data-dir',
      dir.path,
      ...dbArgs,
    ]);
    expect(badRole.stderr).toContain('--role must be admin, operator or viewer');

    const catalog = openCatalog(location);
    try {
      const users = await catalog.db.selectFrom('users').select(['name', 'role', 'password_hash']).execute();
      expect(users).toHaveLength(1);
      expect(users[0]).toMatchObject({ name: 'ops', role: 'operator' });
      expect(users[0]?.password_hash).toMatch(/^\$argon2id\$/);
      expect(users[0]?.password_hash).not.toContain('correct horse');
      const audit = await catalog.db.selectFrom('audit_log').select(['action', 'subject']).execute();
      expect(audit).toContainEqual({ action: 'user.create', subject: 'user:ops' });
    } finally {
      await catalog.close();
    }
  });

  it('prints only the token on stdout and stores only its hash', async () => {
    const created = await runCli([
      'admin',
      'token',
      'create',
      '--role',
      'viewer',
      '--name',
      'grafana',
      '--data-dir',
      dir.path,
      ...dbArgs,
    ]);
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/^ubt_[A-Za-z0-9_-]{43}\n$/);
    const token = created.stdout.trim();
    const catalog = openCatalog(location);
    try {
      const rows = await catalog.db.selectFrom('tokens').select(['name', 'role', 'token_hash']).execute();
      expect(rows).toEqual([{ name: 'grafana', role: 'viewer', token_hash: hashSecret(token) }]);
    } finally {
      await catalog.close();
    }
    const bad = await runCli([
      'admin',
      'token',
      'create',
      '--role',
      'superuser',
      '--name',
      'x',
      '--data-dir',
      dir.path,
      ...dbArgs,
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toContain('--role must be enroll, admin, operator or viewer');
  });

  it('takes its settings from UBACKUP_* variables, serves health and OpenAPI, and stops cleanly on SIGTERM', async () => {
    const port = await freePort();
    const env: NodeJS.ProcessEnv = { UBACKUP_LISTEN: `127.0.0.1:${port}`, UBACKUP_DATA_DIR: dir.path };
    if (backend === 'postgres') env.UBACKUP_DB = dbArgs[1];
    const server = startCli(['server'], env);
    try {
      const url = `http://127.0.0.1:${port}`;
      const health = await waitFor(
        async () => {
          const res = await fetch(`${url}/healthz`).catch(() => null);
          return res?.ok ? res.json() : null;
        },
        { timeoutMs: 30_000, what: 'healthz' },
      );
      expect(health).toMatchObject({ status: 'ok', catalog: backend });
      const openapi = (await (await fetch(`${url}/api/v1/openapi.json`)).json()) as {
        paths: Record<string, unknown>;
      };
      for (const path of [
        '/api/v1/reports',
        '/api/v1/agents/enroll',
        '/api/v1/backups',
        '/api/v1/instances',
        '/api/v1/instances/import',
      ]) {
        expect(Object.keys(openapi.paths)).toContain(path);
      }
      const anonymous = await fetch(`${url}/api/v1/instances`);
      expect(anonymous.status).toBe(401);
      expect(await anonymous.json()).toEqual({
        error: { code: 'unauthenticated', message: 'send "Authorization: Bearer <token>"' },
      });
      const unknown = await fetch(`${url}/api/v1/nothing`);
      expect(unknown.status).toBe(404);
    } finally {
      expect(await server.stop('SIGTERM')).toBe(0);
    }
    expect(server.output()).toContain('shutting down');
  });

  it('refuses bad settings with exit status 2 and a precise message', async () => {
    const badDb = await runCli(['server', '--data-dir', dir.path, '--db', 'mysql://x']);
    expect(badDb.code).toBe(2);
    expect(badDb.stderr).toContain('--db must start with sqlite: or postgres://');
    const badListen = await runCli(['server', '--data-dir', dir.path, '--listen', 'localhost']);
    expect(badListen.code).toBe(2);
    expect(badListen.stderr).toContain('--listen (UBACKUP_LISTEN)');
    const badPolicy = await runCli(['server', '--data-dir', dir.path, '--illegal-policy', 'maybe']);
    expect(badPolicy.stderr).toContain('--illegal-policy (UBACKUP_ILLEGAL_POLICY) must be accept or reject');
  });
});
