/** Small pieces of text the popup shows. Free of `chrome`: unit-tested. */

/** How long ago `fromIso` was at `nowMs`, e.g. "5 min. ago" / "5分钟前". */
export function formatAge(fromIso: string, nowMs: number, locale: string): string {
  const seconds = Math.max(0, Math.round((nowMs - Date.parse(fromIso)) / 1000));
  const format = new Intl.RelativeTimeFormat(locale, { numeric: 'always', style: 'short' });
  if (seconds < 60) return format.format(-seconds, 'second');
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return format.format(-minutes, 'minute');
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return format.format(-hours, 'hour');
  return format.format(-Math.floor(hours / 24), 'day');
}

/** `server_id/type/instance` → its parts; a node's or cluster's name has none. */
export function subjectParts(subject: string): { host: string; type: string; instance: string } | null {
  const match = /^([^/]+)\/([^/]+)\/([^/]+)$/.exec(subject);
  if (!match) return null;
  return { host: match[1] ?? '', type: match[2] ?? '', instance: match[3] ?? '' };
}
