import type { ChannelKind } from './channel-config.js';

/**
 * Chat robots answer HTTP 200 even when they refuse a message and put the
 * verdict in the body: DingTalk and WeCom `{"errcode": 0, "errmsg": "ok"}`,
 * Feishu `{"code": 0, "msg": "success"}` (older bots `{"StatusCode": 0}`).
 * A 2xx is only a delivery once that code is 0. Codes for "too many
 * messages" and "busy" are worth a retry; any other code (bad signature,
 * keyword missing, robot removed) is not.
 */

export type VendorVerdict = { ok: true } | { ok: false; error: string; retryable: boolean };

/** DingTalk: -1 system busy, 130101 more than 20 messages a minute. */
export const DINGTALK_RETRYABLE_CODES: ReadonlySet<number> = new Set([-1, 130101]);
/** WeCom: -1 system busy, 45009 more than 20 messages a minute. */
export const WECOM_RETRYABLE_CODES: ReadonlySet<number> = new Set([-1, 45009]);
/** Feishu: 11232 message rate limited, 9499 too many requests. */
export const FEISHU_RETRYABLE_CODES: ReadonlySet<number> = new Set([11232, 9499]);

const MAX_QUOTED_CHARS = 300;

export function quoteReply(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length <= MAX_QUOTED_CHARS ? flat : `${flat.slice(0, MAX_QUOTED_CHARS)}…`;
}

function parseObject(text: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

function codeVerdict(
  vendor: string,
  code: unknown,
  message: unknown,
  retryable: ReadonlySet<number>,
  reply: string,
): VendorVerdict {
  if (typeof code !== 'number') {
    return {
      ok: false,
      error: `${vendor} answered 2xx without a result code: ${quoteReply(reply)}`,
      retryable: false,
    };
  }
  if (code === 0) return { ok: true };
  const detail = typeof message === 'string' && message !== '' ? `: ${quoteReply(message)}` : '';
  return {
    ok: false,
    error: `${vendor} refused the message (code ${code})${detail}`,
    retryable: retryable.has(code),
  };
}

/** The verdict on a 2xx answer's body for a channel of `kind`. */
export function vendorVerdict(kind: Exclude<ChannelKind, 'email'>, reply: string): VendorVerdict {
  switch (kind) {
    case 'webhook':
    case 'slack':
      return { ok: true };
    case 'dingtalk': {
      const body = parseObject(reply);
      return codeVerdict('DingTalk', body?.errcode, body?.errmsg, DINGTALK_RETRYABLE_CODES, reply);
    }
    case 'wecom': {
      const body = parseObject(reply);
      return codeVerdict('WeCom', body?.errcode, body?.errmsg, WECOM_RETRYABLE_CODES, reply);
    }
    case 'feishu': {
      const body = parseObject(reply);
      if (body !== null && body.code === undefined && body.StatusCode !== undefined) {
        return codeVerdict('Feishu', body.StatusCode, body.StatusMessage, FEISHU_RETRYABLE_CODES, reply);
      }
      return codeVerdict('Feishu', body?.code, body?.msg, FEISHU_RETRYABLE_CODES, reply);
    }
  }
}
