#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { withAdminCatalog } from './admin/admin-catalog.js';
import { createToken } from './admin/create-token.js';
import { AdminInputError, createUser, passwordFromFileText } from './admin/create-user.js';
import { listTokens, revokeTokens } from './admin/manage-tokens.js';
import { resetHost, resetNode } from './admin/reset-host.js';
import {
  formatRetentionPlans,
  parseInstanceIdentity,
  retentionPlansJson,
} from './admin/retention-plan-command.js';
import { formatRebuildOutcome, parseRebuildRange } from './admin/stats-rebuild-command.js';
import { AgentStartError, startAgentDaemon } from './agent/agent-daemon.js';
import { runOnce } from './agent/run-once.js';
import { runAgentServe } from './agent/serve-command.js';
import { CatalogUrlError } from './catalog/catalog-url.js';
import { migrateCatalog } from './catalog/database.js';
import { startDemo } from './demo/demo.js';
import { NodeStartError, startNodeDaemon } from './node/node-daemon.js';
import { formatReindexSummary, NodeReindexError, reindexNode } from './node/reindex.js';
import { runRestore } from './restore/restore-command.js';
import { RESTORE_EXIT, RestoreError } from './restore/restore-error.js';
import { parseRestoreFlags, type RestoreFlags } from './restore/restore-options.js';
import { retentionPlans } from './server/retention/load-retention-plans.js';
import { createLogger, runServerUntilSignal } from './server/server-process.js';
import {
  DEFAULT_SERVER_FLAGS,
  resolveServerSettings,
  type ServerFlags,
  SettingsError,
} from './server/server-settings.js';
import { rebuildRollups } from './server/stats/rebuild-rollups.js';
import { type Priority, parsePriority } from './shared/priority.js';
import { stopOnSignal } from './shared/stop-on-signal.js';
import { UBACKUP_VERSION } from './shared/version.js';

const program = new Command()
  .name('ubackup')
  .description('Moves database backups off-site for a large fleet and proves they are there.')
  .version(UBACKUP_VERSION);

const dataDirOption = () =>
  new Option('--data-dir <dir>', 'server data directory')
    .env('UBACKUP_DATA_DIR')
    .default(DEFAULT_SERVER_FLAGS.dataDir);
const dbOption = () =>
  new Option(
    '--db <url>',
    'catalog: sqlite:<path> or postgres://… (default: sqlite:<data-dir>/catalog.db)',
  ).env('UBACKUP_DB');

program
  .command('server')
  .description('the control plane: API, catalog, queue')
  .addOption(
    new Option('--listen <host:port>', 'address to listen on')
      .env('UBACKUP_LISTEN')
      .default(DEFAULT_SERVER_FLAGS.listen),
  )
  .addOption(dataDirOption())
  .addOption(dbOption())
  .addOption(
    new Option(
      '--illegal-policy <policy>',
      'reports for unregistered instances: accept (store, flag, queue) or reject',
    )
      .env('UBACKUP_ILLEGAL_POLICY')
      .default(DEFAULT_SERVER_FLAGS.illegalPolicy),
  )
  .addOption(
    new Option('--max-attempts <n>', 'transfer attempts before a job is dead')
      .env('UBACKUP_MAX_ATTEMPTS')
      .default(DEFAULT_SERVER_FLAGS.maxAttempts),
  )
  .addOption(
    new Option('--log-level <level>', 'pino log level')
      .env('UBACKUP_LOG_LEVEL')
      .default(DEFAULT_SERVER_FLAGS.logLevel),
  )
  .addOption(
    new Option('--lease-seconds <n>', 'how long a transfer lease lasts without progress')
      .env('UBACKUP_LEASE_SECONDS')
      .default(DEFAULT_SERVER_FLAGS.leaseSeconds),
  )
  .addOption(
    new Option(
      '--aging-seconds <n>',
      'a queued job rises one priority level per this many seconds of waiting',
    )
      .env('UBACKUP_AGING_SECONDS')
      .default(DEFAULT_SERVER_FLAGS.agingSeconds),
  )
  .addOption(
    new Option('--heartbeat-seconds <n>', 'how often storage nodes report')
      .env('UBACKUP_HEARTBEAT_SECONDS')
      .default(DEFAULT_SERVER_FLAGS.heartbeatSeconds),
  )
  .addOption(
    new Option(
      '--retry-base-seconds <n>',
      'first retry delay after a failed transfer (doubles per attempt, capped at 1 h)',
    )
      .env('UBACKUP_RETRY_BASE_SECONDS')
      .default(DEFAULT_SERVER_FLAGS.retryBaseSeconds),
  )
  .addOption(
    new Option('--alert-sweep-seconds <n>', 'how often alerts are evaluated and notifications sent')
      .env('UBACKUP_ALERT_SWEEP_SECONDS')
      .default(DEFAULT_SERVER_FLAGS.alertSweepSeconds),
  )
  .addOption(
    new Option(
      '--retention-seconds <n>',
      'how often retention requests the deletes of expired stored backups (0: never)',
    )
      .env('UBACKUP_RETENTION_SECONDS')
      .default(DEFAULT_SERVER_FLAGS.retentionSeconds),
  )
  .addOption(
    new Option(
      '--backlog-seconds <n>',
      "queue_backlog opens when a cluster's oldest queued job waited this long",
    )
      .env('UBACKUP_BACKLOG_SECONDS')
      .default(DEFAULT_SERVER_FLAGS.backlogSeconds),
  )
  .addOption(
    new Option('--public-url <url>', "the dashboard's address, for links in notifications").env(
      'UBACKUP_PUBLIC_URL',
    ),
  )
  .addOption(
    new Option('--db-pool-size <n>', 'PostgreSQL connections per server process')
      .env('UBACKUP_DB_POOL_SIZE')
      .default(DEFAULT_SERVER_FLAGS.dbPoolSize),
  )
  .addOption(
    new Option(
      '--web-dir <dir>',
      'the built dashboard to serve at / (default: dist/web next to the server)',
    ).env('UBACKUP_WEB_DIR'),
  )
  .addOption(
    new Option(
      '--metrics-listen <host:port>',
      'also serve /metrics WITHOUT a token on this address (a private one; default: none)',
    ).env('UBACKUP_METRICS_LISTEN'),
  )
  .action(async (flags: ServerFlags) => {
    await runServerUntilSignal(resolveServerSettings(flags));
  });

const agent = program.command('agent').description('the agent on every database host');
const configOption = () =>
  new Option('--config <file>', 'agent config (INI, compatible with /etc/uuzuback.conf)')
    .env('UBACKUP_AGENT_CONFIG')
    .default('/etc/ubackup/agent.conf');
const logLevelOption = () =>
  new Option('--log-level <level>', 'pino log level').env('UBACKUP_LOG_LEVEL').default('info');

agent
  .command('daemon', { isDefault: true })
  .description('run every instance on its schedule and deliver the reports (the default)')
  .addOption(configOption())
  .addOption(logLevelOption())
  .action(async (flags: { config: string; logLevel: string }) => {
    const log = createLogger(flags.logLevel, 'ubackup-agent');
    const daemon = await startAgentDaemon({ configPath: flags.config, log });
    stopOnSignal(log, () => daemon.stop());
  });

agent
  .command('run-once')
  .description('run every instance once (or --only one), as the old cron client did, then deliver')
  .addOption(configOption())
  .option('--only <section>', 'run only this config section')
  .option('--priority <level>', 'critical | high | normal | low (the old -q level1 is high)')
  .addOption(logLevelOption())
  .action(async (flags: { config: string; only?: string; priority?: string; logLevel: string }) => {
    let priority: Priority | undefined;
    if (flags.priority !== undefined) {
      const parsed = parsePriority(flags.priority);
      if (parsed === null) {
        throw new AgentStartError(
          `--priority must be critical, high, normal or low, not "${flags.priority}"`,
        );
      }
      priority = parsed;
    }
    const log = createLogger(flags.logLevel, 'ubackup-agent');
    const result = await runOnce({ configPath: flags.config, only: flags.only, priority, log });
    process.stderr.write(
      `${result.reports} run(s), ${result.failed} failed, ${result.undelivered} report(s) waiting in the spool\n`,
    );
  });

agent
  .command('serve')
  .description('only the file server storage nodes pull from (for hosts whose runs come from cron)')
  .addOption(configOption())
  .addOption(logLevelOption())
  .action(async (flags: { config: string; logLevel: string }) => {
    const log = createLogger(flags.logLevel, 'ubackup-agent');
    const server = await runAgentServe({ configPath: flags.config, log });
    stopOnSignal(log, () => server.close());
  });

program
  .command('demo')
  .description('everything on this machine: the server on SQLite and a sample agent writing real files')
  .option('--listen <host:port>', 'address for the server', '127.0.0.1:8080')
  .option('--dir <dir>', 'where the demo keeps its files (default: a new temp dir)')
  .option('--interval <seconds>', 'how often the sample scripts run', '60')
  .addOption(new Option('--log-level <level>', 'pino log level').default('warn'))
  .action(async (flags: { listen: string; dir?: string; interval: string; logLevel: string }) => {
    const intervalSeconds = Number(flags.interval);
    if (!Number.isInteger(intervalSeconds) || intervalSeconds < 10) {
      throw new SettingsError(
        `--interval must be a whole number of seconds, at least 10, not "${flags.interval}"`,
      );
    }
    const log = createLogger(flags.logLevel, 'ubackup-demo');
    const out = (line: string) => process.stdout.write(`${line}\n`);
    const demo = await startDemo({
      listen: flags.listen,
      dir: flags.dir,
      intervalSeconds,
      log,
      out,
    });
    out('');
    out('UBackup demo is running: the server on SQLite, a sample agent and a storage node, on this machine.');
    out(`  Dashboard:  ${demo.url}/   (log in with the login below)`);
    out(`  Login:      ${demo.login.user} / ${demo.login.password}`);
    out(`  Server:     ${demo.url}   (API description: ${demo.url}/api/v1/openapi.json)`);
    out(`  API token:  ${demo.adminToken}   (admin)`);
    out(
      `  Backups:    curl -s -H 'Authorization: Bearer ${demo.adminToken}' '${demo.url}/api/v1/backups?limit=10'`,
    );
    out(`  Files:      ${demo.dir}   (agent.conf, node.conf, scripts/, host-backups/, server/catalog.db)`);
    out(`  Stored:     ${demo.storageDir}   (what the demo storage node pulled and verified)`);
    out(
      `The sample scripts ran once and now run every ${flags.interval} s; one instance is unregistered (illegal),`,
    );
    out('one fails now and then. Press Ctrl-C to stop.');
    stopOnSignal(log, () => demo.stop());
  });

const node = program.command('node').description('a storage node');
const nodeConfigOption = () =>
  new Option('--config <file>', 'node config (INI, compatible with the old storage node)')
    .env('UBACKUP_NODE_CONFIG')
    .default('/etc/ubackup/node.conf');

node
  .command('daemon', { isDefault: true })
  .description('lease transfer jobs, pull and verify files, store them (the default)')
  .addOption(nodeConfigOption())
  .addOption(logLevelOption())
  .action(async (flags: { config: string; logLevel: string }) => {
    const log = createLogger(flags.logLevel, 'ubackup-node');
    const daemon = await startNodeDaemon({ configPath: flags.config, log });
    stopOnSignal(log, () => daemon.stop());
  });

node
  .command('reindex')
  .description("tell the server where this node's files are, from their sidecars (rebuilds a lost catalog)")
  .addOption(nodeConfigOption())
  .option('--verify', 're-hash every file (BLAKE3) and skip those that differ from their sidecar')
  .addOption(logLevelOption())
  .action(async (flags: { config: string; verify?: boolean; logLevel: string }) => {
    const log = createLogger(flags.logLevel, 'ubackup-node');
    try {
      const summary = await reindexNode({ configPath: flags.config, log, verify: flags.verify === true });
      process.stderr.write(formatReindexSummary(summary));
      // 1: it ran, but some files are not in the catalog (problems or conflicts listed above).
      if (summary.problems.length > 0 || summary.conflicts.length > 0) process.exitCode = 1;
    } catch (error) {
      if (!(error instanceof NodeReindexError)) throw error;
      process.stderr.write(`ubackup: ${error.message}\n`);
      process.exitCode = 2;
    }
  });

program
  .command('restore')
  .description(
    'download a backup and its chain (full + incrementals) from the nodes, verify them, and run a restore hook',
  )
  .option('--server <url>', 'the UBackup server, e.g. https://ubackup.example:8080')
  .addOption(new Option('--token <token>', 'an API token (viewer is enough)').env('UBACKUP_TOKEN'))
  .option('--server-id <id>', "the database host's server_id")
  .option('--type <type>', 'the backup type, e.g. mysql')
  .option('--instance <instance>', 'the instance, e.g. 3306')
  .option('--at <time>', 'restore the state as of this ISO 8601 time (default: now)')
  .option(
    '--to <dir>',
    'download into this directory (default: ./ubackup-restore-<server_id>-<type>-<instance>-<backup time>)',
  )
  .option('--exec <command>', 'then run this hook with the files, in chain order, as its arguments')
  .option('--dry-run', 'print the plan; download nothing')
  .option('--json', 'print one JSON result on stdout')
  .exitOverride((error) => {
    // Help and version end with 0; every other problem with the command line is a usage error.
    process.exit(error.exitCode === 0 ? 0 : RESTORE_EXIT.usage);
  })
  .action(async (flags: RestoreFlags) => {
    let options: ReturnType<typeof parseRestoreFlags>;
    try {
      options = parseRestoreFlags(flags);
    } catch (error) {
      if (!(error instanceof RestoreError)) throw error;
      process.stderr.write(`ubackup restore: ${error.message}\n`);
      if (flags.json === true) {
        process.stdout.write(
          `${JSON.stringify({ ok: false, exit_code: error.exitCode, error: { code: error.code, message: error.message } })}\n`,
        );
      }
      process.exitCode = error.exitCode;
      return;
    }
    process.exitCode = await runRestore(options, {
      stdout: process.stdout,
      stderr: process.stderr,
      cwd: process.cwd(),
      env: process.env,
    });
  });

const admin = program
  .command('admin')
  .description('catalog administration (same --data-dir / --db as the server)');

admin
  .command('migrate')
  .description('bring the catalog to the newest schema (the server also does this on start)')
  .addOption(dataDirOption())
  .addOption(dbOption())
  .action(async (flags: { dataDir: string; db?: string }) => {
    await withAdminCatalog(
      flags,
      async (catalog) => {
        const { applied } = await migrateCatalog(catalog);
        process.stderr.write(
          applied.length > 0 ? `applied: ${applied.join(', ')}\n` : 'catalog is up to date\n',
        );
      },
      { migrate: false },
    );
  });

const user = admin.command('user').description('people who log in');
user
  .command('create')
  .requiredOption('--name <name>', 'login name')
  .requiredOption('--role <role>', 'admin | operator | viewer')
  .requiredOption('--password-file <file>', 'file holding the password (- for stdin)')
  .addOption(dataDirOption())
  .addOption(dbOption())
  .action(
    async (flags: { name: string; role: string; passwordFile: string; dataDir: string; db?: string }) => {
      const password = passwordFromFileText(
        readFileSync(flags.passwordFile === '-' ? 0 : flags.passwordFile, 'utf8'),
      );
      await withAdminCatalog(flags, async (catalog) => {
        await createUser(catalog, { name: flags.name, role: flags.role, password }, Date.now());
        process.stderr.write(`user ${flags.name} created (${flags.role})\n`);
      });
    },
  );

const token = admin.command('token').description('API and enrollment tokens');
token
  .command('create')
  .description('create a token; prints only the token on stdout')
  .requiredOption('--name <name>', 'what the token is for')
  .requiredOption('--role <role>', 'enroll | admin | operator | viewer')
  .option('--user <name>', 'the user the token belongs to')
  .option('--expires-in-days <days>', 'expiry (default: never)')
  .addOption(dataDirOption())
  .addOption(dbOption())
  .action(
    async (flags: {
      name: string;
      role: string;
      user?: string;
      expiresInDays?: string;
      dataDir: string;
      db?: string;
    }) => {
      let expiresAtMs: number | null = null;
      if (flags.expiresInDays !== undefined) {
        const days = Number(flags.expiresInDays);
        if (!Number.isFinite(days) || days <= 0)
          throw new AdminInputError('--expires-in-days must be a positive number');
        expiresAtMs = Date.now() + days * 86_400_000;
      }
      await withAdminCatalog(flags, async (catalog) => {
        const secret = await createToken(
          catalog,
          { name: flags.name, role: flags.role, expiresAtMs, userName: flags.user ?? null },
          Date.now(),
        );
        process.stdout.write(`${secret}\n`);
      });
    },
  );

token
  .command('list')
  .description('list tokens (names, roles, expiry; secrets are never stored)')
  .addOption(dataDirOption())
  .addOption(dbOption())
  .action(async (flags: { dataDir: string; db?: string }) => {
    await withAdminCatalog(flags, async (catalog) => {
      for (const t of await listTokens(catalog)) {
        const state = t.revoked_at
          ? `revoked ${t.revoked_at}`
          : t.expires_at
            ? `expires ${t.expires_at}`
            : 'live';
        process.stdout.write(`${t.id}\t${t.name}\t${t.role}\t${t.user ?? '-'}\t${t.created_at}\t${state}\n`);
      }
    });
  });
token
  .command('revoke')
  .description(
    'revoke a token by --id, or every live token with --name (servers stop trusting it within 10 s)',
  )
  .option('--id <id>', 'token id (from token list)')
  .option('--name <name>', 'token name')
  .addOption(dataDirOption())
  .addOption(dbOption())
  .action(async (flags: { id?: string; name?: string; dataDir: string; db?: string }) => {
    if ((flags.id === undefined) === (flags.name === undefined))
      throw new AdminInputError('give exactly one of --id or --name');
    const which = flags.id !== undefined ? { id: Number(flags.id) } : { name: flags.name as string };
    if ('id' in which && !Number.isInteger(which.id)) throw new AdminInputError('--id must be a number');
    await withAdminCatalog(flags, async (catalog) => {
      const revoked = await revokeTokens(catalog, which, Date.now());
      process.stderr.write(`revoked ${revoked} token(s)\n`);
    });
  });

admin
  .command('host')
  .description('enrolled database hosts')
  .command('reset')
  .description('forget a host credential so the host can enroll again (reinstalled host, lost state_dir)')
  .requiredOption('--server-id <id>', 'the host server_id')
  .addOption(dataDirOption())
  .addOption(dbOption())
  .action(async (flags: { serverId: string; dataDir: string; db?: string }) => {
    await withAdminCatalog(flags, async (catalog) => {
      await resetHost(catalog, flags.serverId, Date.now());
      process.stderr.write(`host ${flags.serverId} reset: its agent enrolls again with its enroll_token\n`);
    });
  });

admin
  .command('node')
  .description('enrolled storage nodes')
  .command('reset')
  .description(
    'forget a storage node credential so the node can enroll again (reinstalled node, lost state_dir)',
  )
  .requiredOption('--name <name>', 'the node name')
  .addOption(dataDirOption())
  .addOption(dbOption())
  .action(async (flags: { name: string; dataDir: string; db?: string }) => {
    await withAdminCatalog(flags, async (catalog) => {
      await resetNode(catalog, flags.name, Date.now());
      process.stderr.write(`node ${flags.name} reset: it enrolls again with its enroll_token\n`);
    });
  });

admin
  .command('retention')
  .description('retention: which stored backups are kept and which deleted (DESIGN §11)')
  .command('plan')
  .description('print, for every stored backup, keep or delete and why (a dry run: changes nothing)')
  .option(
    '--instance <server_id/type/instance>',
    'only this instance (default: every instance with stored backups)',
  )
  .option('--json', 'print the plan as JSON')
  .addOption(dataDirOption())
  .addOption(dbOption())
  .action(async (flags: { instance?: string; json?: boolean; dataDir: string; db?: string }) => {
    const instance = flags.instance === undefined ? undefined : parseInstanceIdentity(flags.instance);
    await withAdminCatalog(flags, async (catalog) => {
      const now = Date.now();
      const plans = await retentionPlans(catalog, instance ? { instance } : {}, now);
      process.stdout.write(
        flags.json
          ? `${JSON.stringify(retentionPlansJson(plans, now), null, 2)}\n`
          : formatRetentionPlans(plans),
      );
    });
  });

admin
  .command('stats')
  .description('statistics rollups (docs/operations.md, Statistics)')
  .command('rebuild')
  .description('recompute the rollups from the backups and transfer jobs (UTC days, both included)')
  .option('--from <date>', 'first UTC day, YYYY-MM-DD (default: the oldest)')
  .option('--to <date>', 'last UTC day, YYYY-MM-DD (default: the newest)')
  .addOption(dataDirOption())
  .addOption(dbOption())
  .action(async (flags: { from?: string; to?: string; dataDir: string; db?: string }) => {
    const range = parseRebuildRange(flags);
    await withAdminCatalog(flags, async (catalog) => {
      process.stdout.write(formatRebuildOutcome(range, await rebuildRollups(catalog, range)));
    });
  });

const EXPECTED_ERRORS = [SettingsError, CatalogUrlError, AdminInputError, AgentStartError, NodeStartError];

program.parseAsync(process.argv).catch((error: unknown) => {
  if (EXPECTED_ERRORS.some((kind) => error instanceof kind)) {
    process.stderr.write(`ubackup: ${(error as Error).message}\n`);
    process.exit(2);
  }
  process.stderr.write(
    `ubackup: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
