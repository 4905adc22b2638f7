/**
 * The alert vocabulary shared by the rules, the store, the API and the
 * notifiers (DESIGN §10).
 */

export const ALERT_TYPES = [
  'script_failed',
  'overdue',
  'stuck',
  'illegal',
  'transfer_failed',
  'integrity',
  'node_paused',
  'node_offline',
  'queue_backlog',
] as const;
export type AlertType = (typeof ALERT_TYPES)[number];

export const ALERT_STATES = ['open', 'acknowledged', 'resolved'] as const;
export type AlertState = (typeof ALERT_STATES)[number];

/** Ordered from least to most severe; a channel's `min_severity` passes this level and above. */
export const SEVERITIES = ['info', 'warning', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

/**
 * What each type means for whoever is on call: data that may be lost or not
 * off-site (critical), a backup that did not happen as it should (warning),
 * and what needs a person's decision but no hurry (info).
 */
export const ALERT_SEVERITY: Readonly<Record<AlertType, Severity>> = {
  script_failed: 'warning',
  overdue: 'warning',
  stuck: 'warning',
  illegal: 'info',
  transfer_failed: 'critical',
  integrity: 'critical',
  node_paused: 'warning',
  node_offline: 'critical',
  queue_backlog: 'warning',
};

export function severityRank(severity: Severity): number {
  return SEVERITIES.indexOf(severity);
}

/** An alert as notifiers and the API see it. Times are epoch milliseconds. */
export interface AlertNotice {
  id: number;
  type: AlertType;
  severity: Severity;
  /** What the alert is about: `server_id/type/instance`, a node's name, or a cluster's name. */
  subject: string;
  /** The business the subject belongs to (empty for nodes and clusters). */
  gameId: string;
  state: AlertState;
  /** One line for people: what happened, with the figures that matter. */
  summary: string;
  openedAt: number;
  /** Set when this notice is about the alert being resolved. */
  resolvedAt: number | null;
}
