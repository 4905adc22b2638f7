import { DAY_MS, MINUTE_MS } from './rollup-increments.js';

/** The longest range the statistics API answers for (days of rollups). */
export const MAX_RANGE_DAYS = 400;
/** The default range: the last 30 UTC days, today included. */
export const DEFAULT_RANGE_DAYS = 30;
/** The queue's per-minute series: default the last day, at most a week. */
export const DEFAULT_QUEUE_DAYS = 1;
export const MAX_QUEUE_DAYS = 7;
/** The hourly series: default the last 2 days, at most 14. */
export const DEFAULT_HOURLY_DAYS = 2;
export const MAX_HOURLY_DAYS = 14;

/** A half-open range [fromMs, toMs) of epoch milliseconds. */
export interface StatsRange {
  fromMs: number;
  toMs: number;
}

export type RangeResult = { ok: true; range: StatsRange } | { ok: false; problem: string };

/**
 * `from` / `to` as the API takes them: UTC days (YYYY-MM-DD, `to` included)
 * or ISO times with a zone, already read as epoch milliseconds; the bound a
 * date names is the start of its day, so `to` as a date means the end of that
 * day. Missing bounds default to the last `defaultDays` UTC days.
 */
export function statsRange(
  input: { from?: { ms: number; day: boolean }; to?: { ms: number; day: boolean } },
  nowMs: number,
  limits: { defaultDays: number; maxDays: number },
): RangeResult {
  const toMs =
    input.to === undefined
      ? Math.floor(nowMs / DAY_MS) * DAY_MS + DAY_MS
      : input.to.ms + (input.to.day ? DAY_MS : 0);
  const fromMs = input.from === undefined ? toMs - limits.defaultDays * DAY_MS : input.from.ms;
  if (toMs <= fromMs) return { ok: false, problem: 'from must be before to' };
  if (toMs - fromMs > limits.maxDays * DAY_MS)
    return { ok: false, problem: `the range is longer than ${limits.maxDays} days` };
  return { ok: true, range: { fromMs, toMs } };
}

/** A minute of the queue: what came in and went out, and the depth at its end. */
export interface QueueMinute {
  minute: number;
  enqueued: number;
  done: number;
  dead: number;
  depth: number;
}

/**
 * Depth over time from the current depth and the per-minute flows: walking
 * back from now, the depth at the end of a minute is the current depth less
 * what came in (and plus what left) in every later minute. `flows` must hold
 * every minute with activity from the first one wanted up to now, in any order.
 */
export function depthHistory(
  flows: ReadonlyArray<{ minute: number; enqueued: number; done: number; dead: number }>,
  depthNow: number,
): QueueMinute[] {
  const sorted = [...flows].sort((a, b) => b.minute - a.minute);
  let depth = depthNow;
  const out: QueueMinute[] = [];
  for (const f of sorted) {
    out.push({ ...f, depth });
    depth -= f.enqueued - f.done - f.dead;
  }
  return out.reverse();
}

export const minuteOf = (ms: number) => Math.floor(ms / MINUTE_MS) * MINUTE_MS;
