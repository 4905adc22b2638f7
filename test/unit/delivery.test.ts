import { randomUUID } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type AgentLog,
  BACKOFF_MAX_MS,
  Delivery,
  deliverSpool,
  nextBackoffMs,
} from '../../src/agent/delivery.js';
import { apiUrl, enroll } from '../../src/agent/server-client.js';
import { Spool } from '../../src/agent/spool.js';
import { type Report, ReportSchema } from '../../src/shared/report.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait-for.js';

const CREDENTIAL = 'ubc_test_credential';

interface Answer {
  status: number;
  body: unknown;
}

interface FakeServer {
  url: string;
  /** Every POST body's report_id, in arrival order, with the status answered. */
  requests: { reportId: string; status: number; auth: string | undefined; path: string }[];
  /** report_ids answered 2xx, each once per answer. */
  stored: string[];
  close(): Promise<void>;
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** A real HTTP server on 127.0.0.1 (random port) that answers each report with `decide`. */
async function startServer(
  decide: (report: Report, index: number) => Answer | Promise<Answer>,
): Promise<FakeServer> {
  const requests: FakeServer['requests'] = [];
  const stored: string[] = [];
  const seen = new Set<string>();
  const server: Server = createServer((request, response) => {
    void (async () => {
      const report = ReportSchema.parse(JSON.parse(await readBody(request)));
      const index = requests.length;
      requests.push({
        reportId: report.report_id,
        status: 0,
        auth: request.headers.authorization,
        path: request.url ?? '',
      });
      let answer = await decide(report, index);
      if (answer.status === 201 && seen.has(report.report_id)) {
        answer = { status: 200, body: receipt(report, true) };
      }
      const entry = requests[index];
      if (entry) entry.status = answer.status;
      if (answer.status >= 200 && answer.status < 300) {
        seen.add(report.report_id);
        stored.push(report.report_id);
      }
      response.writeHead(answer.status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(answer.body));
    })();
  });
  await new Promise<void>((resolveListen) => server.listen(0, '127.0.0.1', resolveListen));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    stored,
    close: () =>
      new Promise<void>((resolveClose) => {
        server.closeAllConnections();
        server.close(() => resolveClose());
      }),
  };
}

function receipt(report: Report, duplicate: boolean): unknown {
  return {
    backup_id: 1,
    report_id: report.report_id,
    duplicate,
    legality: 'legal',
    illegal_reason: null,
    job_id: duplicate ? null : 1,
  };
}

const created = (report: Report): Answer => ({ status: 201, body: receipt(report, false) });
const serverError: Answer = {
  status: 500,
  body: { error: { code: 'internal', message: 'database is locked' } },
};

function makeReport(createdAtMs: number): Report {
  return ReportSchema.parse({
    report_id: randomUUID(),
    server_id: '111111',
    game_id: '31',
    type: 'mysql',
    instance: '3306',
    section: 'mysql3306',
    status: 'ok',
    kind: 'single',
    filename: `db_${createdAtMs}.gz`,
    size: 10,
    blake3: 'a'.repeat(64),
    base_filename: null,
    base_created_at: null,
    created_at: new Date(createdAtMs).toISOString(),
    finished_at: new Date(createdAtMs + 500).toISOString(),
    exit_code: 0,
    error: null,
    log: `ok\ndb_${createdAtMs}.gz\n`,
    output_tail: '',
    host_ip: '10.0.2.62',
    priority: null,
    agent_version: '0.1.0',
  });
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
  errors(): string[] {
    return this.lines.filter((line) => line.level === 'error').map((line) => line.message);
  }
}

const T = Date.UTC(2026, 0, 15, 4, 0, 0);
let dir: TempDir;
let spool: Spool;
let log: MemoryLog;
const cleanups: (() => Promise<void>)[] = [];

beforeEach(async () => {
  dir = await makeTempDir('ubackup-delivery');
  spool = await Spool.open(dir.path);
  log = new MemoryLog();
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await dir.cleanup();
});

async function serve(
  decide: (report: Report, index: number) => Answer | Promise<Answer>,
): Promise<FakeServer> {
  const server = await startServer(decide);
  cleanups.push(() => server.close());
  return server;
}

async function spoolReports(count: number, startMs = T): Promise<Report[]> {
  const reports: Report[] = [];
  for (let i = 0; i < count; i++) {
    const report = makeReport(startMs + i * 1000);
    await spool.put(report);
    reports.push(report);
  }
  return reports;
}

describe('Delivery loop', () => {
  it('delivers every spooled report exactly once, oldest first, through a server outage', async () => {
    const failuresFirst = 2;
    const server = await serve((report, index) => (index < failuresFirst ? serverError : created(report)));
    const reports = await spoolReports(5);
    const delivery = new Delivery({
      spool,
      serverUrl: server.url,
      credential: () => CREDENTIAL,
      log,
      random: () => 0, // backoff at its lower bound: 0.8 s, 1.6 s
    });
    cleanups.push(() => delivery.stop());
    delivery.start();

    // Nobody kicks: the loop backs off and tries again by itself.
    await waitFor(
      async () =>
        server.stored.length === 5 && (await spool.count()) === 0 && delivery.consecutiveFailures === 0,
      { timeoutMs: 20_000, what: 'the 5 spooled reports stored, the spool empty and the pass finished' },
    );
    const paused = log.lines.filter((line) => line.level === 'warn' && /delivery paused/.test(line.message));
    expect(paused.map((line) => /attempt (\d+)\)/.exec(line.message)?.[1])).toEqual(['1', '2']);
    expect(paused[0]?.message).toMatch(/500 internal: database is locked; 5 report\(s\) kept in the spool/);

    // New reports are sent on kick.
    const later = [makeReport(T + 100_000), makeReport(T + 200_000)];
    for (const report of later) {
      await spool.put(report);
      delivery.kick();
    }
    await waitFor(async () => server.stored.length === 7 && (await spool.count()) === 0, {
      timeoutMs: 10_000,
      what: 'all 7 reports stored and the spool empty',
    });
    await delivery.stop();

    const all = [...reports, ...later].map((report) => report.report_id);
    expect(server.stored).toEqual(all);
    expect(new Set(server.stored).size).toBe(7);
    // Nothing was sent again after a 2xx.
    expect(server.requests.filter((request) => request.status === 200)).toEqual([]);
    expect(server.requests.filter((request) => request.status === 500)).toHaveLength(failuresFirst);
    expect(server.requests.every((request) => request.auth === `Bearer ${CREDENTIAL}`)).toBe(true);
    expect(server.requests.every((request) => request.path === '/api/v1/reports')).toBe(true);
    expect(await spool.list()).toEqual([]);
  });

  it('a kick ends a backoff: reports arriving during an outage go out as soon as the server is back', async () => {
    let down = true;
    const server = await serve((report) => (down ? serverError : created(report)));
    await spoolReports(1);
    const delivery = new Delivery({
      spool,
      serverUrl: server.url,
      credential: () => CREDENTIAL,
      log,
      backoff: () => 120_000, // only a kick makes progress within the test's deadline
    });
    cleanups.push(() => delivery.stop());
    delivery.start();
    await waitFor(() => delivery.consecutiveFailures === 1, { timeoutMs: 10_000, what: 'the first failure' });
    down = false;
    const late = makeReport(T + 50_000);
    await spool.put(late);
    delivery.kick();
    await waitFor(async () => (await spool.count()) === 0, { timeoutMs: 10_000, what: 'the spool to drain' });
    expect(server.stored).toHaveLength(2);
    expect(server.stored[1]).toBe(late.report_id);
  });

  it('waits for a credential, then delivers on kick', async () => {
    const server = await serve((report) => created(report));
    await spoolReports(2);
    let credential: string | null = null;
    const delivery = new Delivery({ spool, serverUrl: server.url, credential: () => credential, log });
    cleanups.push(() => delivery.stop());
    delivery.start();
    credential = CREDENTIAL;
    delivery.kick();
    await waitFor(async () => (await spool.count()) === 0, { timeoutMs: 10_000, what: 'the spool to drain' });
    expect(server.stored).toHaveLength(2);
  });

  it('stop() waits for the send in flight; the report is removed only after the 2xx', async () => {
    let release: (() => void) | undefined;
    const held = new Promise<void>((resolveHeld) => {
      release = resolveHeld;
    });
    const server = await serve(async (report) => {
      await held;
      return created(report);
    });
    const [report] = await spoolReports(1);
    const delivery = new Delivery({ spool, serverUrl: server.url, credential: () => CREDENTIAL, log });
    delivery.start();
    await waitFor(() => server.requests.length === 1, { timeoutMs: 10_000, what: 'the request in flight' });

    let stopped = false;
    const stopping = delivery.stop().then(() => {
      stopped = true;
    });
    await new Promise<void>((resolveTick) => setImmediate(resolveTick));
    expect(stopped).toBe(false);
    expect(await spool.count()).toBe(1);
    release?.();
    await stopping;
    expect(server.stored).toEqual([report?.report_id]);
    expect(await spool.count()).toBe(0);
  });
});

describe('deliverSpool', () => {
  it('keeps every report when server_url reaches something that is not the API (404, 405)', async () => {
    for (const status of [404, 405]) {
      await spoolReports(2);
      const server = await serve(() => ({ status, body: { message: 'Not Found' } }));
      const pass = await deliverSpool({ spool, serverUrl: server.url, credential: CREDENTIAL, log });
      expect(pass.rejected).toBe(0);
      expect(pass.retry).not.toBeNull();
      expect(await spool.listRejected()).toHaveLength(0);
      expect(await spool.count()).toBeGreaterThanOrEqual(2);
    }
  });

  it('moves a report refused with 400 to rejected/ and logs it loudly, then carries on', async () => {
    const reports = await spoolReports(3);
    const bad = reports[1]?.report_id;
    const server = await serve((report) =>
      report.report_id === bad
        ? { status: 400, body: { error: { code: 'validation', message: 'body/filename is too long' } } }
        : created(report),
    );
    const pass = await deliverSpool({ spool, serverUrl: server.url, credential: CREDENTIAL, log });
    expect(pass).toMatchObject({ stored: 2, duplicates: 0, rejected: 1, remaining: 0, retry: null });
    expect(server.stored).toEqual([reports[0]?.report_id, reports[2]?.report_id]);
    const rejected = await spool.listRejected();
    expect(rejected).toHaveLength(1);
    expect(rejected[0]?.report_id).toBe(bad);
    expect(rejected[0]?.reason).toContain('400 validation: body/filename is too long');
    expect(
      (await readdir(spool.rejectedDir)).some((name) => name.includes(bad ?? '?') && name.endsWith('.json')),
    ).toBe(true);
    expect(log.errors().some((message) => message.startsWith(`REPORT REJECTED: report ${bad}`))).toBe(true);

    // Never retried.
    const again = await deliverSpool({ spool, serverUrl: server.url, credential: CREDENTIAL, log });
    expect(again).toMatchObject({ stored: 0, rejected: 0, remaining: 0 });
    expect(server.requests).toHaveLength(3);
  });

  it('keeps the report on 401 (a credential problem), stops the pass, and says so', async () => {
    await spoolReports(2);
    const server = await serve(() => ({
      status: 401,
      body: { error: { code: 'unauthenticated', message: 'the token is unknown, revoked or expired' } },
    }));
    const pass = await deliverSpool({
      spool,
      serverUrl: server.url,
      credential: CREDENTIAL,
      log,
      random: () => 0.5,
    });
    expect(pass.retry?.reason).toMatch(/refused this host's credential \(401 unauthenticated/);
    expect(pass.retry?.backoffMs).toBe(1000);
    expect(pass.remaining).toBe(2);
    expect(server.requests).toHaveLength(1);
    expect(log.errors().some((message) => message.includes('401'))).toBe(true);
  });

  it('treats 200 (a report_id the server already has) as delivered', async () => {
    const [report] = await spoolReports(1);
    const server = await serve((r) => ({ status: 200, body: receipt(r, true) }));
    const pass = await deliverSpool({ spool, serverUrl: server.url, credential: CREDENTIAL, log });
    expect(pass).toMatchObject({ stored: 0, duplicates: 1, remaining: 0 });
    expect(server.stored).toEqual([report?.report_id]);
  });

  it('retries on a network error and on a timeout, keeping the reports', async () => {
    await spoolReports(1);
    // A port that was just closed: connection refused.
    const closed = await startServer(() => serverError);
    await closed.close();
    const refused = await deliverSpool({
      spool,
      serverUrl: closed.url,
      credential: CREDENTIAL,
      log,
      failures: 3,
      random: () => 0.5,
    });
    expect(refused.retry?.reason).toMatch(/failed: fetch failed: .*ECONNREFUSED/);
    expect(refused.retry?.backoffMs).toBe(8000);
    expect(refused.remaining).toBe(1);

    const never = new Promise<Answer>(() => undefined);
    const silent = await serve(() => never);
    const timedOut = await deliverSpool({
      spool,
      serverUrl: silent.url,
      credential: CREDENTIAL,
      log,
      client: { timeoutMs: 200 },
    });
    expect(timedOut.retry?.reason).toMatch(/timed out/);
    expect(timedOut.remaining).toBe(1);
  });
});

describe('nextBackoffMs', () => {
  it('doubles from 1 s and is capped at 5 min', () => {
    const mid = (): number => 0.5;
    expect([1, 2, 3, 4, 5].map((attempt) => nextBackoffMs(attempt, mid))).toEqual([
      1000, 2000, 4000, 8000, 16000,
    ]);
    expect(nextBackoffMs(9, mid)).toBe(256_000);
    expect(nextBackoffMs(10, mid)).toBe(BACKOFF_MAX_MS);
    expect(nextBackoffMs(10_000, mid)).toBe(BACKOFF_MAX_MS);
    expect(nextBackoffMs(0, mid)).toBe(1000);
  });

  it('property: within ±20 % of the capped base', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, r) => {
          const base = Math.min(1000 * 2 ** (attempt - 1), BACKOFF_MAX_MS);
          const value = nextBackoffMs(attempt, () => r);
          expect(value).toBeGreaterThanOrEqual(Math.floor(base * 0.8));
          expect(value).toBeLessThanOrEqual(Math.ceil(base * 1.2));
        },
      ),
    );
  });
});

describe('server client', () => {
  it('keeps a path prefix of server_url', () => {
    expect(apiUrl('https://h:8080', 'api/v1/reports')).toBe('https://h:8080/api/v1/reports');
    expect(apiUrl('https://h/ubackup/', 'api/v1/reports')).toBe('https://h/ubackup/api/v1/reports');
    expect(apiUrl('https://h/ubackup', '/api/v1/reports')).toBe('https://h/ubackup/api/v1/reports');
  });

  it('enrolls with the token and returns the credential', async () => {
    let seen: { auth: string | undefined; body: unknown } | undefined;
    const server = createServer((request, response) => {
      void readBody(request).then((body) => {
        seen = { auth: request.headers.authorization, body: JSON.parse(body) };
        response.writeHead(request.url === '/api/v1/agents/enroll' ? 201 : 404, {
          'content-type': 'application/json',
        });
        response.end(JSON.stringify({ server_id: '111111', credential: 'ubc_new' }));
      });
    });
    await new Promise<void>((resolveListen) => server.listen(0, '127.0.0.1', resolveListen));
    cleanups.push(() => new Promise<void>((resolveClose) => server.close(() => resolveClose())));
    const { port } = server.address() as AddressInfo;
    const result = await enroll(`http://127.0.0.1:${port}`, 'ube_token', '111111');
    expect(result).toEqual({ kind: 'enrolled', credential: 'ubc_new' });
    expect(seen?.auth).toBe('Bearer ube_token');
    expect(seen?.body).toMatchObject({ server_id: '111111', agent_version: '0.1.0' });
  });
});
