import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  type AlertSummaryAnswer,
  type ApiAlert,
  apiRequest,
  canAcknowledge,
  describeFailure,
  failureOf,
  getSummary,
  type MeAnswer,
} from '../../extension/src/api.js';
import type { Alert, AlertSummary } from '../../src/server/routes/alerts.js';
import type { Me } from '../../src/server/routes/focus.js';

const TOKEN = `ubt_${'x'.repeat(43)}`;

function fakeFetch(answer: () => Response | Promise<Response>) {
  const calls: Array<{ url: string; init: RequestInit }> = [];
  const fetchFn = async (url: string, init: RequestInit) => {
    calls.push({ url, init });
    return answer();
  };
  return { calls, fetchFn };
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

describe('the extension API client', () => {
  it("keeps a copy of the API's shapes that the server's answers fit", () => {
    // The extension is compiled apart from the server; the root typecheck fails when they drift.
    expectTypeOf<AlertSummary>().toExtend<AlertSummaryAnswer>();
    expectTypeOf<Alert>().toExtend<ApiAlert>();
    expectTypeOf<Me>().toExtend<MeAnswer>();
  });

  it('sends the token and the since cursor, and reads the summary', async () => {
    const summary = {
      followed: { open: 2, acknowledged: 1, by_type: { overdue: 2 } },
      others_open: 0,
      others_acknowledged: 0,
      total_open: 2,
      total_acknowledged: 1,
      following: true,
      newest: [],
      server_time: '2026-05-01T00:00:00.000Z',
    };
    const { calls, fetchFn } = fakeFetch(() => json(200, summary));
    const answer = await getSummary(fetchFn, 'https://u.example', TOKEN, '2026-05-01T00:00:00.000Z');
    expect(answer).toEqual({ ok: true, value: summary });
    expect(calls[0]?.url).toBe('https://u.example/api/v1/alerts/summary?since=2026-05-01T00%3A00%3A00.000Z');
    expect(calls[0]?.init.headers).toMatchObject({ authorization: `Bearer ${TOKEN}` });
    expect(calls[0]?.init.credentials).toBe('omit');
  });

  it("tells a refused token from an unreachable server, with the server's own words", async () => {
    const refused = await getSummary(
      fakeFetch(() => json(401, { error: { code: 'unauthenticated', message: 'unknown or revoked token' } }))
        .fetchFn,
      'https://u.example',
      TOKEN,
      null,
    );
    expect(refused).toEqual({
      ok: false,
      failure: { kind: 'refused', status: 401, code: 'unauthenticated', message: 'unknown or revoked token' },
    });
    const down = await getSummary(
      fakeFetch(() => Promise.reject(new TypeError('Failed to fetch'))).fetchFn,
      'https://u.example',
      TOKEN,
      null,
    );
    expect(down).toEqual({
      ok: false,
      failure: { kind: 'unreachable', detail: 'TypeError: Failed to fetch' },
    });
    const proxy = await getSummary(
      fakeFetch(() => new Response('<html>login</html>', { status: 200 })).fetchFn,
      'https://u.example',
      TOKEN,
      null,
    );
    expect(proxy.ok).toBe(false);
    const shape = await getSummary(
      fakeFetch(() => json(200, { hello: 1 })).fetchFn,
      'https://u.example',
      TOKEN,
      null,
    );
    expect(shape).toEqual({
      ok: false,
      failure: { kind: 'invalid', detail: '/api/v1/alerts/summary answered an unexpected shape' },
    });
  });

  it('describes failures exactly', () => {
    expect(
      describeFailure(
        failureOf(403, 'Forbidden', '{"error":{"code":"forbidden","message":"needs operator"}}'),
      ),
    ).toBe('403 forbidden: needs operator');
    expect(failureOf(502, 'Bad Gateway', '')).toEqual({
      kind: 'http',
      status: 502,
      code: 'http_502',
      message: 'Bad Gateway',
    });
    expect(failureOf(500, '', '<h1>oops</h1>\n')).toMatchObject({ message: '<h1>oops</h1>' });
  });

  it('posts a JSON body', async () => {
    const { calls, fetchFn } = fakeFetch(() => json(200, { id: 1 }));
    await apiRequest(fetchFn, 'https://u.example', TOKEN, '/api/v1/alerts/1/acknowledge', {
      method: 'POST',
      body: { comment: 'on it' },
    });
    expect(calls[0]?.init).toMatchObject({
      method: 'POST',
      body: '{"comment":"on it"}',
      headers: { 'content-type': 'application/json' },
    });
  });

  it('offers acknowledge to operators and admins only', () => {
    const me = (role: MeAnswer['token']['role']): MeAnswer => ({
      user: { id: 1, name: 'ann', role },
      token: { id: 2, name: 'ann-laptop', role },
    });
    expect(canAcknowledge(me('admin'))).toBe(true);
    expect(canAcknowledge(me('operator'))).toBe(true);
    expect(canAcknowledge(me('viewer'))).toBe(false);
  });
});
