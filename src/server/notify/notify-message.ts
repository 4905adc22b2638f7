import type { AlertNotice, Severity } from '../alerts/alert-kind.js';

/**
 * The human message a channel receives, before any vendor's format: a title
 * line, plain-text body lines, and the notices it covers (so the caller can
 * record what was delivered and a machine receiver gets the data).
 */

/** Why a notice is sent: the alert was opened, was resolved, or is still open (a repeat reminder). */
export type NoticeEvent = 'opened' | 'resolved' | 'reminder';

export interface MessageItem {
  event: NoticeEvent;
  notice: AlertNotice;
}

export interface NotifyMessage {
  /** `single`: one notice. `digest`: many notices of one dispatch round in one message. */
  form: 'single' | 'digest';
  /** One line: the e-mail subject and the chat title. */
  title: string;
  /** The body after the title, as plain-text lines; an empty string separates paragraphs. */
  lines: string[];
  /** The most severe level among items that are not resolutions; null when all of them are. */
  severity: Severity | null;
  /** The dashboard link shown in the message, if one was configured. */
  link: string | null;
  /** Every notice the message covers, in the order the message lists them. */
  items: MessageItem[];
}

export interface MessageOptions {
  /** The time the message is built, epoch ms (for "open for 3h" in reminders). */
  nowMs: number;
  /** Shown as a link under each message when set. */
  dashboardUrl?: string | null;
  /** IANA zone for times in the text; default UTC. */
  timeZone?: string;
}

/** The event a notice from a dispatch batch stands for: resolved when it carries a resolution time. */
export function noticeEvent(notice: AlertNotice): 'opened' | 'resolved' {
  return notice.resolvedAt === null ? 'opened' : 'resolved';
}

/** Title, a blank line, then the body: what plain-text channels (e-mail, Feishu text) send. */
export function messageText(message: NotifyMessage): string {
  return [message.title, '', ...message.lines].join('\n');
}

/** Names the sender in every chat title and e-mail subject (robots with a keyword rule need one). */
export const MESSAGE_TAG = 'UBackup';

/** `UBackup [CRITICAL] transfer_failed: …`: the title as chat robots and e-mail show it. */
export function taggedTitle(message: NotifyMessage): string {
  return `${MESSAGE_TAG} ${message.title}`;
}
