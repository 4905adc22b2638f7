import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  applyContract,
  type ContractErrorCode,
  type ContractInput,
  type ContractOutcome,
  checkRelativeName,
  type LogSnapshot,
  parseLogLines,
  STALE_TOLERANCE_MS,
} from '../../src/agent/contract.js';
import { isSafeComponent } from '../../src/shared/path-component.js';
import { MAX_ERROR_CHARS, MAX_LOG_CHARS } from '../../src/shared/report.js';

const START = Date.UTC(2026, 0, 15, 3, 8, 0);
const FRESH = START + 4_000;
const BOM = '\uFEFF';

function log(content: string, mtimeMs: number = FRESH): LogSnapshot {
  return { content, mtimeMs };
}

function run(overrides: Partial<ContractInput> = {}): ContractInput {
  return {
    exitCode: 0,
    signal: null,
    timedOut: false,
    timeoutSeconds: 7200,
    runStartedAtMs: START,
    backLog: log('ok\ndb_20260115.tar.gz\n'),
    lastAllLogConfigured: false,
    lastAllLog: null,
    ...overrides,
  };
}

/** A type 2 run: back_log and last_all_log both configured. */
function type2(
  backLog: string,
  lastAllLog: string | null,
  overrides: Partial<ContractInput> = {},
): ContractInput {
  return run({
    backLog: log(backLog),
    lastAllLogConfigured: true,
    lastAllLog: lastAllLog === null ? null : log(lastAllLog, START - 86_400_000),
    ...overrides,
  });
}

type Expected =
  | { status: 'ok'; kind: 'single' | 'full' | 'incremental'; filename: string; baseFilename: string | null }
  | { status: 'failed'; code: ContractErrorCode; message: string };

const NAME_255 = `${'a'.repeat(248)}.tar.gz`;
const NAME_256 = `${'a'.repeat(249)}.tar.gz`;
const MULTIBYTE_255 = `${'é'.repeat(127)}z`; // 127 × 2 + 1 bytes
const MULTIBYTE_256 = 'é'.repeat(128);

const cases: Array<[string, ContractInput, Expected]> = [
  // Success shapes
  [
    'single: ok + name',
    run(),
    { status: 'ok', kind: 'single', filename: 'db_20260115.tar.gz', baseFilename: null },
  ],
  [
    'full: same name in back_log and last_all_log',
    type2('ok\nfull_0115.xb\n', 'ok\nfull_0115.xb\n'),
    { status: 'ok', kind: 'full', filename: 'full_0115.xb', baseFilename: null },
  ],
  [
    'incremental: base is the name in last_all_log',
    type2('ok\ninc_0115_08.xb\n', 'ok\nfull_0115.xb\n'),
    { status: 'ok', kind: 'incremental', filename: 'inc_0115_08.xb', baseFilename: 'full_0115.xb' },
  ],
  [
    'last_all_log present but not configured is ignored',
    run({ lastAllLog: log('wrong\nboom\n') }),
    { status: 'ok', kind: 'single', filename: 'db_20260115.tar.gz', baseFilename: null },
  ],
  // Tolerated formatting
  [
    'uppercase OK',
    run({ backLog: log('OK\ndb.sql.gz\n') }),
    { status: 'ok', kind: 'single', filename: 'db.sql.gz', baseFilename: null },
  ],
  [
    'CRLF line endings',
    type2('ok\r\ninc.xb\r\n', 'ok\r\nfull.xb\r\n'),
    { status: 'ok', kind: 'incremental', filename: 'inc.xb', baseFilename: 'full.xb' },
  ],
  [
    'bare CR line endings',
    run({ backLog: log('ok\rdb.sql.gz\r') }),
    { status: 'ok', kind: 'single', filename: 'db.sql.gz', baseFilename: null },
  ],
  [
    'UTF-8 BOM',
    type2(`${BOM}ok\nfull.xb\n`, `${BOM}ok\nfull.xb\n`),
    { status: 'ok', kind: 'full', filename: 'full.xb', baseFilename: null },
  ],
  [
    'no trailing newline',
    run({ backLog: log('ok\ndb.sql.gz') }),
    { status: 'ok', kind: 'single', filename: 'db.sql.gz', baseFilename: null },
  ],
  [
    'third line (the old client’s timestamp) in both logs',
    type2('ok\ninc.xb\n2026-01-15 08:08:00\n', 'ok\nfull.xb\n2026-01-15 00:08:00\n'),
    { status: 'ok', kind: 'incremental', filename: 'inc.xb', baseFilename: 'full.xb' },
  ],
  [
    'trailing spaces and tabs',
    type2('ok  \t\ninc.xb \t \n', 'ok\t\nfull.xb   \n'),
    { status: 'ok', kind: 'incremental', filename: 'inc.xb', baseFilename: 'full.xb' },
  ],
  [
    'name with leading spaces is trimmed',
    run({ backLog: log(' ok\n  db.sql.gz\n') }),
    { status: 'ok', kind: 'single', filename: 'db.sql.gz', baseFilename: null },
  ],
  [
    '255-byte name is fine',
    run({ backLog: log(`ok\n${NAME_255}\n`) }),
    { status: 'ok', kind: 'single', filename: NAME_255, baseFilename: null },
  ],
  [
    '255-byte multibyte name is fine',
    run({ backLog: log(`ok\n${MULTIBYTE_255}\n`) }),
    { status: 'ok', kind: 'single', filename: MULTIBYTE_255, baseFilename: null },
  ],
  // Freshness boundary
  [
    `back_log exactly ${STALE_TOLERANCE_MS} ms before the start is fresh`,
    run({ backLog: log('ok\ndb.sql.gz\n', START - STALE_TOLERANCE_MS) }),
    { status: 'ok', kind: 'single', filename: 'db.sql.gz', baseFilename: null },
  ],
  [
    `back_log ${STALE_TOLERANCE_MS + 1} ms before the start is stale`,
    run({ backLog: log('ok\ndb.sql.gz\n', START - STALE_TOLERANCE_MS - 1) }),
    { status: 'failed', code: 'back_log_stale', message: "older than this run's start" },
  ],
  [
    'back_log a fraction of a ms past the tolerance is stale',
    run({ backLog: log('ok\ndb.sql.gz\n', START - STALE_TOLERANCE_MS - 0.5) }),
    { status: 'failed', code: 'back_log_stale', message: 'script did not write back_log' },
  ],
  [
    'back_log from yesterday is stale',
    run({ backLog: log('ok\ndb.sql.gz\n', START - 86_400_000) }),
    { status: 'failed', code: 'back_log_stale', message: 'modified 2026-01-14T03:08:00.000Z' },
  ],
  // How the process ended
  [
    'timeout',
    run({ timedOut: true, exitCode: null, signal: 'SIGKILL' }),
    { status: 'failed', code: 'timeout', message: 'timed out after 7200 seconds' },
  ],
  [
    'killed by a signal',
    run({ exitCode: null, signal: 'SIGKILL' }),
    { status: 'failed', code: 'killed', message: 'killed by signal SIGKILL' },
  ],
  [
    'no exit code and no signal',
    run({ exitCode: null, signal: null }),
    { status: 'failed', code: 'killed', message: 'without an exit code or a signal' },
  ],
  [
    'exit ≠ 0 with an ok back_log fails anyway',
    run({ exitCode: 1 }),
    { status: 'failed', code: 'exit_nonzero', message: 'script exited with code 1 (back_log says ok' },
  ],
  [
    'exit ≠ 0 quotes a wrong back_log’s error text',
    run({ exitCode: 2, backLog: log('wrong\nmysqldump: Got error 2013\n') }),
    {
      status: 'failed',
      code: 'exit_nonzero',
      message: 'code 2; back_log says wrong: mysqldump: Got error 2013',
    },
  ],
  [
    'exit ≠ 0 with a stale back_log does not quote the old log',
    run({ exitCode: 127, backLog: log('wrong\nold error\n', START - 86_400_000) }),
    { status: 'failed', code: 'exit_nonzero', message: 'script exited with code 127' },
  ],
  // back_log itself
  [
    'back_log missing',
    run({ backLog: null }),
    {
      status: 'failed',
      code: 'back_log_missing',
      message: 'script did not write back_log: the file does not exist',
    },
  ],
  [
    'back_log empty',
    run({ backLog: log('') }),
    { status: 'failed', code: 'back_log_empty', message: 'back_log is empty' },
  ],
  [
    'back_log only BOM and whitespace',
    run({ backLog: log(`${BOM} \r\n\t\n\n`) }),
    { status: 'failed', code: 'back_log_empty', message: 'back_log is empty' },
  ],
  [
    'back_log garbled',
    run({ backLog: log('done\ndb.sql.gz\n') }),
    { status: 'failed', code: 'back_log_garbled', message: 'line 1 is "done", expected "ok" or "wrong"' },
  ],
  [
    'back_log garbled: long first line is cut at 80 characters',
    run({ backLog: log(`${'x'.repeat(200)}\n`) }),
    { status: 'failed', code: 'back_log_garbled', message: `line 1 is "${'x'.repeat(80)}"…, expected` },
  ],
  [
    'back_log blank first line is garbled',
    run({ backLog: log('\nok\ndb.sql.gz\n') }),
    { status: 'failed', code: 'back_log_garbled', message: 'line 1 is ""' },
  ],
  [
    'wrong with an error text',
    run({ backLog: log('wrong\ndisk full on /data\n') }),
    {
      status: 'failed',
      code: 'script_reported_wrong',
      message: 'script reported wrong in back_log: disk full on /data',
    },
  ],
  [
    'WRONG (uppercase) with an error text',
    run({ backLog: log('WRONG\nno space\n') }),
    { status: 'failed', code: 'script_reported_wrong', message: 'no space' },
  ],
  [
    'wrong without an error text',
    run({ backLog: log('wrong\n') }),
    {
      status: 'failed',
      code: 'script_reported_wrong',
      message: 'script reported wrong without an error text',
    },
  ],
  [
    'ok without a name',
    run({ backLog: log('ok\n') }),
    { status: 'failed', code: 'ok_without_name', message: 'back_log says ok but gives no file name' },
  ],
  [
    'ok with a blank name line',
    run({ backLog: log('ok\n   \t\n2026-01-15\n') }),
    { status: 'failed', code: 'ok_without_name', message: 'no file name on line 2' },
  ],
  // Bad names
  [
    'traversal ../x',
    run({ backLog: log('ok\n../x\n') }),
    {
      status: 'failed',
      code: 'bad_file_name',
      message: 'back_log names a bad file "../x": escapes back_dir',
    },
  ],
  [
    'absolute /etc/passwd',
    run({ backLog: log('ok\n/etc/passwd\n') }),
    { status: 'failed', code: 'bad_file_name', message: '"/etc/passwd": is an absolute path' },
  ],
  [
    'subdirectory a/b',
    run({ backLog: log('ok\na/b\n') }),
    { status: 'failed', code: 'bad_file_name', message: '"a/b": contains a path separator' },
  ],
  [
    'backslash a\\b',
    run({ backLog: log('ok\na\\b\n') }),
    { status: 'failed', code: 'bad_file_name', message: 'contains a path separator' },
  ],
  [
    'name ..',
    run({ backLog: log('ok\n..\n') }),
    { status: 'failed', code: 'bad_file_name', message: 'escapes back_dir' },
  ],
  [
    'name .',
    run({ backLog: log('ok\n.\n') }),
    { status: 'failed', code: 'bad_file_name', message: 'is "." or ".."' },
  ],
  [
    'NUL in the name',
    run({ backLog: log('ok\ndb\0.sql\n') }),
    { status: 'failed', code: 'bad_file_name', message: '"db\\u0000.sql": contains a NUL byte' },
  ],
  [
    'control character in the name',
    run({ backLog: log('ok\ndb\u001b[31m.sql\n') }),
    { status: 'failed', code: 'bad_file_name', message: 'contains a control character' },
  ],
  [
    '256-byte name',
    run({ backLog: log(`ok\n${NAME_256}\n`) }),
    { status: 'failed', code: 'bad_file_name', message: 'is longer than 255 bytes' },
  ],
  [
    '256-byte multibyte name',
    run({ backLog: log(`ok\n${MULTIBYTE_256}\n`) }),
    { status: 'failed', code: 'bad_file_name', message: 'is longer than 255 bytes' },
  ],
  // last_all_log
  [
    'last_all_log wrong → last full failed',
    type2('ok\ninc.xb\n', 'wrong\ninnobackupex: cannot connect\n'),
    {
      status: 'failed',
      code: 'last_full_failed',
      message: 'the last full backup failed: innobackupex: cannot connect (from last_all_log)',
    },
  ],
  [
    'last_all_log wrong without text',
    type2('ok\ninc.xb\n', 'Wrong\n'),
    { status: 'failed', code: 'last_full_failed', message: 'last_all_log says wrong without an error text' },
  ],
  [
    'last_all_log missing',
    type2('ok\ninc.xb\n', null),
    {
      status: 'failed',
      code: 'last_all_log_missing',
      message: 'last_all_log is missing: cannot tell whether',
    },
  ],
  [
    'last_all_log empty',
    type2('ok\ninc.xb\n', `${BOM}\n`),
    { status: 'failed', code: 'last_all_log_garbled', message: 'last_all_log is empty' },
  ],
  [
    'last_all_log garbled first line',
    type2('ok\ninc.xb\n', 'started\n'),
    {
      status: 'failed',
      code: 'last_all_log_garbled',
      message: 'last_all_log is garbled: line 1 is "started"',
    },
  ],
  [
    'last_all_log ok without a name',
    type2('ok\ninc.xb\n', 'ok\n'),
    {
      status: 'failed',
      code: 'last_all_log_garbled',
      message: 'last_all_log says ok but gives no file name',
    },
  ],
  [
    'last_all_log names a bad base',
    type2('ok\ninc.xb\n', 'ok\n../../etc/shadow\n'),
    {
      status: 'failed',
      code: 'bad_file_name',
      message: 'last_all_log names a bad base file "../../etc/shadow"',
    },
  ],
  [
    'back_log wrong wins over a failed last full',
    type2('wrong\nlock wait timeout\n', 'wrong\nearlier failure\n'),
    { status: 'failed', code: 'script_reported_wrong', message: 'lock wait timeout' },
  ],
];

function expectedLog(input: ContractInput): string {
  if (input.backLog === null) return '';
  const content = input.backLog.content;
  return content.startsWith(BOM) ? content.slice(1) : content;
}

describe('applyContract: the back_log contract table', () => {
  it.each(cases)('%s', (_name, input, expected) => {
    const outcome = applyContract(input);
    const log = expectedLog(input);
    if (expected.status === 'ok') {
      expect(outcome).toEqual({ ...expected, log });
      return;
    }
    expect(outcome).toEqual({ status: 'failed', code: expected.code, error: expect.any(String), log });
    if (outcome.status === 'failed') expect(outcome.error).toContain(expected.message);
  });

  it('has a case for every error code', () => {
    const codes = new Set(cases.flatMap(([, , e]) => (e.status === 'failed' ? [e.code] : [])));
    const all: ContractErrorCode[] = [
      'timeout',
      'killed',
      'exit_nonzero',
      'back_log_missing',
      'back_log_stale',
      'back_log_empty',
      'back_log_garbled',
      'script_reported_wrong',
      'ok_without_name',
      'bad_file_name',
      'last_full_failed',
      'last_all_log_missing',
      'last_all_log_garbled',
    ];
    expect([...codes].sort()).toEqual([...all].sort());
  });
});

describe('applyContract: log and error limits', () => {
  it('keeps the back_log as read, BOM stripped and cut to MAX_LOG_CHARS', () => {
    const content = `${BOM}ok\r\ndb.sql.gz\r\n${'#'.repeat(10_000)}`;
    const outcome = applyContract(run({ backLog: log(content) }));
    expect(outcome.status).toBe('ok');
    expect(outcome.log).toHaveLength(MAX_LOG_CHARS);
    expect(outcome.log.startsWith('ok\r\ndb.sql.gz\r\n')).toBe(true);
  });

  it('does not split a surrogate pair when cutting the log', () => {
    const content = `ok\ndb.sql.gz\n${'a'.repeat(MAX_LOG_CHARS - 14)}😀😀`;
    const outcome = applyContract(run({ backLog: log(content) }));
    expect(outcome.log).toHaveLength(MAX_LOG_CHARS - 1);
    expect(outcome.log.endsWith('a')).toBe(true);
  });

  it('keeps a stale back_log’s content in the log', () => {
    const outcome = applyContract(run({ backLog: log('ok\nold.sql.gz\n', START - 60_000) }));
    expect(outcome).toMatchObject({ status: 'failed', code: 'back_log_stale', log: 'ok\nold.sql.gz\n' });
  });

  it('cuts a huge error text so the report stays valid', () => {
    const outcome = applyContract(run({ backLog: log(`wrong\n${'e'.repeat(50_000)}\n`) }));
    expect(outcome.status).toBe('failed');
    if (outcome.status === 'failed') {
      expect(outcome.error.length).toBeLessThanOrEqual(MAX_ERROR_CHARS);
      expect(outcome.error.endsWith('…')).toBe(true);
    }
  });

  it('reports a non-finite mtime as stale rather than fresh', () => {
    const outcome = applyContract(run({ backLog: log('ok\ndb.sql.gz\n', Number.NaN) }));
    expect(outcome).toMatchObject({ status: 'failed', code: 'back_log_stale' });
  });
});

describe('parseLogLines', () => {
  it.each([
    ['', []],
    ['\n\n', []],
    [`${BOM}ok\ndb\n`, ['ok', 'db']],
    ['ok\r\ndb\r\n', ['ok', 'db']],
    ['ok\rdb', ['ok', 'db']],
    ['ok \t\ndb  \n\t\n', ['ok', 'db']],
    ['ok\n\ndb', ['ok', '', 'db']],
    ['  ok', ['  ok']],
  ] as const)('%j → %j', (content, lines) => {
    expect(parseLogLines(content)).toEqual(lines);
  });
});

describe('checkRelativeName', () => {
  it.each([
    ['db.sql.gz', null],
    ['...', null],
    ['数据库.tar.gz', null],
    ['', 'is empty'],
    ['/etc/passwd', 'is an absolute path'],
    ['../x', 'escapes back_dir'],
    ['a/../../b', 'escapes back_dir'],
    ['..', 'escapes back_dir'],
    ['.', 'is "." or ".."'],
    ['a/b', 'contains a path separator'],
    ['a\0b', 'contains a NUL byte'],
    ['a\nb', 'contains a control character'],
    [NAME_256, 'is longer than 255 bytes'],
  ] as const)('%j', (name, reason) => {
    const result = checkRelativeName(name);
    if (reason === null) expect(result).toBeNull();
    else expect(result).toContain(reason);
  });
});

// ---------------------------------------------------------------------------
// Property tests

const LINE_ENDS = ['\n', '\r\n', '\r'] as const;

/** A line of free text without line breaks. */
const lineArb: fc.Arbitrary<string> = fc.string({ maxLength: 40 }).map((s) => s.replace(/[\r\n]/g, ' '));

/** Names that pass checkRelativeName and survive trimming, so they round-trip through a log. */
const safeNameArb: fc.Arbitrary<string> = fc
  .string({ minLength: 1, maxLength: 60, unit: 'grapheme' })
  .filter((s) => s.trim() === s && isSafeComponent(s));

/** Log content that looks like the contract often enough to reach every branch. */
const logContentArb: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.string({ maxLength: 80, unit: 'binary' }), weight: 1 },
  {
    weight: 3,
    arbitrary: fc
      .tuple(
        fc.constantFrom('ok', 'OK', 'wrong', 'Wrong', ' ok ', 'done', ''),
        fc.oneof(
          { arbitrary: fc.constantFrom('full.xb', 'inc.xb'), weight: 4 },
          { arbitrary: safeNameArb, weight: 1 },
          { arbitrary: lineArb, weight: 1 },
          { arbitrary: fc.constantFrom('../x', '/etc/passwd', 'a/b', 'a\0b'), weight: 1 },
        ),
        fc.option(lineArb, { nil: undefined }),
        fc.constantFrom(...LINE_ENDS),
        fc.boolean(),
      )
      .map(
        ([first, second, third, eol, bom]) =>
          `${bom ? BOM : ''}${[first, second, ...(third === undefined ? [] : [third])].join(eol)}${eol}`,
      ),
  },
);

const snapshotArb: fc.Arbitrary<LogSnapshot | null> = fc.option(
  fc.record({
    content: logContentArb,
    mtimeMs: fc.oneof(
      { arbitrary: fc.constant(FRESH), weight: 4 },
      { arbitrary: fc.constant(START - 60_000), weight: 1 },
      { arbitrary: fc.double(), weight: 1 },
    ),
  }),
  { nil: null },
);

const inputArb: fc.Arbitrary<ContractInput> = fc.record({
  exitCode: fc.oneof(
    { arbitrary: fc.constant(0), weight: 4 },
    { arbitrary: fc.constant(null), weight: 1 },
    { arbitrary: fc.integer({ min: -255, max: 255 }), weight: 1 },
  ),
  signal: fc.option(fc.constantFrom('SIGKILL', 'SIGTERM', 'SIGSEGV'), { nil: null }),
  timedOut: fc.oneof(
    { arbitrary: fc.constant(false), weight: 4 },
    { arbitrary: fc.constant(true), weight: 1 },
  ),
  timeoutSeconds: fc.oneof(fc.integer({ min: 1, max: 86_400 }), fc.double()),
  runStartedAtMs: fc.oneof(
    { arbitrary: fc.constant(START), weight: 4 },
    { arbitrary: fc.double(), weight: 1 },
  ),
  backLog: snapshotArb,
  lastAllLogConfigured: fc.boolean(),
  lastAllLog: snapshotArb,
});

function withoutLog(outcome: ContractOutcome): Omit<ContractOutcome, 'log'> {
  const { log: _log, ...rest } = outcome;
  return rest;
}

describe('applyContract: properties', () => {
  it('the input generator reaches every outcome (so the properties below are not vacuous)', () => {
    const seen = new Set<string>();
    for (const input of fc.sample(inputArb, { numRuns: 5000, seed: 42 })) {
      const outcome = applyContract(input);
      seen.add(outcome.status === 'ok' ? outcome.kind : outcome.code);
    }
    expect([...seen].sort()).toEqual(
      [
        'single',
        'full',
        'incremental',
        'timeout',
        'killed',
        'exit_nonzero',
        'back_log_missing',
        'back_log_stale',
        'back_log_empty',
        'back_log_garbled',
        'script_reported_wrong',
        'ok_without_name',
        'bad_file_name',
        'last_full_failed',
        'last_all_log_missing',
        'last_all_log_garbled',
      ].sort(),
    );
  });

  it('never throws and always answers ok or failed within the report limits', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const outcome = applyContract(input);
        expect(['ok', 'failed']).toContain(outcome.status);
        expect(outcome.log.length).toBeLessThanOrEqual(MAX_LOG_CHARS);
        if (outcome.status === 'failed') {
          expect(outcome.error.length).toBeGreaterThan(0);
          expect(outcome.error.length).toBeLessThanOrEqual(MAX_ERROR_CHARS);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('fails any run whose exit code is not 0, whatever the logs say', () => {
    fc.assert(
      fc.property(
        inputArb,
        fc.integer({ min: -255, max: 255 }).filter((c) => c !== 0),
        (input, exitCode) => {
          const outcome = applyContract({ ...input, exitCode, timedOut: false });
          expect(outcome).toMatchObject({ status: 'failed', code: 'exit_nonzero' });
        },
      ),
    );
  });

  it('only ever accepts file names (and base names) that pass checkRelativeName', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const outcome = applyContract(input);
        if (outcome.status !== 'ok') return;
        expect(checkRelativeName(outcome.filename)).toBeNull();
        if (outcome.baseFilename !== null) expect(checkRelativeName(outcome.baseFilename)).toBeNull();
        expect(outcome.kind === 'incremental').toBe(outcome.baseFilename !== null);
      }),
      { numRuns: 2000 },
    );
  });

  it('a full writes the same name to both logs; different names make an incremental on that base', () => {
    fc.assert(
      fc.property(safeNameArb, safeNameArb, (name, base) => {
        expect(applyContract(type2(`ok\n${name}\n`, `ok\n${name}\n`))).toMatchObject({
          status: 'ok',
          kind: 'full',
          filename: name,
          baseFilename: null,
        });
        const expected =
          name === base
            ? { status: 'ok', kind: 'full', filename: name, baseFilename: null }
            : { status: 'ok', kind: 'incremental', filename: name, baseFilename: base };
        expect(applyContract(type2(`ok\n${name}\n`, `ok\n${base}\n2026-01-15 00:08:00\n`))).toMatchObject(
          expected,
        );
      }),
    );
  });

  it('line endings, BOM, trailing blanks and a final newline do not change the outcome', () => {
    const logicalArb = fc.array(fc.oneof(fc.constantFrom('ok', 'wrong', 'OK', ''), safeNameArb, lineArb), {
      maxLength: 4,
    });
    const variantArb = fc.record({
      eol: fc.constantFrom(...LINE_ENDS),
      bom: fc.boolean(),
      finalNewline: fc.boolean(),
      trailing: fc.array(fc.constantFrom('', ' ', '\t', '  \t '), { minLength: 4, maxLength: 4 }),
    });
    type Variant = { eol: string; bom: boolean; finalNewline: boolean; trailing: string[] };
    const render = (lines: readonly string[], v: Variant): string => {
      const body = lines.map((line, i) => `${line}${v.trailing[i] ?? ''}`).join(v.eol);
      return `${v.bom ? BOM : ''}${body}${v.finalNewline && lines.length > 0 ? v.eol : ''}`;
    };
    const plain: Variant = { eol: '\n', bom: false, finalNewline: false, trailing: [] };
    fc.assert(
      fc.property(
        logicalArb,
        logicalArb,
        variantArb,
        variantArb,
        fc.boolean(),
        (backLines, lastLines, backVariant, lastVariant, configured) => {
          const canonical = applyContract(
            type2(render(backLines, plain), render(lastLines, plain), { lastAllLogConfigured: configured }),
          );
          const varied = applyContract(
            type2(render(backLines, backVariant), render(lastLines, lastVariant), {
              lastAllLogConfigured: configured,
            }),
          );
          expect(withoutLog(varied)).toEqual(withoutLog(canonical));
        },
      ),
      { numRuns: 1000 },
    );
  });
});
