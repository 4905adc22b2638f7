/** What the options page stores (chrome.storage.local key `settings`). Free of `chrome`: unit-tested. */

export const LANGUAGES = ['auto', 'en', 'zh_CN'] as const;
export type Language = (typeof LANGUAGES)[number];

export interface Settings {
  /** The server's base URL without a trailing slash, e.g. `https://ubackup.example.com`; empty when not set. */
  serverUrl: string;
  /** A personal API token (`ubt_…`); empty when not set. */
  token: string;
  /** Seconds between checks. */
  intervalSeconds: number;
  /** `auto` follows the browser's language. */
  language: Language;
}

export const DEFAULT_INTERVAL_SECONDS = 60;
/** chrome.alarms does not fire more often than this for a published extension. */
export const MIN_INTERVAL_SECONDS = 60;
/** A day: checking less often than this would make the badge meaningless. */
export const MAX_INTERVAL_SECONDS = 86_400;

export const DEFAULT_SETTINGS: Settings = {
  serverUrl: '',
  token: '',
  intervalSeconds: DEFAULT_INTERVAL_SECONDS,
  language: 'auto',
};

/** The shape of an API token; anything else is refused before a request is made. */
export const TOKEN_PATTERN = /^ubt_[A-Za-z0-9_-]{43}$/;

export type Checked<T> = { ok: true; value: T } | { ok: false; problem: string };

/**
 * The server URL as typed → `scheme://host[:port][/path]` without a trailing slash, query or fragment.
 * A missing scheme means https. `problem` names a message key.
 */
export function normalizeServerUrl(input: string): Checked<string> {
  const text = input.trim();
  if (text === '') return { ok: false, problem: 'errServerUrlEmpty' };
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `https://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    return { ok: false, problem: 'errServerUrlInvalid' };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return { ok: false, problem: 'errServerUrlScheme' };
  if (url.username !== '' || url.password !== '') return { ok: false, problem: 'errServerUrlCredentials' };
  const path = url.pathname.replace(/\/+$/, '');
  return { ok: true, value: `${url.origin}${path}` };
}

/** The host permission pattern the extension asks for: the server's origin only. */
export function originPattern(serverUrl: string): string {
  return `${new URL(serverUrl).origin}/*`;
}

/** The refresh interval as typed, in seconds: a whole number from the minimum to a day. */
export function parseIntervalSeconds(input: string, minimum = MIN_INTERVAL_SECONDS): Checked<number> {
  const text = input.trim();
  if (!/^[0-9]+$/.test(text)) return { ok: false, problem: 'errIntervalNumber' };
  const seconds = Number(text);
  if (seconds < minimum || seconds > MAX_INTERVAL_SECONDS) return { ok: false, problem: 'errIntervalRange' };
  return { ok: true, value: seconds };
}

/** Stored settings of any age → complete settings (unknown or damaged fields fall back to defaults). */
export function readSettings(stored: unknown): Settings {
  const s = typeof stored === 'object' && stored !== null ? (stored as Record<string, unknown>) : {};
  const interval = s.intervalSeconds;
  const language = s.language;
  return {
    serverUrl: typeof s.serverUrl === 'string' ? s.serverUrl : DEFAULT_SETTINGS.serverUrl,
    token: typeof s.token === 'string' ? s.token : DEFAULT_SETTINGS.token,
    intervalSeconds:
      typeof interval === 'number' && Number.isInteger(interval) && interval >= MIN_INTERVAL_SECONDS
        ? Math.min(interval, MAX_INTERVAL_SECONDS)
        : DEFAULT_INTERVAL_SECONDS,
    language: LANGUAGES.find((l) => l === language) ?? DEFAULT_SETTINGS.language,
  };
}

/** Whether the extension has what it needs to ask the server. */
export function isConfigured(settings: Settings): boolean {
  return settings.serverUrl !== '' && settings.token !== '';
}

/** The dashboard's alert page, filtered to the businesses the user follows. */
export function followedAlertsUrl(serverUrl: string): string {
  return `${serverUrl}/alerts?followed=1`;
}

/** The dashboard's page of one alert. */
export function alertUrl(serverUrl: string, id: number): string {
  return `${serverUrl}/alerts?id=${id}`;
}
