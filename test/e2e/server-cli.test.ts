import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CatalogLocation } from '../../src/catalog/catalog-url.js';
import { catalogMigrations } from '../../src/catalog/migrations/index.js';
import { hashSecret } from '../../src/server/auth/secret.js';
import { runCli, startCli } from '../support/cli-process.js';
import { freePort } from '../support/free-port.js';
import { stopSharedPostgres } from '../support/postgres.js';
import { processCatalog, readCatalog } from '../support/process-catalog.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait-for.js';

afterAll(stopSharedPostgres);

describe.each(['sqlite', 'postgres'] as const)('ubackup server and admin commands (%s)', (backend) => {
  let dir: TempDir;
  let dbArgs: string[];
  let dataDir: string;
  let location: CatalogLocation;

  beforeEach(async () => {
    dir = await makeTempDir('ubackup-cli');
    const pc = await processCatalog(backend, dir.path);
    ({ dbArgs, dataDir, location } = pc);
  });
  afterEach(async () => {
    await dir.cleanup();
  });

  it('migrates once, then reports the catalog up to date', async () => {
    const first = await runCli(['admin', 'migrate', '--data-dir', dataDir, ...dbArgs]);
    const every = Object.keys(catalogMigrations(backend)).sort();
    expect(every[0]).toBe('0001-initial');
    expect(first).toMatchObject({ code: 0, stderr: `applied: ${every.join(', ')}\n` });
    const second = await runCli(['admin', 'migrate', '--data-dir', dataDir, ...dbArgs]);
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
      dataDir,
      ...dbArgs,
    ]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('at least 12 characters');

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
      dataDir,
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
      dataDir,
      ...dbArgs,
    ]);
    expect(badRole.stderr).toContain('role must be admin, operator or viewer');

    await readCatalog(location, async (catalog) => {
      const users = await catalog.db.selectFrom('users').select(['name', 'role', 'password_hash']).execute();
      expect(users).toHaveLength(1);
      expect(users[0]).toMatchObject({ name: 'ops', role: 'operator' });
      expect(users[0]?.password_hash).toMatch(/^\$argon2id\$/);
      expect(users[0]?.password_hash).not.toContain('correct horse');
      const audit = await catalog.db.selectFrom('audit_log').select(['action', 'subject']).execute();
      expect(audit).toContainEqual({ action: 'user.create', subject: 'user:ops' });
    });
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
      dataDir,
      ...dbArgs,
    ]);
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/^ubt_[A-Za-z0-9_-]{43}\n$/);
    const token = created.stdout.trim();
    const rows = await readCatalog(location, (catalog) =>
      catalog.db.selectFrom('tokens').select(['name', 'role', 'token_hash']).execute(),
    );
    expect(rows).toEqual([{ name: 'grafana', role: 'viewer', token_hash: hashSecret(token) }]);
    const bad = await runCli([
      'admin',
      'token',
      'create',
      '--role',
      'superuser',
      '--name',
      'x',
      '--data-dir',
      dataDir,
      ...dbArgs,
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toContain('--role must be enroll, admin, operator or viewer');
  });

  it("lists and revokes tokens, and keeps a person's token within the person's role", async () => {
    const create = (role: string, name: string, extra: string[] = []) =>
      runCli([
        'admin',
        'token',
        'create',
        '--role',
        role,
        '--name',
        name,
        ...extra,
        '--data-dir',
        dataDir,
        ...dbArgs,
      ]);
    expect((await create('viewer', 'dash')).code).toBe(0);
    expect((await create('enroll', 'fleet')).code).toBe(0);
    const pw = join(dir.path, 'pw');
    await writeFile(pw, 'a long enough password');
    const user = ['admin', 'user', 'create', '--name', 'eve', '--role', 'viewer', '--password-file', pw];
    expect((await runCli([...user, '--data-dir', dataDir, ...dbArgs])).code).toBe(0);
    const escalate = await create('admin', 'eve-admin', ['--user', 'eve']);
    expect(escalate.code).toBe(2);
    expect(escalate.stderr).toContain('--user eve is viewer: a token of theirs cannot be admin');
    expect((await create('viewer', 'eve-dash', ['--user', 'eve'])).code).toBe(0);

    const listed = await runCli(['admin', 'token', 'list', '--data-dir', dataDir, ...dbArgs]);
    expect(listed.code).toBe(0);
    const rows = listed.stdout
      .trim()
      .split('\n')
      .map((line) => line.split('\t'));
    expect(rows.map((r) => [r[1], r[2], r[3], r[5]])).toEqual([
      ['dash', 'viewer', '-', 'live'],
      ['fleet', 'enroll', '-', 'live'],
      ['eve-dash', 'viewer', 'eve', 'live'],
    ]);
    expect(listed.stdout).not.toContain('ubt_');

    const revoke = await runCli([
      'admin',
      'token',
      'revoke',
      '--name',
      'fleet',
      '--data-dir',
      dataDir,
      ...dbArgs,
    ]);
    expect(revoke).toMatchObject({ code: 0, stderr: 'revoked 1 token(s)\n' });
    const twice = await runCli([
      'admin',
      'token',
      'revoke',
      '--name',
      'fleet',
      '--data-dir',
      dataDir,
      ...dbArgs,
    ]);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toContain('no live token named "fleet"');
    const after = await runCli(['admin', 'token', 'list', '--data-dir', dataDir, ...dbArgs]);
    expect(after.stdout).toMatch(/\tfleet\tenroll\t-\t[^\t]+\trevoked 20/);
  });

  it('resets an enrolled host, and says so when there is none', async () => {
    const missing = await runCli([
      'admin',
      'host',
      'reset',
      '--server-id',
      '404',
      '--data-dir',
      dataDir,
      ...dbArgs,
    ]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('no host with server_id 404 has enrolled');
  });

  it('takes its settings from UBACKUP_* variables, serves health and OpenAPI, and stops cleanly on SIGTERM', async () => {
    const port = await freePort();
    const env: NodeJS.ProcessEnv = { UBACKUP_LISTEN: `127.0.0.1:${port}`, UBACKUP_DATA_DIR: dataDir };
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
    const badDb = await runCli(['server', '--data-dir', dataDir, '--db', 'mysql://x']);
    expect(badDb.code).toBe(2);
    expect(badDb.stderr).toContain('--db must start with sqlite: or postgres://');
    const badListen = await runCli(['server', '--data-dir', dataDir, '--listen', 'localhost']);
    expect(badListen.code).toBe(2);
    expect(badListen.stderr).toContain('--listen (UBACKUP_LISTEN)');
    const badPolicy = await runCli(['server', '--data-dir', dataDir, '--illegal-policy', 'maybe']);
    expect(badPolicy.stderr).toContain('--illegal-policy (UBACKUP_ILLEGAL_POLICY) must be accept or reject');
  });
});
