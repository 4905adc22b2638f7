import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { recordAudit } from '../../src/server/audit.js';
import type { AuditEntry } from '../../src/server/routes/audit-log.js';
import { BACKENDS, type BackendName, type TestApp, testApp } from '../support/catalog-backends.js';
import { addPerson, asBrowser, logIn } from '../support/dashboard-login.js';
import { stopSharedPostgres } from '../support/postgres.js';

afterAll(stopSharedPostgres);

const T0 = Date.parse('2026-05-01T00:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();

interface Page<T> {
  items: T[];
  total: number;
  page: number;
  page_size: number;
}

describe.each<BackendName>(BACKENDS)('audit log API on %s', (backend) => {
  let env: TestApp;

  beforeEach(async () => {
    env = await testApp(backend, { clock: () => new Date(T0 + 3_600_000) });
    // testApp's own token creation is in the log too: start from an empty one.
    await env.catalog.db.deleteFrom('audit_log').execute();
    const entries = [
      {
        at: T0 + 1000,
        actor: 'user:ada',
        action: 'alert.acknowledge',
        subject: 'alert:1',
        detail: { comment: 'mine' },
      },
      { at: T0 + 2000, actor: 'token:ci', action: 'instance.create', subject: 'instance:111/mysql/3306' },
      {
        at: T0 + 3000,
        actor: 'user:ada',
        action: 'alert.resolve',
        subject: 'alert:1',
        detail: { comment: null },
      },
      { at: T0 + 4000, actor: 'user:bob', action: 'alerts.muted', subject: 'alert:2' },
      {
        at: T0 + 5000,
        actor: 'system',
        action: 'retention.apply',
        subject: 'cluster:default',
        detail: { requested: 3 },
      },
    ];
    for (const e of entries) await recordAudit(env.catalog.db, e);
  });
  afterEach(async () => {
    await env.cleanup();
  });

  const get = async (query: string, as: 'operator' | 'admin' = 'operator') => {
    const res = await env.app.inject({
      method: 'GET',
      url: `/api/v1/audit${query}`,
      headers: { authorization: `Bearer ${env.tokens[as]}` },
    });
    expect(res.statusCode, res.body).toBe(200);
    return res.json() as Page<AuditEntry>;
  };

  it('lists newest first with ISO times and parsed details', async () => {
    const page = await get('');
    expect(page).toMatchObject({ total: 5, page: 1, page_size: 50 });
    expect(page.items.map((e) => e.action)).toEqual([
      'retention.apply',
      'alerts.muted',
      'alert.resolve',
      'instance.create',
      'alert.acknowledge',
    ]);
    expect(page.items[0]).toEqual({
      id: expect.any(Number),
      at: iso(T0 + 5000),
      actor: 'system',
      action: 'retention.apply',
      subject: 'cluster:default',
      detail: { requested: 3 },
    });
    expect(page.items[3]?.detail).toEqual({});
    const second = await get('?page=2&page_size=10');
    expect(second.items).toEqual([]);
    expect(second.total).toBe(5);
  });

  it('filters by actor, subject, an action or an action prefix, and a time range', async () => {
    const actions = async (query: string) => (await get(query)).items.map((e) => e.action);
    expect(await actions('?actor=user:ada')).toEqual(['alert.resolve', 'alert.acknowledge']);
    expect(await actions('?subject=alert:2')).toEqual(['alerts.muted']);
    // A prefix ends in a dot: `alert.` is not `alerts.`.
    expect(await actions('?action=alert.')).toEqual(['alert.resolve', 'alert.acknowledge']);
    expect(await actions('?action=alert')).toEqual([]);
    expect(await actions('?action=alert.resolve')).toEqual(['alert.resolve']);
    const since = encodeURIComponent(iso(T0 + 2000));
    const until = encodeURIComponent(iso(T0 + 4000));
    expect(await actions(`?since=${since}&until=${until}`)).toEqual(['alert.resolve', 'instance.create']);
    const both = await get(`?actor=user:ada&action=alert.&since=${encodeURIComponent(iso(T0 + 1500))}`);
    expect(both.total).toBe(1);
  });

  it('is for operators and admins, by token or session; viewers get 403', async () => {
    await get('', 'admin');
    const viewer = await env.app.inject({
      method: 'GET',
      url: '/api/v1/audit',
      headers: { authorization: `Bearer ${env.tokens.viewer}` },
    });
    expect(viewer.statusCode).toBe(403);
    await addPerson(env.catalog, 'vic', 'viewer');
    await addPerson(env.catalog, 'ops', 'operator');
    const vic = await logIn(env.app, 'vic');
    expect((await asBrowser(env.app, vic, { method: 'GET', url: '/api/v1/audit' })).statusCode).toBe(403);
    const ops = await logIn(env.app, 'ops');
    const page = (
      await asBrowser(env.app, ops, { method: 'GET', url: '/api/v1/audit?action=session.' })
    ).json() as Page<AuditEntry>;
    expect(page.items.map((e) => [e.action, e.actor])).toEqual([
      ['session.login', 'user:ops'],
      ['session.login', 'user:vic'],
    ]);
  });

  it('refuses bad filters', async () => {
    for (const query of ['?since=yesterday', '?page_size=7', '?unknown=1']) {
      const res = await env.app.inject({
        method: 'GET',
        url: `/api/v1/audit${query}`,
        headers: { authorization: `Bearer ${env.tokens.operator}` },
      });
      expect(res.statusCode, query).toBe(400);
    }
  });
});
