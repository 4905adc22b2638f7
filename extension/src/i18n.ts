/** Messages in the language the options chose, or the browser's (chrome.i18n). */
import type { Translate } from './badge-state.js';
import { formatMessage, localeFolder, localeTag, type MessageCatalog } from './messages.js';
import type { Language } from './settings.js';

export interface Translator {
  t: Translate;
  /** For Intl formatting, e.g. `zh-CN`. */
  locale: string;
}

const catalogs = new Map<string, Promise<MessageCatalog>>();

function catalogOf(folder: string): Promise<MessageCatalog> {
  let loading = catalogs.get(folder);
  if (!loading) {
    loading = fetch(chrome.runtime.getURL(`_locales/${folder}/messages.json`)).then(
      (res) => res.json() as Promise<MessageCatalog>,
    );
    catalogs.set(folder, loading);
  }
  return loading;
}

export async function loadTranslator(language: Language): Promise<Translator> {
  const folder = localeFolder(language);
  const browser = chrome.i18n.getUILanguage();
  if (folder === null) {
    return {
      t: (key, subs) => chrome.i18n.getMessage(key, subs) || key,
      locale: localeTag(language, browser),
    };
  }
  const catalog = await catalogOf(folder);
  return { t: (key, subs) => formatMessage(catalog, key, subs) || key, locale: localeTag(language, browser) };
}

/** The label of an alert type, or the type itself when this version does not know it. */
export function typeLabel(t: Translate, type: string): string {
  const label = t(`type_${type}`);
  return label === `type_${type}` || label === '' ? type : label;
}

/** Fills `data-i18n` (text), `data-i18n-placeholder` and `data-i18n-title` from the messages. */
export function localizePage(t: Translate, locale: string): void {
  document.documentElement.lang = locale;
  for (const el of document.querySelectorAll<HTMLElement>('[data-i18n]')) {
    el.textContent = t(el.dataset.i18n ?? '');
  }
  for (const el of document.querySelectorAll<HTMLInputElement>('[data-i18n-placeholder]')) {
    el.placeholder = t(el.dataset.i18nPlaceholder ?? '');
  }
  for (const el of document.querySelectorAll<HTMLElement>('[data-i18n-title]')) {
    el.title = t(el.dataset.i18nTitle ?? '');
  }
}
