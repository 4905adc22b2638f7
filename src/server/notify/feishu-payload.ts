import { createHmac } from 'node:crypto';
import type { FeishuSettings } from './channel-config.js';
import { type HttpPayload, jsonHeaders } from './http-payload.js';
import { type NotifyMessage, taggedTitle } from './notify-message.js';
import { truncateUtf8 } from './utf8-truncate.js';

/**
 * A Feishu (Lark) custom bot, text message:
 * `{ msg_type: 'text', content: { text } }`.
 *
 * With a signing secret ("签名校验"), Feishu's documented algorithm:
 * timestamp = now in epoch **seconds**; sign = base64(HMAC-SHA256(key =
 * `${timestamp}\n${secret}`, message = empty)); both go into the body as
 * `timestamp` (a string) and `sign`. Feishu refuses a timestamp more than an
 * hour away from its clock.
 */

/** Text kept below Feishu's request body limit (20 KB). */
export const FEISHU_TEXT_MAX_BYTES = 18_000;

export function feishuSign(secret: string, timestampSeconds: number): string {
  return createHmac('sha256', `${timestampSeconds}\n${secret}`).update('').digest('base64');
}

export function feishuText(message: NotifyMessage): string {
  return truncateUtf8([taggedTitle(message), '', ...message.lines].join('\n'), FEISHU_TEXT_MAX_BYTES);
}

export function feishuPayload(settings: FeishuSettings, message: NotifyMessage, nowMs: number): HttpPayload {
  const content = { msg_type: 'text', content: { text: feishuText(message) } };
  let body: string;
  if (settings.secret === undefined) {
    body = JSON.stringify(content);
  } else {
    const timestamp = Math.floor(nowMs / 1000);
    body = JSON.stringify({
      timestamp: String(timestamp),
      sign: feishuSign(settings.secret, timestamp),
      ...content,
    });
  }
  return { url: settings.url, headers: jsonHeaders(), body };
}
