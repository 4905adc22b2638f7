import { describe, expect, it } from 'vitest';
import { isTimeZone, startOfDay } from '../../src/shared/time-zone.js';

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString();

describe('isTimeZone', () => {
  it('accepts IANA names and refuses the rest', () => {
    expect(isTimeZone('UTC')).toBe(true);
    expect(isTimeZone('Asia/Shanghai')).toBe(true);
    expect(isTimeZone('America/Argentina/Buenos_Aires')).toBe(true);
    expect(isTimeZone('Mars/Olympus_Mons')).toBe(false);
    expect(isTimeZone('+08:00')).toBe(false);
    expect(isTimeZone('../etc/passwd')).toBe(false);
    expect(isTimeZone('')).toBe(false);
  });
});

describe('startOfDay', () => {
  it('is local midnight', () => {
    const now = at('2026-05-01T03:00:00Z');
    expect(iso(startOfDay(now, 'UTC'))).toBe('2026-05-01T00:00:00.000Z');
    expect(iso(startOfDay(now, 'Asia/Shanghai'))).toBe('2026-04-30T16:00:00.000Z');
    expect(iso(startOfDay(now, 'America/New_York'))).toBe('2026-04-30T04:00:00.000Z');
  });
  it('holds on daylight-saving days', () => {
    // New York springs forward at 02:00 on 8 March 2026: midnight was still EST.
    expect(iso(startOfDay(at('2026-03-08T20:00:00Z'), 'America/New_York'))).toBe('2026-03-08T05:00:00.000Z');
    // …and falls back on 1 November 2026: midnight was still EDT.
    expect(iso(startOfDay(at('2026-11-01T20:00:00Z'), 'America/New_York'))).toBe('2026-11-01T04:00:00.000Z');
    // Santiago skips 00:00-01:00 on 6 September 2026: the day starts at 01:00 local (-03).
    expect(iso(startOfDay(at('2026-09-06T15:00:00Z'), 'America/Santiago'))).toBe('2026-09-06T04:00:00.000Z');
  });
  it('is the same instant for every moment of the day', () => {
    const a = startOfDay(at('2026-05-01T16:00:00Z'), 'Asia/Shanghai');
    const b = startOfDay(at('2026-05-02T15:59:59Z'), 'Asia/Shanghai');
    expect(iso(a)).toBe('2026-05-01T16:00:00.000Z');
    expect(b).toBe(a);
  });
});
