import { z } from 'zod';
import { ALERT_TYPES, SEVERITIES } from '../alerts/alert-kind.js';

/**
 * A notification channel as an operator configures it: where alerts go, which
 * alerts it wants and how often an open alert is repeated. The catalog stores
 * this object (plus its id); `redactChannel` is what the API shows of it.
 */

export const CHANNEL_KINDS = ['webhook', 'slack', 'dingtalk', 'wecom', 'feishu', 'email'] as const;
export type ChannelKind = (typeof CHANNEL_KINDS)[number];

/** Longest time a channel may wait before repeating an open alert: 30 days, in seconds. */
export const MAX_REPEAT_SECONDS = 30 * 24 * 3600;
const MAX_NAME_CHARS = 100;
const MAX_SECRET_CHARS = 512;
const MAX_RECIPIENTS = 50;

/** An http(s) URL; every other scheme is refused. */
const HttpUrlSchema = z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' });
const SecretSchema = z.string().min(1).max(MAX_SECRET_CHARS);

export const ChannelFilterSchema = z.strictObject({
  /** Business ids (`game_id`) the channel wants; empty = every business, and alerts without one. */
  businesses: z.array(z.string().min(1)).default([]),
  /** Alert types the channel wants; empty = every type. */
  types: z.array(z.enum(ALERT_TYPES)).default([]),
  /** The least severe alert the channel wants. */
  minSeverity: z.enum(SEVERITIES).default('info'),
});
export type ChannelFilter = z.infer<typeof ChannelFilterSchema>;

/** A JSON POST signed with HMAC-SHA256 when `secret` is set (see webhook-payload.ts). */
export const WebhookSettingsSchema = z.strictObject({ url: HttpUrlSchema, secret: SecretSchema.optional() });
/** A Slack incoming webhook; its URL is the credential. */
export const SlackSettingsSchema = z.strictObject({ url: HttpUrlSchema });
/** A DingTalk group robot (`…/robot/send?access_token=…`), signed when `secret` (SEC…) is set. */
export const DingtalkSettingsSchema = z.strictObject({ url: HttpUrlSchema, secret: SecretSchema.optional() });
/** A WeCom group robot (`…/cgi-bin/webhook/send?key=…`); its URL is the credential. */
export const WecomSettingsSchema = z.strictObject({ url: HttpUrlSchema });
/** A Feishu custom bot (`…/open-apis/bot/v2/hook/…`), signed when `secret` is set. */
export const FeishuSettingsSchema = z.strictObject({ url: HttpUrlSchema, secret: SecretSchema.optional() });

/** `alerts@example.com` or `UBackup <alerts@example.com>`. */
const MailboxSchema = z
  .string()
  .min(3)
  .max(320)
  .refine((value) => {
    const match = /^[^<>]*<([^<>]+)>$/.exec(value.trim());
    const address = match ? match[1]! : value.trim();
    return z.email().safeParse(address).success;
  }, 'must be an e-mail address, optionally as "Name <address>"');

/** SMTP through nodemailer. `secure` = TLS from the first byte (port 465); otherwise STARTTLS when offered. */
export const EmailSettingsSchema = z
  .strictObject({
    host: z.string().min(1).max(253),
    port: z.number().int().min(1).max(65_535),
    secure: z.boolean(),
    user: z.string().min(1).max(320).optional(),
    password: SecretSchema.optional(),
    from: MailboxSchema,
    to: z.array(MailboxSchema).min(1).max(MAX_RECIPIENTS),
  })
  .refine((settings) => settings.password === undefined || settings.user !== undefined, {
    message: 'a password needs a user',
    path: ['password'],
  });

export type WebhookSettings = z.infer<typeof WebhookSettingsSchema>;
export type SlackSettings = z.infer<typeof SlackSettingsSchema>;
export type DingtalkSettings = z.infer<typeof DingtalkSettingsSchema>;
export type WecomSettings = z.infer<typeof WecomSettingsSchema>;
export type FeishuSettings = z.infer<typeof FeishuSettingsSchema>;
export type EmailSettings = z.infer<typeof EmailSettingsSchema>;

const channelCommon = {
  name: z.string().trim().min(1).max(MAX_NAME_CHARS),
  filter: ChannelFilterSchema.default({ businesses: [], types: [], minSeverity: 'info' }),
  /** Repeat an alert that is still open every this many seconds; 0 = tell once. */
  repeatSeconds: z.number().int().min(0).max(MAX_REPEAT_SECONDS).default(0),
};

export const ChannelConfigSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('webhook'), ...channelCommon, settings: WebhookSettingsSchema }),
  z.strictObject({ kind: z.literal('slack'), ...channelCommon, settings: SlackSettingsSchema }),
  z.strictObject({ kind: z.literal('dingtalk'), ...channelCommon, settings: DingtalkSettingsSchema }),
  z.strictObject({ kind: z.literal('wecom'), ...channelCommon, settings: WecomSettingsSchema }),
  z.strictObject({ kind: z.literal('feishu'), ...channelCommon, settings: FeishuSettingsSchema }),
  z.strictObject({ kind: z.literal('email'), ...channelCommon, settings: EmailSettingsSchema }),
]);
/** A validated channel, defaults applied. */
export type ChannelConfig = z.infer<typeof ChannelConfigSchema>;
/** What a caller may send (filter and repeatSeconds may be left out). */
export type ChannelConfigInput = z.input<typeof ChannelConfigSchema>;
/** The channel kinds that deliver over HTTP. */
export type HttpChannelConfig = Exclude<ChannelConfig, { kind: 'email' }>;
export type EmailChannelConfig = Extract<ChannelConfig, { kind: 'email' }>;
