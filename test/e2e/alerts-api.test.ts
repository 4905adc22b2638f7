import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createToken } from '../../src/admin/create-token.js';
import type { AlertType } from '../../src/server/alerts/alert-kind.js';
import { openAlerts, resolveAlerts } from '../../src/server/alerts/alert-store.js';
import type { Alert, AlertDetail, AlertSummary } from '../../src/server/routes/alerts.js';
import type { Focus, Me } from '../../src/server/routes/focus.js';
import type { InstanceMuteAnswer } from '../../src/server/routes/instance-mute.js';
import type { Instance } from '../../src/server/routes/instances.js';
import { type BackendName, type TestApp, testApp } from '../support/catalog-backends.js';
import { stopSharedPostgres } from '../support/postgres.js';

afterAll(stopSharedPostgres);

/** The service tokens testApp makes, and two people's tokens made here. */
type Caller = 'admin' | 'operator' | 'viewer' | 'alice' | 'bob';

interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
}

interface Page<T> {
  items: T[];
  total: number;
  page: number;
  page_size: number;
}

const T0 = Date.parse('2026-05-01T00:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();

describe.each<BackendName>(['sqlite', 'postgres'])('alerts API on %s', (backend) => {
  let env: TestApp;
  let nowMs: number;
  let people: { alice: string; bob: string };
  let userIds: { alice: number; bob: number };

  beforeEach(async () => {
    nowMs = T0 + 3_600_000;
    env = await testApp(backend, { clock: () => new Date(nowMs) });
    const addUser = async (name: string, role: string) =>
      (
        await env.catalog.db
          .insertInto('users')
          .values({ name, role, password_hash: 'not-a-login', created_at: T0 })
          .returning('id')
          .executeTakeFirstOrThrow()
      ).id;
    userIds = { alice: await addUser('alice', 'operator'), bob: await addUser('bob', 'viewer') };
    people = {
      alice: await createToken(
        env.catalog,
        { name: 'alice-laptop', role: 'operator', expiresAtMs: null, userName: 'alice' },
        T0,
      ),
      bob: await createToken(
        env.catalog,
        { name: 'bob-browser', role: 'viewer', expiresAtMs: null, userName: 'bob' },
        T0,
      ),
    };
    for (const game_id of ['31', '32', '33'])
      await ok(call('POST', '/api/v1/businesses', { body: { game_id, name: `Game ${game_id}` } }), 201);
  });
  afterEach(async () => {
    await env.cleanup();
  });

  const tokenOf = (as: Caller) => (as === 'alice' || as === 'bob' ? people[as] : env.tokens[as]);

  const call = (
    method: NonNullable<InjectOptions['method']>,
    url: string,
    options: { as?: Caller | null; body?: unknown } = {},
  ): Promise<LightMyRequestResponse> => {
    const as = options.as === undefined ? 'admin' : options.as;
    const headers: Record<string, string> = {};
    if (as !== null) headers.authorization = `Bearer ${tokenOf(as)}`;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    return env.app.inject({
      method,
      url,
      headers,
      ...(options.body === undefined ? {} : { payload: JSON.stringify(options.body) }),
    });
  };
  async function ok<T>(res: Promise<LightMyRequestResponse>, status = 200): Promise<T> {
    const answer = await res;
    expect(answer.statusCode, answer.body).toBe(status);
    return answer.json<T>();
  }
  const fails = async (
    res: Promise<LightMyRequestResponse>,
    status: number,
    code: string,
  ): Promise<ErrorBody> => {
    const answer = await res;
    expect(answer.statusCode, answer.body).toBe(status);
    const body = answer.json<ErrorBody>();
    expect(body.error.code).toBe(code);
    return body;
  };
  const audit = (action: string) =>
    env.catalog.db.selectFrom('audit_log').selectAll().where('action', '=', action).orderBy('id').execute();

  const open = async (type: AlertType, subject: string, gameId: string, summary: string, at: number) => {
    const [opened] = await openAlerts(env.catalog.db, [{ type, subject, gameId, summary }], at);
    if (!opened) throw new Error(`alert ${type} ${subject} was not opened`);
    return opened.id;
  };

  /** Six alerts: five unresolved (31, 31, 32, 33, no business) and one resolved (32). */
  const seedAlerts = async () => {
    const a1 = await open(
      'script_failed',
      '111/mysql/3306',
      '31',
      'backup failed: Disk 100% full',
      T0 + 1000,
    );
    const a2 = await open('overdue', '111/redis/6379', '31', 'no successful backup yet', T0 + 2000);
    const a3 = await open('stuck', '222/myasql/3307', '32', 'run has not finished', T0 + 3000);
    const a4 = await open('illegal', '333/my_sql/1', '33', 'report not accepted: unknown', T0 + 4000);
    const a5 = await open('node_offline', 'node-a', '', 'no heartbeat for 15 s', T0 + 5000);
    const a6 = await open('transfer_failed', '222/pg/5432', '32', 'transfer gave up', T0 + 6000);
    await resolveAlerts(env.catalog.db, [a6], T0 + 7000, 'system', 'verified copy stored');
    return { a1, a2, a3, a4, a5, a6 };
  };
  const ids = async (query: string, as: Caller = 'viewer') =>
    (await ok<Page<Alert>>(call('GET', `/api/v1/alerts${query}`, { as }))).items.map((a) => a.id);
  const follow = (as: 'alice' | 'bob', businesses: string[]) =>
    ok<Focus>(call('PUT', '/api/v1/me/focus', { as, body: { businesses } }));

  describe('authentication and roles', () => {
    it('answers 401 without a token and 403 to a viewer that writes', async () => {
      const { a1 } = await seedAlerts();
      await fails(call('GET', '/api/v1/alerts', { as: null }), 401, 'unauthenticated');
      await fails(call('GET', '/api/v1/alerts/summary', { as: null }), 401, 'unauthenticated');
      await fails(call('GET', `/api/v1/alerts/${a1}`, { as: null }), 401, 'unauthenticated');
      await fails(call('GET', '/api/v1/me/focus', { as: null }), 401, 'unauthenticated');
      await fails(call('GET', '/api/v1/me', { as: null }), 401, 'unauthenticated');
      for (const as of ['viewer', 'bob'] as const) {
        await fails(
          call('POST', `/api/v1/alerts/${a1}/acknowledge`, { as, body: { comment: 'mine' } }),
          403,
          'forbidden',
        );
        await fails(
          call('POST', `/api/v1/alerts/${a1}/resolve`, { as, body: { comment: 'done' } }),
          403,
          'forbidden',
        );
      }
      await fails(
        call('POST', '/api/v1/instances/1/mute', { as: 'viewer', body: { until: null } }),
        403,
        'forbidden',
      );
      expect((await ok<Alert>(call('GET', `/api/v1/alerts/${a1}`, { as: 'viewer' }))).state).toBe('open');
    });

    it('tells who is calling: the person behind a token, or none for a service token', async () => {
      const alice = await ok<Me>(call('GET', '/api/v1/me', { as: 'alice' }));
      expect(alice).toEqual({
        user: { id: userIds.alice, name: 'alice', role: 'operator', locale: 'en-US', time_zone: 'UTC' },
        token: { id: expect.any(Number), name: 'alice-laptop', role: 'operator' },
      });
      const service = await ok<Me>(call('GET', '/api/v1/me', { as: 'viewer' }));
      expect(service).toEqual({
        user: null,
        token: { id: expect.any(Number), name: 'test-viewer', role: 'viewer' },
      });
    });
  });

  describe('list', () => {
    it('shows unresolved alerts newest first, with every field', async () => {
      const { a1, a2, a3, a4, a5 } = await seedAlerts();
      const page = await ok<Page<Alert>>(call('GET', '/api/v1/alerts', { as: 'viewer' }));
      expect(page).toMatchObject({ total: 5, page: 1, page_size: 50 });
      expect(page.items.map((a) => a.id)).toEqual([a5, a4, a3, a2, a1]);
      expect(page.items[4]).toEqual({
        id: a1,
        type: 'script_failed',
        severity: 'warning',
        subject: '111/mysql/3306',
        business: '31',
        state: 'open',
        summary: 'backup failed: Disk 100% full',
        opened_at: iso(T0 + 1000),
        acknowledged_at: null,
        acknowledged_by: null,
        ack_comment: null,
        resolved_at: null,
        resolved_by: null,
        last_event_at: iso(T0 + 1000),
        followed: false,
      });
      expect(page.items[0]).toMatchObject({ type: 'node_offline', severity: 'critical', business: '' });
    });

    it('filters by state, type, business, time and text, alone and combined', async () => {
      const { a1, a2, a3, a4, a5, a6 } = await seedAlerts();
      expect(await ids('?state=resolved')).toEqual([a6]);
      expect(await ids('?state=open,resolved')).toEqual([a6, a5, a4, a3, a2, a1]);
      expect(await ids('?state=acknowledged')).toEqual([]);
      expect(await ids('?type=script_failed,overdue')).toEqual([a2, a1]);
      expect(await ids('?type=transfer_failed')).toEqual([]);
      expect(await ids('?business=32')).toEqual([a3]);
      expect(await ids('?business=32&state=open,resolved')).toEqual([a6, a3]);
      expect(await ids(`?since=${iso(T0 + 3000)}`)).toEqual([a5, a4, a3]);
      expect(await ids(`?since=${encodeURIComponent('2026-05-01T08:00:03+08:00')}`)).toEqual([a5, a4, a3]);

      // Free text: case-insensitive, across subject, summary, game_id and type.
      expect(await ids('?q=DISK')).toEqual([a1]);
      expect(await ids('?q=node-A')).toEqual([a5]);
      expect(await ids('?q=overdue')).toEqual([a2]);
      expect(await ids('?q=32')).toEqual([a3]);
      // `%` and `_` are literal, not wildcards.
      expect(await ids(`?q=${encodeURIComponent('%')}`)).toEqual([a1]);
      expect(await ids(`?q=${encodeURIComponent('100%')}`)).toEqual([a1]);
      expect(await ids('?q=my_sql')).toEqual([a4]);
      expect(await ids(`?q=${encodeURIComponent('\\')}`)).toEqual([]);
      expect(await ids(`?q=${encodeURIComponent('a%b_c')}`)).toEqual([]);

      expect(await ids('?type=stuck,illegal,script_failed&business=31,32&q=my')).toEqual([a3, a1]);
      expect(
        await ids(`?type=stuck,illegal,script_failed&business=31,32&q=my&since=${iso(T0 + 2000)}`),
      ).toEqual([a3]);
      expect(await ids('?state=open,resolved&business=32&q=transfer')).toEqual([a6]);

      await fails(call('GET', '/api/v1/alerts?state=closed'), 400, 'invalid_request');
      await fails(call('GET', '/api/v1/alerts?type=nope'), 400, 'invalid_request');
      await fails(call('GET', '/api/v1/alerts?since=yesterday'), 400, 'invalid_request');
      await fails(call('GET', '/api/v1/alerts?since=2026-05-01T00:00:00'), 400, 'invalid_request');
      await fails(call('GET', '/api/v1/alerts?followed=maybe', { as: 'alice' }), 400, 'invalid_request');
      await fails(call('GET', '/api/v1/alerts?colour=red'), 400, 'invalid_request');
    });

    it('pages with totals, in a stable order when alerts share a time', async () => {
      const all: number[] = [];
      for (let i = 0; i < 23; i++) all.push(await open('overdue', `100/mysql/${i}`, '31', `late ${i}`, T0));
      const newestFirst = [...all].reverse();
      const pages = [];
      for (const page of [1, 2, 3]) {
        pages.push(await ok<Page<Alert>>(call('GET', `/api/v1/alerts?page=${page}&page_size=10`)));
      }
      expect(pages.map((p) => [p.total, p.page, p.page_size, p.items.length])).toEqual([
        [23, 1, 10, 10],
        [23, 2, 10, 10],
        [23, 3, 10, 3],
      ]);
      expect(pages.flatMap((p) => p.items.map((a) => a.id))).toEqual(newestFirst);
      const filtered = await ok<Page<Alert>>(call('GET', '/api/v1/alerts?q=late%201&page_size=10&page=2'));
      // "late 1" and "late 10" … "late 19": 11 matches.
      expect([filtered.total, filtered.items.length]).toEqual([11, 1]);
      await fails(call('GET', '/api/v1/alerts?page_size=7'), 400, 'invalid_request');
      await fails(call('GET', '/api/v1/alerts?page=0'), 400, 'invalid_request');
    });

    it('splits followed and other alerts for a person, and refuses the split for a service token', async () => {
      const { a1, a2, a3, a4, a5 } = await seedAlerts();
      await follow('alice', ['31', '33']);
      expect(await ids('?followed=true', 'alice')).toEqual([a4, a2, a1]);
      expect(await ids('?followed=false', 'alice')).toEqual([a5, a3]);
      expect(await ids('?followed=true&type=illegal,overdue', 'alice')).toEqual([a4, a2]);
      expect(await ids('?followed=false&q=node', 'alice')).toEqual([a5]);
      const page = await ok<Page<Alert>>(call('GET', '/api/v1/alerts', { as: 'alice' }));
      expect(page.items.map((a) => [a.id, a.followed])).toEqual([
        [a5, false],
        [a4, true],
        [a3, false],
        [a2, true],
        [a1, true],
      ]);
      // Bob follows nothing: nothing is followed, everything is "other".
      expect(await ids('?followed=true', 'bob')).toEqual([]);
      expect(await ids('?followed=false', 'bob')).toEqual([a5, a4, a3, a2, a1]);
      const forBob = await ok<Page<Alert>>(call('GET', '/api/v1/alerts', { as: 'bob' }));
      expect(forBob.items.every((a) => !a.followed)).toBe(true);

      const refused = await fails(
        call('GET', '/api/v1/alerts?followed=true', { as: 'viewer' }),
        400,
        'focus_needs_user',
      );
      expect(refused.error.message).toContain("person's token");
      // Without the filter a service token sees every alert as not followed.
      const service = await ok<Page<Alert>>(call('GET', '/api/v1/alerts', { as: 'viewer' }));
      expect(service.items.every((a) => !a.followed)).toBe(true);
    });
  });

  describe('one alert, acknowledge and resolve', () => {
    it('acknowledges, comments on a repeated acknowledgement, resolves, and keeps the history in order', async () => {
      const { a1 } = await seedAlerts();
      const detail = await ok<AlertDetail>(call('GET', `/api/v1/alerts/${a1}`, { as: 'viewer' }));
      expect(detail.events).toEqual([
        { at: iso(T0 + 1000), kind: 'opened', actor: 'system', detail: 'backup failed: Disk 100% full' },
      ]);

      nowMs = T0 + 10_000;
      const acked = await ok<Alert>(
        call('POST', `/api/v1/alerts/${a1}/acknowledge`, {
          as: 'operator',
          body: { comment: '  looking at it ' },
        }),
      );
      expect(acked).toMatchObject({
        id: a1,
        state: 'acknowledged',
        acknowledged_at: iso(T0 + 10_000),
        acknowledged_by: 'token:test-operator',
        ack_comment: 'looking at it',
        last_event_at: iso(T0 + 10_000),
        resolved_at: null,
        followed: false,
      });

      nowMs = T0 + 20_000;
      await follow('alice', ['31']);
      const again = await ok<Alert>(
        call('POST', `/api/v1/alerts/${a1}/acknowledge`, {
          as: 'alice',
          body: { comment: 'disk cleaned, waiting for the next run' },
        }),
      );
      expect(again).toMatchObject({
        state: 'acknowledged',
        acknowledged_at: iso(T0 + 10_000),
        acknowledged_by: 'token:test-operator',
        ack_comment: 'disk cleaned, waiting for the next run',
        last_event_at: iso(T0 + 20_000),
        followed: true,
      });

      nowMs = T0 + 30_000;
      const resolved = await ok<Alert>(
        call('POST', `/api/v1/alerts/${a1}/resolve`, { as: 'admin', body: { comment: 'next run was fine' } }),
      );
      expect(resolved).toMatchObject({
        state: 'resolved',
        resolved_at: iso(T0 + 30_000),
        resolved_by: 'token:test-admin',
        last_event_at: iso(T0 + 30_000),
      });

      const history = await ok<AlertDetail>(call('GET', `/api/v1/alerts/${a1}`, { as: 'alice' }));
      expect(history).toMatchObject({ id: a1, state: 'resolved', followed: true });
      expect(history.events).toEqual([
        { at: iso(T0 + 1000), kind: 'opened', actor: 'system', detail: 'backup failed: Disk 100% full' },
        { at: iso(T0 + 10_000), kind: 'acknowledged', actor: 'token:test-operator', detail: 'looking at it' },
        {
          at: iso(T0 + 20_000),
          kind: 'commented',
          actor: 'token:alice-laptop',
          detail: 'disk cleaned, waiting for the next run',
        },
        { at: iso(T0 + 30_000), kind: 'resolved', actor: 'token:test-admin', detail: 'next run was fine' },
      ]);

      await fails(
        call('POST', `/api/v1/alerts/${a1}/acknowledge`, { as: 'operator', body: { comment: 'late' } }),
        409,
        'alert_resolved',
      );
      await fails(
        call('POST', `/api/v1/alerts/${a1}/resolve`, { as: 'operator', body: { comment: 'twice' } }),
        409,
        'alert_resolved',
      );

      const acks = await audit('alert.acknowledge');
      expect(acks.map((r) => [r.actor, r.subject, JSON.parse(r.detail)])).toEqual([
        ['token:test-operator', `alert:${a1}`, { comment: 'looking at it' }],
        ['token:alice-laptop', `alert:${a1}`, { comment: 'disk cleaned, waiting for the next run' }],
      ]);
      const resolves = await audit('alert.resolve');
      expect(resolves.map((r) => [r.actor, r.subject, r.at])).toEqual([
        ['token:test-admin', `alert:${a1}`, T0 + 30_000],
      ]);
    });

    it('resolves an open alert by hand', async () => {
      const { a5 } = await seedAlerts();
      nowMs = T0 + 8000;
      const resolved = await ok<Alert>(
        call('POST', `/api/v1/alerts/${a5}/resolve`, { as: 'operator', body: { comment: 'node retired' } }),
      );
      expect(resolved).toMatchObject({
        state: 'resolved',
        acknowledged_at: null,
        resolved_by: 'token:test-operator',
      });
      const history = await ok<AlertDetail>(call('GET', `/api/v1/alerts/${a5}`));
      expect(history.events.map((e) => e.kind)).toEqual(['opened', 'resolved']);
      expect(await ids('?type=node_offline')).toEqual([]);
    });

    it('answers 404 for an unknown alert and 400 for a bad id or comment', async () => {
      const { a1 } = await seedAlerts();
      await fails(call('GET', '/api/v1/alerts/99999'), 404, 'alert_not_found');
      await fails(
        call('POST', '/api/v1/alerts/99999/acknowledge', { body: { comment: 'x' } }),
        404,
        'alert_not_found',
      );
      await fails(
        call('POST', '/api/v1/alerts/99999/resolve', { body: { comment: 'x' } }),
        404,
        'alert_not_found',
      );
      await fails(call('GET', '/api/v1/alerts/abc'), 400, 'invalid_request');
      await fails(call('GET', '/api/v1/alerts/0'), 400, 'invalid_request');
      for (const body of [
        {},
        { comment: '' },
        { comment: '   ' },
        { comment: 'x'.repeat(1001) },
        { comment: 'a\u0000b' },
      ]) {
        await fails(call('POST', `/api/v1/alerts/${a1}/acknowledge`, { body }), 400, 'invalid_request');
      }
      await fails(
        call('POST', `/api/v1/alerts/${a1}/acknowledge`, { body: { comment: 'ok', extra: 1 } }),
        400,
        'invalid_request',
      );
      await ok(call('POST', `/api/v1/alerts/${a1}/acknowledge`, { body: { comment: 'x'.repeat(1000) } }));
      await ok(call('POST', `/api/v1/alerts/${a1}/acknowledge`, { body: { comment: 'two\nlines' } }));
      expect(await audit('alert.acknowledge')).toHaveLength(2);
    });
  });

  describe('summary', () => {
    it('counts followed and other alerts, open apart from acknowledged, and lists the newest since a time', async () => {
      const { a1, a2, a3, a4, a5, a6 } = await seedAlerts();
      await follow('alice', ['31', '33']);
      nowMs = T0 + 9000;
      await ok(call('POST', `/api/v1/alerts/${a2}/acknowledge`, { as: 'alice', body: { comment: 'mine' } }));
      nowMs = T0 + 60_000;

      const forAlice = await ok<AlertSummary>(
        call('GET', `/api/v1/alerts/summary?since=${iso(T0 + 3500)}`, { as: 'alice' }),
      );
      expect(forAlice).toMatchObject({
        followed: { open: 2, acknowledged: 1, by_type: { script_failed: 1, illegal: 1 } },
        others_open: 2,
        others_acknowledged: 0,
        total_open: 4,
        total_acknowledged: 1,
        following: true,
        server_time: iso(T0 + 60_000),
      });
      expect(Object.keys(forAlice.followed.by_type).sort()).toEqual(['illegal', 'script_failed']);
      // Only followed alerts, any state, last event after `since`, newest first.
      expect(forAlice.newest.map((a) => [a.id, a.state, a.followed])).toEqual([
        [a2, 'acknowledged', true],
        [a4, 'open', true],
      ]);

      // Bob follows nothing: everything is "other", and `newest` holds every alert.
      const forBob = await ok<AlertSummary>(
        call('GET', `/api/v1/alerts/summary?since=${iso(T0 + 3500)}`, { as: 'bob' }),
      );
      expect(forBob).toMatchObject({
        followed: { open: 0, acknowledged: 0, by_type: {} },
        others_open: 4,
        others_acknowledged: 1,
        total_open: 4,
        total_acknowledged: 1,
        following: false,
      });
      expect(forBob.newest.map((a) => a.id)).toEqual([a2, a6, a5, a4]);

      // A service token gets the same counts as someone who follows nothing.
      const forService = await ok<AlertSummary>(call('GET', '/api/v1/alerts/summary', { as: 'viewer' }));
      expect(forService).toMatchObject({
        followed: { open: 0, acknowledged: 0 },
        others_open: 4,
        following: false,
      });
      // Without `since`, `newest` is empty: the counts are the badge, server_time is the next `since`.
      expect(forService.newest).toEqual([]);

      // Nothing changed after the last answer: nothing is new.
      const later = await ok<AlertSummary>(
        call('GET', `/api/v1/alerts/summary?since=${forAlice.server_time}`, { as: 'alice' }),
      );
      expect(later.newest).toEqual([]);
      // A new followed alert shows up, and the resolved one after the time is not counted.
      const a7 = await open('stuck', '111/mysql/3306', '31', 'run has not finished', T0 + 61_000);
      await resolveAlerts(env.catalog.db, [a1], T0 + 62_000, 'system', 'backup ok');
      nowMs = T0 + 63_000;
      const next = await ok<AlertSummary>(
        call('GET', `/api/v1/alerts/summary?since=${forAlice.server_time}`, { as: 'alice' }),
      );
      expect(next.newest.map((a) => [a.id, a.state])).toEqual([
        [a1, 'resolved'],
        [a7, 'open'],
      ]);
      expect(next.followed).toEqual({ open: 2, acknowledged: 1, by_type: { stuck: 1, illegal: 1 } });
      expect(next.others_open).toBe(2);
      expect(await ids('?followed=false', 'alice')).toEqual([a5, a3]);

      await fails(call('GET', '/api/v1/alerts/summary?since=soon'), 400, 'invalid_request');
    });

    it('caps the newest list at 50', async () => {
      for (let i = 0; i < 60; i++) await open('overdue', `100/mysql/${i}`, '31', `late ${i}`, T0 + i);
      const summary = await ok<AlertSummary>(call('GET', `/api/v1/alerts/summary?since=${iso(T0 - 1)}`));
      expect(summary.newest).toHaveLength(50);
      expect(summary.newest[0]?.summary).toBe('late 59');
      expect(summary.total_open).toBe(60);
    });
  });

  describe('focus', () => {
    it("replaces a person's followed businesses, refusing unknown ones and keeping the old set", async () => {
      expect(await ok<Focus>(call('GET', '/api/v1/me/focus', { as: 'bob' }))).toEqual({ businesses: [] });
      expect(await follow('bob', ['33', '31', '31'])).toEqual({ businesses: ['31', '33'] });
      expect(await ok<Focus>(call('GET', '/api/v1/me/focus', { as: 'bob' }))).toEqual({
        businesses: ['31', '33'],
      });
      expect(await follow('bob', ['32', '33'])).toEqual({ businesses: ['32', '33'] });
      // Alice's set is her own.
      expect(await ok<Focus>(call('GET', '/api/v1/me/focus', { as: 'alice' }))).toEqual({ businesses: [] });

      const unknown = await fails(
        call('PUT', '/api/v1/me/focus', { as: 'bob', body: { businesses: ['31', 'nope', 'x9'] } }),
        400,
        'unknown_business',
      );
      expect(unknown.error.details).toEqual({ unknown: ['nope', 'x9'], unknown_count: 2 });
      expect(await ok<Focus>(call('GET', '/api/v1/me/focus', { as: 'bob' }))).toEqual({
        businesses: ['32', '33'],
      });

      // Unchanged: no audit entry.
      await follow('bob', ['33', '32']);
      expect(await follow('bob', [])).toEqual({ businesses: [] });
      const rows = await env.catalog.db.selectFrom('user_focus').selectAll().execute();
      expect(rows).toEqual([]);

      const updates = await audit('focus.update');
      expect(updates.map((r) => [r.actor, r.subject, JSON.parse(r.detail)])).toEqual([
        ['token:bob-browser', `user:${userIds.bob}`, { added: ['31', '33'], removed: [], count: 2 }],
        ['token:bob-browser', `user:${userIds.bob}`, { added: ['32'], removed: ['31'], count: 2 }],
        ['token:bob-browser', `user:${userIds.bob}`, { added: [], removed: ['32', '33'], count: 0 }],
      ]);
    });

    it('needs a person and a valid list', async () => {
      await fails(call('GET', '/api/v1/me/focus', { as: 'viewer' }), 400, 'focus_needs_user');
      await fails(
        call('PUT', '/api/v1/me/focus', { as: 'admin', body: { businesses: ['31'] } }),
        400,
        'focus_needs_user',
      );
      await fails(
        call('PUT', '/api/v1/me/focus', { as: null, body: { businesses: [] } }),
        401,
        'unauthenticated',
      );
      await fails(call('PUT', '/api/v1/me/focus', { as: 'bob', body: {} }), 400, 'invalid_request');
      await fails(
        call('PUT', '/api/v1/me/focus', { as: 'bob', body: { businesses: ['../x'] } }),
        400,
        'invalid_request',
      );
      // The longest list of the longest game_ids gets past the body limit (and names no business).
      const longest = Array.from(
        { length: 10_000 },
        (_, i) => `${'g'.repeat(59)}${String(i).padStart(5, '0')}`,
      );
      const unknown = await fails(
        call('PUT', '/api/v1/me/focus', { as: 'bob', body: { businesses: longest } }),
        400,
        'unknown_business',
      );
      expect(unknown.error.details).toMatchObject({ unknown_count: 10_000 });
      const tooMany = Array.from({ length: 10_001 }, (_, i) => `g${i}`);
      await fails(
        call('PUT', '/api/v1/me/focus', { as: 'bob', body: { businesses: tooMany } }),
        400,
        'invalid_request',
      );
      expect(await audit('focus.update')).toEqual([]);
    });

    it('follows many businesses at once', async () => {
      const many = Array.from({ length: 1200 }, (_, i) => `b${String(i).padStart(4, '0')}`);
      for (let i = 0; i < many.length; i += 200) {
        await env.catalog.db
          .insertInto('businesses')
          .values(many.slice(i, i + 200).map((game_id) => ({ game_id, name: game_id, created_at: T0 })))
          .execute();
      }
      const unknownMixed = await fails(
        call('PUT', '/api/v1/me/focus', { as: 'bob', body: { businesses: [...many, 'zz1'] } }),
        400,
        'unknown_business',
      );
      expect(unknownMixed.error.details).toEqual({ unknown: ['zz1'], unknown_count: 1 });
      expect((await follow('bob', many)).businesses).toHaveLength(1200);
      expect((await follow('bob', many.slice(600))).businesses).toEqual(many.slice(600));
      expect((await ok<Focus>(call('GET', '/api/v1/me/focus', { as: 'bob' }))).businesses).toEqual(
        many.slice(600),
      );
    });
  });

  describe('instance mute', () => {
    const createInstance = async () => {
      await ok(call('POST', '/api/v1/backup-types', { body: { name: 'mysql' } }), 201);
      return ok<Instance>(
        call('POST', '/api/v1/instances', {
          body: { name: 'mysql3306', server_id: '111111', type: 'mysql', instance: '3306', game_id: '31' },
        }),
        201,
      );
    };
    const mutedUntil = async (id: number) =>
      (
        await env.catalog.db
          .selectFrom('instances')
          .select('muted_until')
          .where('id', '=', id)
          .executeTakeFirstOrThrow()
      ).muted_until;

    it('mutes until a time and unmutes, with audit entries', async () => {
      const instance = await createInstance();
      const until = nowMs + 2 * 3_600_000;
      const muted = await ok<InstanceMuteAnswer>(
        call('POST', `/api/v1/instances/${instance.id}/mute`, {
          as: 'operator',
          body: { until: iso(until), comment: 'disk replacement' },
        }),
      );
      expect(muted).toEqual({
        id: instance.id,
        server_id: '111111',
        type: 'mysql',
        instance: '3306',
        game_id: '31',
        muted_until: iso(until),
      });
      expect(await mutedUntil(instance.id)).toBe(until);

      const unmuted = await ok<InstanceMuteAnswer>(
        call('POST', `/api/v1/instances/${instance.id}/mute`, { as: 'alice', body: { until: null } }),
      );
      expect(unmuted.muted_until).toBeNull();
      expect(await mutedUntil(instance.id)).toBeNull();

      const [mute] = await audit('instance.mute');
      expect(mute).toMatchObject({ actor: 'token:test-operator', subject: `instance:${instance.id}` });
      expect(JSON.parse(mute?.detail ?? '{}')).toEqual({
        identity: '111111/mysql/3306',
        from: null,
        to: iso(until),
        comment: 'disk replacement',
      });
      const [unmute] = await audit('instance.unmute');
      expect(unmute).toMatchObject({ actor: 'token:alice-laptop' });
      expect(JSON.parse(unmute?.detail ?? '{}')).toEqual({
        identity: '111111/mysql/3306',
        from: iso(until),
        to: null,
        comment: '',
      });
    });

    it('refuses a time in the past, a mute without a reason, and an unknown instance', async () => {
      const instance = await createInstance();
      const url = `/api/v1/instances/${instance.id}/mute`;
      await fails(
        call('POST', url, { body: { until: iso(nowMs - 1000), comment: 'too late' } }),
        400,
        'mute_in_past',
      );
      await fails(call('POST', url, { body: { until: iso(nowMs), comment: 'now' } }), 400, 'mute_in_past');
      await fails(call('POST', url, { body: { until: iso(nowMs + 60_000) } }), 400, 'invalid_request');
      await fails(
        call('POST', url, { body: { until: '2030-01-01T00:00:00', comment: 'no zone' } }),
        400,
        'invalid_request',
      );
      await fails(call('POST', url, { body: { comment: 'no until' } }), 400, 'invalid_request');
      await fails(
        call('POST', '/api/v1/instances/99999/mute', { body: { until: null } }),
        404,
        'instance_not_found',
      );
      await fails(
        call('POST', '/api/v1/instances/x/mute', { body: { until: null } }),
        400,
        'invalid_request',
      );
      expect(await mutedUntil(instance.id)).toBeNull();
      expect([...(await audit('instance.mute')), ...(await audit('instance.unmute'))]).toEqual([]);
    });
  });

  it('documents the new routes in the OpenAPI document', async () => {
    const doc = await ok<{ paths: Record<string, unknown> }>(
      call('GET', '/api/v1/openapi.json', { as: null }),
    );
    for (const path of [
      '/api/v1/alerts',
      '/api/v1/alerts/summary',
      '/api/v1/alerts/{id}',
      '/api/v1/alerts/{id}/acknowledge',
      '/api/v1/alerts/{id}/resolve',
      '/api/v1/me',
      '/api/v1/me/focus',
      '/api/v1/instances/{id}/mute',
    ]) {
      expect(Object.keys(doc.paths)).toContain(path);
    }
  });
});
