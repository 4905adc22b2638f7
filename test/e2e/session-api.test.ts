import type { LightMyRequestResponse } from 'fastify';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createToken } from '../../src/admin/create-token.js';
import { openAlerts } from '../../src/server/alerts/alert-store.js';
import { SESSION_IDLE_MS, SESSION_MAX_MS } from '../../src/server/auth/session-store.js';
import type { Me } from '../../src/server/routes/focus.js';
import type { Session } from '../../src/server/routes/session.js';
import { BACKENDS, type BackendName, type TestApp, testApp } from '../support/catalog-backends.js';
import { addPerson, asBrowser, logIn, PASSWORD, sessionCookieOf } from '../support/dashboard-login.js';
import { stopSharedPostgres } from '../support/postgres.js';

afterAll(stopSharedPostgres);

const T0 = Date.parse('2026-05-01T00:00:00.000Z');
const EXTENSION = 'chrome-extension://abcdefghijklmnopabcdefghijklmnop';

const errorCode = (res: LightMyRequestResponse) => (res.json() as { error: { code: string } }).error.code;

describe.each<BackendName>(BACKENDS)('dashboard sessions on %s', (backend) => {
  let env: TestApp;
  let nowMs: number;
  let ids: { ada: number; vic: number; dis: number };

  beforeEach(async () => {
    nowMs = T0;
    env = await testApp(backend, { clock: () => new Date(nowMs) });
    ids = {
      ada: await addPerson(env.catalog, 'ada', 'operator', { createdAt: T0 }),
      vic: await addPerson(env.catalog, 'vic', 'viewer', { createdAt: T0 }),
      dis: await addPerson(env.catalog, 'dis', 'operator', { disabled: true, createdAt: T0 }),
    };
  });
  afterEach(async () => {
    await env.cleanup();
  });

  const login = (name: string, password: string) =>
    env.app.inject({ method: 'POST', url: '/api/v1/session', payload: { name, password } });

  it('logs in with the right password: the user, a CSRF token and a strict, HttpOnly cookie', async () => {
    const res = await login('ada', PASSWORD);
    expect(res.statusCode).toBe(200);
    const body = res.json() as Session;
    expect(body).toEqual({
      user: { id: ids.ada, name: 'ada', role: 'operator', locale: 'en-US', time_zone: 'UTC' },
      csrf_token: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
    });
    const setCookie = String(res.headers['set-cookie']);
    expect(setCookie).toMatch(/^ubackup_session=[A-Za-z0-9_-]{43};/);
    expect(setCookie).toContain('HttpOnly');
    expect(setCookie).toContain('SameSite=Strict');
    expect(setCookie).toContain('Path=/');
    expect(setCookie).not.toContain('Secure');
    // Only the hash of the secret is stored.
    const cookie = sessionCookieOf(res) ?? '';
    const stored = await env.catalog.db.selectFrom('sessions').selectAll().execute();
    expect(stored).toHaveLength(1);
    expect(stored[0]?.secret_hash).not.toContain(cookie);
    expect(stored[0]?.expires_at).toBe(T0 + SESSION_MAX_MS);
    const audit = await env.catalog.db
      .selectFrom('audit_log')
      .selectAll()
      .where('action', '=', 'session.login')
      .execute();
    expect(audit.map((a) => [a.actor, a.subject])).toEqual([['user:ada', 'user:ada']]);
  });

  it('answers a wrong password, an unknown user and a disabled user alike, and logs the failures without the password', async () => {
    for (const [name, password] of [
      ['ada', 'not the password'],
      ['nobody', PASSWORD],
      ['dis', PASSWORD],
    ] as const) {
      const res = await login(name, password);
      expect(res.statusCode, name).toBe(401);
      expect(res.json()).toEqual({ error: { code: 'bad_credentials', message: expect.any(String) } });
      expect(res.headers['set-cookie']).toBeUndefined();
    }
    const failures = await env.catalog.db
      .selectFrom('audit_log')
      .selectAll()
      .where('action', '=', 'session.login_failed')
      .orderBy('id')
      .execute();
    expect(failures.map((f) => f.subject)).toEqual(['user:ada', 'user:nobody', 'user:dis']);
    expect(failures.map((f) => JSON.parse(f.detail).reason)).toEqual([
      'wrong_password',
      'unknown_user',
      'disabled',
    ]);
    for (const f of failures) expect(Object.keys(JSON.parse(f.detail)).sort()).toEqual(['ip', 'reason']);
    for (const f of failures) expect(f.detail).not.toContain('not the password');
    for (const f of failures) expect(f.detail).not.toContain(PASSWORD);
    expect(await env.catalog.db.selectFrom('sessions').selectAll().execute()).toEqual([]);
  });

  it('refuses the 11th login attempt within a minute from one address with 429 rate_limited', async () => {
    for (let i = 0; i < 10; i++) expect((await login('ada', `wrong password ${i}`)).statusCode).toBe(401);
    const eleventh = await login('ada', PASSWORD);
    expect(eleventh.statusCode).toBe(429);
    expect(errorCode(eleventh)).toBe('rate_limited');
    expect(Number(eleventh.headers['retry-after'])).toBeGreaterThan(0);
    // Other routes are not limited.
    const me = await env.app.inject({
      method: 'GET',
      url: '/api/v1/me',
      headers: { authorization: `Bearer ${env.tokens.viewer}` },
    });
    expect(me.statusCode).toBe(200);
  });

  it('gives a reloaded page its session back, and says no_session without a live cookie', async () => {
    const browser = await logIn(env.app, 'ada');
    const again = await asBrowser(env.app, browser, { method: 'GET', url: '/api/v1/session' });
    expect(again.statusCode).toBe(200);
    expect((again.json() as Session).csrf_token).toBe(browser.csrf);
    const none = await env.app.inject({ method: 'GET', url: '/api/v1/session' });
    expect(none.statusCode).toBe(401);
    expect(errorCode(none)).toBe('no_session');
    const forged = await env.app.inject({
      method: 'GET',
      url: '/api/v1/session',
      cookies: { ubackup_session: 'x'.repeat(43) },
    });
    expect(errorCode(forged)).toBe('no_session');
  });

  it('takes the cookie on people routes, with the user as the principal', async () => {
    const browser = await logIn(env.app, 'ada');
    const me = await asBrowser(env.app, browser, { method: 'GET', url: '/api/v1/me' });
    expect(me.statusCode).toBe(200);
    expect(me.json()).toEqual({
      user: { id: ids.ada, name: 'ada', role: 'operator', locale: 'en-US', time_zone: 'UTC' },
      token: { id: 0, name: 'session', role: 'operator' },
    } satisfies Me);
    const noCookie = await env.app.inject({ method: 'GET', url: '/api/v1/me' });
    expect(noCookie.statusCode).toBe(401);
    expect(errorCode(noCookie)).toBe('unauthenticated');
  });

  it('needs X-CSRF-Token on writes made with the cookie, not on writes made with a Bearer token', async () => {
    const browser = await logIn(env.app, 'ada');
    const patch = { method: 'PATCH', url: '/api/v1/me', payload: { locale: 'zh-CN' } } as const;
    const without = await asBrowser(env.app, browser, patch, { csrf: null });
    expect(without.statusCode).toBe(403);
    expect(errorCode(without)).toBe('csrf_token_invalid');
    const wrong = await asBrowser(env.app, browser, patch, { csrf: `${browser.csrf.slice(0, -1)}x` });
    expect(errorCode(wrong)).toBe('csrf_token_invalid');
    const other = await logIn(env.app, 'vic');
    const othersToken = await asBrowser(env.app, browser, patch, { csrf: other.csrf });
    expect(errorCode(othersToken)).toBe('csrf_token_invalid');
    const users = await env.catalog.db
      .selectFrom('users')
      .select('locale')
      .where('id', '=', ids.ada)
      .executeTakeFirstOrThrow();
    expect(users.locale).toBe('en-US');

    const withToken = await asBrowser(env.app, browser, patch);
    expect(withToken.statusCode).toBe(200);
    expect((withToken.json() as Me).user?.locale).toBe('zh-CN');

    const personal = await createToken(
      env.catalog,
      { name: 'ada-script', role: 'operator', expiresAtMs: null, userName: 'ada' },
      T0,
    );
    const bearer = await env.app.inject({
      method: 'PATCH',
      url: '/api/v1/me',
      headers: { authorization: `Bearer ${personal}` },
      payload: { time_zone: 'Asia/Shanghai' },
    });
    expect(bearer.statusCode).toBe(200);
    expect((bearer.json() as Me).user).toMatchObject({ locale: 'zh-CN', time_zone: 'Asia/Shanghai' });
  });

  it('gives a session its user role: a viewer cannot acknowledge, an operator can, as user:<name>', async () => {
    const [alert] = await openAlerts(
      env.catalog.db,
      [{ type: 'overdue', subject: '111111/mysql/3306', gameId: '31', summary: 'late' }],
      T0,
    );
    const url = `/api/v1/alerts/${alert?.id}/acknowledge`;
    const viewer = await logIn(env.app, 'vic');
    const refused = await asBrowser(env.app, viewer, {
      method: 'POST',
      url,
      payload: { comment: 'looking' },
    });
    expect(refused.statusCode).toBe(403);
    expect(errorCode(refused)).toBe('forbidden');
    const operator = await logIn(env.app, 'ada');
    const done = await asBrowser(env.app, operator, { method: 'POST', url, payload: { comment: 'looking' } });
    expect(done.statusCode).toBe(200);
    expect(done.json()).toMatchObject({ state: 'acknowledged', acknowledged_by: 'user:ada' });
    const audit = await env.catalog.db
      .selectFrom('audit_log')
      .selectAll()
      .where('action', '=', 'alert.acknowledge')
      .execute();
    expect(audit.map((a) => a.actor)).toEqual(['user:ada']);
  });

  it('lets a Bearer header win over the cookie, and never takes node or enroll credentials from a cookie', async () => {
    const browser = await logIn(env.app, 'ada');
    const badBearer = await env.app.inject({
      method: 'GET',
      url: '/api/v1/me',
      cookies: { ubackup_session: browser.cookie },
      headers: { authorization: `Bearer ubt_${'x'.repeat(43)}` },
    });
    expect(badBearer.statusCode).toBe(401);
    const viaBearer = await env.app.inject({
      method: 'GET',
      url: '/api/v1/me',
      cookies: { ubackup_session: browser.cookie },
      headers: { authorization: `Bearer ${env.tokens.viewer}` },
    });
    expect((viaBearer.json() as Me).token.name).toBe('test-viewer');
    const heartbeat = await asBrowser(env.app, browser, {
      method: 'POST',
      url: '/api/v1/nodes/heartbeat',
      payload: {},
    });
    expect(heartbeat.statusCode).toBe(401);
    const enroll = await asBrowser(env.app, browser, {
      method: 'POST',
      url: '/api/v1/agents/enroll',
      payload: {},
    });
    expect(enroll.statusCode).toBe(401);
  });

  it('logs out: 204, the row is gone, the cookie is cleared and refused afterwards', async () => {
    const browser = await logIn(env.app, 'ada');
    const noCsrf = await asBrowser(
      env.app,
      browser,
      { method: 'DELETE', url: '/api/v1/session' },
      { csrf: null },
    );
    expect(noCsrf.statusCode).toBe(403);
    const out = await asBrowser(env.app, browser, { method: 'DELETE', url: '/api/v1/session' });
    expect(out.statusCode).toBe(204);
    const cleared = out.cookies.find((c) => c.name === 'ubackup_session');
    expect(cleared?.value).toBe('');
    expect(await env.catalog.db.selectFrom('sessions').selectAll().execute()).toEqual([]);
    const after = await asBrowser(env.app, browser, { method: 'GET', url: '/api/v1/me' });
    expect(after.statusCode).toBe(401);
    expect((await asBrowser(env.app, browser, { method: 'GET', url: '/api/v1/session' })).statusCode).toBe(
      401,
    );
    // Logging out without a session is not an error.
    expect((await env.app.inject({ method: 'DELETE', url: '/api/v1/session' })).statusCode).toBe(204);
  });

  it('ends a session after 12 h idle, renewing last_seen_at at most once a minute', async () => {
    const browser = await logIn(env.app, 'ada');
    const lastSeen = async () =>
      (await env.catalog.db.selectFrom('sessions').select('last_seen_at').executeTakeFirstOrThrow())
        .last_seen_at;
    nowMs = T0 + 59_000;
    expect((await asBrowser(env.app, browser, { method: 'GET', url: '/api/v1/me' })).statusCode).toBe(200);
    expect(Number(await lastSeen())).toBe(T0);
    nowMs = T0 + 60_000;
    expect((await asBrowser(env.app, browser, { method: 'GET', url: '/api/v1/me' })).statusCode).toBe(200);
    expect(Number(await lastSeen())).toBe(T0 + 60_000);
    nowMs = T0 + 60_000 + SESSION_IDLE_MS - 1;
    expect((await asBrowser(env.app, browser, { method: 'GET', url: '/api/v1/me' })).statusCode).toBe(200);
    nowMs += SESSION_IDLE_MS;
    const idle = await asBrowser(env.app, browser, { method: 'GET', url: '/api/v1/me' });
    expect(idle.statusCode).toBe(401);
    expect(await env.catalog.db.selectFrom('sessions').selectAll().execute()).toEqual([]);
  });

  it('ends a session 7 days after the login however busy it is', async () => {
    const browser = await logIn(env.app, 'ada');
    for (nowMs = T0; nowMs < T0 + SESSION_MAX_MS; nowMs += 6 * 3_600_000) {
      expect((await asBrowser(env.app, browser, { method: 'GET', url: '/api/v1/me' })).statusCode).toBe(200);
    }
    nowMs = T0 + SESSION_MAX_MS;
    expect((await asBrowser(env.app, browser, { method: 'GET', url: '/api/v1/me' })).statusCode).toBe(401);
  });

  it('ends the sessions of a user who is disabled, and refuses their personal tokens', async () => {
    const browser = await logIn(env.app, 'ada');
    const personal = await createToken(
      env.catalog,
      { name: 'ada-script', role: 'operator', expiresAtMs: null, userName: 'ada' },
      T0,
    );
    const admin = await env.app.inject({
      method: 'PATCH',
      url: `/api/v1/users/${ids.ada}`,
      headers: { authorization: `Bearer ${env.tokens.admin}` },
      payload: { disabled: true },
    });
    expect(admin.statusCode).toBe(200);
    expect((await asBrowser(env.app, browser, { method: 'GET', url: '/api/v1/me' })).statusCode).toBe(401);
    expect(await env.catalog.db.selectFrom('sessions').selectAll().execute()).toEqual([]);
    const withToken = await env.app.inject({
      method: 'GET',
      url: '/api/v1/me',
      headers: { authorization: `Bearer ${personal}` },
    });
    expect(withToken.statusCode).toBe(401);
  });

  it('describes the dashboard routes in the OpenAPI document', async () => {
    const res = await env.app.inject({ method: 'GET', url: '/api/v1/openapi.json' });
    expect(res.statusCode).toBe(200);
    const paths = Object.keys((res.json() as { paths: Record<string, unknown> }).paths);
    for (const path of [
      '/api/v1/session',
      '/api/v1/me',
      '/api/v1/me/tokens',
      '/api/v1/me/tokens/{id}',
      '/api/v1/users',
      '/api/v1/users/{id}',
      '/api/v1/audit',
      '/api/v1/overview',
      '/api/v1/clusters/summary',
    ]) {
      expect(paths, path).toContain(path);
    }
  });

  describe("the extension's origin", () => {
    it('answers preflights for chrome-extension origins with Authorization and Content-Type, without credentials', async () => {
      for (const url of [
        '/api/v1/alerts/summary',
        '/api/v1/alerts',
        '/api/v1/me',
        '/api/v1/alerts/7/acknowledge',
      ]) {
        const res = await env.app.inject({
          method: 'OPTIONS',
          url,
          headers: {
            origin: EXTENSION,
            'access-control-request-method': 'POST',
            'access-control-request-headers': 'authorization, content-type',
          },
        });
        expect(res.statusCode, url).toBe(204);
        expect(res.headers['access-control-allow-origin']).toBe(EXTENSION);
        expect(String(res.headers['access-control-allow-headers'])).toMatch(/Authorization/);
        expect(String(res.headers['access-control-allow-headers'])).toMatch(/Content-Type/);
        expect(String(res.headers['access-control-allow-methods'])).toMatch(/POST/);
        expect(res.headers['access-control-allow-credentials']).toBeUndefined();
      }
      const web = await env.app.inject({
        method: 'OPTIONS',
        url: '/api/v1/me',
        headers: { origin: 'https://evil.example' },
      });
      expect(web.headers['access-control-allow-origin']).toBeUndefined();
    });

    it('names the extension origin on answers to Bearer calls, and no other', async () => {
      const me = await env.app.inject({
        method: 'GET',
        url: '/api/v1/me',
        headers: { origin: EXTENSION, authorization: `Bearer ${env.tokens.viewer}` },
      });
      expect(me.statusCode).toBe(200);
      expect(me.headers['access-control-allow-origin']).toBe(EXTENSION);
      expect(me.headers['access-control-allow-credentials']).toBeUndefined();
      const web = await env.app.inject({
        method: 'GET',
        url: '/api/v1/me',
        headers: { origin: 'https://evil.example', authorization: `Bearer ${env.tokens.viewer}` },
      });
      expect(web.headers['access-control-allow-origin']).toBeUndefined();
    });
  });
});
