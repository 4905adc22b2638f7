import { instanceNameSchema, serverIdSchema, typeNameSchema } from '../shared/report.js';
import { RESTORE_EXIT, RestoreError } from './restore-error.js';

/** The flags of `ubackup restore` as the command line gives them. */
export interface RestoreFlags {
  server?: string;
  token?: string;
  serverId?: string;
  type?: string;
  instance?: string;
  at?: string;
  to?: string;
  exec?: string;
  dryRun?: boolean;
  json?: boolean;
}

export interface RestoreOptions {
  /** http(s) URL of the UBackup server. */
  server: string;
  token: string;
  serverId: string;
  type: string;
  instance: string;
  /** `--at` as an ISO 8601 UTC time; null for now. */
  at: string | null;
  /** `--to` as given (resolved against the working directory later); null for the default directory. */
  to: string | null;
  exec: string | null;
  dryRun: boolean;
  json: boolean;
}

function usage(message: string): RestoreError {
  return new RestoreError(RESTORE_EXIT.usage, 'usage', message);
}

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value.trim() === '') throw usage(`${flag} is required`);
  return value.trim();
}

function component(value: string, flag: string, schema: typeof serverIdSchema): string {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw usage(`${flag} "${value}" is not valid: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
  }
  return parsed.data;
}

/**
 * `--at`: any time `Date` reads, e.g. `2026-11-20T04:30:00Z`,
 * `2026-11-20T04:30+08:00`, or `2026-11-20T04:30` (no offset: this machine's
 * local time zone), and `2026-11-20` (midnight UTC, as ISO 8601 dates are).
 */
export function parseAt(value: string): string {
  const ms = Date.parse(value.trim());
  if (!/^\d{4}-\d{2}-\d{2}/.test(value.trim()) || Number.isNaN(ms)) {
    throw usage(
      `--at "${value}" is not an ISO 8601 time (e.g. 2026-11-20T04:30:00Z or 2026-11-20T04:30+08:00)`,
    );
  }
  return new Date(ms).toISOString();
}

/** Checks the flags; every problem is a RestoreError with exit code 2. */
export function parseRestoreFlags(flags: RestoreFlags): RestoreOptions {
  const server = required(flags.server, '--server');
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw usage(`--server "${server}" is not a URL (e.g. https://ubackup.example:8080)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw usage(`--server "${server}" must be an http:// or https:// URL`);
  }
  const token = required(flags.token, '--token (or UBACKUP_TOKEN)');
  const exec = flags.exec === undefined ? null : flags.exec.trim();
  if (exec === '') throw usage('--exec is empty');
  const to = flags.to === undefined ? null : flags.to;
  if (to === '') throw usage('--to is empty');
  return {
    server,
    token,
    serverId: component(required(flags.serverId, '--server-id'), '--server-id', serverIdSchema),
    type: component(required(flags.type, '--type'), '--type', typeNameSchema),
    instance: component(required(flags.instance, '--instance'), '--instance', instanceNameSchema),
    at: flags.at === undefined ? null : parseAt(flags.at),
    to,
    exec,
    dryRun: flags.dryRun === true,
    json: flags.json === true,
  };
}
