/**
 * Ingest benchmark: N concurrent simulated agents post reports to a real
 * `ubackup server` process on loopback, on SQLite and on PostgreSQL. Prints
 * reports/s, latency percentiles and confirms the stored row count (nothing
 * lost, nothing duplicated). Peer measured in the same run: an empty HTTP
 * round trip to the same server (`GET /healthz`) at the same concurrency, which
 * is the ceiling that Fastify and the loopback set on this machine.
 *
 *   npm run bench:ingest -- [--reports 20000] [--agents 64] [--backend sqlite|postgres|both]
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import type { CatalogLocation } from '../src/catalog/catalog-url.js';
import { openCatalog } from '../src/catalog/database.js';
import type { Report } from '../src/shared/report.js';
import { runCli, startServerProcess } from '../test/support/cli-process.js';
import { startPostgres } from '../test/support/postgres.js';
import { makeTempDir } from '../test/support/temp-dir.js';

const { values } = parseArgs({
  options: {
    reports: { type: 'string', default: '20000' },
    agents: { type: 'string', default: '64' },
    backend: { type: 'string', default: 'both' },
  },
});
const TOTAL = Number(values.reports);
const AGENTS = Number(values.agents);

interface Figures {
  seconds: number;
  perSecond: number;
  p50: number;
  p99: number;
  max: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

function figures(latencies: number[], seconds: number): Figures {
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    seconds,
    perSecond: latencies.length / seconds,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.at(-1) ?? 0,
  };
}

function report(serverId: string, n: number): Report {
  const created = new Date(Date.UTC(2026, 10, 26, 4, 0, 0) + n * 1000).toISOString();
  return {
    report_id: randomUUID(),
    server_id: serverId,
    game_id: String(n % 40),
    type: n % 3 === 0 ? 'redis' : 'mysql',
    instance: String(3306 + (n % 8)),
    section: `inst${n % 8}`,
    status: n % 100 === 0 ? 'failed' : 'ok',
    kind: n % 100 === 0 ? null : 'single',
    filename: n % 100 === 0 ? null : `backup-${n}.tar.gz`,
    size: n % 100 === 0 ? null : 100_000_000 + n,
    blake3: n % 100 === 0 ? null : 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262',
    base_filename: null,
    base_created_at: null,
    created_at: created,
    finished_at: created,
    exit_code: n % 100 === 0 ? 1 : 0,
    error: n % 100 === 0 ? 'script exited with code 1' : null,
    log: n % 100 === 0 ? 'wrong\nno space left\n' : `ok\nbackup-${n}.tar.gz\n`,
    output_tail: '',
    host_ip: '10.0.0.1',
    priority: null,
    agent_version: '0.1.0',
    transport: 'http',
    rsync_model: null,
    pull_port: 8873,
    pull_tls: false,
  };
}

async function timed<T>(run: () => Promise<T>, latencies: number[]): Promise<T> {
  const start = performance.now();
  const res = await run();
  latencies.push(performance.now() - start);
  return res;
}

async function benchBackend(
  name: 'sqlite' | 'postgres',
  db: string | undefined,
  location: (dir: string) => CatalogLocation,
) {
  const dir = await makeTempDir(`ubackup-bench-${name}`);
  try {
    const dbArgs = db ? ['--db', db] : [];
    const enroll = (
      await runCli([
        'admin',
        'token',
        'create',
        '--role',
        'enroll',
        '--name',
        'bench',
        '--data-dir',
        dir.path,
        ...dbArgs,
      ])
    ).stdout.trim();
    const server = await startServerProcess({ dataDir: dir.path, db });
    try {
      const credentials: string[] = [];
      for (let i = 0; i < AGENTS; i += 1) {
        const res = await fetch(`${server.url}/api/v1/agents/enroll`, {
          method: 'POST',
          headers: { authorization: `Bearer ${enroll}`, 'content-type': 'application/json' },
          body: JSON.stringify({ server_id: `host${i}` }),
        });
        credentials.push(((await res.json()) as { credential: string }).credential);
      }
      // undici's request() on a keep-alive pool: the load generator shares the two cores with the
      // server, so it must be as light as it can be (fetch() costs several times more per call).
      const pool = new Pool(server.url, { connections: AGENTS, pipelining: 1 });
      // Peer: empty round trips at the same concurrency.
      const peerLatencies: number[] = [];
      const peerStart = performance.now();
      let peerLeft = TOTAL;
      await Promise.all(
        credentials.map(async () => {
          while (peerLeft-- > 0) {
            const res = await timed(() => pool.request({ path: '/healthz', method: 'GET' }), peerLatencies);
            await res.body.dump();
          }
        }),
      );
      const peer = figures(peerLatencies, (performance.now() - peerStart) / 1000);

      const latencies: number[] = [];
      let next = 0;
      let failures = 0;
      const start = performance.now();
      await Promise.all(
        credentials.map(async (credential, agent) => {
          for (;;) {
            const n = next++;
            if (n >= TOTAL) return;
            const body = JSON.stringify(report(`host${agent}`, n));
            for (let attempt = 1; ; attempt += 1) {
              const res = await timed(
                () =>
                  pool.request({
                    path: '/api/v1/reports',
                    method: 'POST',
                    headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' },
                    body,
                  }),
                latencies,
              );
              await res.body.dump();
              if (res.statusCode === 201) break;
              failures += 1;
              // A server that keeps refusing is a finding, not a reason to loop for ever.
              if (attempt >= 5) break;
            }
          }
        }),
      );
      const ingest = figures(latencies, (performance.now() - start) / 1000);
      await pool.close();
      const catalog = openCatalog(location(dir.path));
      const stored = await catalog.db
        .selectFrom('backups')
        .select((eb) => [eb.fn.countAll().as('rows'), eb.fn.count('report_id').distinct().as('distinct_ids')])
        .executeTakeFirstOrThrow();
      const jobs = await catalog.db
        .selectFrom('transfer_jobs')
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow();
      await catalog.close();
      const expectedJobs = TOTAL - Math.ceil(TOTAL / 100);
      const ok =
        Number(stored.rows) === TOTAL &&
        Number(stored.distinct_ids) === TOTAL &&
        Number(jobs.n) === expectedJobs;
      console.log(`\n[${name}] ${TOTAL} reports from ${AGENTS} concurrent agents`);
      console.log(
        `  ingest : ${ingest.seconds.toFixed(2)} s, ${ingest.perSecond.toFixed(0)} reports/s, p50 ${ingest.p50.toFixed(1)} ms, p99 ${ingest.p99.toFixed(1)} ms, max ${ingest.max.toFixed(1)} ms, non-201 answers ${failures}`,
      );
      console.log(
        `  peer   : GET /healthz ${peer.perSecond.toFixed(0)} req/s, p50 ${peer.p50.toFixed(1)} ms, p99 ${peer.p99.toFixed(1)} ms`,
      );
      console.log(`  ratio  : ingest / empty round trip = ${(ingest.perSecond / peer.perSecond).toFixed(2)}`);
      console.log(
        `  rows   : backups ${stored.rows} (distinct report_id ${stored.distinct_ids}), transfer jobs ${jobs.n} (expected ${expectedJobs}) -> ${ok ? 'nothing lost, nothing duplicated' : 'MISMATCH'}`,
      );
      if (!ok) process.exitCode = 1;
    } finally {
      await server.stop();
    }
  } finally {
    await dir.cleanup();
  }
}

if (values.backend === 'sqlite' || values.backend === 'both') {
  await benchBackend('sqlite', undefined, (dir) => ({ dialect: 'sqlite', path: `${dir}/catalog.db` }));
}
if (values.backend === 'postgres' || values.backend === 'both') {
  const pg = await startPostgres();
  try {
    const url = await pg.createDatabase();
    await benchBackend('postgres', url, () => ({ dialect: 'postgres', url }));
  } finally {
    await pg.stop();
  }
}
