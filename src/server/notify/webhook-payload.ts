import { createHmac } from 'node:crypto';
import type { WebhookSettings } from './channel-config.js';
import { type HttpPayload, jsonHeaders } from './http-payload.js';
import { messageText, type NotifyMessage } from './notify-message.js';

/**
 * The generic webhook: a JSON POST for machines, with the human text too.
 *
 * When the channel has a secret, the receiver can check the request came from
 * this server and is fresh:
 *
 *   X-UBackup-Timestamp: <unix seconds>
 *   X-UBackup-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>
 *
 * Field names follow the API's style (snake_case, times in ISO 8601 UTC).
 */

export const WEBHOOK_SIGNATURE_HEADER = 'X-UBackup-Signature';
export const WEBHOOK_TIMESTAMP_HEADER = 'X-UBackup-Timestamp';

export interface WebhookAlert {
  event: 'opened' | 'resolved' | 'reminder';
  id: number;
  type: string;
  severity: string;
  subject: string;
  game_id: string;
  state: string;
  summary: string;
  opened_at: string;
  resolved_at: string | null;
}

export interface WebhookBody {
  /** `digest` for a digest message; otherwise the one alert's event. */
  event: 'opened' | 'resolved' | 'reminder' | 'digest';
  title: string;
  text: string;
  severity: string | null;
  link: string | null;
  sent_at: string;
  alerts: WebhookAlert[];
}

/** `sha256=<hex>` over `<timestamp>.<body>`. */
export function webhookSignature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

export function webhookBody(message: NotifyMessage, nowMs: number): WebhookBody {
  const first = message.items[0];
  return {
    event: message.form === 'digest' || first === undefined ? 'digest' : first.event,
    title: message.title,
    text: messageText(message),
    severity: message.severity,
    link: message.link,
    sent_at: new Date(nowMs).toISOString(),
    alerts: message.items.map(({ event, notice }) => ({
      event,
      id: notice.id,
      type: notice.type,
      severity: notice.severity,
      subject: notice.subject,
      game_id: notice.gameId,
      state: notice.state,
      summary: notice.summary,
      opened_at: new Date(notice.openedAt).toISOString(),
      resolved_at: notice.resolvedAt === null ? null : new Date(notice.resolvedAt).toISOString(),
    })),
  };
}

export function webhookPayload(
  settings: WebhookSettings,
  message: NotifyMessage,
  nowMs: number,
): HttpPayload {
  const body = JSON.stringify(webhookBody(message, nowMs));
  const timestamp = String(Math.floor(nowMs / 1000));
  const headers: Record<string, string> = { ...jsonHeaders(), [WEBHOOK_TIMESTAMP_HEADER]: timestamp };
  if (settings.secret !== undefined) {
    headers[WEBHOOK_SIGNATURE_HEADER] = webhookSignature(settings.secret, timestamp, body);
  }
  return { url: settings.url, headers, body };
}
