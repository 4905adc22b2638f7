import { readFile } from 'node:fs/promises';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type AgentConfigResult,
  type ConfigIssue,
  formatIssue,
  loadAgentConfig,
  parseAgentConfig,
} from '../../src/agent/config.js';
import { readIniText, stripInlineComment } from '../../src/agent/ini-file.js';

const LEGACY_DIR = path.resolve(import.meta.dirname, '../../../shared/fixtures/legacy');
const LEGACY_CLIENT = path.join(LEGACY_DIR, 'client-uuzuback.conf');
const FILE = '/etc/ubackup/agent.conf';
const TZ = 'Asia/Shanghai';

const GLOBAL = `[global]
server_id = 111111
game_id = 31
server_url = https://ubackup.example:8080
my_ip = 10.0.2.62
`;

const MYSQL = `[mysql3306]
back_type = mysql
instance = 3306
back_dir = /data/backup/database_3306/
back_log = /var/log/mysql_3306.log
last_all_log = /var/log/last_3306.log
script = sh /usr/local/uuzuback/mysql_backup.sh /etc/my.cnf
`;

const REDIS = `[redis6379]
back_type = redis
instance = 6379
back_dir = /data/backup/redisbase_6379/
back_log = /var/log/redis_6379.log
script = sh /usr/local/uuzuback/redis_backup.sh /data/conf/redis_conf
`;

function parse(...parts: string[]): AgentConfigResult {
  return parseAgentConfig(parts.join('\n'), FILE, { hostTimeZone: TZ });
}

function names(result: AgentConfigResult): string[] {
  return result.instances.map((i) => i.name);
}

function issueFor(issues: ConfigIssue[], section: string | null, key: string | null): ConfigIssue {
  const found = issues.find((i) => i.section === section && i.key === key);
  if (!found) throw new Error(`no issue for [${section}] ${key} in ${JSON.stringify(issues, null, 2)}`);
  return found;
}

/** The 1-based line of the first line of `text` that starts with `prefix`. */
function lineOf(text: string, prefix: string): number {
  const index = text.split('\n').findIndex((l) => l.startsWith(prefix));
  if (index < 0) throw new Error(`no line starting with ${prefix}`);
  return index + 1;
}

describe('the legacy client-uuzuback.conf', () => {
  it('loads, with warnings for the obsolete keys and clear errors for [global]', async () => {
    const result = await loadAgentConfig(LEGACY_CLIENT);

    expect(result.global).toBeNull();
    const warned = result.warnings.map((w) => w.key);
    for (const key of ['op_id', 'redis_host', 'redis_port', 'redis_queue', 'log', 'error_log']) {
      expect(warned).toContain(key);
      const warning = issueFor(result.warnings, 'global', key);
      expect(warning.file).toBe(LEGACY_CLIENT);
      expect(warning.message).toContain(key);
      expect(warning.message).toContain('obsolete');
    }
    expect(issueFor(result.warnings, 'global', 'log').message).toContain('stdout/journald');
    expect(issueFor(result.warnings, 'global', 'error_log').message).toContain('stdout/journald');

    const myIp = issueFor(result.errors, 'global', 'my_ip');
    expect(myIp).toEqual({
      file: LEGACY_CLIENT,
      section: 'global',
      key: 'my_ip',
      line: 9,
      message: '"127.0.0.0.1" is not an IPv4 or IPv6 address',
    });
    expect(formatIssue(myIp)).toBe(
      `${LEGACY_CLIENT} [global] my_ip (line 9): "127.0.0.0.1" is not an IPv4 or IPv6 address`,
    );

    const serverUrl = issueFor(result.errors, 'global', 'server_url');
    expect(serverUrl.file).toBe(LEGACY_CLIENT);
    expect(serverUrl.message).toContain('server_url is missing');
    expect(serverUrl.message).toContain('add "server_url = https://<ubackup-server>:8080" to [global]');

    // Only my_ip and server_url are wrong: server_id, game_id, interval are fine as written.
    expect(result.errors.map((e) => e.key).sort()).toEqual(['my_ip', 'server_url']);
  });

  it('parses both instance sections with the inline comments stripped', async () => {
    const result = await loadAgentConfig(LEGACY_CLIENT, { hostTimeZone: TZ });

    expect(result.instances).toEqual([
      {
        name: 'mysql3306',
        type: 'mysql',
        instance: '3306',
        backDir: '/data/backup/database_3306/',
        backLog: '/var/log/mysql_3306.log',
        lastAllLog: '/var/log/last_3306.log',
        script: 'sh /usr/local/uuzuback/mysql_backup.sh /etc/my.cnf',
        schedule: { kind: 'interval', seconds: 3600 },
        priority: null,
        timeoutSeconds: 7200,
        transport: 'http',
        rsyncModel: 'backup/database_3306',
      },
      {
        name: 'redis6379',
        type: 'redis',
        instance: '6379',
        backDir: '/data/backup/redisbase_6379/',
        backLog: '/var/log/redis_6379.log',
        lastAllLog: null,
        script: 'sh /usr/local/uuzuback/redis_backup.sh /data/conf/redis_conf',
        schedule: { kind: 'interval', seconds: 3600 },
        priority: null,
        timeoutSeconds: 7200,
        transport: 'http',
        rsyncModel: 'backup/redisbase_6379',
      },
    ]);
    expect(result.errors.every((e) => e.section === 'global')).toBe(true);
  });

  it('gives a [global] once my_ip is valid and server_url is added', async () => {
    const legacy = await readFile(LEGACY_CLIENT, 'utf8');
    const fixed = legacy
      .replace('my_ip = 127.0.0.0.1', 'my_ip = 10.0.2.62')
      .replace('[global]\n', '[global]\nserver_url = https://ubackup.example:8080  # added\n');
    expect(fixed).not.toBe(legacy);

    const result = parseAgentConfig(fixed, LEGACY_CLIENT, { hostTimeZone: TZ });

    expect(result.errors).toEqual([]);
    expect(result.global).toEqual({
      serverId: '111111',
      gameId: '31',
      serverUrl: 'https://ubackup.example:8080',
      enrollToken: null,
      stateDir: '/var/lib/ubackup/agent',
      myIp: '10.0.2.62',
      listen: { host: '0.0.0.0', port: 8873 },
      tls: null,
      pullPort: null,
      intervalSeconds: 3600,
      timezone: TZ,
      jitterSeconds: 30,
      metricsListen: null,
    });
    expect(names(result)).toEqual(['mysql3306', 'redis6379']);
    expect(result.warnings.map((w) => w.key)).toEqual([
      'op_id',
      'redis_host',
      'redis_port',
      'redis_queue',
      'log',
      'error_log',
    ]);
  });
});

describe('a valid config', () => {
  it('loads every section with defaults', () => {
    const result = parse(GLOBAL, MYSQL, REDIS);
    expect(result.errors).toEqual([]);
    expect(result.warnings).toEqual([]);
    expect(result.global?.serverId).toBe('111111');
    expect(names(result)).toEqual(['mysql3306', 'redis6379']);
  });

  it('reads every [global] key', () => {
    const result = parse(`[global]
server_id = 000123
game_id = 007
server_url = http://10.0.0.1:8080/ubackup
enroll_token = abc#def
state_dir = /srv/ubackup/state
my_ip = fd00::62
listen = [::]:9000
tls_cert = /etc/ubackup/agent-cert.pem
tls_key = /etc/ubackup/agent-key.pem
interval = 30m
tz = UTC
jitter = 0
metrics_listen = 127.0.0.1:9102
`);
    expect(result.errors).toEqual([]);
    expect(result.global).toEqual({
      serverId: '000123',
      gameId: '007',
      serverUrl: 'http://10.0.0.1:8080/ubackup',
      enrollToken: 'abc#def',
      stateDir: '/srv/ubackup/state',
      myIp: 'fd00::62',
      listen: { host: '::', port: 9000 },
      tls: { certFile: '/etc/ubackup/agent-cert.pem', keyFile: '/etc/ubackup/agent-key.pem' },
      pullPort: null,
      intervalSeconds: 1800,
      timezone: 'UTC',
      jitterSeconds: 0,
      metricsListen: { host: '127.0.0.1', port: 9102 },
    });
  });

  it('keeps the leading zeros of server_id', () => {
    const result = parse(GLOBAL.replace('server_id = 111111', 'server_id = 000123'), MYSQL);
    expect(result.global?.serverId).toBe('000123');
  });

  it('defaults the time zone to the host', () => {
    const result = parseAgentConfig(GLOBAL, FILE);
    expect(result.global?.timezone).toBe(Intl.DateTimeFormat().resolvedOptions().timeZone);
  });

  it('reads a cron schedule with its own tz', () => {
    const result = parse(
      GLOBAL,
      `${MYSQL}schedule = 8 * * * *   ; every hour at :08\ntz = America/New_York\n`,
    );
    expect(result.errors).toEqual([]);
    expect(result.instances[0]?.schedule).toEqual({
      kind: 'cron',
      expression: '8 * * * *',
      timezone: 'America/New_York',
    });
  });

  it('gives a cron schedule the global tz, and accepts a seconds field', () => {
    const result = parse(`${GLOBAL}tz = Europe/Berlin\n`, `${MYSQL}schedule = 30 8 2 * * 1-5\n`);
    expect(result.errors).toEqual([]);
    expect(result.instances[0]?.schedule).toEqual({
      kind: 'cron',
      expression: '30 8 2 * * 1-5',
      timezone: 'Europe/Berlin',
    });
  });

  it('keeps a cron "#" (nth weekday) that is not preceded by whitespace', () => {
    const result = parse(GLOBAL, `${MYSQL}schedule = 0 3 * * 1#2  # second Monday\n`);
    expect(result.instances[0]?.schedule).toEqual({ kind: 'cron', expression: '0 3 * * 1#2', timezone: TZ });
  });

  it('lets a section override the global interval', () => {
    const result = parse(`${GLOBAL}interval = 7200\n`, `${MYSQL}interval = 900\n`, REDIS);
    expect(result.errors).toEqual([]);
    expect(result.global?.intervalSeconds).toBe(7200);
    expect(result.instances.map((i) => i.schedule)).toEqual([
      { kind: 'interval', seconds: 900 },
      { kind: 'interval', seconds: 7200 },
    ]);
  });

  it('warns that interval is ignored next to a schedule, and tz without one', () => {
    const result = parse(GLOBAL, `${MYSQL}schedule = 0 * * * *\ninterval = 60\n`, `${REDIS}tz = UTC\n`);
    expect(names(result)).toEqual(['mysql3306', 'redis6379']);
    expect(issueFor(result.warnings, 'mysql3306', 'interval').message).toContain('ignored');
    expect(issueFor(result.warnings, 'redis6379', 'tz').message).toContain('without schedule');
  });

  it('reads priority, timeout, transport and rsync_model', () => {
    const result = parse(
      GLOBAL,
      `${MYSQL}priority = critical\ntimeout = 2h\ntransport = rsync\nrsync_model = backup/database_3306\n`,
      `${REDIS}priority = level1\n`,
    );
    expect(result.errors).toEqual([]);
    expect(result.instances[0]).toMatchObject({
      priority: 'critical',
      timeoutSeconds: 7200,
      transport: 'rsync',
      rsyncModel: 'backup/database_3306',
    });
    expect(result.instances[1]).toMatchObject({ priority: 'high', transport: 'http', rsyncModel: null });
  });

  it('reads a CRLF file with a BOM', () => {
    const text = `\uFEFF${[GLOBAL, MYSQL, REDIS].join('\n')}`.replaceAll('\n', '\r\n');
    const result = parseAgentConfig(text, FILE, { hostTimeZone: TZ });
    expect(result.errors).toEqual([]);
    expect(result.global?.myIp).toBe('10.0.2.62');
    expect(result.instances[0]?.script).toBe('sh /usr/local/uuzuback/mysql_backup.sh /etc/my.cnf');
    expect(result.instances[1]?.backDir).toBe('/data/backup/redisbase_6379/');
  });

  it('keeps a script verbatim apart from the inline comment', () => {
    const script = String.raw`find /data/backup -name '*.gz' -mtime +7 -exec rm {} \; && sh b.sh; echo a#b`;
    const result = parse(
      GLOBAL,
      MYSQL.replace(/^script = .*$/m, `script = ${script}   # clean up, then back up`),
    );
    expect(result.instances[0]?.script).toBe(script);
  });
});

describe('an error fails only its section', () => {
  const cases: Array<[string, string, string, string]> = [
    ['a relative back_dir', 'back_dir = data/backup/', 'back_dir', 'not an absolute path'],
    ['a relative back_log', 'back_log = mysql.log', 'back_log', 'not an absolute path'],
    ['a relative last_all_log', 'last_all_log = last.log', 'last_all_log', 'not an absolute path'],
    ['a bad cron expression', 'schedule = 61 * * * *', 'schedule', 'not a valid cron expression'],
    ['a cron with 4 fields', 'schedule = * * * *', 'schedule', 'has 4 fields'],
    ['a cron with 7 fields', 'schedule = 0 0 0 * * * 2030', 'schedule', 'has 7 fields'],
    ['an unknown priority', 'priority = urgent', 'priority', '"urgent" is not a priority'],
    ['an unknown time zone', 'tz = Mars/Olympus', 'tz', 'not an IANA time zone'],
    ['a bad timeout', 'timeout = soon', 'timeout', 'not a duration'],
    ['a zero interval', 'interval = 0', 'interval', 'at least 1 second'],
    ['an unknown transport', 'transport = ftp', 'transport', 'not a transport'],
    ['a type with a slash', 'back_type = my/sql', 'back_type', 'path separator'],
    ['an instance of ".."', 'instance = ..', 'instance', '"." or ".."'],
    ['an empty script', 'script =   # nothing', 'script', 'script is empty'],
  ];

  it.each(cases)('%s', (_what, line, key, message) => {
    const [keyName] = line.split(' =');
    const bad = MYSQL.split('\n')
      .filter((l) => !l.startsWith(`${keyName} =`))
      .concat(line)
      .join('\n');
    const text = [GLOBAL, bad, REDIS].join('\n');
    const result = parseAgentConfig(text, FILE, { hostTimeZone: TZ });

    expect(names(result)).toEqual(['redis6379']);
    expect(result.global).not.toBeNull();
    expect(result.errors).toHaveLength(1);
    const error = issueFor(result.errors, 'mysql3306', key);
    expect(error.file).toBe(FILE);
    expect(error.line).toBe(lineOf(text, line));
    expect(error.message).toContain(message);
  });

  it('names a missing required key', () => {
    const text = [GLOBAL, MYSQL.replace(/^script = .*\n/m, ''), REDIS].join('\n');
    const result = parseAgentConfig(text, FILE, { hostTimeZone: TZ });
    expect(names(result)).toEqual(['redis6379']);
    expect(issueFor(result.errors, 'mysql3306', 'script')).toEqual({
      file: FILE,
      section: 'mysql3306',
      key: 'script',
      line: lineOf(text, '[mysql3306]'),
      message: 'script is missing',
    });
  });

  it('requires rsync_model for the rsync transport', () => {
    const result = parse(GLOBAL, MYSQL.replace(/^.*rsync_model.*\n/m, ''), `${REDIS}transport = rsync\n`);
    expect(names(result)).toEqual(['mysql3306']);
    expect(issueFor(result.errors, 'redis6379', 'rsync_model').message).toContain('transport = rsync');
  });

  it('still validates instance sections when [global] has errors', () => {
    const result = parse(
      GLOBAL.replace('my_ip = 10.0.2.62', 'my_ip = 10.0.2'),
      MYSQL,
      REDIS.replace('/data/backup/redisbase_6379/', 'redisbase'),
    );
    expect(result.global).toBeNull();
    expect(names(result)).toEqual(['mysql3306']);
    expect(result.errors.map((e) => `${e.section} ${e.key}`)).toEqual(['global my_ip', 'redis6379 back_dir']);
  });

  it.each<[string, string, string]>([
    ['server_id', 'server_id = a/b', 'path separator'],
    ['server_id', `server_id = ${'9'.repeat(65)}`, 'longer than 64'],
    ['game_id', 'game_id =', 'game_id is empty'],
    ['server_url', 'server_url = ftp://ubackup.example', 'http:// or https://'],
    ['server_url', 'server_url = ubackup.example:8080', 'http:// or https://'],
    ['server_url', 'server_url = https://', 'not a URL'],
    ['state_dir', 'state_dir = var/lib/ubackup', 'not an absolute path'],
    ['listen', 'listen = 8873', 'host:port'],
    ['listen', 'listen = 0.0.0.0:70000', 'between 1 and 65535'],
    ['interval', 'interval = -5', 'not a duration'],
    ['jitter', 'jitter = lots', 'not a duration'],
    ['tz', 'tz = +08:00', 'not an IANA time zone'],
    ['tls_cert', 'tls_cert = cert.pem', 'not an absolute path'],
    ['tls_key', 'tls_key = ./key.pem', 'not an absolute path'],
  ])('a bad [global] %s: %s', (key, line, message) => {
    const text = `${GLOBAL.split('\n')
      .filter((l) => !l.startsWith(`${key} =`))
      .join('\n')}${line}\n\n${MYSQL}`;
    const result = parseAgentConfig(text, FILE, { hostTimeZone: TZ });
    expect(result.global).toBeNull();
    expect(names(result)).toEqual(['mysql3306']);
    const error = issueFor(result.errors, 'global', key);
    expect(error.line).toBe(lineOf(text, line));
    expect(error.message).toContain(message);
  });

  it.each<[string, string, string]>([
    ['tls_cert', 'tls_key', 'tls_key = /etc/ubackup/agent-key.pem'],
    ['tls_key', 'tls_cert', 'tls_cert = /etc/ubackup/agent-cert.pem'],
  ])('requires tls_cert and tls_key together: %s is missing next to %s', (missing, present, line) => {
    const text = `${GLOBAL}${line}\n\n${MYSQL}`;
    const result = parseAgentConfig(text, FILE, { hostTimeZone: TZ });
    expect(result.global).toBeNull();
    expect(names(result)).toEqual(['mysql3306']);
    const error = issueFor(result.errors, 'global', missing);
    expect(error.line).toBe(lineOf(text, line));
    expect(error.message).toContain(`${missing} is missing: ${present} is set`);
  });

  it('treats empty tls_cert and tls_key as unset (plain HTTP)', () => {
    const result = parse(`${GLOBAL}tls_cert =\ntls_key =\n`, MYSQL);
    expect(result.errors).toEqual([]);
    expect(result.global?.tls).toBeNull();
  });

  it('reports a duplicate (back_type, instance) on the later section', () => {
    const copy = MYSQL.replace('[mysql3306]', '[mysql3306_copy]');
    const text = [GLOBAL, MYSQL, REDIS, copy].join('\n');
    const result = parseAgentConfig(text, FILE, { hostTimeZone: TZ });
    expect(names(result)).toEqual(['mysql3306', 'redis6379']);
    const error = issueFor(result.errors, 'mysql3306_copy', 'instance');
    expect(error.message).toContain('already configured in [mysql3306]');
    expect(error.line).toBe(text.split('\n').lastIndexOf('instance = 3306') + 1);
  });

  it('fails a repeated section header, keeping the first', () => {
    const second = MYSQL.replace('instance = 3306', 'instance = 3307');
    const result = parse(GLOBAL, MYSQL, second);
    expect(names(result)).toEqual(['mysql3306']);
    expect(result.instances[0]?.instance).toBe('3306');
    expect(result.errors.map((e) => e.section)).toEqual(['mysql3306']);
    expect(result.errors[0]?.message).toContain('appears again');
  });

  it('fails a section with a malformed header or a line that is not key = value', () => {
    const result = parse(GLOBAL, MYSQL.replace('[mysql3306]', '[mysql3306'), `${REDIS}just some words\n`);
    expect(names(result)).toEqual([]);
    expect(issueFor(result.errors, 'mysql3306', null).message).toContain('malformed section header');
    expect(issueFor(result.errors, 'redis6379', null).message).toContain('not a "key = value" line');
  });

  it('reports a missing [global] and still loads valid instance sections', () => {
    const result = parse(MYSQL, REDIS);
    expect(result.global).toBeNull();
    expect(names(result)).toEqual(['mysql3306', 'redis6379']);
    expect(result.errors).toHaveLength(1);
    expect(result.errors[0]).toMatchObject({ file: FILE, section: 'global', key: null, line: null });
    expect(result.errors[0]?.message).toContain('[global] section is missing');
  });

  it('fails [global] when it appears twice', () => {
    const result = parse(GLOBAL, MYSQL, '[global]\ninterval = 60\n');
    expect(result.global).toBeNull();
    expect(names(result)).toEqual(['mysql3306']);
    expect(result.errors.map((e) => e.message)).toEqual([expect.stringContaining('[global] appears again')]);
  });

  it('reports keys before any section', () => {
    const result = parse('server_url = https://x.example\n', GLOBAL, MYSQL);
    expect(result.global).not.toBeNull();
    expect(result.errors).toEqual([
      {
        file: FILE,
        section: null,
        key: 'server_url',
        line: 1,
        message: '"server_url" is outside any section (put it under [global])',
      },
    ]);
  });
});

describe('warnings', () => {
  it('names every obsolete key of the old client and node', () => {
    const obsolete = [
      'op_id',
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
    ];
    const result = parse(`${GLOBAL}${obsolete.map((k) => `${k} = 1`).join('\n')}\n`, MYSQL);
    expect(result.errors).toEqual([]);
    expect(result.global).not.toBeNull();
    expect(result.warnings.map((w) => w.key)).toEqual(obsolete);
    for (const warning of result.warnings) expect(warning.message).toContain(`${warning.key} is obsolete`);
  });

  it('warns about unknown keys, with a hint for near misses', () => {
    const result = parse(`${GLOBAL}myip = 10.0.0.1\ncolour = blue\n`, `${MYSQL}Back-Log = /x\n`);
    expect(result.errors).toEqual([]);
    expect(names(result)).toEqual(['mysql3306']);
    expect(issueFor(result.warnings, 'global', 'myip').message).toBe(
      'unknown key myip (ignored); did you mean my_ip? (keys are lowercase, with underscores)',
    );
    expect(issueFor(result.warnings, 'global', 'colour').message).toBe('unknown key colour (ignored)');
    expect(issueFor(result.warnings, 'mysql3306', 'Back-Log').message).toContain('did you mean back_log?');
  });

  it('warns about a repeated key; the last value wins', () => {
    const result = parse(GLOBAL, `${MYSQL}back_dir = /data/other/\n`);
    expect(result.instances[0]?.backDir).toBe('/data/other/');
    expect(issueFor(result.warnings, 'mysql3306', 'back_dir').message).toContain('last value wins');
  });
});

describe('loadAgentConfig', () => {
  it('reports an unreadable file as an error', async () => {
    const missing = path.join(LEGACY_DIR, 'does-not-exist.conf');
    const result = await loadAgentConfig(missing);
    expect(result.global).toBeNull();
    expect(result.instances).toEqual([]);
    expect(result.errors).toHaveLength(1);
    expect(result.errors[0]?.file).toBe(missing);
    expect(result.errors[0]?.message).toContain('cannot read the config');
  });
});

describe('formatIssue', () => {
  it('leaves out what is unknown', () => {
    expect(formatIssue({ file: '/a.conf', section: null, key: null, line: null, message: 'm' })).toBe(
      '/a.conf: m',
    );
    expect(
      formatIssue({ file: '/a.conf', section: 'global', key: 'server_url', line: null, message: 'm' }),
    ).toBe('/a.conf [global] server_url: m');
    expect(formatIssue({ file: '/a.conf', section: 'x', key: null, line: 3, message: 'm' })).toBe(
      '/a.conf [x] (line 3): m',
    );
  });
});

describe('readIniText', () => {
  it('strips inline comments only after whitespace', () => {
    expect(stripInlineComment('a = b  #c')).toBe('a = b  ');
    expect(stripInlineComment('a = b\t;c')).toBe('a = b\t');
    expect(stripInlineComment('a = a#b;c')).toBe('a = a#b;c');
    expect(stripInlineComment('[s]   #c')).toBe('[s]   ');
  });

  it('returns sections in file order, with line numbers', () => {
    const doc = readIniText('# head\n[b]   ; comment\nk = v # c\n\n[a]\n  x=1\ny = a#b\n; z = 3\n');
    expect(doc.problems).toEqual([]);
    expect(doc.sections.map((s) => [s.name, s.line])).toEqual([
      ['b', 2],
      ['a', 5],
    ]);
    expect([...(doc.sections[0]?.entries ?? [])]).toEqual([['k', { value: 'v', line: 3 }]]);
    expect([...(doc.sections[1]?.entries ?? [])]).toEqual([
      ['x', { value: '1', line: 6 }],
      ['y', { value: 'a#b', line: 7 }],
    ]);
  });

  it('keeps keys as written, splits at the first =, and does not unquote', () => {
    const doc = readIniText('[s]\nKey = "a = b"\nkey = \'x\'\n');
    expect(doc.sections[0]?.entries.get('Key')?.value).toBe('"a = b"');
    expect(doc.sections[0]?.entries.get('key')?.value).toBe("'x'");
  });

  it('counts lines the same for LF, CRLF and CR', () => {
    for (const eol of ['\n', '\r\n', '\r']) {
      const doc = readIniText(['[s]', '', 'a = 1', 'a = 2'].join(eol));
      expect(doc.sections[0]?.entries.get('a')).toEqual({ value: '2', line: 4 });
      expect(doc.problems).toEqual([
        {
          line: 4,
          kind: 'duplicate_key',
          key: 'a',
          message: 'a is set again (first at line 3); the last value wins',
        },
      ]);
    }
  });

  it('property: a value without whitespace-then-#/; survives an inline comment', () => {
    const valueChar = fc.constantFrom(...'abz09/._-#;=\\\' "'.split(''));
    const value = fc
      .array(valueChar, { minLength: 1, maxLength: 30 })
      .map((chars) => chars.join('').trim())
      .filter((v) => v !== '' && !/\s[#;]/.test(v) && !/^[#;]/.test(v));
    fc.assert(
      fc.property(value, fc.constantFrom(' #', '\t;', '  # note'), (v, comment) => {
        const doc = readIniText(`[s]\nk = ${v}${comment}\n`);
        expect(doc.sections[0]?.entries.get('k')?.value).toBe(v);
      }),
    );
  });
});
