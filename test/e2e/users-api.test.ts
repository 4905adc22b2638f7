import type { LightMyRequestResponse } from 'fastify';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createToken } from '../../src/admin/create-token.js';
import type { User } from '../../src/server/routes/users.js';
import { BACKENDS, type BackendName, type TestApp, testApp } from '../support/catalog-backends.js';
import { addPerson, asBrowser, logIn, PASSWORD } from '../support/dashboard-login.js';
import { stopSharedPostgres } from '../support/postgres.js';

afterAll(stopSharedPostgres);

const T0 = Date.parse('2026-05-01T00:00:00.000Z');

interface Page<T> {
  items: T[];
  total: number;
  page: number;
  page_size: number;
}

const errorCode = (res: LightMyRequestResponse) => (res.json() as { error: { code: string } }).error.code;

describe.each<BackendName>(BACKENDS)('users API on %s', (backend) => {
  let env: TestApp;
  let rootId: number;

  beforeEach(async () => {
    env = await testApp(backend, { clock: () => new Date(T0) });
    rootId = await addPerson(env.catalog, 'root', 'admin', { createdAt: T0 });
  });
  afterEach(async () => {
    await env.cleanup();
  });

  const asAdmin = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
    env.app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${env.tokens.admin}` },
      ...(payload ? { payload } : {}),
    });

  it('creates, lists, changes and deletes users, and audits each', async () => {
    const created = await asAdmin('POST', '/api/v1/users', {
      name: 'ops',
      password: 'twelve chars',
      role: 'operator',
    });
    expect(created.statusCode).toBe(201);
    const ops = created.json() as User;
    expect(ops).toEqual({
      id: expect.any(Number),
      name: 'ops',
      role: 'operator',
      disabled: false,
      locale: 'en-US',
      created_at: '2026-05-01T00:00:00.000Z',
    });
    await logIn(env.app, 'ops', 'twelve chars');

    const page = (await asAdmin('GET', '/api/v1/users?page_size=10')).json() as Page<User>;
    expect(page).toMatchObject({ total: 2, page: 1, page_size: 10 });
    expect(page.items.map((u) => u.name)).toEqual(['ops', 'root']);
    const second = (await asAdmin('GET', '/api/v1/users?page=2&page_size=10')).json() as Page<User>;
    expect(second.items).toEqual([]);

    const changed = await asAdmin('PATCH', `/api/v1/users/${ops.id}`, {
      role: 'viewer',
      password: 'another password',
    });
    expect(changed.statusCode).toBe(200);
    expect(changed.json()).toMatchObject({ id: ops.id, role: 'viewer', disabled: false });
    expect(
      (
        await env.app.inject({
          method: 'POST',
          url: '/api/v1/session',
          payload: { name: 'ops', password: 'twelve chars' },
        })
      ).statusCode,
    ).toBe(401);
    await logIn(env.app, 'ops', 'another password');

    expect((await asAdmin('DELETE', `/api/v1/users/${ops.id}`)).statusCode).toBe(204);
    expect((await asAdmin('DELETE', `/api/v1/users/${ops.id}`)).statusCode).toBe(404);
    expect((await asAdmin('PATCH', `/api/v1/users/${ops.id}`, { disabled: true })).statusCode).toBe(404);

    const audit = await env.catalog.db
      .selectFrom('audit_log')
      .select(['actor', 'action', 'subject'])
      .where('action', 'like', 'user.%')
      .orderBy('id')
      .execute();
    expect(audit).toEqual([
      { actor: 'token:test-admin', action: 'user.create', subject: 'user:ops' },
      { actor: 'token:test-admin', action: 'user.update', subject: 'user:ops' },
      { actor: 'token:test-admin', action: 'user.delete', subject: 'user:ops' },
    ]);
  });

  it('refuses bad input with the CLI validation and a taken name with 409 user_exists', async () => {
    const short = await asAdmin('POST', '/api/v1/users', {
      name: 'ops',
      password: 'eleven char',
      role: 'viewer',
    });
    expect(short.statusCode).toBe(400);
    expect(short.json()).toEqual({
      error: { code: 'invalid_request', message: 'the password must have at least 12 characters' },
    });
    const badName = await asAdmin('POST', '/api/v1/users', {
      name: 'a b',
      password: PASSWORD,
      role: 'viewer',
    });
    expect(errorCode(badName)).toBe('invalid_request');
    const badRole = await asAdmin('POST', '/api/v1/users', { name: 'ops', password: PASSWORD, role: 'root' });
    expect(errorCode(badRole)).toBe('invalid_request');
    const taken = await asAdmin('POST', '/api/v1/users', {
      name: 'root',
      password: PASSWORD,
      role: 'viewer',
    });
    expect(taken.statusCode).toBe(409);
    expect(errorCode(taken)).toBe('user_exists');
    const badPatch = await asAdmin('PATCH', `/api/v1/users/${rootId}`, { password: 'short' });
    expect(errorCode(badPatch)).toBe('invalid_request');
  });

  it('is for admins only, by token or by session (with its CSRF token)', async () => {
    for (const role of ['operator', 'viewer'] as const) {
      const res = await env.app.inject({
        method: 'GET',
        url: '/api/v1/users',
        headers: { authorization: `Bearer ${env.tokens[role]}` },
      });
      expect(res.statusCode).toBe(403);
    }
    await addPerson(env.catalog, 'op', 'operator');
    const op = await logIn(env.app, 'op');
    expect((await asBrowser(env.app, op, { method: 'GET', url: '/api/v1/users' })).statusCode).toBe(403);
    const root = await logIn(env.app, 'root');
    expect((await asBrowser(env.app, root, { method: 'GET', url: '/api/v1/users' })).statusCode).toBe(200);
    const create = {
      method: 'POST',
      url: '/api/v1/users',
      payload: { name: 'new', password: PASSWORD, role: 'viewer' },
    } as const;
    expect((await asBrowser(env.app, root, create, { csrf: null })).statusCode).toBe(403);
    const made = await asBrowser(env.app, root, create);
    expect(made.statusCode).toBe(201);
    const audit = await env.catalog.db
      .selectFrom('audit_log')
      .select('actor')
      .where('action', '=', 'user.create')
      .execute();
    expect(audit).toEqual([{ actor: 'user:root' }]);
  });

  it('never removes, disables or demotes the last enabled admin', async () => {
    for (const [method, payload] of [
      ['PATCH', { role: 'operator' }],
      ['PATCH', { disabled: true }],
      ['DELETE', undefined],
    ] as const) {
      const res = await asAdmin(method, `/api/v1/users/${rootId}`, payload);
      expect(res.statusCode, `${method} ${JSON.stringify(payload)}`).toBe(409);
      expect(errorCode(res)).toBe('last_admin');
    }
    // A disabled admin does not count.
    const other = await addPerson(env.catalog, 'root2', 'admin', { disabled: true });
    expect(errorCode(await asAdmin('DELETE', `/api/v1/users/${rootId}`))).toBe('last_admin');
    // Once another admin is enabled, either may go.
    expect((await asAdmin('PATCH', `/api/v1/users/${other}`, { disabled: false })).statusCode).toBe(200);
    expect((await asAdmin('PATCH', `/api/v1/users/${rootId}`, { role: 'viewer' })).statusCode).toBe(200);
    expect(errorCode(await asAdmin('DELETE', `/api/v1/users/${other}`))).toBe('last_admin');
    // Changes that keep an admin are fine, e.g. the last admin's own password.
    expect(
      (await asAdmin('PATCH', `/api/v1/users/${other}`, { password: 'a new long password' })).statusCode,
    ).toBe(200);
    const row = await env.catalog.db
      .selectFrom('users')
      .select(['role', 'disabled'])
      .where('id', '=', rootId)
      .executeTakeFirstOrThrow();
    expect(row).toEqual({ role: 'viewer', disabled: 0 });
  });

  it('takes the sessions and tokens of a deleted user with it', async () => {
    const id = await addPerson(env.catalog, 'gone', 'operator');
    const browser = await logIn(env.app, 'gone');
    const token = await createToken(
      env.catalog,
      { name: 'gone-script', role: 'operator', expiresAtMs: null, userName: 'gone' },
      T0,
    );
    await env.catalog.db.insertInto('user_focus').values({ user_id: id, game_id: '31' }).execute();
    expect(
      (
        await env.app.inject({
          method: 'GET',
          url: '/api/v1/me',
          headers: { authorization: `Bearer ${token}` },
        })
      ).statusCode,
    ).toBe(200);
    expect((await asAdmin('DELETE', `/api/v1/users/${id}`)).statusCode).toBe(204);
    expect((await asBrowser(env.app, browser, { method: 'GET', url: '/api/v1/me' })).statusCode).toBe(401);
    expect(
      (
        await env.app.inject({
          method: 'GET',
          url: '/api/v1/me',
          headers: { authorization: `Bearer ${token}` },
        })
      ).statusCode,
    ).toBe(401);
    expect(
      await env.catalog.db.selectFrom('sessions').selectAll().where('user_id', '=', id).execute(),
    ).toEqual([]);
    expect(await env.catalog.db.selectFrom('tokens').selectAll().where('user_id', '=', id).execute()).toEqual(
      [],
    );
  });

  it('lowers what a demoted user and their tokens may do at once', async () => {
    const id = await addPerson(env.catalog, 'op', 'operator');
    const browser = await logIn(env.app, 'op');
    const token = await createToken(
      env.catalog,
      { name: 'op-script', role: 'operator', expiresAtMs: null, userName: 'op' },
      T0,
    );
    expect(
      (
        await env.app.inject({
          method: 'GET',
          url: '/api/v1/audit',
          headers: { authorization: `Bearer ${token}` },
        })
      ).statusCode,
    ).toBe(200);
    expect((await asAdmin('PATCH', `/api/v1/users/${id}`, { role: 'viewer' })).statusCode).toBe(200);
    expect(
      (
        await env.app.inject({
          method: 'GET',
          url: '/api/v1/audit',
          headers: { authorization: `Bearer ${token}` },
        })
      ).statusCode,
    ).toBe(403);
    expect((await asBrowser(env.app, browser, { method: 'GET', url: '/api/v1/audit' })).statusCode).toBe(403);
    expect((await asBrowser(env.app, browser, { method: 'GET', url: '/api/v1/me' })).json()).toMatchObject({
      user: { role: 'viewer' },
    });
  });
});
