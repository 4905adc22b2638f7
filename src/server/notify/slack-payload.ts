import type { SlackSettings } from './channel-config.js';
import { type HttpPayload, jsonHeaders } from './http-payload.js';
import { type NotifyMessage, taggedTitle } from './notify-message.js';

/**
 * A Slack incoming webhook: `{ text }` in Slack's mrkdwn, the title in bold.
 * Slack reads `&`, `<` and `>` as markup, so they are escaped as its
 * documentation asks; URLs are linked by Slack itself.
 */

/** Slack truncates longer `text`; a digest stays far below it. */
export const SLACK_TEXT_MAX_CHARS = 40_000;

export function escapeSlackText(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

export function slackText(message: NotifyMessage): string {
  const title = `*${escapeSlackText(taggedTitle(message))}*`;
  const text = [title, ...message.lines.map(escapeSlackText)].join('\n');
  return text.length <= SLACK_TEXT_MAX_CHARS ? text : `${text.slice(0, SLACK_TEXT_MAX_CHARS - 1)}…`;
}

export function slackPayload(settings: SlackSettings, message: NotifyMessage): HttpPayload {
  return { url: settings.url, headers: jsonHeaders(), body: JSON.stringify({ text: slackText(message) }) };
}
