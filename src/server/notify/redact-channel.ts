import type { ChannelConfig, ChannelFilter, ChannelKind } from './channel-config.js';

/**
 * A channel as API listings show it. Chat robots and webhooks carry their
 * credential in the URL itself (Slack and Feishu in the path, DingTalk and
 * WeCom in the query), so only the URL's origin is shown; secrets and the SMTP
 * password are replaced by whether one is set.
 */

export interface RedactedHttpSettings {
  /** `scheme://host[:port]`, followed by `/…` when the configured URL had more. */
  url: string;
  secretSet: boolean;
}

export interface RedactedEmailSettings {
  host: string;
  port: number;
  secure: boolean;
  user: string | null;
  passwordSet: boolean;
  from: string;
  to: string[];
}

export interface RedactedChannel {
  kind: ChannelKind;
  name: string;
  filter: ChannelFilter;
  repeatSeconds: number;
  settings: RedactedHttpSettings | RedactedEmailSettings;
}

/** The URL with its path, query, fragment and user info left out. */
export function redactUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return '…';
  }
  const hasMore = parsed.pathname !== '/' || parsed.search !== '' || parsed.hash !== '';
  return hasMore ? `${parsed.origin}/…` : parsed.origin;
}

/** Built field by field, so nothing added to a channel later can slip through. */
export function redactChannel(channel: ChannelConfig): RedactedChannel {
  const common = {
    kind: channel.kind,
    name: channel.name,
    filter: {
      businesses: [...channel.filter.businesses],
      types: [...channel.filter.types],
      minSeverity: channel.filter.minSeverity,
    },
    repeatSeconds: channel.repeatSeconds,
  };
  if (channel.kind === 'email') {
    const s = channel.settings;
    return {
      ...common,
      settings: {
        host: s.host,
        port: s.port,
        secure: s.secure,
        user: s.user ?? null,
        passwordSet: s.password !== undefined,
        from: s.from,
        to: [...s.to],
      },
    };
  }
  const secret = 'secret' in channel.settings ? channel.settings.secret : undefined;
  return { ...common, settings: { url: redactUrl(channel.settings.url), secretSet: secret !== undefined } };
}
