import { describe, expect, it } from 'vitest';
import { ALERT_SEVERITY, ALERT_TYPES, type AlertNotice } from '../../src/server/alerts/alert-kind.js';
import { DIGEST_LISTED_ITEMS, digestMessage } from '../../src/server/notify/digest-message.js';
import { emailMessage } from '../../src/server/notify/email-message.js';
import { formatDuration, formatMessageTime } from '../../src/server/notify/message-time.js';
import { noticeMessage } from '../../src/server/notify/notice-message.js';
import { type MessageItem, messageText } from '../../src/server/notify/notify-message.js';

const OPENED = Date.UTC(2026, 0, 2, 3, 4, 5);

const transferFailed: AlertNotice = {
  id: 42,
  type: 'transfer_failed',
  severity: 'critical',
  subject: 'db01/mysql/3306',
  gameId: 'game1',
  state: 'open',
  summary: 'node n1 could not pull full-20260102.tar.zst: connection refused (3 attempts)',
  openedAt: OPENED,
  resolvedAt: null,
};

describe('message times', () => {
  it('writes times in the configured zone and durations in two units', () => {
    expect(formatMessageTime(OPENED)).toBe('2026-01-02 03:04 UTC');
    expect(formatMessageTime(OPENED, 'Asia/Shanghai')).toBe('2026-01-02 11:04 GMT+8');
    expect(formatDuration(45_000)).toBe('45s');
    expect(formatDuration(12 * 60_000 + 5_000)).toBe('12m');
    expect(formatDuration(3 * 3_600_000 + 10 * 60_000)).toBe('3h 10m');
    expect(formatDuration(2 * 86_400_000 + 4 * 3_600_000 + 59_000)).toBe('2d 4h');
    expect(formatDuration(-5)).toBe('0s');
  });
});

describe('noticeMessage', () => {
  it('an opened alert: severity, type, subject, business, summary, time, id and link', () => {
    const message = noticeMessage(
      { event: 'opened', notice: transferFailed },
      { nowMs: OPENED + 1000, dashboardUrl: 'https://ubackup.example/' },
    );
    expect(message.form).toBe('single');
    expect(message.severity).toBe('critical');
    expect(messageText(message)).toBe(
      [
        '[CRITICAL] transfer_failed: db01/mysql/3306',
        '',
        'Opened 2026-01-02 03:04 UTC',
        'Type: transfer_failed (critical)',
        'Subject: db01/mysql/3306',
        'Business: game1',
        `Summary: ${transferFailed.summary}`,
        'Alert #42 · https://ubackup.example/',
      ].join('\n'),
    );
    expect(message.items).toEqual([{ event: 'opened', notice: transferFailed }]);
  });

  it('a resolved alert says when and after how long; a node alert has no business line', () => {
    const resolved: AlertNotice = {
      ...transferFailed,
      type: 'node_offline',
      subject: 'node-a',
      gameId: '',
      state: 'resolved',
      resolvedAt: OPENED + 2 * 3_600_000 + 5 * 60_000,
    };
    const message = noticeMessage({ event: 'resolved', notice: resolved }, { nowMs: OPENED + 3 * 3_600_000 });
    expect(message.title).toBe('[RESOLVED] node_offline: node-a');
    expect(message.severity).toBeNull();
    expect(message.link).toBeNull();
    expect(message.lines[0]).toBe('Resolved 2026-01-02 05:09 UTC after 2h 5m (opened 2026-01-02 03:04 UTC)');
    expect(message.lines.some((line) => line.startsWith('Business:'))).toBe(false);
    expect(message.lines.at(-1)).toBe('Alert #42');
  });

  it('a reminder says how long the alert has been open', () => {
    const message = noticeMessage(
      { event: 'reminder', notice: transferFailed },
      { nowMs: OPENED + 3 * 3_600_000 + 10 * 60_000, timeZone: 'Asia/Shanghai' },
    );
    expect(message.title).toBe('[CRITICAL] still open: transfer_failed: db01/mysql/3306');
    expect(message.lines[0]).toBe('Still open after 3h 10m (opened 2026-01-02 11:04 GMT+8)');
  });

  it('as e-mail: the tagged title is the subject, the text the body', () => {
    const mail = emailMessage(noticeMessage({ event: 'opened', notice: transferFailed }, { nowMs: OPENED }));
    expect(mail.subject).toBe('UBackup [CRITICAL] transfer_failed: db01/mysql/3306');
    expect(mail.text).toContain('Subject: db01/mysql/3306\n');
  });
});

/** 2,000 notices: 1,200 transfer_failed over 4 businesses, 700 overdue resolved, 100 node_offline. */
function storm(): MessageItem[] {
  const items: MessageItem[] = [];
  for (let i = 0; i < 2000; i++) {
    const type = i < 1200 ? 'transfer_failed' : i < 1900 ? 'overdue' : 'node_offline';
    const gameId = type === 'node_offline' ? '' : `game${i % 4}`;
    const resolved = type === 'overdue';
    items.push({
      event: resolved ? 'resolved' : 'opened',
      notice: {
        id: i + 1,
        type,
        severity: ALERT_SEVERITY[type],
        subject: type === 'node_offline' ? `node-${i}` : `db${i}/mysql/3306`,
        gameId,
        state: resolved ? 'resolved' : 'open',
        summary: `summary ${i}`,
        openedAt: OPENED + i,
        resolvedAt: resolved ? OPENED + 10_000 + i : null,
      },
    });
  }
  return items;
}

describe('digestMessage', () => {
  it('2,000 notices: one message with counts by event, type and business, 20 lines and "and K more"', () => {
    const items = storm();
    const message = digestMessage(items, { nowMs: OPENED + 60_000, dashboardUrl: 'https://ubackup.example' });
    expect(message.form).toBe('digest');
    expect(message.items).toHaveLength(2000);
    expect(new Set(message.items.map((item) => item.notice.id)).size).toBe(2000);
    expect(message.severity).toBe('critical');
    expect(message.title).toBe('[CRITICAL] 2000 alerts: 1300 opened, 700 resolved');
    // node_offline and transfer_failed are critical (largest count first), overdue is a warning.
    expect(message.lines[0]).toBe('By type: transfer_failed 1200, node_offline 100, overdue 700');
    expect(message.lines[1]).toBe(
      'By business: game0 475, game1 475, game2 475, game3 475, (no business) 100',
    );
    const listed = message.lines.filter((line) => line.startsWith('- '));
    expect(listed).toHaveLength(DIGEST_LISTED_ITEMS);
    expect(listed[0]).toBe('- [critical] opened transfer_failed db0/mysql/3306 (game0): summary 0');
    expect(listed.every((line) => line.startsWith('- [critical] opened '))).toBe(true);
    expect(message.lines).toContain(`…and ${2000 - DIGEST_LISTED_ITEMS} more.`);
    expect(message.lines.at(-1)).toBe('Dashboard: https://ubackup.example');
    expect(messageText(message).length).toBeLessThan(4000);
  });

  it('names at most 10 businesses and sums the rest; an all-resolved digest is marked resolved', () => {
    const items: MessageItem[] = Array.from({ length: 13 }, (_, i) => ({
      event: 'resolved' as const,
      notice: {
        ...transferFailed,
        id: i,
        gameId: `g${String(i).padStart(2, '0')}`,
        state: 'resolved' as const,
        resolvedAt: OPENED + 1,
      },
    }));
    const message = digestMessage(items, { nowMs: OPENED });
    expect(message.title).toBe('[RESOLVED] 13 alerts: 13 resolved');
    expect(message.severity).toBeNull();
    expect(message.lines[1]).toBe(
      'By business: g00 1, g01 1, g02 1, g03 1, g04 1, g05 1, g06 1, g07 1, g08 1, g09 1, 3 others 3',
    );
    expect(message.lines.some((line) => line.startsWith('…and'))).toBe(false);
  });

  it('covers every alert type by name', () => {
    const items: MessageItem[] = ALERT_TYPES.map((type, i) => ({
      event: 'opened',
      notice: { ...transferFailed, id: i, type, severity: ALERT_SEVERITY[type] },
    }));
    const text = messageText(digestMessage(items, { nowMs: OPENED }));
    for (const type of ALERT_TYPES) expect(text).toContain(`${type} 1`);
  });
});
