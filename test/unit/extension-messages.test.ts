import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatAge, subjectParts } from '../../extension/src/format.js';
import { formatMessage, localeFolder, localeTag, type MessageCatalog } from '../../extension/src/messages.js';
import { ALERT_TYPES } from '../../src/server/alerts/alert-kind.js';

const root = join(import.meta.dirname, '../../extension');
const catalog = (lang: string) =>
  JSON.parse(readFileSync(join(root, '_locales', lang, 'messages.json'), 'utf8')) as MessageCatalog;

/** Every message key the sources and pages name. */
function usedKeys(): Set<string> {
  const keys = new Set<string>();
  const sources = readdirSync(join(root, 'src')).map((f) => readFileSync(join(root, 'src', f), 'utf8'));
  for (const text of sources) for (const m of text.matchAll(/\bt\('([A-Za-z_]+)'/g)) keys.add(m[1] ?? '');
  for (const page of ['options.html', 'popup.html', 'manifest.json']) {
    const text = readFileSync(join(root, page), 'utf8');
    for (const m of text.matchAll(/data-i18n(?:-[a-z]+)?="([A-Za-z_]+)"|__MSG_([A-Za-z_]+)__/g))
      keys.add(m[1] ?? m[2] ?? '');
  }
  for (const problem of [
    'errServerUrlEmpty',
    'errServerUrlInvalid',
    'errServerUrlScheme',
    'errIntervalRange',
  ])
    keys.add(problem);
  return keys;
}

describe('extension messages', () => {
  it('has the same keys in English and Chinese, and every key the code uses', () => {
    const en = catalog('en');
    const zh = catalog('zh_CN');
    expect(Object.keys(zh).sort()).toEqual(Object.keys(en).sort());
    for (const key of usedKeys()) expect(en, key).toHaveProperty(key);
    for (const type of ALERT_TYPES) expect(en).toHaveProperty(`type_${type}`);
  });

  it('uses the same substitutions in both languages', () => {
    const en = catalog('en');
    const zh = catalog('zh_CN');
    const subs = (text: string) => [...text.matchAll(/\$[1-9]/g)].map((m) => m[0]).sort();
    for (const [key, entry] of Object.entries(en))
      expect(subs(zh[key]?.message ?? ''), key).toEqual(subs(entry.message));
  });

  it('formats like chrome.i18n.getMessage: $1…$9, named placeholders, $$', () => {
    const c: MessageCatalog = {
      plain: { message: 'hello' },
      numbered: { message: '$1 of $2 cost $$5' },
      named: { message: 'hi $User$!', placeholders: { user: { content: '$1' } } },
    };
    expect(formatMessage(c, 'plain')).toBe('hello');
    expect(formatMessage(c, 'numbered', ['3', '4'])).toBe('3 of 4 cost $5');
    expect(formatMessage(c, 'named', ['ann'])).toBe('hi ann!');
    expect(formatMessage(c, 'missing')).toBe('');
    expect(formatMessage(catalog('zh_CN'), 'badgeOpen', ['3'])).toBe('你关注的业务有 3 条未处理告警');
  });

  it('maps the language setting to a locale folder and a tag', () => {
    expect(localeFolder('auto')).toBeNull();
    expect(localeFolder('zh_CN')).toBe('zh_CN');
    expect(localeTag('zh_CN', 'en-US')).toBe('zh-CN');
    expect(localeTag('auto', 'de')).toBe('de');
  });

  it('says how old an alert is', () => {
    const now = Date.parse('2026-05-01T12:00:00Z');
    expect(formatAge('2026-05-01T11:55:00Z', now, 'en')).toBe('5 min. ago');
    expect(formatAge('2026-05-01T09:00:00Z', now, 'en')).toBe('3 hr. ago');
    expect(formatAge('2026-04-28T12:00:00Z', now, 'en')).toBe('3 days ago');
    expect(formatAge('2026-05-01T11:55:00Z', now, 'zh-CN')).toBe('5分钟前');
    expect(subjectParts('111/mysql/3306')).toEqual({ host: '111', type: 'mysql', instance: '3306' });
    expect(subjectParts('node-a')).toBeNull();
  });
});
