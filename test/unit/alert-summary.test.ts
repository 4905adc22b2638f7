import { describe, expect, it } from 'vitest';
import { ALERT_TYPES, type AlertType } from '../../src/server/alerts/alert-kind.js';
import {
  type AlertFacts,
  alertSummary,
  formatDuration,
  formatUtc,
  MAX_QUOTED_CHARS,
} from '../../src/server/alerts/alert-summary.js';

// Frozen time: every summary is built from facts that include `now`.
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const NOW = Date.UTC(2026, 10, 26, 5, 12, 0);

/** One example per type; the type annotation fails to compile if a type is missing. */
const EXAMPLES: { [K in AlertType]: [Extract<AlertFacts, { type: K }>, string] } = {
  script_failed: [
    {
      type: 'script_failed',
      createdAt: Date.UTC(2026, 10, 26, 4, 0, 0),
      error: 'exit code 2: mysqldump: Got error 1045',
    },
    'backup of 2026-11-26 04:00 UTC failed: exit code 2: mysqldump: Got error 1045',
  ],
  overdue: [
    {
      type: 'overdue',
      lastSuccessAt: Date.UTC(2026, 10, 25, 4, 0, 0),
      dueAt: Date.UTC(2026, 10, 26, 4, 50, 0),
    },
    'no successful backup since 2026-11-25 04:00 UTC (due 2026-11-26 04:50 UTC)',
  ],
  stuck: [
    {
      type: 'stuck',
      startedAt: Date.UTC(2026, 10, 26, 2, 0, 0),
      deadlineAt: Date.UTC(2026, 10, 26, 4, 50, 0),
      now: NOW,
    },
    'run started 2026-11-26 02:00 UTC has not finished after 3 h 12 min (deadline 2026-11-26 04:50 UTC)',
  ],
  illegal: [
    { type: 'illegal', reason: 'instance db-17/mysql/3306 is not registered' },
    'report not accepted: instance db-17/mysql/3306 is not registered',
  ],
  transfer_failed: [
    { type: 'transfer_failed', filename: 'full-20261126.xb', attempts: 5, error: 'source file gone (404)' },
    'transfer of full-20261126.xb gave up after 5 attempts: source file gone (404)',
  ],
  integrity: [
    { type: 'integrity', filename: 'full-20261126.xb', stage: 'scrub', node: 'node-b' },
    'checksum mismatch on scrub of full-20261126.xb on node node-b',
  ],
  node_paused: [
    { type: 'node_paused', reason: 'free space under its reserve' },
    'paused: free space under its reserve',
  ],
  node_offline: [
    {
      type: 'node_offline',
      lastHeartbeatAt: NOW - 4 * MINUTE - 10 * SECOND,
      enrolledAt: NOW - 30 * DAY,
      now: NOW,
    },
    'no heartbeat for 4 min',
  ],
  queue_backlog: [
    { type: 'queue_backlog', cluster: 'default', oldestQueuedAt: NOW - HOUR - 12 * MINUTE, now: NOW },
    'oldest queued job waited 1 h 12 min in cluster default',
  ],
};

describe('alert summaries', () => {
  it.each(ALERT_TYPES.map((type) => [type, EXAMPLES[type]] as const))('%s', (_type, [facts, line]) => {
    expect(alertSummary(facts)).toBe(line);
    // Deterministic: the same facts give the same line.
    expect(alertSummary(structuredClone(facts))).toBe(line);
    expect(line).not.toContain('\n');
  });

  it('say so when a message or a last success is missing', () => {
    expect(alertSummary({ type: 'script_failed', createdAt: NOW, error: null })).toBe(
      'backup of 2026-11-26 05:12 UTC failed (no error message)',
    );
    expect(alertSummary({ type: 'script_failed', createdAt: NOW, error: ' \n\t ' })).toBe(
      'backup of 2026-11-26 05:12 UTC failed (no error message)',
    );
    expect(alertSummary({ type: 'overdue', lastSuccessAt: null, dueAt: NOW })).toBe(
      'no successful backup yet (due 2026-11-26 05:12 UTC)',
    );
    expect(alertSummary({ type: 'illegal', reason: null })).toBe('report not accepted by the registry');
    expect(alertSummary({ type: 'transfer_failed', filename: 'a.sql', attempts: 1, error: null })).toBe(
      'transfer of a.sql gave up after 1 attempt',
    );
    expect(alertSummary({ type: 'integrity', filename: 'a.sql', stage: 'restore', node: null })).toBe(
      'checksum mismatch on restore of a.sql',
    );
    expect(
      alertSummary({ type: 'node_offline', lastHeartbeatAt: null, enrolledAt: NOW - 12 * MINUTE, now: NOW }),
    ).toBe('no heartbeat since it enrolled 12 min ago');
  });

  it('fold text from scripts onto one line and shorten it', () => {
    const line = alertSummary({
      type: 'script_failed',
      createdAt: NOW,
      error: 'line one\r\nline\ttwo\u0000\n',
    });
    expect(line).toBe('backup of 2026-11-26 05:12 UTC failed: line one line two');
    const long = alertSummary({ type: 'illegal', reason: '界'.repeat(1000) });
    const quotedPart = long.slice('report not accepted: '.length);
    expect(Array.from(quotedPart)).toHaveLength(MAX_QUOTED_CHARS);
    expect(quotedPart.endsWith('…')).toBe(true);
  });
});

describe('times and durations', () => {
  it('times are UTC, with seconds only when they are not zero', () => {
    expect(formatUtc(Date.UTC(2026, 10, 25, 4, 0, 0))).toBe('2026-11-25 04:00 UTC');
    expect(formatUtc(Date.UTC(2026, 10, 25, 4, 0, 37, 999))).toBe('2026-11-25 04:00:37 UTC');
    expect(formatUtc(Date.UTC(2026, 0, 1, 0, 0, 0, 500))).toBe('2026-01-01 00:00 UTC');
    expect(() => formatUtc(Number.NaN)).toThrow(RangeError);
  });

  it.each([
    [-5 * SECOND, '0 s'],
    [0, '0 s'],
    [999, '0 s'],
    [45 * SECOND, '45 s'],
    [59 * SECOND + 999, '59 s'],
    [MINUTE, '1 min'],
    [4 * MINUTE + 59 * SECOND, '4 min'],
    [HOUR, '1 h'],
    [HOUR + 12 * MINUTE + 30 * SECOND, '1 h 12 min'],
    [23 * HOUR + 59 * MINUTE, '23 h 59 min'],
    [DAY, '1 d'],
    [2 * DAY + 3 * HOUR + 59 * MINUTE, '2 d 3 h'],
    [40 * DAY, '40 d'],
  ])('%d ms is "%s"', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});
