import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { createToken } from '../admin/create-token.js';
import { createUser } from '../admin/create-user.js';
import { startAgentDaemon } from '../agent/agent-daemon.js';
import { runOnce } from '../agent/run-once.js';
import type { Catalog } from '../catalog/database.js';
import { startNodeDaemon } from '../node/node-daemon.js';
import { hashPassword } from '../server/auth/password.js';
import { type RunningServer, startServer } from '../server/server-process.js';
import { DEFAULT_SERVER_FLAGS, resolveServerSettings } from '../server/server-settings.js';
import { freePort } from '../shared/free-port.js';
import {
  SAMPLE_GAME_ID,
  SAMPLE_INSTANCES,
  SAMPLE_SERVER_ID,
  writeSampleHost,
  writeSampleNode,
} from './sample-fleet.js';

export interface DemoOptions {
  listen: string;
  dir?: string;
  intervalSeconds: number;
  log: Logger;
  out: (line: string) => void;
}

export interface RunningDemo {
  url: string;
  dir: string;
  login: { user: string; password: string };
  /** Where the demo's storage node keeps what it pulled. */
  storageDir: string;
  adminToken: string;
  stop(): Promise<void>;
}

/** Registers the demo's businesses, backup types and all sample instances but one. */
async function seedRegistry(catalog: Catalog, nowMs: number, intervalSeconds: number): Promise<void> {
  const db = catalog.db;
  await db
    .insertInto('businesses')
    .values([
      { game_id: SAMPLE_GAME_ID, name: 'Sample game', created_at: nowMs },
      { game_id: '42', name: 'Other game', created_at: nowMs },
    ])
    .onConflict((oc) => oc.column('game_id').doNothing())
    .execute();
  await db
    .insertInto('backup_types')
    .values(
      ['mysql', 'redis', 'postgresql', 'ssdb'].map((name) => ({ name, description: '', created_at: nowMs })),
    )
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
  const cluster = await db
    .selectFrom('clusters')
    .select('id')
    .where('name', '=', 'default')
    .executeTakeFirstOrThrow();
  for (const s of SAMPLE_INSTANCES.filter((i) => i.registered)) {
    await db
      .insertInto('instances')
      .values({
        server_id: SAMPLE_SERVER_ID,
        type: s.type,
        instance: s.instance,
        name: s.section,
        game_id: SAMPLE_GAME_ID,
        cluster_id: cluster.id,
        priority: s.priority,
        schedule: null,
        interval_seconds: intervalSeconds,
        timezone: 'UTC',
        grace_seconds: 3000,
        retention_days: null,
        created_at: nowMs,
        updated_at: nowMs,
      })
      .onConflict((oc) => oc.columns(['server_id', 'type', 'instance']).doNothing())
      .execute();
  }
}

/**
 * `ubackup demo`: the server on SQLite and a sample agent on this machine.
 * The agent's scripts write small real files; their reports show up in the
 * catalog at once and then every `intervalSeconds`.
 */
export async function startDemo(options: DemoOptions): Promise<RunningDemo> {
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'ubackup-demo-')));
  const settings = resolveServerSettings({
    listen: options.listen,
    dataDir: join(dir, 'server'),
    illegalPolicy: 'accept',
    maxAttempts: '5',
    logLevel: options.log.level,
    dbPoolSize: '2',
    leaseSeconds: '60',
    agingSeconds: '600',
    heartbeatSeconds: '5',
    retryBaseSeconds: '30',
    alertSweepSeconds: '5',
    retentionSeconds: DEFAULT_SERVER_FLAGS.retentionSeconds,
    backlogSeconds: DEFAULT_SERVER_FLAGS.backlogSeconds,
  });
  let server: RunningServer;
  try {
    server = await startServer(settings, options.log);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    options.out(`${options.listen} is in use; listening on a free port instead`);
    server = await startServer({ ...settings, listen: { host: settings.listen.host, port: 0 } }, options.log);
  }
  const catalog = server.catalog;
  const now = Date.now();
  await seedRegistry(catalog, now, options.intervalSeconds);
  const password = randomBytes(9).toString('base64url');
  const user = 'admin';
  const existing = await catalog.db
    .selectFrom('users')
    .select('id')
    .where('name', '=', user)
    .executeTakeFirst();
  if (existing) {
    // A demo started again in the same --dir: the login printed must be the one that works.
    await catalog.db
      .updateTable('users')
      .set({ password_hash: await hashPassword(password) })
      .where('id', '=', existing.id)
      .execute();
  } else {
    await createUser(catalog, { name: user, role: 'admin', password }, now);
  }
  const adminToken = await createToken(
    catalog,
    { name: 'demo-admin', role: 'admin', expiresAtMs: null, userName: user },
    now,
  );
  const enrollToken = await createToken(
    catalog,
    { name: 'demo-enroll', role: 'enroll', expiresAtMs: null, userName: null },
    now,
  );
  const host = await writeSampleHost(dir, {
    serverUrl: server.url,
    enrollToken,
    intervalSeconds: options.intervalSeconds,
    filePort: await freePort(),
  });
  const nodeConfig = await writeSampleNode(dir, {
    serverUrl: server.url,
    enrollToken,
    restorePort: await freePort(),
  });

  const agentLog = options.log.child({ name: 'ubackup-agent' });
  await runOnce({ configPath: host.configPath, log: agentLog });
  const agent = await startAgentDaemon({ configPath: host.configPath, log: agentLog });
  const node = await startNodeDaemon({
    configPath: nodeConfig,
    log: options.log.child({ name: 'ubackup-node' }),
    idlePollMs: 1000,
  });
  return {
    storageDir: join(dir, 'node-storage'),
    url: server.url,
    dir,
    login: { user, password },
    adminToken,
    stop: async () => {
      await node.stop();
      await agent.stop();
      await server.close();
    },
  };
}
