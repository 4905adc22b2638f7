import { describe, expect, it } from 'vitest';
import {
  alertUrl,
  DEFAULT_SETTINGS,
  followedAlertsUrl,
  isConfigured,
  MIN_INTERVAL_SECONDS,
  normalizeServerUrl,
  originPattern,
  parseIntervalSeconds,
  readSettings,
  TOKEN_PATTERN,
} from '../../extension/src/settings.js';

describe('extension settings', () => {
  it('normalizes the server URL to scheme, host, port and path without a trailing slash', () => {
    expect(normalizeServerUrl(' https://ubackup.example.com/ ')).toEqual({
      ok: true,
      value: 'https://ubackup.example.com',
    });
    expect(normalizeServerUrl('ubackup.example.com')).toEqual({
      ok: true,
      value: 'https://ubackup.example.com',
    });
    expect(normalizeServerUrl('http://10.0.0.5:8080/ubackup/?x=1#y')).toEqual({
      ok: true,
      value: 'http://10.0.0.5:8080/ubackup',
    });
    expect(normalizeServerUrl('')).toEqual({ ok: false, problem: 'errServerUrlEmpty' });
    expect(normalizeServerUrl('ftp://x.example')).toEqual({ ok: false, problem: 'errServerUrlScheme' });
    expect(normalizeServerUrl('https://a:b@x.example')).toEqual({
      ok: false,
      problem: 'errServerUrlCredentials',
    });
    expect(normalizeServerUrl('http://')).toEqual({ ok: false, problem: 'errServerUrlInvalid' });
  });

  it('asks for the server origin only', () => {
    expect(originPattern('http://10.0.0.5:8080/ubackup')).toBe('http://10.0.0.5:8080/*');
    expect(originPattern('https://ubackup.example.com')).toBe('https://ubackup.example.com/*');
  });

  it('takes an interval of at least a minute', () => {
    expect(parseIntervalSeconds('60')).toEqual({ ok: true, value: 60 });
    expect(parseIntervalSeconds(' 300 ')).toEqual({ ok: true, value: 300 });
    expect(parseIntervalSeconds(String(MIN_INTERVAL_SECONDS - 1))).toEqual({
      ok: false,
      problem: 'errIntervalRange',
    });
    expect(parseIntervalSeconds('90000')).toEqual({ ok: false, problem: 'errIntervalRange' });
    expect(parseIntervalSeconds('1.5')).toEqual({ ok: false, problem: 'errIntervalNumber' });
    expect(parseIntervalSeconds('')).toEqual({ ok: false, problem: 'errIntervalNumber' });
  });

  it('reads stored settings of any age, with defaults for what is missing or damaged', () => {
    expect(readSettings(undefined)).toEqual(DEFAULT_SETTINGS);
    expect(readSettings({ serverUrl: 'https://x', token: 't', intervalSeconds: 5, language: 'fr' })).toEqual({
      serverUrl: 'https://x',
      token: 't',
      intervalSeconds: 60,
      language: 'auto',
    });
    expect(readSettings({ intervalSeconds: 120, language: 'zh_CN' })).toMatchObject({
      intervalSeconds: 120,
      language: 'zh_CN',
    });
    expect(isConfigured(DEFAULT_SETTINGS)).toBe(false);
    expect(isConfigured({ ...DEFAULT_SETTINGS, serverUrl: 'https://x', token: 't' })).toBe(true);
  });

  it('links to the dashboard', () => {
    expect(followedAlertsUrl('https://x.example/u')).toBe('https://x.example/u/alerts?followed=1');
    expect(alertUrl('https://x.example', 42)).toBe('https://x.example/alerts?id=42');
  });

  it('recognises the shape of an API token', () => {
    expect(TOKEN_PATTERN.test(`ubt_${'a'.repeat(43)}`)).toBe(true);
    expect(TOKEN_PATTERN.test(`ubc_${'a'.repeat(43)}`)).toBe(false);
  });
});
