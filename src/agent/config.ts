import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { posix } from 'node:path';
import { cronProblem } from '../shared/cron-schedule.js';
import { componentProblem, describeComponentProblem } from '../shared/path-component.js';
import { type Priority, parsePriority } from '../shared/priority.js';
import { parseDurationSeconds } from '../shared/units.js';
import { type IniProblem, type IniSection, readIniText } from './ini-file.js';

/**
 * The agent's configuration: the legacy `/etc/uuzuback.conf` format (DESIGN §5).
 *
 * Every problem names file, section, key and line. An error fails only its
 * section: an error in [global] makes `global` null (no instance can run), an
 * error in an instance section drops that instance; the others still load.
 * Obsolete and unknown keys are warnings. `parseAgentConfig` does no I/O.
 */

export interface ConfigIssue {
  file: string;
  section: string | null;
  key: string | null;
  line: number | null;
  message: string;
}

export type Schedule =
  | { kind: 'interval'; seconds: number }
  | { kind: 'cron'; expression: string; timezone: string };

export type Transport = 'http' | 'rsync';

export interface InstanceConfig {
  /** The section name (the instance's display name). */
  name: string;
  /** back_type */
  type: string;
  instance: string;
  /** Absolute, as configured. */
  backDir: string;
  backLog: string;
  lastAllLog: string | null;
  /** Run with /bin/sh -c. */
  script: string;
  schedule: Schedule;
  /** The section's `priority`; null when unset, so the server's registry decides. */
  priority: Priority | null;
  timeoutSeconds: number;
  transport: Transport;
  /** Legacy rsync_model, kept for the rsync transport. */
  rsyncModel: string | null;
}

/** The file server's certificate and key (PEM files), from `tls_cert` / `tls_key`. */
export interface AgentTlsFiles {
  /** Absolute path of the certificate (chain) in PEM. */
  certFile: string;
  /** Absolute path of its private key in PEM. */
  keyFile: string;
}

export interface GlobalConfig {
  serverId: string;
  gameId: string;
  serverUrl: string;
  enrollToken: string | null;
  stateDir: string;
  myIp: string;
  listen: { host: string; port: number };
  /**
   * The port storage nodes connect to, when it is not `listen`'s (a NAT or a
   * port forward in front of the host); absent means `listen`'s port.
   */
  pullPort?: number | null;
  /**
   * HTTPS for the file server when both `tls_cert` and `tls_key` are set; null
   * (or absent, in configs built by hand) means plain HTTP.
   */
  tls?: AgentTlsFiles | null;
  intervalSeconds: number;
  timezone: string;
  jitterSeconds: number;
  /**
   * `metrics_listen`: the agent daemon serves `/metrics` without
   * authentication here (a loopback or private address); null (or absent): off.
   */
  metricsListen?: { host: string; port: number } | null;
}

export interface AgentConfigResult {
  /** Null when [global] is missing or has errors: then no instance can run. */
  global: GlobalConfig | null;
  /** Only the sections without errors. */
  instances: InstanceConfig[];
  errors: ConfigIssue[];
  warnings: ConfigIssue[];
}

export interface ParseAgentConfigOptions {
  /** The default for `tz`; the host's time zone when omitted. */
  hostTimeZone?: string;
}

export const GLOBAL_SECTION = 'global';
export const DEFAULT_STATE_DIR = '/var/lib/ubackup/agent';
export const DEFAULT_LISTEN = { host: '0.0.0.0', port: 8873 } as const;
export const DEFAULT_INTERVAL_SECONDS = 3600;
export const DEFAULT_JITTER_SECONDS = 30;
export const DEFAULT_TIMEOUT_SECONDS = 7200;
/** The report contract's limits (src/shared/report.ts). */
const MAX_ID_CHARS = 64;
const MAX_TYPE_CHARS = 64;
const MAX_INSTANCE_CHARS = 128;
const MAX_SECTION_CHARS = 128;

const SERVER_URL_MISSING =
  'server_url is missing: add "server_url = https://<ubackup-server>:8080" to [global] ' +
  '(the old client pushed to Redis; UBackup agents report over HTTPS)';

const GLOBAL_KEYS = [
  'server_id',
  'game_id',
  'server_url',
  'enroll_token',
  'state_dir',
  'my_ip',
  'listen',
  'tls_cert',
  'tls_key',
  'pull_port',
  'interval',
  'tz',
  'jitter',
  'metrics_listen',
] as const;

const INSTANCE_KEYS = [
  'back_type',
  'instance',
  'back_dir',
  'back_log',
  'last_all_log',
  'script',
  'schedule',
  'interval',
  'tz',
  'priority',
  'timeout',
  'transport',
  'rsync_model',
] as const;

const REDIS_REPLACED = 'the old client pushed to Redis; UBackup agents report to server_url over HTTPS';

/** Keys of the old client's [global] that mean nothing now, and what replaced them. */
const OBSOLETE_GLOBAL_KEYS: ReadonlyMap<string, string> = new Map([
  ['op_id', 'it was a reserved field of the old client'],
  ['redis_host', REDIS_REPLACED],
  ['redis_port', REDIS_REPLACED],
  ['redis_queue', `${REDIS_REPLACED}; set an instance's priority with "priority ="`],
  ['message_redis_host', REDIS_REPLACED],
  ['message_redis_port', REDIS_REPLACED],
  ['message_queue', REDIS_REPLACED],
  ['mysqlkeeptime', 'retention is configured on the UBackup server'],
  ['rediskeeptime', 'retention is configured on the UBackup server'],
  ['node_id', 'hosts enroll with the server and get their identity from it'],
  ['log', 'logs go to stdout/journald'],
  ['error_log', 'logs go to stdout/journald'],
]);

// ---------------------------------------------------------------------------
// Value checks: pure functions from the trimmed text to a value or a message.

export type Check<T> = { ok: true; value: T } | { ok: false; message: string };
export type Validator<T> = (raw: string) => Check<T>;

export const accept = <T>(value: T): Check<T> => ({ ok: true, value });
export const reject = <T>(message: string): Check<T> => ({ ok: false, message });

function pathComponentValue(maxChars: number): Validator<string> {
  return (raw) => {
    const problem = componentProblem(raw);
    if (problem) return reject(`"${raw}" ${describeComponentProblem(problem)}`);
    if (raw.length > maxChars) return reject(`"${raw}" is longer than ${maxChars} characters`);
    return accept(raw);
  };
}

export const absolutePath: Validator<string> = (raw) =>
  posix.isAbsolute(raw) ? accept(raw) : reject(`"${raw}" is not an absolute path (it must start with /)`);

export const nonEmptyText: Validator<string> = (raw) => accept(raw);

export const httpUrl: Validator<string> = (raw) => {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return reject(`"${raw}" is not a URL (expected e.g. https://<ubackup-server>:8080)`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    return reject(`"${raw}" must be an http:// or https:// URL`);
  }
  return accept(raw);
};

export const ipAddress: Validator<string> = (raw) =>
  isIP(raw) === 0 ? reject(`"${raw}" is not an IPv4 or IPv6 address`) : accept(raw);

const HOST_NAME = /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

/** `host:port`, `[ipv6]:port`. */
/** `metrics_listen`: `host:port`, or `off` / `none` (also the default: no metrics listener). */
const listenOrOff: Validator<{ host: string; port: number } | null> = (raw) =>
  ['off', 'none'].includes(raw.toLowerCase()) ? accept(null) : listenAddress(raw);

export const listenAddress: Validator<{ host: string; port: number }> = (raw) => {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(raw);
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  const bad = reject<{ host: string; port: number }>(
    `"${raw}" is not "host:port" (e.g. 0.0.0.0:8873 or [::]:8873)`,
  );
  if (host === undefined || !Number.isInteger(port)) return bad;
  if (match?.[1] !== undefined && isIP(host) !== 6) return bad;
  if (match?.[2] !== undefined && isIP(host) === 0 && !HOST_NAME.test(host)) return bad;
  if (port < 1 || port > 65535) return reject(`port ${port} in "${raw}" is not between 1 and 65535`);
  return accept({ host, port });
};

/**
 * The old `rsync_model`: an rsync daemon module and optional directories under
 * it (`backup/database_3306`). A trailing `/` is dropped; anything else that a
 * report could not carry is an error here, where the operator sees it.
 */
export const rsyncModelValue: Validator<string> = (raw) => {
  const value = raw.replace(/\/+$/, '');
  const parts = value.split('/');
  if (
    value === '' ||
    parts.some((p) => !/^[A-Za-z0-9._-]+$/.test(p) || p === '.' || p === '..' || p.startsWith('-'))
  ) {
    return reject(`"${raw}" is not module[/dir…] of letters, digits, . _ - (e.g. backup/database_3306)`);
  }
  return accept(value);
};

/** A TCP port, 1–65535. */
export const portNumber: Validator<number> = (raw) => {
  const port = Number(raw);
  return /^\d+$/.test(raw) && port >= 1 && port <= 65535
    ? accept(port)
    : reject(`"${raw}" is not a port number (1-65535)`);
};

export function seconds(minimum: 0 | 1): Validator<number> {
  return (raw) => {
    const value = parseDurationSeconds(raw);
    if (value === null) return reject(`"${raw}" is not a duration (seconds, or e.g. 90s, 15m, 2h, 1d)`);
    if (value < minimum) return reject(`"${raw}" must be at least ${minimum} second`);
    return accept(value);
  };
}

export const timeZone: Validator<string> = (raw) => {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: raw });
    return accept(raw);
  } catch {
    return reject(`"${raw}" is not an IANA time zone (e.g. Asia/Shanghai, UTC)`);
  }
};

const priorityValue: Validator<Priority> = (raw) => {
  const priority = parsePriority(raw);
  return priority === null
    ? reject(`"${raw}" is not a priority (critical, high, normal, low; level1 means high)`)
    : accept(priority);
};

const transportValue: Validator<Transport> = (raw) => {
  const value = raw.toLowerCase();
  return value === 'http' || value === 'rsync'
    ? accept(value)
    : reject(`"${raw}" is not a transport (http or rsync)`);
};

/** A 5-field (minute first) or 6-field (second first) cron expression, checked in its time zone. */
export function cronExpression(expression: string, timezone: string): Check<string> {
  const problem = cronProblem(expression, timezone);
  return problem === null ? accept(expression) : reject(problem);
}

// ---------------------------------------------------------------------------
// Reading keys of one section, collecting its issues.

export interface SectionReader {
  file: string;
  section: IniSection;
  errors: ConfigIssue[];
  warnings: ConfigIssue[];
}

export function issue(
  reader: SectionReader,
  key: string | null,
  line: number | null,
  message: string,
): ConfigIssue {
  return { file: reader.file, section: reader.section.name, key, line, message };
}

function readValue<T>(reader: SectionReader, key: string, validate: Validator<T>): T | undefined {
  const entry = reader.section.entries.get(key);
  if (entry === undefined) return undefined;
  const check = validate(entry.value);
  if (check.ok) return check.value;
  reader.errors.push(issue(reader, key, entry.line, check.message));
  return undefined;
}

/** A key that must be present and non-empty. Undefined when missing or invalid (an error is recorded). */
export function requiredKey<T>(
  reader: SectionReader,
  key: string,
  validate: Validator<T>,
  missing = `${key} is missing`,
): T | undefined {
  const entry = reader.section.entries.get(key);
  if (entry === undefined) {
    reader.errors.push(issue(reader, key, reader.section.line, missing));
    return undefined;
  }
  if (entry.value === '') {
    reader.errors.push(issue(reader, key, entry.line, `${key} is empty`));
    return undefined;
  }
  return readValue(reader, key, validate);
}

/** A key that may be absent or empty (then `fallback`). Undefined only when invalid (an error is recorded). */
export function optionalKey<T, F>(
  reader: SectionReader,
  key: string,
  validate: Validator<T>,
  fallback: F,
): T | F | undefined {
  const entry = reader.section.entries.get(key);
  if (entry === undefined || entry.value === '') return fallback;
  return readValue(reader, key, validate);
}

/** Warns about keys this section does not use, naming each one. */
export function warnUnusedKeys(
  reader: SectionReader,
  known: readonly string[],
  obsolete: ReadonlyMap<string, string>,
): void {
  for (const [key, entry] of reader.section.entries) {
    if (known.includes(key)) continue;
    const replacement = obsolete.get(key);
    const message =
      replacement !== undefined
        ? `${key} is obsolete and ignored: ${replacement}`
        : `unknown key ${key} (ignored)${suggestion(key, known)}`;
    reader.warnings.push(issue(reader, key, entry.line, message));
  }
}

function suggestion(key: string, known: readonly string[]): string {
  const loose = (k: string) => k.toLowerCase().replaceAll(/[_\-\s]/g, '');
  const match = known.find((k) => loose(k) === loose(key));
  return match === undefined ? '' : `; did you mean ${match}? (keys are lowercase, with underscores)`;
}

// ---------------------------------------------------------------------------
// [global]

/** What instance sections inherit; known even when [global] itself has errors. */
interface InstanceDefaults {
  intervalSeconds: number;
  timezone: string;
}

function readGlobal(
  reader: SectionReader,
  hostTimeZone: string,
): { config: GlobalConfig | null; defaults: InstanceDefaults } {
  const serverId = requiredKey(reader, 'server_id', pathComponentValue(MAX_ID_CHARS));
  const gameId = requiredKey(reader, 'game_id', pathComponentValue(MAX_ID_CHARS));
  const serverUrl = requiredKey(reader, 'server_url', httpUrl, SERVER_URL_MISSING);
  const enrollToken = optionalKey(reader, 'enroll_token', nonEmptyText, null);
  const stateDir = optionalKey(reader, 'state_dir', absolutePath, DEFAULT_STATE_DIR);
  const myIp = requiredKey(
    reader,
    'my_ip',
    ipAddress,
    'my_ip is missing: add "my_ip = <this host\'s address>" to [global] (storage nodes pull from it)',
  );
  const listen = optionalKey(reader, 'listen', listenAddress, DEFAULT_LISTEN);
  const tls = readTlsFiles(reader);
  const pullPort = optionalKey(reader, 'pull_port', portNumber, null);
  const intervalSeconds = optionalKey(reader, 'interval', seconds(1), DEFAULT_INTERVAL_SECONDS);
  const timezone = optionalKey(reader, 'tz', timeZone, hostTimeZone);
  const jitterSeconds = optionalKey(reader, 'jitter', seconds(0), DEFAULT_JITTER_SECONDS);
  const metricsListen = optionalKey(reader, 'metrics_listen', listenOrOff, null);
  warnUnusedKeys(reader, GLOBAL_KEYS, OBSOLETE_GLOBAL_KEYS);

  const defaults: InstanceDefaults = {
    intervalSeconds: intervalSeconds ?? DEFAULT_INTERVAL_SECONDS,
    timezone: timezone ?? hostTimeZone,
  };
  if (
    reader.errors.length > 0 ||
    serverId === undefined ||
    gameId === undefined ||
    serverUrl === undefined ||
    enrollToken === undefined ||
    stateDir === undefined ||
    myIp === undefined ||
    listen === undefined ||
    tls === undefined ||
    pullPort === undefined ||
    intervalSeconds === undefined ||
    timezone === undefined ||
    jitterSeconds === undefined ||
    metricsListen === undefined
  ) {
    return { config: null, defaults };
  }
  return {
    config: {
      serverId,
      gameId,
      serverUrl,
      enrollToken,
      stateDir,
      myIp,
      listen: { host: listen.host, port: listen.port },
      tls,
      pullPort,
      intervalSeconds,
      timezone,
      jitterSeconds,
      metricsListen: metricsListen === null ? null : { host: metricsListen.host, port: metricsListen.port },
    },
    defaults,
  };
}

/** `tls_cert` and `tls_key`: both (HTTPS) or neither (HTTP). Undefined when invalid (an error is recorded). */
function readTlsFiles(reader: SectionReader): AgentTlsFiles | null | undefined {
  const certFile = optionalKey(reader, 'tls_cert', absolutePath, null);
  const keyFile = optionalKey(reader, 'tls_key', absolutePath, null);
  if (certFile === undefined || keyFile === undefined) return undefined;
  if (certFile === null && keyFile === null) return null;
  if (certFile === null || keyFile === null) {
    const [present, missing] = certFile === null ? ['tls_key', 'tls_cert'] : ['tls_cert', 'tls_key'];
    const line = reader.section.entries.get(present)?.line ?? reader.section.line;
    reader.errors.push(
      issue(
        reader,
        missing,
        line,
        `${missing} is missing: ${present} is set, and the file server needs both tls_cert and tls_key for HTTPS (or neither for HTTP)`,
      ),
    );
    return undefined;
  }
  return { certFile, keyFile };
}

// ---------------------------------------------------------------------------
// Instance sections

function readSchedule(reader: SectionReader, defaults: InstanceDefaults): Schedule | undefined {
  const timezone = optionalKey(reader, 'tz', timeZone, defaults.timezone);
  const intervalSeconds = optionalKey(reader, 'interval', seconds(1), defaults.intervalSeconds);
  const schedule = reader.section.entries.get('schedule');
  if (schedule === undefined || schedule.value === '') {
    const tz = reader.section.entries.get('tz');
    if (tz !== undefined)
      reader.warnings.push(issue(reader, 'tz', tz.line, 'tz has no effect without schedule'));
    return intervalSeconds === undefined ? undefined : { kind: 'interval', seconds: intervalSeconds };
  }
  const interval = reader.section.entries.get('interval');
  if (interval !== undefined) {
    reader.warnings.push(issue(reader, 'interval', interval.line, 'interval is ignored: schedule is set'));
  }
  if (timezone === undefined) return undefined;
  const expression = readValue(reader, 'schedule', (raw) => cronExpression(raw, timezone));
  return expression === undefined ? undefined : { kind: 'cron', expression, timezone };
}

function readInstance(reader: SectionReader, defaults: InstanceDefaults): InstanceConfig | null {
  const name = reader.section.name;
  if (name.length > MAX_SECTION_CHARS) {
    reader.errors.push(
      issue(reader, null, reader.section.line, `section name is longer than ${MAX_SECTION_CHARS} characters`),
    );
  }
  const type = requiredKey(reader, 'back_type', pathComponentValue(MAX_TYPE_CHARS));
  const instance = requiredKey(reader, 'instance', pathComponentValue(MAX_INSTANCE_CHARS));
  const backDir = requiredKey(reader, 'back_dir', absolutePath);
  const backLog = requiredKey(reader, 'back_log', absolutePath);
  const lastAllLog = optionalKey(reader, 'last_all_log', absolutePath, null);
  const script = requiredKey(reader, 'script', nonEmptyText);
  const schedule = readSchedule(reader, defaults);
  const priority = optionalKey(reader, 'priority', priorityValue, null);
  const timeoutSeconds = optionalKey(reader, 'timeout', seconds(1), DEFAULT_TIMEOUT_SECONDS);
  const transport = optionalKey(reader, 'transport', transportValue, 'http');
  const rsyncModel = optionalKey(reader, 'rsync_model', rsyncModelValue, null);
  if (transport === 'rsync' && rsyncModel === null) {
    const line = reader.section.entries.get('transport')?.line ?? reader.section.line;
    reader.errors.push(issue(reader, 'rsync_model', line, 'rsync_model is required when transport = rsync'));
  }
  warnUnusedKeys(reader, INSTANCE_KEYS, new Map());

  if (
    reader.errors.length > 0 ||
    type === undefined ||
    instance === undefined ||
    backDir === undefined ||
    backLog === undefined ||
    lastAllLog === undefined ||
    script === undefined ||
    schedule === undefined ||
    priority === undefined ||
    timeoutSeconds === undefined ||
    transport === undefined ||
    rsyncModel === undefined
  ) {
    return null;
  }
  return {
    name,
    type,
    instance,
    backDir,
    backLog,
    lastAllLog,
    script,
    schedule,
    priority,
    timeoutSeconds,
    transport,
    rsyncModel,
  };
}

/** An error on the later of two sections that name the same (back_type, instance). */
function duplicateInstanceError(reader: SectionReader, seen: Map<string, IniSection>): ConfigIssue | null {
  const type = reader.section.entries.get('back_type')?.value ?? '';
  const instance = reader.section.entries.get('instance');
  if (type === '' || instance === undefined || instance.value === '') return null;
  const id = `${type}\u0000${instance.value}`;
  const first = seen.get(id);
  if (first === undefined) {
    seen.set(id, reader.section);
    return null;
  }
  return issue(
    reader,
    'instance',
    instance.line,
    `back_type ${type} instance ${instance.value} is already configured in [${first.name}] (line ${first.line})`,
  );
}

// ---------------------------------------------------------------------------
// The file

/** The section each INI problem belongs to: the last header at or before its line (-1: before any). */
export function sectionIndexOfLine(sections: readonly IniSection[], line: number): number {
  let index = -1;
  for (const [i, section] of sections.entries()) {
    if (section.line <= line) index = i;
    else break;
  }
  return index;
}

export function iniIssue(file: string, section: IniSection | undefined, problem: IniProblem): ConfigIssue {
  return {
    file,
    section: section?.name ?? null,
    key: problem.key,
    line: problem.line,
    message: problem.message,
  };
}

export function parseAgentConfig(
  text: string,
  file: string,
  options: ParseAgentConfigOptions = {},
): AgentConfigResult {
  const hostTimeZone = options.hostTimeZone ?? (Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC');
  const document = readIniText(text);
  const errors: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];
  const fileLevel = { errors, warnings };

  const readers: SectionReader[] = document.sections.map((section) => ({
    file,
    section,
    errors: [],
    warnings: [],
  }));
  for (const problem of document.problems) {
    const index = sectionIndexOfLine(document.sections, problem.line);
    const reader = readers[index];
    const converted = iniIssue(file, reader?.section, problem);
    // A repeated key is a warning (the last value wins, as the old client had it); the rest fail the section.
    const bucket = problem.kind === 'duplicate_key' ? 'warnings' : 'errors';
    (reader ?? fileLevel)[bucket].push(converted);
  }

  const globals = readers.filter((r) => r.section.name === GLOBAL_SECTION);
  const [globalReader] = globals;
  let global: GlobalConfig | null = null;
  let defaults: InstanceDefaults = { intervalSeconds: DEFAULT_INTERVAL_SECONDS, timezone: hostTimeZone };
  if (globalReader === undefined) {
    errors.push({
      file,
      section: GLOBAL_SECTION,
      key: null,
      line: null,
      message: `the [global] section is missing: add it with server_id, game_id, server_url and my_ip`,
    });
  } else {
    const read = readGlobal(globalReader, hostTimeZone);
    defaults = read.defaults;
    // A second [global] (already an error) makes the whole global configuration ambiguous.
    global = globals.every((r) => r.errors.length === 0) ? read.config : null;
  }

  const instances: InstanceConfig[] = [];
  const seen = new Map<string, IniSection>();
  for (const reader of readers) {
    if (reader.section.name === GLOBAL_SECTION) continue;
    const duplicate = duplicateInstanceError(reader, seen);
    if (duplicate) reader.errors.push(duplicate);
    const config = readInstance(reader, defaults);
    if (config) instances.push(config);
  }

  for (const reader of readers) {
    errors.push(...reader.errors);
    warnings.push(...reader.warnings);
  }
  return { global, instances, errors: sortIssues(errors), warnings: sortIssues(warnings) };
}

/** In file order; issues without a line (a missing section) first. */
export function sortIssues(issues: ConfigIssue[]): ConfigIssue[] {
  return issues.toSorted((a, b) => (a.line ?? 0) - (b.line ?? 0));
}

/**
 * Reads a config file and parses it; a file that cannot be read becomes one
 * issue naming the file, like any other config error.
 */
export async function readConfigFile<R>(
  path: string,
  parse: (text: string) => R,
  unreadable: (issue: ConfigIssue) => R,
): Promise<R> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return unreadable({
      file: path,
      section: null,
      key: null,
      line: null,
      message: `cannot read the config: ${reason}`,
    });
  }
  return parse(text);
}

export function loadAgentConfig(
  path: string,
  options: ParseAgentConfigOptions = {},
): Promise<AgentConfigResult> {
  return readConfigFile(
    path,
    (text) => parseAgentConfig(text, path, options),
    (issue) => ({ global: null, instances: [], errors: [issue], warnings: [] }),
  );
}

/** `/etc/uuzuback.conf [global] my_ip (line 9): "127.0.0.0.1" is not an IPv4 or IPv6 address` */
export function formatIssue(issue: ConfigIssue): string {
  const where = [
    issue.file,
    issue.section === null ? null : `[${issue.section}]`,
    issue.key,
    issue.line === null ? null : `(line ${issue.line})`,
  ].filter((part): part is string => part !== null);
  return `${where.join(' ')}: ${issue.message}`;
}
