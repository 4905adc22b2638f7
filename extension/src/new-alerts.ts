/**
 * Which alerts are new since the last check, and how to tell the user: one desktop
 * notification each, or a single summary when more than a few arrive at once.
 * Free of `chrome`: unit-tested.
 */
import type { ApiAlert } from './api.js';

/** More new alerts than this at once make one summary notification instead of one each. */
export const MAX_SEPARATE_NOTIFICATIONS = 5;
/** How many notified alert ids are remembered (the summary's `since` overlaps the previous check). */
export const NOTIFIED_MEMORY = 1000;
/**
 * How far before the server's last answer the next check starts: an alert committed just
 * before that answer but after its queries is still seen; the notified ids prevent repeats.
 */
export const SINCE_MARGIN_MS = 10_000;

export type NotificationPlan =
  | { kind: 'none' }
  | { kind: 'each'; alerts: ApiAlert[] }
  | { kind: 'summary'; count: number; alerts: ApiAlert[] };

export interface CheckOutcome {
  /** Followed alerts opened since the last check that were not notified before, oldest first. */
  fresh: ApiAlert[];
  plan: NotificationPlan;
  /** The notified ids to remember, newest last, at most NOTIFIED_MEMORY. */
  notified: number[];
}

/**
 * The `since` of the next summary request: a little before the previous answer's `server_time`,
 * but never before `floor`, the first answer's time (what was open then is the baseline, not news).
 */
export function nextSince(serverTime: string, floor: string | null): string {
  const ms = Date.parse(serverTime) - SINCE_MARGIN_MS;
  const floorMs = floor === null ? Number.NaN : Date.parse(floor);
  if (Number.isNaN(ms)) return serverTime;
  return new Date(Number.isNaN(floorMs) ? ms : Math.max(ms, floorMs)).toISOString();
}

/**
 * `newest` is the summary's list for `since` (null on the first check, which only sets the
 * baseline: what is already open when the extension starts watching is not news).
 */
export function newAlerts(
  newest: readonly ApiAlert[],
  since: string | null,
  notified: readonly number[],
): CheckOutcome {
  if (since === null) return { fresh: [], plan: { kind: 'none' }, notified: [...notified] };
  const sinceMs = Date.parse(since);
  const known = new Set(notified);
  const fresh = newest
    .filter((a) => a.followed && a.state === 'open' && !known.has(a.id) && Date.parse(a.opened_at) > sinceMs)
    .sort((a, b) => Date.parse(a.opened_at) - Date.parse(b.opened_at) || a.id - b.id);
  const plan: NotificationPlan =
    fresh.length === 0
      ? { kind: 'none' }
      : fresh.length > MAX_SEPARATE_NOTIFICATIONS
        ? { kind: 'summary', count: fresh.length, alerts: fresh }
        : { kind: 'each', alerts: fresh };
  const remembered = [...notified, ...fresh.map((a) => a.id)].slice(-NOTIFIED_MEMORY);
  return { fresh, plan, notified: remembered };
}

/**
 * The alerts new since the user last looked (opened the popup): the fresh ones join, those
 * the summary shows acknowledged or resolved leave, and none remain when nothing followed is open.
 */
export function updateUnseen(
  unseen: readonly number[],
  fresh: readonly ApiAlert[],
  newest: readonly ApiAlert[],
  followedOpen: number,
): number[] {
  if (followedOpen === 0) return [];
  const closed = new Set(newest.filter((a) => a.state !== 'open').map((a) => a.id));
  const next = new Set(unseen.filter((id) => !closed.has(id)));
  for (const a of fresh) next.add(a.id);
  return [...next].slice(-NOTIFIED_MEMORY);
}
