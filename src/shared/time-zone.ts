/**
 * IANA time zones (`Asia/Shanghai`, `UTC`) as the dashboard's people use
 * them: validation, and where "today" starts in one.
 */

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(zone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(zone);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(zone, formatter);
  }
  return formatter;
}

/** Whether `zone` is an IANA zone name this runtime knows (offsets such as `+08:00` are not names). */
export function isTimeZone(zone: string): boolean {
  if (zone.length > 64 || !/^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/.test(zone)) return false;
  try {
    formatterFor(zone);
    return true;
  } catch {
    return false;
  }
}

/** The wall-clock time in `zone` at `ms`, as if it were UTC (milliseconds). */
function wallClock(ms: number, zone: string): number {
  const parts: Record<string, number> = {};
  for (const p of formatterFor(zone).formatToParts(ms)) {
    if (p.type !== 'literal') parts[p.type] = Number(p.value);
  }
  return Date.UTC(
    parts.year ?? 1970,
    (parts.month ?? 1) - 1,
    parts.day ?? 1,
    parts.hour ?? 0,
    parts.minute ?? 0,
    parts.second ?? 0,
  );
}

/**
 * The instant the day that contains `nowMs` began in `zone` (local midnight;
 * where a zone skips midnight, the first instant of that day).
 */
export function startOfDay(nowMs: number, zone: string): number {
  const wall = wallClock(nowMs, zone);
  const wallMidnight = wall - (((wall % 86_400_000) + 86_400_000) % 86_400_000);
  // Walk from a first guess using the offset at that guess; twice settles any DST change.
  let guess = wallMidnight - (wall - Math.floor(nowMs / 1000) * 1000);
  for (let i = 0; i < 2; i++) guess = wallMidnight - (wallClock(guess, zone) - guess);
  // A skipped midnight (e.g. a DST jump at 00:00) lands before the day: move to its start.
  while (wallClock(guess, zone) < wallMidnight) guess += 60_000;
  return guess;
}
