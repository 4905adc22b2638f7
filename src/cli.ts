#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { withAdminCatalog } from './admin/admin-catalog.js';
import { createToken } from './admin/create-token.js';
import { AdminInputError, createUser, passwordFromFileText } from './admin/create-user.js';
import { CatalogUrlError } from './catalog/catalog-url.js';
import { migrateCatalog } from './catalog/database.js';
import { runServerUntilSignal } from './server/server-process.js';
import {
  DEFAULT_SERVER_FLAGS,
  resolveServerSettings,
  type ServerFlags,
  SettingsError,
} from './server/server-settings.js';
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
  .action(async (flags: ServerFlags) => {
    await runServerUntilSignal(resolveServerSettings(flags));
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
    await withAdminCatalog(flags, async (catalog) => {
      const { applied } = await migrateCatalog(catalog);
      process.stderr.write(
        applied.length > 0 ? `applied: ${applied.join(', ')}\n` : 'catalog is up to date\n',
      );
    });
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

const EXPECTED_ERRORS = [SettingsError, CatalogUrlError, AdminInputError];

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
