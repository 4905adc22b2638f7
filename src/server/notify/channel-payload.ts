import type { HttpChannelConfig } from './channel-config.js';
import { dingtalkPayload } from './dingtalk-payload.js';
import { feishuPayload } from './feishu-payload.js';
import type { HttpPayload } from './http-payload.js';
import type { NotifyMessage } from './notify-message.js';
import { slackPayload } from './slack-payload.js';
import { webhookPayload } from './webhook-payload.js';
import { wecomPayload } from './wecom-payload.js';

/** The request for an HTTP channel; `nowMs` is the clock value signatures use. */
export function httpPayloadFor(
  channel: HttpChannelConfig,
  message: NotifyMessage,
  nowMs: number,
): HttpPayload {
  switch (channel.kind) {
    case 'webhook':
      return webhookPayload(channel.settings, message, nowMs);
    case 'slack':
      return slackPayload(channel.settings, message);
    case 'dingtalk':
      return dingtalkPayload(channel.settings, message, nowMs);
    case 'wecom':
      return wecomPayload(channel.settings, message);
    case 'feishu':
      return feishuPayload(channel.settings, message, nowMs);
  }
}
