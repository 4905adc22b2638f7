import { open, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli-process.js';
import { type Cluster, type ClusterOptions, startCluster } from '../support/cluster.js';
import { stopSharedPostgres } from '../support/postgres.js';
import { readCatalog } from '../support/process-catalog.js';
import { waitFor } from '../support/wait-for.js';

afterAll(stopSharedPostgres);

/** The alert engine's pass runs every second in these tests. */
const SWEEP_SECONDS = 1;
/** The server's heartbeat period (startCluster sets 1 s): a node is offline after 3 × this. */
const HEARTBEAT_SECONDS = 1;
/** The host every cluster's agent reports as (see startCluster). */
const SERVER_ID = '5001';

interface AlertView {
  id: number;
  type: string;
  severity: string;
  subject: string;
  business: string;
  state: string;
  summary: string;
  opened_at: string;
  resolved_at: string | null;
  resolved_by: string | null;
}

interface AlertDetailView extends AlertView {
  events: Array<{ at: string; kind: string; actor: string; detail: string }>;
}

const ALL_STATES = 'open,acknowledged,resolved';

/** A script that reports `wrong` while `flag` exists and otherwise writes a real file and reports it. */
function flaggedScript(flag: string, backDir: string, backLog: string): string {
  return (
    `if [ -e ${flag} ]; then printf 'wrong\\nDisk 100%% full on /data\\n' > ${backLog}; ` +
    `else name=b-$(date +%s%N).bin; head -c 4096 /dev/urandom > ${backDir}/$name && printf 'ok\\n%s\\n' $name > ${backLog}; fi`
  );
}

describe.each(['sqlite', 'postgres'] as const)('alerts raised by real processes (%s)', (backend) => {
  let cluster: Cluster | undefined;
  const tokens = new Map<string, string>();
  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
    tokens.clear();
  });

  async function start(options: Partial<ClusterOptions> & { instances: number }): Promise<Cluster> {
    const c = await startCluster(backend, {
      fileBytes: 4096,
      ...options,
      serverArgs: ['--alert-sweep-seconds', String(SWEEP_SECONDS), ...(options.serverArgs ?? [])],
    });
    cluster = c;
    return c;
  }

  /** `ubackup admin token create`, as an operator would run it; one token per role per test. */
  async function token(c: Cluster, role: 'admin' | 'viewer'): Promise<string> {
    const known = tokens.get(role);
    if (known) return known;
    const made = await runCli([
      'admin',
      'token',
      'create',
      '--role',
      role,
      '--name',
      `alerts-${role}`,
      '--data-dir',
      c.pc.dataDir,
      ...c.pc.dbArgs,
    ]);
    expect(made.code, made.stderr).toBe(0);
    const value = made.stdout.trim();
    tokens.set(role, value);
    return value;
  }

  async function api<T>(
    c: Cluster,
    path: string,
    init: { method?: string; body?: unknown } = {},
  ): Promise<T> {
    const role = init.method === undefined || init.method === 'GET' ? 'viewer' : 'admin';
    const res = await fetch(`${c.server.url}${path}`, {
      method: init.method ?? 'GET',
      headers: {
        authorization: `Bearer ${await token(c, role)}`,
        ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${init.method ?? 'GET'} ${path} answered ${res.status}: ${text}`);
    return JSON.parse(text) as T;
  }

  /** Every alert of `type`, in any state, from the alert API. */
  async function alertsOf(c: Cluster, type: string): Promise<AlertView[]> {
    const page = await api<{ items: AlertView[]; total: number }>(
      c,
      `/api/v1/alerts?type=${type}&state=${ALL_STATES}&page_size=50`,
    );
    expect(page.total).toBe(page.items.length);
    return page.items;
  }

  const detail = (c: Cluster, id: number) => api<AlertDetailView>(c, `/api/v1/alerts/${id}`);

  /** Waits for the one alert of `type` about `subject` to reach `state`. */
  function alertIn(c: Cluster, type: string, subject: string, state: string, timeoutMs = 20_000) {
    return waitFor(
      async () => {
        const found = (await alertsOf(c, type)).filter((a) => a.subject === subject);
        return found.length === 1 && found[0]?.state === state ? found[0] : undefined;
      },
      { timeoutMs, intervalMs: 100, what: `a ${state} ${type} alert about ${subject}` },
    );
  }

  /** Registers business 31, type mysql and the cluster host's instance `4000 + i`. */
  async function register(c: Cluster, instances: number[]): Promise<void> {
    await api(c, '/api/v1/businesses', { method: 'POST', body: { game_id: '31', name: 'Game 31' } });
    await api(c, '/api/v1/backup-types', { method: 'POST', body: { name: 'mysql' } });
    for (const i of instances) {
      await api(c, '/api/v1/instances', {
        method: 'POST',
        body: {
          name: `db${i}`,
          server_id: SERVER_ID,
          type: 'mysql',
          instance: String(4000 + i),
          game_id: '31',
        },
      });
    }
  }

  async function runOnce(c: Cluster, expected: string): Promise<void> {
    const run = await runCli(['agent', 'run-once', '--config', c.agentConfig, '--log-level', 'warn']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain(expected);
  }

  it('opens script_failed for a failing script and resolves it with the next good run', async () => {
    const flags: string[] = [];
    const c = await start({
      instances: 1,
      script: (i, backDir, backLog) => {
        const flag = join(dirname(backDir), `fail-db${i}`);
        flags.push(flag);
        return flaggedScript(flag, backDir, backLog);
      },
    });
    await register(c, [0]);
    const subject = `${SERVER_ID}/mysql/4000`;
    await writeFile(flags[0] ?? '', '');

    await runOnce(c, '1 run(s), 1 failed, 0 report(s) waiting');
    const failed = await alertIn(c, 'script_failed', subject, 'open');
    expect(failed).toMatchObject({
      type: 'script_failed',
      severity: 'warning',
      subject,
      business: '31',
      state: 'open',
      resolved_at: null,
    });
    expect(failed.summary).toMatch(/^backup of \d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)? UTC failed: /);
    expect(failed.summary).toContain('script reported wrong in back_log: Disk 100% full on /data');
    // A second failure keeps the one alert open rather than opening another.
    await runOnce(c, '1 run(s), 1 failed, 0 report(s) waiting');
    await waitFor(
      async () =>
        readCatalog(c.pc.location, async (catalog) => {
          const pending = await catalog.db
            .selectFrom('backups')
            .select('id')
            .where('alert_pending', '=', 1)
            .execute();
          return pending.length === 0;
        }),
      { timeoutMs: 10_000, what: 'the sweep to look at the second failure' },
    );
    expect((await alertsOf(c, 'script_failed')).map((a) => [a.id, a.state])).toEqual([[failed.id, 'open']]);

    await rm(flags[0] ?? '');
    await runOnce(c, '1 run(s), 0 failed, 0 report(s) waiting');
    const resolved = await alertIn(c, 'script_failed', subject, 'resolved');
    expect(resolved).toMatchObject({ id: failed.id, resolved_by: 'system' });
    const history = await detail(c, failed.id);
    expect(history.events.map((e) => [e.kind, e.actor])).toEqual([
      ['opened', 'system'],
      ['resolved', 'system'],
    ]);
    expect(history.events[0]?.detail).toBe(failed.summary);
    expect(history.events[1]?.detail).toBe('a successful backup arrived');
    // The instance is registered, so none of its reports was illegal.
    expect(await alertsOf(c, 'illegal')).toEqual([]);
  });

  it('opens illegal for a report from an unregistered instance, naming the reason', async () => {
    const c = await start({ instances: 2 });
    await register(c, [0]);
    await runOnce(c, '2 run(s), 0 failed, 0 report(s) waiting');

    const subject = `${SERVER_ID}/mysql/4001`;
    const illegal = await alertIn(c, 'illegal', subject, 'open');
    expect(illegal).toMatchObject({ type: 'illegal', severity: 'info', subject, business: '31' });
    expect(illegal.summary).toBe(`report not accepted: instance ${subject} is not registered`);
    // The registered instance's report was legal: the sweep that saw both reports opened nothing for it.
    expect((await alertsOf(c, 'illegal')).map((a) => a.subject)).toEqual([subject]);
    // A good report does not clear it: only an administrator does.
    await runOnce(c, '2 run(s), 0 failed, 0 report(s) waiting');
    await waitFor(
      async () =>
        readCatalog(c.pc.location, async (catalog) => {
          const seen = await catalog.db
            .selectFrom('backups')
            .select('id')
            .where('alert_pending', '=', 0)
            .execute();
          return seen.length === 4;
        }),
      { timeoutMs: 10_000, what: 'the sweep to look at the second round' },
    );
    expect((await alertsOf(c, 'illegal')).map((a) => [a.id, a.state])).toEqual([[illegal.id, 'open']]);
    expect(await alertsOf(c, 'script_failed')).toEqual([]);
  });

  it('opens node_offline for a killed node within 3 heartbeats and a sweep; restarting it resolves it', async () => {
    const c = await start({ instances: 0 });
    const lastHeartbeat = () =>
      readCatalog(c.pc.location, async (catalog) => {
        const row = await catalog.db
          .selectFrom('nodes')
          .select('last_heartbeat_at')
          .where('name', '=', 'node-a')
          .executeTakeFirst();
        return row?.last_heartbeat_at ?? null;
      });
    const node = await c.startNode('node-a');
    await waitFor(async () => (await lastHeartbeat()) !== null, {
      timeoutMs: 30_000,
      what: 'node-a to send a heartbeat',
    }).catch((error: unknown) => {
      throw new Error(`${String(error)}\nnode-a:\n${node.output()}\nserver:\n${c.server.output()}`);
    });
    // A healthy node raises nothing: give the sweep a few passes to be sure.
    const before = await lastHeartbeat();
    await waitFor(async () => ((await lastHeartbeat()) ?? 0) >= (before ?? 0) + 2500, {
      timeoutMs: 10_000,
      what: 'node-a to keep sending heartbeats',
    });
    expect(await alertsOf(c, 'node_offline')).toEqual([]);

    await node.stop('SIGKILL');
    const silentSince = await lastHeartbeat();
    expect(silentSince).not.toBeNull();
    const offline = await alertIn(c, 'node_offline', 'node-a', 'open', 15_000);
    expect(offline).toMatchObject({
      type: 'node_offline',
      severity: 'critical',
      subject: 'node-a',
      business: '',
    });
    const seconds = Number(/^no heartbeat for (\d+) s$/.exec(offline.summary)?.[1]);
    expect(seconds, offline.summary).toBeGreaterThanOrEqual(3 * HEARTBEAT_SECONDS);
    // Not before 3 heartbeat periods of silence, and at the first sweep after (with room for a busy machine).
    const openedAfter = Date.parse(offline.opened_at) - (silentSince ?? 0);
    expect(openedAfter).toBeGreaterThan(3 * HEARTBEAT_SECONDS * 1000);
    expect(openedAfter).toBeLessThanOrEqual((3 * HEARTBEAT_SECONDS + SWEEP_SECONDS) * 1000 + 2000);

    await c.startNode('node-a');
    const back = await alertIn(c, 'node_offline', 'node-a', 'resolved');
    expect(back).toMatchObject({ id: offline.id, resolved_by: 'system' });
    expect(Date.parse(back.resolved_at ?? '')).toBeGreaterThan(Date.parse(offline.opened_at));
    const history = await detail(c, offline.id);
    expect(history.events.map((e) => [e.kind, e.detail])).toEqual([
      ['opened', offline.summary],
      ['resolved', 'the condition cleared'],
    ]);
  });

  it('opens transfer_failed and integrity when a changed file kills its job; a verified copy resolves both', async () => {
    const c = await start({ instances: 1, maxAttempts: 2, retryBaseSeconds: 1 });
    await register(c, [0]);
    await runOnce(c, '1 run(s), 0 failed, 0 report(s) waiting');
    // Flip one bit of the reported file on the database host.
    const [name = ''] = await readdir(c.backDir(0));
    const handle = await open(join(c.backDir(0), name), 'r+');
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, 1000);
    byte[0] = (byte[0] ?? 0) ^ 0x01;
    await handle.write(byte, 0, 1, 1000);
    await handle.close();
    await c.serveFiles();
    await c.startNode('node-a');
    await waitFor(async () => (await c.jobs())[0]?.state === 'dead', {
      timeoutMs: 30_000,
      what: 'the job to die',
    });
    const [job] = await c.jobs();
    expect(job).toMatchObject({ state: 'dead', attempts: 2, filename: name });

    const subject = `${SERVER_ID}/mysql/4000`;
    // Both are opened in the transaction that failed the job, not by the sweep.
    const [failed] = await alertsOf(c, 'transfer_failed');
    expect(failed).toMatchObject({
      type: 'transfer_failed',
      severity: 'critical',
      subject,
      business: '31',
      state: 'open',
    });
    expect(failed?.summary).toContain(
      `transfer of ${name} gave up after 2 attempts: checksum_mismatch on node node-a`,
    );
    const integrity = await alertsOf(c, 'integrity');
    // One alert although both attempts found the mismatch.
    expect(integrity).toHaveLength(1);
    expect(integrity[0]).toMatchObject({ type: 'integrity', severity: 'critical', subject, state: 'open' });
    expect(integrity[0]?.summary).toBe(`checksum mismatch on pull of ${name} on node node-a`);

    // The instance's next backup is stored and verified: both are over.
    await runOnce(c, '1 run(s), 0 failed, 0 report(s) waiting');
    await waitFor(async () => (await c.jobs())[1]?.state === 'done', {
      timeoutMs: 30_000,
      what: 'the next backup to be stored',
    });
    const stored = (await c.jobs())[1];
    for (const type of ['transfer_failed', 'integrity']) {
      const [alert] = await alertsOf(c, type);
      expect(alert, type).toMatchObject({ subject, state: 'resolved', resolved_by: 'system' });
      const history = await detail(c, alert?.id ?? 0);
      expect(history.events.map((e) => e.kind)).toEqual(['opened', 'resolved']);
      expect(history.events[1]?.detail).toBe(`${stored?.filename} was stored and verified on node node-a`);
    }
  });
});
