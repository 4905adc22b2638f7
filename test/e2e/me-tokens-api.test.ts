import type { LightMyRequestResponse } from 'fastify';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NewPersonalToken, PersonalToken } from '../../src/server/routes/me-tokens.js';
import { BACKENDS, type BackendName, type TestApp, testApp } from '../support/catalog-backends.js';
import { addPerson, asBrowser, type Browser, logIn } from '../support/dashboard-login.js';
import { stopSharedPostgres } from '../support/postgres.js';

afterAll(stopSharedPostgres);

const T0 = Date.parse('2026-05-01T00:00:00.000Z');

const errorCode = (res: LightMyRequestResponse) => (res.json() as { error: { code: string } }).error.code;

describe.each<BackendName>(BACKENDS)('personal API tokens on %s', (backend) => {
  let env: TestApp;
  let nowMs: number;
  let ada: Browser;
  let bob: Browser;

  beforeEach(async () => {
    nowMs = T0;
    env = await testApp(backend, { clock: () => new Date(nowMs) });
    await addPerson(env.catalog, 'ada', 'operator');
    await addPerson(env.catalog, 'bob', 'viewer');
    ada = await logIn(env.app, 'ada');
    bob = await logIn(env.app, 'bob');
  });
  afterEach(async () => {
    await env.cleanup();
  });

  const create = (who: Browser, payload: object) =>
    asBrowser(env.app, who, { method: 'POST', url: '/api/v1/me/tokens', payload });
  const bearerMe = (token: string) =>
    env.app.inject({ method: 'GET', url: '/api/v1/me', headers: { authorization: `Bearer ${token}` } });

  it("creates a token with the user's role, shows its secret once, and the secret works as a Bearer token", async () => {
    const res = await create(ada, { name: 'laptop', expires_in_days: 30 });
    expect(res.statusCode).toBe(201);
    const made = res.json() as NewPersonalToken;
    expect(made).toEqual({
      id: expect.any(Number),
      name: 'laptop',
      role: 'operator',
      created_at: '2026-05-01T00:00:00.000Z',
      expires_at: '2026-05-31T00:00:00.000Z',
      token: expect.stringMatching(/^ubt_[A-Za-z0-9_-]{43}$/),
    });
    const stored = await env.catalog.db
      .selectFrom('tokens')
      .select('token_hash')
      .where('id', '=', made.id)
      .executeTakeFirstOrThrow();
    expect(stored.token_hash).not.toContain(made.token.slice(4));
    const me = await bearerMe(made.token);
    expect(me.statusCode).toBe(200);
    expect(me.json()).toMatchObject({
      user: { name: 'ada' },
      token: { id: made.id, name: 'laptop', role: 'operator' },
    });

    const list = await asBrowser(env.app, ada, { method: 'GET', url: '/api/v1/me/tokens' });
    expect(list.json()).toEqual({
      items: [
        {
          id: made.id,
          name: 'laptop',
          role: 'operator',
          created_at: '2026-05-01T00:00:00.000Z',
          expires_at: '2026-05-31T00:00:00.000Z',
          last_used_at: '2026-05-01T00:00:00.000Z',
        },
      ] satisfies PersonalToken[],
    });
    expect(JSON.stringify(list.json())).not.toContain(made.token);
    expect((await asBrowser(env.app, bob, { method: 'GET', url: '/api/v1/me/tokens' })).json()).toEqual({
      items: [],
    });
    const audit = await env.catalog.db
      .selectFrom('audit_log')
      .select(['actor', 'subject'])
      .where('action', '=', 'token.create')
      .where('actor', '!=', 'admin-cli')
      .execute();
    expect(audit).toEqual([{ actor: 'user:ada', subject: 'token:laptop' }]);
  });

  it('expires a token after its days', async () => {
    const made = (await create(bob, { name: 'day', expires_in_days: 1 })).json() as NewPersonalToken;
    expect(made.role).toBe('viewer');
    nowMs = T0 + 86_400_000 - 1;
    expect((await bearerMe(made.token)).statusCode).toBe(200);
    // Past the expiry and past the principal cache's few seconds.
    nowMs = T0 + 86_400_000 + 20_000;
    expect((await bearerMe(made.token)).statusCode).toBe(401);
  });

  it('revokes only the caller’s own tokens: revoked ones are refused at once and leave the list', async () => {
    const mine = (await create(ada, { name: 'ci' })).json() as NewPersonalToken;
    expect(mine.expires_at).toBeNull();
    expect((await bearerMe(mine.token)).statusCode).toBe(200);
    const theirs = await asBrowser(env.app, bob, { method: 'DELETE', url: `/api/v1/me/tokens/${mine.id}` });
    expect(theirs.statusCode).toBe(404);
    expect(errorCode(theirs)).toBe('not_found');
    const noCsrf = await asBrowser(
      env.app,
      ada,
      { method: 'DELETE', url: `/api/v1/me/tokens/${mine.id}` },
      { csrf: null },
    );
    expect(noCsrf.statusCode).toBe(403);
    const gone = await asBrowser(env.app, ada, { method: 'DELETE', url: `/api/v1/me/tokens/${mine.id}` });
    expect(gone.statusCode).toBe(204);
    expect((await bearerMe(mine.token)).statusCode).toBe(401);
    expect((await asBrowser(env.app, ada, { method: 'GET', url: '/api/v1/me/tokens' })).json()).toEqual({
      items: [],
    });
    expect(
      (await asBrowser(env.app, ada, { method: 'DELETE', url: `/api/v1/me/tokens/${mine.id}` })).statusCode,
    ).toBe(404);
    const audit = await env.catalog.db
      .selectFrom('audit_log')
      .select(['actor', 'subject'])
      .where('action', '=', 'token.revoke')
      .execute();
    expect(audit).toEqual([{ actor: 'user:ada', subject: 'token:ci' }]);
  });

  it('works with a personal token too, refuses service tokens (403) and bad input (400)', async () => {
    const first = (await create(ada, { name: 'first' })).json() as NewPersonalToken;
    const viaToken = await env.app.inject({
      method: 'POST',
      url: '/api/v1/me/tokens',
      headers: { authorization: `Bearer ${first.token}` },
      payload: { name: 'second' },
    });
    expect(viaToken.statusCode).toBe(201);
    const service = await env.app.inject({
      method: 'GET',
      url: '/api/v1/me/tokens',
      headers: { authorization: `Bearer ${env.tokens.admin}` },
    });
    expect(service.statusCode).toBe(403);
    expect(errorCode(service)).toBe('needs_user');
    const servicePatch = await env.app.inject({
      method: 'PATCH',
      url: '/api/v1/me',
      headers: { authorization: `Bearer ${env.tokens.admin}` },
      payload: { locale: 'zh-CN' },
    });
    expect(servicePatch.statusCode).toBe(403);
    for (const payload of [
      { name: '' },
      { name: 'x', expires_in_days: 0 },
      { name: 'x', expires_in_days: 3651 },
      { name: 'x', role: 'admin' },
    ]) {
      const res = await create(ada, payload);
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
    }
    expect((await create(ada, { name: 'long', expires_in_days: 3650 })).statusCode).toBe(201);
  });

  it('validates PATCH /api/v1/me: a known locale and an IANA time zone', async () => {
    const patch = (payload: object) =>
      asBrowser(env.app, ada, { method: 'PATCH', url: '/api/v1/me', payload });
    expect((await patch({ locale: 'fr-FR' })).statusCode).toBe(400);
    expect((await patch({ time_zone: 'Mars/Base' })).statusCode).toBe(400);
    expect((await patch({ time_zone: '+08:00' })).statusCode).toBe(400);
    const ok = await patch({ locale: 'zh-CN', time_zone: 'Asia/Shanghai' });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ user: { name: 'ada', locale: 'zh-CN', time_zone: 'Asia/Shanghai' } });
    const session = await asBrowser(env.app, ada, { method: 'GET', url: '/api/v1/session' });
    expect(session.json()).toMatchObject({ user: { locale: 'zh-CN', time_zone: 'Asia/Shanghai' } });
  });
});
