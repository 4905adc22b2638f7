import { createHmac } from 'node:crypto';
import type { DingtalkSettings } from './channel-config.js';
import { type HttpPayload, jsonHeaders } from './http-payload.js';
import { type NotifyMessage, taggedTitle } from './notify-message.js';
import { truncateUtf8 } from './utf8-truncate.js';

/**
 * A DingTalk group robot, markdown message:
 * `{ msgtype: 'markdown', markdown: { title, text } }`.
 *
 * With a signing secret (the robot's "加签" setting), DingTalk's documented
 * algorithm: timestamp = now in epoch ms; sign = urlencode(base64(
 * HMAC-SHA256(key = secret, message = `${timestamp}\n${secret}`))); both are
 * appended to the webhook URL as `&timestamp=…&sign=…`. DingTalk refuses a
 * timestamp more than an hour away from its clock.
 */

/** Markdown text kept below DingTalk's message size limit (20,000 bytes). */
export const DINGTALK_TEXT_MAX_BYTES = 18_000;

/** The base64 signature, before URL encoding. */
export function dingtalkSign(secret: string, timestampMs: number): string {
  return createHmac('sha256', secret).update(`${timestampMs}\n${secret}`).digest('base64');
}

/** The webhook URL with `timestamp` and `sign` added to its query. */
export function dingtalkSignedUrl(url: string, secret: string, timestampMs: number): string {
  const sign = encodeURIComponent(dingtalkSign(secret, timestampMs));
  const separator = url.includes('?') ? '&' : '?';
  return `${url}${separator}timestamp=${timestampMs}&sign=${sign}`;
}

/** Heading, then one paragraph per line (DingTalk's markdown needs a blank line to break a line). */
export function dingtalkMarkdown(message: NotifyMessage): { title: string; text: string } {
  const title = taggedTitle(message);
  const body = message.lines.filter((line) => line !== '').join('\n\n');
  return { title, text: truncateUtf8(`#### ${title}\n\n${body}`, DINGTALK_TEXT_MAX_BYTES) };
}

export function dingtalkPayload(
  settings: DingtalkSettings,
  message: NotifyMessage,
  nowMs: number,
): HttpPayload {
  const url =
    settings.secret === undefined ? settings.url : dingtalkSignedUrl(settings.url, settings.secret, nowMs);
  const body = JSON.stringify({ msgtype: 'markdown', markdown: dingtalkMarkdown(message) });
  return { url, headers: jsonHeaders(), body };
}
