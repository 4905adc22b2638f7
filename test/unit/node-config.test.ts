import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type ConfigIssue, formatIssue } from '../../src/agent/config.js';
import {
  DEFAULT_RESERVE_BYTES,
  loadNodeConfig,
  type NodeConfig,
  type NodeConfigResult,
  parseNodeConfig,
} from '../../src/node/config.js';

const LEGACY_SERVER = path.resolve(
  import.meta.dirname,
  '../../../shared/fixtures/legacy/server-uuzuback.conf',
);
const FILE = '/etc/ubackup/node.conf';
const HOST = 'store-01';
const GiB = 1024 ** 3;
const KiB = 1024;

const MINIMAL = `[global]
server_url = https://ubackup.example:8080
server_root_path = /backup/ubackup/
`;

function parse(text: string): NodeConfigResult {
  return parseNodeConfig(text, FILE, { hostName: HOST });
}

/** MINIMAL plus `lines`; the config must load. */
function config(...lines: string[]): NodeConfig {
  const result = parse(MINIMAL + lines.join('\n'));
  expect(result.errors).toEqual([]);
  if (result.config === null) throw new Error('no config');
  return result.config;
}

function issueFor(issues: ConfigIssue[], section: string | null, key: string | null): ConfigIssue {
  const found = issues.find((i) => i.section === section && i.key === key);
  if (!found) throw new Error(`no issue for [${section}] ${key} in ${JSON.stringify(issues, null, 2)}`);
  return found;
}

/** The single error of MINIMAL plus `line`, which is the file's last line. */
function errorOf(line: string, key: string): ConfigIssue {
  const result = parse(MINIMAL + line);
  expect(result.config).toBeNull();
  expect(result.errors).toHaveLength(1);
  const error = issueFor(result.errors, 'global', key);
  expect(error.file).toBe(FILE);
  expect(error.line).toBe(MINIMAL.split('\n').length);
  return error;
}

const OBSOLETE = [
  'redis_host',
  'redis_port',
  'redis_queue',
  'message_redis_host',
  'message_redis_port',
  'message_queue',
  'mysqlkeeptime',
  'rediskeeptime',
  'node_id',
  'log',
  'error_log',
  'retry',
];

describe('the legacy server-uuzuback.conf', () => {
  it('loads with one error, the missing server_url, which says what to add', async () => {
    const result = await loadNodeConfig(LEGACY_SERVER, { hostName: HOST });

    expect(result.config).toBeNull();
    expect(result.errors).toHaveLength(1);
    const error = issueFor(result.errors, 'global', 'server_url');
    expect(error.file).toBe(LEGACY_SERVER);
    expect(error.line).toBe(1);
    expect(error.message).toContain('server_url is missing');
    expect(error.message).toContain('add "server_url = https://<ubackup-server>:8080" to [global]');
    expect(formatIssue(error).startsWith(`${LEGACY_SERVER} [global] server_url (line 1): `)).toBe(true);
  });

  it('warns about every obsolete key, naming it and what replaced it', async () => {
    const result = await loadNodeConfig(LEGACY_SERVER, { hostName: HOST });
    const text = await readFile(LEGACY_SERVER, 'utf8');
    const lines = text.split('\n');

    expect(result.warnings.map((w) => w.key).sort()).toEqual([...OBSOLETE].sort());
    for (const key of OBSOLETE) {
      const warning = issueFor(result.warnings, 'global', key);
      expect(warning.file).toBe(LEGACY_SERVER);
      expect(warning.line).toBe(
        lines.findIndex((l) => l.startsWith(`${key} `) || l.startsWith(`${key}=`)) + 1,
      );
      expect(warning.message).toContain(key);
      expect(warning.message).toContain('obsolete');
    }
    expect(issueFor(result.warnings, 'global', 'redis_queue').message).toContain('priorities are central');
    expect(issueFor(result.warnings, 'global', 'mysqlkeeptime').message).toContain('retention');
    expect(issueFor(result.warnings, 'global', 'node_id').message).toContain('enroll');
    expect(issueFor(result.warnings, 'global', 'log').message).toContain('stdout/journald');
    expect(issueFor(result.warnings, 'global', 'error_log').message).toContain('stdout/journald');
    expect(issueFor(result.warnings, 'global', 'retry').message).toContain('max_attempts');
  });

  it('gives a config once server_url is added, with the legacy units', async () => {
    const legacy = await readFile(LEGACY_SERVER, 'utf8');
    const fixed = legacy.replace(
      '[global]\n',
      '[global]\nserver_url = https://ubackup.example:8080  # added\n',
    );
    expect(fixed).not.toBe(legacy);

    const result = parseNodeConfig(fixed, LEGACY_SERVER, { hostName: HOST });

    expect(result.errors).toEqual([]);
    expect(result.config).toEqual({
      serverUrl: 'https://ubackup.example:8080',
      enrollToken: null,
      stateDir: '/var/lib/ubackup/node',
      name: '127.0.0.1',
      cluster: 'default',
      rootPath: '/backup/uuzubackup/',
      reserveBytes: 1000 * GiB,
      weight: 4,
      perTransferBytesPerSecond: 62000 * KiB,
      maxBandwidthBytesPerSecond: 0,
      pauseBetweenPullsSeconds: 0,
      retry: 3,
      listen: { host: '0.0.0.0', port: 8874 },
      publicUrl: null,
      myIp: '127.0.0.1',
      heartbeatSeconds: 5,
      stallTimeoutSeconds: 60,
      scrubBytesPerSecond: 32 * 1024 * KiB,
      scrubPeriodSeconds: 7 * 86_400,
      metricsListen: null,
      receiverThreads: null,
    } satisfies NodeConfig);
    expect(result.warnings.map((w) => w.key).sort()).toEqual([...OBSOLETE].sort());
  });
});

describe('a valid config', () => {
  it('fills the defaults', () => {
    expect(config()).toEqual({
      serverUrl: 'https://ubackup.example:8080',
      enrollToken: null,
      stateDir: '/var/lib/ubackup/node',
      name: HOST,
      cluster: 'default',
      rootPath: '/backup/ubackup/',
      reserveBytes: DEFAULT_RESERVE_BYTES,
      weight: 4,
      perTransferBytesPerSecond: 0,
      maxBandwidthBytesPerSecond: 0,
      pauseBetweenPullsSeconds: 0,
      retry: null,
      listen: { host: '0.0.0.0', port: 8874 },
      publicUrl: null,
      myIp: null,
      heartbeatSeconds: 5,
      stallTimeoutSeconds: 60,
      scrubBytesPerSecond: 32 * 1024 * KiB,
      scrubPeriodSeconds: 7 * 86_400,
      metricsListen: null,
      receiverThreads: null,
    } satisfies NodeConfig);
    expect(DEFAULT_RESERVE_BYTES).toBe(10 * GiB);
    expect(parse(MINIMAL).warnings).toEqual([]);
  });

  it('reads every key', () => {
    expect(
      config(
        'enroll_token = ubk_enroll_abc ; first start',
        'state_dir = /srv/ubackup/state',
        'name = store-07.bj',
        'cluster = beijing',
        'reserve = 2T',
        'work_thread = 8',
        'rsync_bwlimit = 10M',
        'max_bandwidth = 100MB/s',
        'interval = 2m',
        'listen = [::]:9000',
        'myip = 10.0.3.7',
        'heartbeat = 10s',
        'scrub_bytes_per_second = 8M',
        'scrub_period = 3d',
        'metrics_listen = 127.0.0.1:9101',
        'receiver_threads = 3',
      ),
    ).toMatchObject({
      enrollToken: 'ubk_enroll_abc',
      stateDir: '/srv/ubackup/state',
      name: 'store-07.bj',
      cluster: 'beijing',
      reserveBytes: 2 * 1024 * GiB,
      weight: 8,
      perTransferBytesPerSecond: 10 * 1024 * KiB,
      maxBandwidthBytesPerSecond: 100 * 1024 * KiB,
      pauseBetweenPullsSeconds: 120,
      listen: { host: '::', port: 9000 },
      myIp: '10.0.3.7',
      heartbeatSeconds: 10,
      scrubBytesPerSecond: 8 * 1024 * KiB,
      scrubPeriodSeconds: 3 * 86_400,
      metricsListen: { host: '127.0.0.1', port: 9101 },
      receiverThreads: 3,
    });
  });

  it('reads receiver_threads: auto, 0 (the main thread) or a number of threads', () => {
    expect(config('receiver_threads = auto').receiverThreads).toBeNull();
    expect(config('receiver_threads = AUTO').receiverThreads).toBeNull();
    expect(config('receiver_threads = 0').receiverThreads).toBe(0);
    expect(config('receiver_threads = 64').receiverThreads).toBe(64);
    for (const bad of ['65', '-1', '2.5', 'many']) {
      expect(errorOf(`receiver_threads = ${bad}`, 'receiver_threads').message).toBe(
        `"${bad}" is not a number of receiver threads (auto, or a whole number from 0 to 64; 0 = pull on the main thread)`,
      );
    }
  });

  it('reads the scrub rate like max_bandwidth (0 = no scrub) and its period as a duration', () => {
    expect(config('scrub_bytes_per_second = 64MB/s').scrubBytesPerSecond).toBe(64 * 1024 * KiB);
    expect(config('scrub_bytes_per_second = 2048').scrubBytesPerSecond).toBe(2048 * KiB);
    expect(config('scrub_bytes_per_second = 0').scrubBytesPerSecond).toBe(0);
    expect(config('scrub_period = 1').scrubPeriodSeconds).toBe(1);
    expect(config('scrub_period = 12h').scrubPeriodSeconds).toBe(12 * 3600);
    expect(parse(`${MINIMAL}scrub_period = 1d\n`).warnings).toEqual([]);
  });

  it('reads reserve in GB when bare, and with a unit', () => {
    expect(config('reserve = 1000').reserveBytes).toBe(1000 * GiB);
    expect(config('reserve = 500M').reserveBytes).toBe(500 * 1024 ** 2);
    expect(config('reserve = 2T').reserveBytes).toBe(2 * 1024 ** 4);
    expect(config('reserve = 1.5G').reserveBytes).toBe(1.5 * GiB);
    expect(config('reserve = 0').reserveBytes).toBe(0);
  });

  it('reads a bare max_bandwidth in KB/s, like rsync_bwlimit', () => {
    expect(config('max_bandwidth = 62000').maxBandwidthBytesPerSecond).toBe(62000 * KiB);
    expect(config('max_bandwidth = 100M').maxBandwidthBytesPerSecond).toBe(100 * 1024 ** 2);
    expect(config('rsync_bwlimit = 0').perTransferBytesPerSecond).toBe(0);
  });

  it('names the node after myip, unless name is set or myip is IPv6', () => {
    expect(config('myip = 10.0.3.7').name).toBe('10.0.3.7');
    expect(config('myip = 10.0.3.7', 'name = store-07').name).toBe('store-07');
    expect(config('myip = fd00::7').name).toBe(HOST);
  });

  it('turns the restore file server off with listen = off', () => {
    expect(config('listen = off').listen).toBeNull();
  });

  it('reads a CRLF file with a BOM', () => {
    const text = `\uFEFF${MINIMAL}reserve = 500M  # keep\nmyip = 10.0.3.7\n`.replaceAll('\n', '\r\n');
    const result = parse(text);
    expect(result.errors).toEqual([]);
    expect(result.config).toMatchObject({
      rootPath: '/backup/ubackup/',
      reserveBytes: 500 * 1024 ** 2,
      myIp: '10.0.3.7',
    });
  });
});

describe('errors name file, section, key and line', () => {
  it('a bad reserve', () => {
    expect(errorOf('reserve = lots', 'reserve').message).toBe(
      '"lots" is not a size (GB when bare, as before: 1000 = 1000 GB; or e.g. 500M, 2T)',
    );
    expect(errorOf('reserve = -5', 'reserve').message).toContain('is not a size');
    expect(errorOf('reserve = 5X', 'reserve').message).toContain('is not a size');
  });

  it('a relative or missing root path', () => {
    const result = parse(MINIMAL.replace('/backup/ubackup/', 'backup/ubackup'));
    expect(result.config).toBeNull();
    expect(result.errors).toEqual([
      {
        file: FILE,
        section: 'global',
        key: 'server_root_path',
        line: 3,
        message: '"backup/ubackup" is not an absolute path (it must start with /)',
      },
    ]);

    const missing = parse(MINIMAL.replace(/server_root_path.*\n/, ''));
    const error = issueFor(missing.errors, 'global', 'server_root_path');
    expect(error.line).toBe(1);
    expect(error.message).toContain('add "server_root_path = ');
  });

  it('a bad myip', () => {
    const error = errorOf('myip = 127.0.0.0.1', 'myip');
    expect(formatIssue(error)).toBe(
      `${FILE} [global] myip (line 4): "127.0.0.0.1" is not an IPv4 or IPv6 address`,
    );
  });

  it('a bad name', () => {
    expect(errorOf('name = store 07', 'name').message).toContain('"store 07" is not a node name');
    expect(errorOf('name = store/07', 'name').message).toContain('letters, digits, . _ -');
    expect(errorOf(`name = ${'n'.repeat(129)}`, 'name').message).toContain('is not a node name');
  });

  it('a host name that is no node name, when name and myip are unset', () => {
    const result = parseNodeConfig(MINIMAL, FILE, { hostName: 'bad host' });
    expect(result.config).toBeNull();
    const error = issueFor(result.errors, 'global', 'name');
    expect(error.line).toBe(1);
    expect(error.message).toContain('add "name = <node name>" to [global]');
  });

  it('other bad values', () => {
    expect(errorOf('work_thread = 0', 'work_thread').message).toContain('from 1 to 256');
    expect(errorOf('work_thread = 4.5', 'work_thread').message).toContain('parallel pulls');
    expect(errorOf('rsync_bwlimit = fast', 'rsync_bwlimit').message).toContain('KB/s when bare');
    expect(errorOf('max_bandwidth = -1', 'max_bandwidth').message).toContain('is not a rate');
    expect(errorOf('interval = soon', 'interval').message).toContain('is not a duration');
    expect(errorOf('heartbeat = 0', 'heartbeat').message).toContain('at least 1');
    expect(errorOf('scrub_bytes_per_second = fast', 'scrub_bytes_per_second').message).toContain(
      '0 = no scrub',
    );
    expect(errorOf('scrub_period = 0', 'scrub_period').message).toContain('at least 1');
    expect(errorOf('scrub_period = weekly', 'scrub_period').message).toContain('is not a duration');
    expect(errorOf('listen = 8874', 'listen').message).toContain('host:port');
    expect(errorOf('state_dir = state', 'state_dir').message).toContain('absolute');
    expect(errorOf('server_url = ubackup.example', 'server_url').message).toContain('not a URL');
    expect(errorOf(`cluster = ${'c'.repeat(65)}`, 'cluster').message).toContain('is not a cluster name');
  });

  it('another section, naming it', () => {
    const text = `${MINIMAL}\n[mysql3306]\nback_type = mysql\n`;
    const result = parse(text);
    expect(result.config).toBeNull();
    expect(result.errors).toHaveLength(1);
    const error = issueFor(result.errors, 'mysql3306', null);
    expect(error.file).toBe(FILE);
    expect(error.line).toBe(5);
    expect(error.message).toContain('[mysql3306]');
    expect(error.message).toContain('one [global] section');
    // Its keys are not warned about one by one.
    expect(result.warnings).toEqual([]);
  });

  it('a missing [global]', () => {
    const result = parse('server_url = https://ubackup.example:8080\n');
    expect(result.config).toBeNull();
    expect(issueFor(result.errors, 'global', null).message).toContain('[global] section is missing');
    expect(issueFor(result.errors, null, 'server_url').line).toBe(1);
  });

  it('a second [global]', () => {
    const result = parse(`${MINIMAL}[global]\nreserve = 5\n`);
    expect(result.config).toBeNull();
    expect(issueFor(result.errors, 'global', null).line).toBe(4);
  });
});

describe('warnings', () => {
  it('a repeated key: the last value wins', () => {
    const result = parse(`${MINIMAL}reserve = 100\nreserve = 200\n`);
    expect(result.errors).toEqual([]);
    expect(result.config?.reserveBytes).toBe(200 * GiB);
    expect(result.warnings).toEqual([
      {
        file: FILE,
        section: 'global',
        key: 'reserve',
        line: 5,
        message: 'reserve is set again (first at line 4); the last value wins',
      },
    ]);
  });

  it('an unknown key, with a hint for a near miss', () => {
    const result = parse(`${MINIMAL}my_ip = 10.0.3.7\ncolour = blue\n`);
    expect(result.config).not.toBeNull();
    expect(issueFor(result.warnings, 'global', 'my_ip').message).toBe(
      'unknown key my_ip (ignored); did you mean myip? (keys are lowercase, with underscores)',
    );
    expect(issueFor(result.warnings, 'global', 'colour')).toMatchObject({
      line: 5,
      message: 'unknown key colour (ignored)',
    });
  });

  it('retry, even when it is not a number', () => {
    const result = parse(`${MINIMAL}retry = many\n`);
    expect(result.config?.retry).toBeNull();
    expect(issueFor(result.warnings, 'global', 'retry').message).toContain('ignored');
  });
});

describe('loadNodeConfig', () => {
  it('reports an unreadable file as an error', async () => {
    const missing = path.join(import.meta.dirname, 'no-such-node.conf');
    const result = await loadNodeConfig(missing);
    expect(result.config).toBeNull();
    expect(result.errors).toHaveLength(1);
    expect(result.errors[0]?.file).toBe(missing);
    expect(result.errors[0]?.message).toContain('cannot read the config');
  });
});
