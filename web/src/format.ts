import dayjs, { type Dayjs } from 'dayjs';
import timezone from 'dayjs/plugin/timezone.js';
import utc from 'dayjs/plugin/utc.js';
import 'dayjs/locale/zh-cn.js';

dayjs.extend(utc);
dayjs.extend(timezone);

let zone = 'UTC';

/** The time zone every date is shown in: the user's. */
export function setDisplayZone(tz: string): void {
  zone = tz;
}

export function displayZone(): string {
  return zone;
}

/**
 * A date and time picked in a form (a Dayjs in the browser's own zone) read
 * as that wall-clock time in `zone`, the user's: "09:00" picked by a user in
 * Asia/Shanghai is 01:00 UTC whatever zone the browser runs in. ISO, UTC.
 */
export function wallTimeIn(picked: Dayjs, zone: string): string {
  return dayjs.tz(picked.format('YYYY-MM-DDTHH:mm:ss'), zone).toISOString();
}

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = dayjs(iso);
  if (!d.isValid()) return iso;
  try {
    return d.tz(zone).format('YYYY-MM-DD HH:mm:ss');
  } catch {
    return d.utc().format('YYYY-MM-DD HH:mm:ss[Z]');
  }
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** Binary units: 1536 → "1.5 KiB". */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) return '—';
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0
    ? `${value} B`
    : `${value.toFixed(value >= 100 ? 0 : value >= 10 ? 1 : 2)} ${UNITS[unit]}`;
}

/** 3725 → "1h 2m", for waits and ages. */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return '—';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** Splits a filter typed as `a, b c` into its distinct parts, like the server does. */
export function splitList(text: string): string[] {
  return [...new Set(text.split(/[\s,]+/).filter((p) => p !== ''))];
}
