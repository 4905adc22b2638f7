import type { RebuildOutcome, RebuildRange } from '../server/stats/rebuild-rollups.js';
import { AdminInputError } from './create-user.js';

/**
 * `ubackup admin stats rebuild [--from DATE] [--to DATE]`: the range parsing
 * and the summary it prints. The work is server/stats/rebuild-rollups.ts.
 */

const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** A UTC day (YYYY-MM-DD) as the epoch milliseconds of its start. */
function dayStart(flag: string, text: string): number {
  const ms = DATE.test(text) ? Date.parse(`${text}T00:00:00Z`) : Number.NaN;
  // Date.parse rolls 2026-02-30 over into March: only a day that exists is taken.
  if (Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== text)
    throw new AdminInputError(`${flag}: expected a UTC date YYYY-MM-DD, got "${text}"`);
  return ms;
}

/** `--from` and `--to` are UTC days, both included; either may be left out (open). */
export function parseRebuildRange(flags: { from?: string; to?: string }): RebuildRange {
  const fromMs = flags.from === undefined ? null : dayStart('--from', flags.from);
  const toMs = flags.to === undefined ? null : dayStart('--to', flags.to) + 86_400_000;
  if (fromMs !== null && toMs !== null && toMs <= fromMs) {
    throw new AdminInputError(`--to (${flags.to}) is before --from (${flags.from})`);
  }
  return { fromMs, toMs };
}

export function formatRebuildOutcome(range: RebuildRange, outcome: RebuildOutcome): string {
  const bound = (ms: number | null, open: string) => (ms === null ? open : new Date(ms).toISOString());
  return [
    `rebuilt statistics for ${bound(range.fromMs, 'the oldest')} .. ${bound(range.toMs, 'the newest')} in ${outcome.ms} ms`,
    `  daily_stats:  ${outcome.rows.daily_stats} rows`,
    `  hourly_stats: ${outcome.rows.hourly_stats} rows`,
    `  queue_stats:  ${outcome.rows.queue_stats} rows`,
    '',
  ].join('\n');
}
