import { type Severity, severityRank } from '../alerts/alert-kind.js';
import type { MessageItem, MessageOptions, NoticeEvent, NotifyMessage } from './notify-message.js';

/**
 * One message for many notices of one dispatch round, so that a storm (a
 * node going down takes hundreds of transfers with it) is one page, not two
 * thousand:
 *
 *   [CRITICAL] 2000 alerts: 1500 opened, 400 resolved, 100 still open
 *
 *   By type: transfer_failed 1200, overdue 800
 *   By business: game1 1000, game2 900, (no business) 100
 *
 *   Most severe first:
 *   - [critical] opened transfer_failed db01/mysql/3306 (game1): node n1 …
 *   … (DIGEST_LISTED_ITEMS lines)
 *   …and 1980 more.
 *   Dashboard: https://dashboard.example
 */

/** Items listed one per line in a digest; the rest are counted. */
export const DIGEST_LISTED_ITEMS = 20;
/** Businesses named in the "By business" line; the rest are summed as "N others". */
export const DIGEST_LISTED_BUSINESSES = 10;
/** Longest summary quoted on a digest line, in characters. */
export const DIGEST_SUMMARY_CHARS = 120;

const EVENT_ORDER: Readonly<Record<NoticeEvent, number>> = { opened: 0, reminder: 1, resolved: 2 };
const EVENT_WORD: Readonly<Record<NoticeEvent, string>> = {
  opened: 'opened',
  reminder: 'still open',
  resolved: 'resolved',
};

/** Most severe first; among equals, new problems before reminders before resolutions, then oldest first. */
export function compareDigestItems(a: MessageItem, b: MessageItem): number {
  return (
    severityRank(b.notice.severity) - severityRank(a.notice.severity) ||
    EVENT_ORDER[a.event] - EVENT_ORDER[b.event] ||
    a.notice.openedAt - b.notice.openedAt ||
    a.notice.id - b.notice.id
  );
}

function countBy<K>(items: readonly MessageItem[], key: (item: MessageItem) => K): Map<K, number> {
  const counts = new Map<K, number>();
  for (const item of items) {
    const k = key(item);
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return counts;
}

function truncate(text: string, maxChars: number): string {
  const chars = [...text];
  return chars.length <= maxChars ? text : `${chars.slice(0, maxChars - 1).join('')}…`;
}

function digestLine(item: MessageItem): string {
  const { notice } = item;
  const business = notice.gameId === '' ? '' : ` (${notice.gameId})`;
  const summary = truncate(notice.summary, DIGEST_SUMMARY_CHARS);
  return `- [${notice.severity}] ${EVENT_WORD[item.event]} ${notice.type} ${notice.subject}${business}: ${summary}`;
}

function mostSevere(items: readonly MessageItem[]): Severity | null {
  let worst: Severity | null = null;
  for (const { event, notice } of items) {
    if (event === 'resolved') continue;
    if (worst === null || severityRank(notice.severity) > severityRank(worst)) worst = notice.severity;
  }
  return worst;
}

/** `transfer_failed 1200, overdue 800`: most severe type first, then the larger count. */
function typeCounts(items: readonly MessageItem[]): string {
  const counts = countBy(items, (item) => item.notice.type);
  const severity = new Map(items.map((item) => [item.notice.type, item.notice.severity]));
  return [...counts]
    .sort(
      ([typeA, a], [typeB, b]) =>
        severityRank(severity.get(typeB)!) - severityRank(severity.get(typeA)!) ||
        b - a ||
        typeA.localeCompare(typeB),
    )
    .map(([type, count]) => `${type} ${count}`)
    .join(', ');
}

/** `game1 1000, game2 900, (no business) 100, 3 others 12`: the largest first. */
function businessCounts(items: readonly MessageItem[]): string {
  const sorted = [...countBy(items, (item) => item.notice.gameId)].sort(
    ([nameA, a], [nameB, b]) => b - a || nameA.localeCompare(nameB),
  );
  const named = sorted
    .slice(0, DIGEST_LISTED_BUSINESSES)
    .map(([gameId, count]) => `${gameId === '' ? '(no business)' : gameId} ${count}`);
  const rest = sorted.slice(DIGEST_LISTED_BUSINESSES);
  if (rest.length > 0) {
    named.push(`${rest.length} others ${rest.reduce((sum, [, count]) => sum + count, 0)}`);
  }
  return named.join(', ');
}

/** `1500 opened, 400 resolved, 100 still open` (events that did not occur are left out). */
function eventCounts(items: readonly MessageItem[]): string {
  const counts = countBy(items, (item) => item.event);
  return (['opened', 'resolved', 'reminder'] as const)
    .filter((event) => counts.has(event))
    .map((event) => `${counts.get(event)} ${EVENT_WORD[event]}`)
    .join(', ');
}

/** Builds the digest of `items` (at least one); `items` of the result are sorted as listed. */
export function digestMessage(items: readonly MessageItem[], options: MessageOptions): NotifyMessage {
  if (items.length === 0) throw new Error('a digest needs at least one notice');
  const sorted = [...items].sort(compareDigestItems);
  const severity = mostSevere(sorted);
  const level = severity === null ? '[RESOLVED]' : `[${severity.toUpperCase()}]`;
  const noun = sorted.length === 1 ? 'alert' : 'alerts';
  const link = options.dashboardUrl ?? null;

  const lines = [
    `By type: ${typeCounts(sorted)}`,
    `By business: ${businessCounts(sorted)}`,
    '',
    'Most severe first:',
    ...sorted.slice(0, DIGEST_LISTED_ITEMS).map(digestLine),
  ];
  const more = sorted.length - DIGEST_LISTED_ITEMS;
  if (more > 0) lines.push(`…and ${more} more.`);
  if (link !== null) lines.push('', `Dashboard: ${link}`);

  return {
    form: 'digest',
    title: `${level} ${sorted.length} ${noun}: ${eventCounts(sorted)}`,
    lines,
    severity,
    link,
    items: sorted,
  };
}
