import type { AlertType } from './alert-kind.js';

/**
 * The core of the condition-based alerts (DESIGN §10: overdue, stuck,
 * node_paused, node_offline, queue_backlog): given the alerts still open and
 * the alerts the rules want open now, what to open and what to resolve.
 *
 * `scope` names the types whose complete wanted set the caller computed; for
 * those types the open set becomes exactly the wanted set, and every other
 * type is left alone (so report-driven alerts such as script_failed, which no
 * sweep can recompute, are never resolved by one). At most one alert is open
 * per (type, subject): if the store holds more, the oldest (lowest id) is
 * kept and the rest are resolved.
 */

/** An alert not yet resolved (open or acknowledged): acknowledging does not make it wanted again. */
export interface OpenAlertRef {
  id: number;
  type: AlertType;
  subject: string;
}

export interface WantedAlert {
  type: AlertType;
  subject: string;
  summary: string;
  gameId: string;
}

export interface ReconcilePlan {
  /** Alerts to open, in the order `wanted` lists them. */
  toOpen: WantedAlert[];
  /** Ids of alerts to resolve, ascending. */
  toResolve: number[];
}

/** The key of an alert's (type, subject): `${type}\u0000${subject}`. Types hold no NUL, so keys never collide. */
export function alertKey(type: AlertType, subject: string): string {
  return `${type}\u0000${subject}`;
}

/**
 * `wanted` is keyed by `alertKey`; each entry's own type and subject are what
 * count. Entries of types outside `scope` are ignored.
 */
export function reconcile(
  open: ReadonlyArray<OpenAlertRef>,
  wanted: ReadonlyMap<string, WantedAlert>,
  scope: ReadonlySet<AlertType>,
): ReconcilePlan {
  const wantedByKey = new Map<string, WantedAlert>();
  for (const alert of wanted.values()) {
    if (!scope.has(alert.type)) continue;
    const key = alertKey(alert.type, alert.subject);
    if (!wantedByKey.has(key)) wantedByKey.set(key, alert);
  }

  const openIdsByKey = new Map<string, number[]>();
  for (const alert of open) {
    if (!scope.has(alert.type)) continue;
    const key = alertKey(alert.type, alert.subject);
    const ids = openIdsByKey.get(key);
    if (ids === undefined) openIdsByKey.set(key, [alert.id]);
    else ids.push(alert.id);
  }

  const toResolve: number[] = [];
  for (const [key, ids] of openIdsByKey) {
    ids.sort((a, b) => a - b);
    // Keep the oldest while still wanted; resolve every duplicate, and all of them once unwanted.
    toResolve.push(...(wantedByKey.has(key) ? ids.slice(1) : ids));
  }
  toResolve.sort((a, b) => a - b);

  const toOpen: WantedAlert[] = [];
  for (const [key, alert] of wantedByKey) {
    if (!openIdsByKey.has(key)) toOpen.push(alert);
  }
  return { toOpen, toResolve };
}
