import { hostname } from 'node:os';
import {
  absolutePath,
  accept,
  type Check,
  type ConfigIssue,
  GLOBAL_SECTION,
  httpUrl,
  iniIssue,
  ipAddress,
  issue,
  listenAddress,
  nonEmptyText,
  optionalKey,
  readConfigFile,
  reject,
  requiredKey,
  type SectionReader,
  seconds,
  sectionIndexOfLine,
  sortIssues,
  type Validator,
  warnUnusedKeys,
} from '../agent/config.js';
import { readIniText } from '../agent/ini-file.js';
import { NodeEnrollRequestSchema, nodeNameSchema, restoreAddressSchema } from '../shared/node-protocol.js';
import { parseSize } from '../shared/units.js';

/**
 * The storage node's configuration (`/etc/ubackup/node.conf`, DESIGN §5): the
 * old storage node's `/etc/uuzuback.conf` keys keep their meaning and units.
 *
 * The file is one [global] section. Any error (a bad value, a missing required
 * key, another section, a line that is not `key = value`) makes `config` null:
 * a node has nothing else to run. Obsolete and unknown keys, and a repeated key
 * (the last value wins), are warnings. Every issue names file, section, key
 * and line, as the agent's loader does (src/agent/config.ts, whose readers
 * this module reuses). `parseNodeConfig` does no I/O.
 *
 * Units:
 * - `reserve`: a size, GB when bare as the old node had it (`1000` = 1000 GiB);
 *   also `500M`, `2T`, `10GiB`. Binary multiples throughout (src/shared/units.ts).
 * - `rsync_bwlimit` and `max_bandwidth`: a rate, KB/s when bare (the legacy and
 *   rsync `--bwlimit` unit, K = 1024), or with a unit: `100M` = 100 MiB/s;
 *   an optional `/s` is allowed (`100MB/s`). Both are converted to bytes/s;
 *   0 = unlimited. One rule for both keys, so a bare number never means
 *   KB/s in one place and bytes/s in the next.
 * - `interval`, `heartbeat`: seconds, or `90s`, `15m`, `2h`, `1d`.
 * - `scrub_bytes_per_second`: a rate like `max_bandwidth` (KB/s when bare,
 *   `32M` = 32 MiB/s), except that 0 turns the scrub off; `scrub_period`: a
 *   duration like `heartbeat` (`7d`).
 *
 * Weight (`work_thread`), bandwidth and pause are also set centrally and reach
 * the node in its heartbeat reply; the central value wins over these.
 */

export interface NodeConfig {
  serverUrl: string;
  enrollToken: string | null;
  /** Absolute. The node's credential and id live here after enrollment. */
  stateDir: string;
  /** Validated with nodeNameSchema. */
  name: string;
  cluster: string;
  /** server_root_path: absolute, as configured. */
  rootPath: string;
  /** Free space the node keeps: it leases nothing that would eat into it. */
  reserveBytes: number;
  /** work_thread: parallel pulls (the node's default weight). */
  weight: number;
  /** rsync_bwlimit, per transfer; 0 = unlimited. */
  perTransferBytesPerSecond: number;
  /** max_bandwidth, the node's total; 0 = unlimited. */
  maxBandwidthBytesPerSecond: number;
  /** Legacy `interval`: rest after each pull. */
  pauseBetweenPullsSeconds: number;
  /** Legacy `retry`, ignored (with a warning): retries are central (the server's max_attempts). */
  retry: number | null;
  /** Where restores download from; null with `listen = off`. */
  listen: { host: string; port: number } | null;
  /**
   * `public_url`: the restore address clients are sent to (http(s)://host:port),
   * when `listen` is not reachable as it is (all interfaces, NAT, a proxy).
   * Null: derived from `listen` (restore-address.ts).
   */
  publicUrl: string | null;
  myIp: string | null;
  heartbeatSeconds: number;
  /** A pull that receives no byte for this long is cut (the part is kept for a resume). */
  stallTimeoutSeconds: number;
  /** How fast the scrub re-hashes stored files (its own limit, apart from transfers); 0 = no scrub. */
  scrubBytesPerSecond: number;
  /** The scrub's full pass: a stored file is re-hashed when its last check is older than this. */
  scrubPeriodSeconds: number;
  /** `metrics_listen`: serve `/metrics` without authentication here (a loopback or private address); null: off. */
  metricsListen: { host: string; port: number } | null;
  /**
   * `receiver_threads`: threads the HTTP pulls run on (receiver-pool.ts); 0 = on
   * the main thread; null (`auto`, the default) = one per CPU, at most 4.
   */
  receiverThreads: number | null;
}

export interface NodeConfigResult {
  /** Null when there is any error. */
  config: NodeConfig | null;
  errors: ConfigIssue[];
  warnings: ConfigIssue[];
}

export interface ParseNodeConfigOptions {
  /** The fallback node name when neither `name` nor a usable `myip` is set; os.hostname() when omitted. */
  hostName?: string;
}

export const DEFAULT_NODE_STATE_DIR = '/var/lib/ubackup/node';
export const DEFAULT_NODE_LISTEN = { host: '0.0.0.0', port: 8874 } as const;
export const DEFAULT_CLUSTER = 'default';
export const DEFAULT_STALL_TIMEOUT_SECONDS = 60;
/**
 * 10 GiB. Not 0: with no reserve a node leases until the file system is full,
 * and then its own `.part` files, sidecars and state writes (and anything else
 * on that disk) fail. 10 GiB keeps room for those on any realistic backup disk
 * without wasting a noticeable part of it; operators with the legacy file
 * already set `reserve` explicitly.
 */
export const DEFAULT_RESERVE_BYTES = 10 * 1024 ** 3;
export const DEFAULT_WEIGHT = 4;
export const DEFAULT_PAUSE_BETWEEN_PULLS_SECONDS = 0;
export const DEFAULT_HEARTBEAT_SECONDS = 5;
/** 32 MiB/s: a 1 TiB node is re-read in about 9 hours, a small share of a disk's throughput. */
export const DEFAULT_SCRUB_BYTES_PER_SECOND = 32 * 1024 ** 2;
export const DEFAULT_SCRUB_PERIOD_SECONDS = 7 * 86_400;
/** The most `receiver_threads` a node may ask for. */
export const MAX_RECEIVER_THREADS = 64;

/** `listen` values that turn the restore file server off. */
const LISTEN_OFF = ['off', 'none'];

const SERVER_URL_MISSING =
  'server_url is missing: add "server_url = https://<ubackup-server>:8080" to [global] ' +
  '(the old storage node read its jobs from Redis; UBackup nodes lease them from the server over HTTPS)';

const ROOT_PATH_MISSING =
  'server_root_path is missing: add "server_root_path = /backup/ubackup/" to [global] ' +
  '(the directory the node stores backups under)';

const NODE_KEYS = [
  'server_url',
  'enroll_token',
  'state_dir',
  'name',
  'cluster',
  'server_root_path',
  'reserve',
  'work_thread',
  'rsync_bwlimit',
  'max_bandwidth',
  'interval',
  'listen',
  'public_url',
  'myip',
  'heartbeat',
  'stall_timeout',
  'scrub_bytes_per_second',
  'scrub_period',
  'metrics_listen',
  'receiver_threads',
] as const;

const REDIS_JOBS = 'the old storage node read its jobs from Redis; UBackup nodes lease them from server_url';
const REDIS_MESSAGES =
  'the old storage node posted its results to a Redis queue; UBackup nodes report them to server_url';
const CENTRAL_RETENTION = 'retention is configured centrally on the UBackup server';
const LOGS = 'logs go to stdout/journald';

/** Keys of the old storage node that mean nothing now, and what replaced them. */
const OBSOLETE_NODE_KEYS: ReadonlyMap<string, string> = new Map([
  ['redis_host', REDIS_JOBS],
  ['redis_port', REDIS_JOBS],
  ['redis_queue', `${REDIS_JOBS}; priorities are central now (set per instance on the server)`],
  ['message_redis_host', REDIS_MESSAGES],
  ['message_redis_port', REDIS_MESSAGES],
  ['message_queue', REDIS_MESSAGES],
  ['mysqlkeeptime', CENTRAL_RETENTION],
  ['rediskeeptime', CENTRAL_RETENTION],
  ['node_id', 'nodes enroll with the server (enroll_token) and get their id from it'],
  ['log', LOGS],
  ['error_log', LOGS],
  ['retry', "retries are central now (the server's max_attempts, with exponential backoff)"],
]);

// ---------------------------------------------------------------------------
// Value checks

const reserveSize: Validator<number> = (raw) => {
  const bytes = parseSize(raw, 'G');
  return bytes === null
    ? reject(`"${raw}" is not a size (GB when bare, as before: 1000 = 1000 GB; or e.g. 500M, 2T)`)
    : accept(bytes);
};

/** KB/s when bare (rsync's and the old node's unit), else a size per second; 0 = unlimited. */
const bandwidth: Validator<number> = (raw) => {
  const bytes = parseSize(raw.replace(/\/s$/i, ''), 'K');
  return bytes === null
    ? reject(`"${raw}" is not a rate (KB/s when bare, e.g. 62000; or e.g. 100M for 100 MiB/s; 0 = unlimited)`)
    : accept(bytes);
};

/** The scrub's rate: the units of `max_bandwidth`, but 0 means no scrub, not an unlimited one. */
const scrubRateValue: Validator<number> = (raw) => {
  const bytes = parseSize(raw.replace(/\/s$/i, ''), 'K');
  return bytes === null
    ? reject(`"${raw}" is not a rate (KB/s when bare; or e.g. 32M for 32 MiB/s; 0 = no scrub)`)
    : accept(bytes);
};

/** `auto`, or a whole number of threads from 0 to MAX_RECEIVER_THREADS. */
const receiverThreadsValue: Validator<number | null> = (raw) => {
  if (raw.toLowerCase() === 'auto') return accept(null);
  const value = /^\d{1,3}$/.test(raw) ? Number(raw) : Number.NaN;
  return value >= 0 && value <= MAX_RECEIVER_THREADS
    ? accept(value)
    : reject(
        `"${raw}" is not a number of receiver threads (auto, or a whole number from 0 to ${MAX_RECEIVER_THREADS}; 0 = pull on the main thread)`,
      );
};

const weightValue: Validator<number> = (raw) => {
  const schema = NodeEnrollRequestSchema.shape.weight;
  const min = schema.minValue ?? 1;
  const max = schema.maxValue ?? Number.MAX_SAFE_INTEGER;
  const value = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  return schema.safeParse(value).success
    ? accept(value)
    : reject(`"${raw}" is not a number of parallel pulls (a whole number from ${min} to ${max})`);
};

function zodValue(what: string, schema: typeof nodeNameSchema): Validator<string> {
  return (raw) => {
    const parsed = schema.safeParse(raw);
    if (parsed.success) return accept(parsed.data);
    const reason = parsed.error.issues.map((i) => i.message).join('; ');
    return reject(`"${raw}" is not a ${what}: ${reason}`);
  };
}

const nodeName = zodValue('node name', nodeNameSchema);
const clusterName = zodValue('cluster name', NodeEnrollRequestSchema.shape.cluster.unwrap());

/** `public_url`: an http(s) origin; a trailing `/` is dropped. */
const restoreUrl: Validator<string> = (raw) => {
  const value = raw.replace(/\/+$/, '');
  return restoreAddressSchema.safeParse(value).success
    ? accept(value)
    : reject(
        `"${raw}" is not a restore address: http(s)://host:port with no path, e.g. http://10.0.0.5:8874`,
      );
};

const listenOrOff: Validator<{ host: string; port: number } | null> = (raw) =>
  LISTEN_OFF.includes(raw.toLowerCase()) ? accept(null) : listenAddress(raw);

/** The legacy `retry` count, kept only to report it; anything else is null. */
function legacyRetry(reader: SectionReader): number | null {
  const raw = reader.section.entries.get('retry')?.value ?? '';
  return /^\d+$/.test(raw) ? Number(raw) : null;
}

/**
 * `name`, else `myip` (when it is a valid node name: an IPv6 address is not),
 * else the host name. Undefined when invalid (an error is recorded).
 */
function readName(reader: SectionReader, myIp: string | null | undefined, host: string): string | undefined {
  const entry = reader.section.entries.get('name');
  if (entry !== undefined && entry.value !== '') return optionalKey(reader, 'name', nodeName, undefined);
  if (myIp && nodeNameSchema.safeParse(myIp).success) return myIp;
  const check: Check<string> = nodeName(host);
  if (check.ok) return check.value;
  reader.errors.push(
    issue(
      reader,
      'name',
      entry?.line ?? reader.section.line,
      `name is not set and the host name is not usable (${check.message}): add "name = <node name>" to [global]`,
    ),
  );
  return undefined;
}

// ---------------------------------------------------------------------------
// [global]

function readGlobal(reader: SectionReader, host: string): NodeConfig | null {
  const serverUrl = requiredKey(reader, 'server_url', httpUrl, SERVER_URL_MISSING);
  const enrollToken = optionalKey(reader, 'enroll_token', nonEmptyText, null);
  const stateDir = optionalKey(reader, 'state_dir', absolutePath, DEFAULT_NODE_STATE_DIR);
  const cluster = optionalKey(reader, 'cluster', clusterName, DEFAULT_CLUSTER);
  const rootPath = requiredKey(reader, 'server_root_path', absolutePath, ROOT_PATH_MISSING);
  const reserveBytes = optionalKey(reader, 'reserve', reserveSize, DEFAULT_RESERVE_BYTES);
  const weight = optionalKey(reader, 'work_thread', weightValue, DEFAULT_WEIGHT);
  const perTransfer = optionalKey(reader, 'rsync_bwlimit', bandwidth, 0);
  const maxBandwidth = optionalKey(reader, 'max_bandwidth', bandwidth, 0);
  const pause = optionalKey(reader, 'interval', seconds(0), DEFAULT_PAUSE_BETWEEN_PULLS_SECONDS);
  const listen = optionalKey(reader, 'listen', listenOrOff, DEFAULT_NODE_LISTEN);
  const publicUrl = optionalKey(reader, 'public_url', restoreUrl, null);
  const myIp = optionalKey(reader, 'myip', ipAddress, null);
  const heartbeatSeconds = optionalKey(reader, 'heartbeat', seconds(1), DEFAULT_HEARTBEAT_SECONDS);
  const stallTimeoutSeconds = optionalKey(reader, 'stall_timeout', seconds(1), DEFAULT_STALL_TIMEOUT_SECONDS);
  const scrubRate = optionalKey(
    reader,
    'scrub_bytes_per_second',
    scrubRateValue,
    DEFAULT_SCRUB_BYTES_PER_SECOND,
  );
  const scrubPeriod = optionalKey(reader, 'scrub_period', seconds(1), DEFAULT_SCRUB_PERIOD_SECONDS);
  const metricsListen = optionalKey(reader, 'metrics_listen', listenOrOff, null);
  const receiverThreads = optionalKey(reader, 'receiver_threads', receiverThreadsValue, null);
  const name = readName(reader, myIp, host);
  warnUnusedKeys(reader, NODE_KEYS, OBSOLETE_NODE_KEYS);

  if (
    reader.errors.length > 0 ||
    serverUrl === undefined ||
    enrollToken === undefined ||
    stateDir === undefined ||
    name === undefined ||
    cluster === undefined ||
    rootPath === undefined ||
    reserveBytes === undefined ||
    weight === undefined ||
    perTransfer === undefined ||
    maxBandwidth === undefined ||
    pause === undefined ||
    listen === undefined ||
    publicUrl === undefined ||
    myIp === undefined ||
    heartbeatSeconds === undefined ||
    stallTimeoutSeconds === undefined ||
    scrubRate === undefined ||
    scrubPeriod === undefined ||
    metricsListen === undefined ||
    receiverThreads === undefined
  ) {
    return null;
  }
  return {
    serverUrl,
    enrollToken,
    stateDir,
    name,
    cluster,
    rootPath,
    reserveBytes,
    weight,
    perTransferBytesPerSecond: perTransfer,
    maxBandwidthBytesPerSecond: maxBandwidth,
    pauseBetweenPullsSeconds: pause,
    retry: legacyRetry(reader),
    listen: listen === null ? null : { host: listen.host, port: listen.port },
    publicUrl,
    myIp,
    heartbeatSeconds,
    stallTimeoutSeconds,
    scrubBytesPerSecond: scrubRate,
    scrubPeriodSeconds: scrubPeriod,
    metricsListen: metricsListen === null ? null : { host: metricsListen.host, port: metricsListen.port },
    receiverThreads,
  };
}

// ---------------------------------------------------------------------------
// The file

export function parseNodeConfig(
  text: string,
  file: string,
  options: ParseNodeConfigOptions = {},
): NodeConfigResult {
  const document = readIniText(text);
  const errors: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];

  const readers: SectionReader[] = document.sections.map((section) => ({
    file,
    section,
    errors: [],
    warnings: [],
  }));
  for (const problem of document.problems) {
    const reader = readers[sectionIndexOfLine(document.sections, problem.line)];
    const converted = iniIssue(file, reader?.section, problem);
    // A repeated key is a warning (the last value wins, as the old node had it); the rest are errors.
    if (problem.kind === 'duplicate_key') (reader?.warnings ?? warnings).push(converted);
    else (reader?.errors ?? errors).push(converted);
  }

  let config: NodeConfig | null = null;
  const [globalReader] = readers.filter((r) => r.section.name === GLOBAL_SECTION);
  if (globalReader === undefined) {
    errors.push({
      file,
      section: GLOBAL_SECTION,
      key: null,
      line: null,
      message: 'the [global] section is missing: add it with server_url and server_root_path',
    });
  } else {
    config = readGlobal(globalReader, options.hostName ?? hostname());
  }
  for (const reader of readers) {
    // A second [global] already has its error (a repeated section); only the first is read.
    if (reader.section.name === GLOBAL_SECTION) continue;
    reader.errors.push(
      issue(
        reader,
        null,
        reader.section.line,
        `section [${reader.section.name}] is not used by a storage node: ` +
          'its config is one [global] section (move these keys there, or remove the section)',
      ),
    );
  }

  for (const reader of readers) {
    errors.push(...reader.errors);
    warnings.push(...reader.warnings);
  }
  return {
    config: errors.length === 0 ? config : null,
    errors: sortIssues(errors),
    warnings: sortIssues(warnings),
  };
}

export function loadNodeConfig(
  path: string,
  options: ParseNodeConfigOptions = {},
): Promise<NodeConfigResult> {
  return readConfigFile(
    path,
    (text) => parseNodeConfig(text, path, options),
    (issue) => ({ config: null, errors: [issue], warnings: [] }),
  );
}
