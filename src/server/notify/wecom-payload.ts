import type { WecomSettings } from './channel-config.js';
import { type HttpPayload, jsonHeaders } from './http-payload.js';
import { type NotifyMessage, taggedTitle } from './notify-message.js';
import { truncateUtf8 } from './utf8-truncate.js';

/**
 * A WeCom (企业微信) group robot, markdown message:
 * `{ msgtype: 'markdown', markdown: { content } }`. The robot's key in the
 * URL is its only credential; there is no signature.
 */

/** WeCom refuses markdown content over 4096 bytes of UTF-8. */
export const WECOM_CONTENT_MAX_BYTES = 4096;

export function wecomContent(message: NotifyMessage): string {
  const content = [`**${taggedTitle(message)}**`, ...message.lines].join('\n');
  return truncateUtf8(content, WECOM_CONTENT_MAX_BYTES);
}

export function wecomPayload(settings: WecomSettings, message: NotifyMessage): HttpPayload {
  const body = JSON.stringify({ msgtype: 'markdown', markdown: { content: wecomContent(message) } });
  return { url: settings.url, headers: jsonHeaders(), body };
}
