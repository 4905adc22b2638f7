import type { Readable } from 'node:stream';
import { createTransport } from 'nodemailer';
import { type Dispatcher, request } from 'undici';
import type { ChannelConfig, EmailChannelConfig, HttpChannelConfig } from './channel-config.js';
import { httpPayloadFor } from './channel-payload.js';
import { emailMessage } from './email-message.js';
import type { HttpPayload } from './http-payload.js';
import type { NotifyMessage } from './notify-message.js';
import { redactUrl } from './redact-channel.js';
import { quoteReply, vendorVerdict } from './vendor-reply.js';

/**
 * Sends one message to one channel and says whether it arrived. It never
 * throws for network, HTTP, vendor or SMTP problems; they come back as
 * `{ ok: false, error, retryable }`:
 *
 *   HTTP 2xx (and the vendor's code 0, see vendor-reply.ts) → ok
 *   408, 429, 5xx, network error, timeout                  → retryable
 *   3xx (not followed), any other 4xx                      → not retryable
 *   SMTP: 4xx replies, 503, lost connection, timeout       → retryable
 *   SMTP: other 5xx replies, refused login, bad addresses  → not retryable
 *
 * Error texts name the host only: a robot's URL is its credential.
 */

export type DeliveryResult = { ok: true } | { ok: false; error: string; retryable: boolean };

export interface DeliverOptions {
  /** The clock value signatures use, epoch ms. */
  nowMs: number;
  /** Deadline for the whole delivery (connect, send, answer). */
  timeoutMs: number;
  /** HTTP client; default: undici's global dispatcher. */
  dispatcher?: Dispatcher;
}

/** Bytes of a vendor's answer read; the verdict is always near the start. */
export const MAX_REPLY_BYTES = 64 * 1024;

const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([408, 429]);
/** nodemailer error codes that no retry can fix (configuration or addresses). */
const PERMANENT_SMTP_CODES: ReadonlySet<string> = new Set([
  'EAUTH',
  'ENOAUTH',
  'EENVELOPE',
  'EMESSAGE',
  'ECONFIG',
  'ETLS',
  'EREQUIRETLS',
  'EMAXRECIPIENTS',
]);

export async function deliver(
  channel: ChannelConfig,
  message: NotifyMessage,
  options: DeliverOptions,
): Promise<DeliveryResult> {
  if (channel.kind === 'email') return deliverEmail(channel, message, options);
  return deliverHttp(channel, message, options);
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && !error.message.includes(code)
    ? `${code}: ${error.message}`
    : error.message;
}

async function readReply(body: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buffer = chunk as Buffer;
    chunks.push(buffer);
    size += buffer.length;
    if (size >= MAX_REPLY_BYTES) {
      body.destroy();
      break;
    }
  }
  return Buffer.concat(chunks).subarray(0, MAX_REPLY_BYTES).toString('utf8');
}

async function deliverHttp(
  channel: HttpChannelConfig,
  message: NotifyMessage,
  options: DeliverOptions,
): Promise<DeliveryResult> {
  const payload: HttpPayload = httpPayloadFor(channel, message, options.nowMs);
  const where = redactUrl(payload.url);
  const signal = AbortSignal.timeout(options.timeoutMs);
  try {
    const response = await request(payload.url, {
      method: 'POST',
      headers: payload.headers,
      body: payload.body,
      signal,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
    });
    const reply = await readReply(response.body);
    const status = response.statusCode;
    if (status >= 200 && status < 300) {
      const verdict = vendorVerdict(channel.kind, reply);
      return verdict.ok ? verdict : { ...verdict, error: `${where}: ${verdict.error}` };
    }
    const quoted = reply === '' ? '' : `: ${quoteReply(reply)}`;
    if (status >= 300 && status < 400) {
      return {
        ok: false,
        error: `${where} answered ${status} (redirects are not followed)`,
        retryable: false,
      };
    }
    const retryable = status >= 500 || RETRYABLE_STATUSES.has(status);
    return { ok: false, error: `${where} answered ${status}${quoted}`, retryable };
  } catch (error) {
    if (signal.aborted) {
      return { ok: false, error: `${where}: no answer within ${options.timeoutMs} ms`, retryable: true };
    }
    return { ok: false, error: `${where}: ${describe(error)}`, retryable: true };
  }
}

interface SmtpError {
  code?: unknown;
  responseCode?: unknown;
}

function smtpRetryable(error: unknown): boolean {
  const { code, responseCode } = (typeof error === 'object' && error !== null ? error : {}) as SmtpError;
  if (typeof responseCode === 'number') {
    // RFC 5321: 5yz is a permanent refusal, except 503 (bad sequence: a new session may pass).
    return !(responseCode >= 500 && responseCode < 600 && responseCode !== 503);
  }
  return !(typeof code === 'string' && PERMANENT_SMTP_CODES.has(code));
}

async function deliverEmail(
  channel: EmailChannelConfig,
  message: NotifyMessage,
  options: DeliverOptions,
): Promise<DeliveryResult> {
  const s = channel.settings;
  const where = `smtp://${s.host}:${s.port}`;
  const transport = createTransport({
    host: s.host,
    port: s.port,
    secure: s.secure,
    ...(s.user === undefined ? {} : { auth: { user: s.user, pass: s.password ?? '' } }),
    connectionTimeout: options.timeoutMs,
    greetingTimeout: options.timeoutMs,
    socketTimeout: options.timeoutMs,
  });
  const { subject, text } = emailMessage(message);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), options.timeoutMs);
  });
  try {
    const sent = transport.sendMail({ from: s.from, to: s.to, subject, text });
    sent.catch(() => undefined);
    const outcome = await Promise.race([sent, deadline]);
    if (outcome === 'timeout') {
      return { ok: false, error: `${where}: not sent within ${options.timeoutMs} ms`, retryable: true };
    }
    return { ok: true };
  } catch (error) {
    return { ok: false, error: `${where}: ${describe(error)}`, retryable: smtpRetryable(error) };
  } finally {
    clearTimeout(timer);
    transport.close();
  }
}
