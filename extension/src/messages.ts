/**
 * `_locales/<lang>/messages.json` read the way chrome.i18n.getMessage reads it, so the options
 * page can show a language other than the browser's. Free of `chrome`: unit-tested.
 */

export interface MessageEntry {
  message: string;
  description?: string;
  placeholders?: Record<string, { content: string; example?: string }>;
}
export type MessageCatalog = Record<string, MessageEntry>;

/** `$name$` → the placeholder's content, then `$1`…`$9` → the substitutions, `$$` → `$`. */
export function formatMessage(
  catalog: MessageCatalog,
  key: string,
  substitutions: readonly string[] = [],
): string {
  const entry = catalog[key];
  if (!entry) return '';
  const placeholders = new Map(
    Object.entries(entry.placeholders ?? {}).map(([name, p]) => [name.toLowerCase(), p.content]),
  );
  const named = entry.message.replace(/\$([A-Za-z0-9_@]+)\$/g, (whole, name: string) => {
    const content = placeholders.get(name.toLowerCase());
    return content === undefined ? whole : content;
  });
  return named.replace(/\$(\$|[1-9])/g, (_whole, what: string) =>
    what === '$' ? '$' : (substitutions[Number(what) - 1] ?? ''),
  );
}

/** The `_locales` folder of a language setting, or null to follow the browser. */
export function localeFolder(language: string): string | null {
  return language === 'en' || language === 'zh_CN' ? language : null;
}

/** A BCP 47 tag for Intl formatting. */
export function localeTag(language: string, browserLanguage: string): string {
  if (language === 'zh_CN') return 'zh-CN';
  if (language === 'en') return 'en';
  return browserLanguage || 'en';
}
