import i18n from 'i18next';
import { initReactI18next } from 'react-i18next';
import type { Locale } from './api';
import { enUS } from './locales/en-US';
import { zhCN } from './locales/zh-CN';

const STORED = 'ubackup.locale';

export function storedLocale(): Locale {
  const value = globalThis.localStorage?.getItem(STORED);
  if (value === 'zh-CN' || value === 'en-US') return value;
  return navigator.language.toLowerCase().startsWith('zh') ? 'zh-CN' : 'en-US';
}

export function rememberLocale(locale: Locale): void {
  globalThis.localStorage?.setItem(STORED, locale);
}

void i18n.use(initReactI18next).init({
  resources: { 'en-US': { translation: enUS }, 'zh-CN': { translation: zhCN } },
  lng: storedLocale(),
  fallbackLng: 'en-US',
  interpolation: { escapeValue: false },
});

export { i18n };
