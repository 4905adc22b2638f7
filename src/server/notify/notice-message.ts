import type { AlertNotice } from '../alerts/alert-kind.js';
import { formatDuration, formatMessageTime } from './message-time.js';
import type { MessageItem, MessageOptions, NoticeEvent, NotifyMessage } from './notify-message.js';

/**
 * The message for one notice, written to be read at 3 a.m.:
 *
 *   [CRITICAL] transfer_failed: db01/mysql/3306
 *
 *   Opened 2026-01-02 03:04 UTC
 *   Type: transfer_failed (critical)
 *   Subject: db01/mysql/3306
 *   Business: game1
 *   Summary: node n1 could not pull … (3 attempts)
 *   Alert #42 · https://dashboard.example
 */

/** `[CRITICAL] transfer_failed: db01/mysql/3306`, `[RESOLVED] …`, `[WARNING] still open: …`. */
export function noticeTitle(event: NoticeEvent, notice: AlertNotice): string {
  const what = `${notice.type}: ${notice.subject}`;
  if (event === 'resolved') return `[RESOLVED] ${what}`;
  const level = `[${notice.severity.toUpperCase()}]`;
  return event === 'reminder' ? `${level} still open: ${what}` : `${level} ${what}`;
}

/** The first body line: when it happened and, for resolutions and reminders, for how long it was open. */
export function noticeWhen(event: NoticeEvent, notice: AlertNotice, options: MessageOptions): string {
  const opened = formatMessageTime(notice.openedAt, options.timeZone);
  if (event === 'opened') return `Opened ${opened}`;
  if (event === 'reminder') {
    return `Still open after ${formatDuration(options.nowMs - notice.openedAt)} (opened ${opened})`;
  }
  const resolvedAt = notice.resolvedAt ?? options.nowMs;
  return `Resolved ${formatMessageTime(resolvedAt, options.timeZone)} after ${formatDuration(resolvedAt - notice.openedAt)} (opened ${opened})`;
}

export function noticeMessage(item: MessageItem, options: MessageOptions): NotifyMessage {
  const { event, notice } = item;
  const link = options.dashboardUrl ?? null;
  const lines = [
    noticeWhen(event, notice, options),
    `Type: ${notice.type} (${notice.severity})`,
    `Subject: ${notice.subject}`,
  ];
  if (notice.gameId !== '') lines.push(`Business: ${notice.gameId}`);
  lines.push(`Summary: ${notice.summary}`);
  lines.push(link === null ? `Alert #${notice.id}` : `Alert #${notice.id} · ${link}`);
  return {
    form: 'single',
    title: noticeTitle(event, notice),
    lines,
    severity: event === 'resolved' ? null : notice.severity,
    link,
    items: [item],
  };
}
