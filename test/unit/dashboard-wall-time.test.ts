import dayjs from 'dayjs';
import { describe, expect, it } from 'vitest';
import { wallTimeIn } from '../../web/src/format.js';

describe('wallTimeIn', () => {
  it("reads the picked wall-clock time in the user's zone, not the browser's", () => {
    const picked = dayjs('2026-11-27T09:00:00');
    expect(wallTimeIn(picked, 'Asia/Shanghai')).toBe('2026-11-27T01:00:00.000Z');
    expect(wallTimeIn(picked, 'UTC')).toBe('2026-11-27T09:00:00.000Z');
    expect(wallTimeIn(picked, 'America/New_York')).toBe('2026-11-27T14:00:00.000Z');
    // Across a daylight-saving change: 2026-03-29 03:30 in Berlin is summer time (UTC+2).
    expect(wallTimeIn(dayjs('2026-03-29T03:30:00'), 'Europe/Berlin')).toBe('2026-03-29T01:30:00.000Z');
  });
});
