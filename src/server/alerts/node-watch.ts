/**
 * The node conditions that raise alerts (DESIGN §10): `node_paused` and
 * `node_offline`. Pure functions of the node's catalog row and `now` (epoch ms);
 * both alerts resolve when the condition clears.
 */

/** What the node rules read from a node. Times are epoch ms. */
export interface NodeWatch {
  name: string;
  /** `new` | `active` | `paused_reserve` | `paused_admin` */
  state: string;
  pausedByAdmin: boolean;
  lastHeartbeatAt: number | null;
  /** When the node enrolled; null while it has not. */
  enrolledAt: number | null;
}

/** A node is offline after this many heartbeat periods without one. */
export const OFFLINE_AFTER_HEARTBEATS = 3;

export const PAUSED_BY_ADMIN = 'paused by an administrator';
export const PAUSED_BY_RESERVE = 'free space under its reserve';

/**
 * Why the node leases no jobs, or null when it is not paused. An
 * administrator's pause is named first: it is the one a person has to undo,
 * while the reserve clears by itself once space is freed.
 */
export function nodePausedReason(n: NodeWatch): string | null {
  if (n.pausedByAdmin || n.state === 'paused_admin') return PAUSED_BY_ADMIN;
  if (n.state === 'paused_reserve') return PAUSED_BY_RESERVE;
  return null;
}

/**
 * No heartbeat for strictly more than 3 × the heartbeat period. A node that
 * has never sent one is measured from its enrollment; a node that never
 * enrolled is not offline (it was never online).
 */
export function isNodeOffline(n: NodeWatch, now: number, heartbeatSeconds: number): boolean {
  if (!(heartbeatSeconds > 0) || !Number.isFinite(heartbeatSeconds)) {
    throw new RangeError(`heartbeat period must be a positive number of seconds, got ${heartbeatSeconds}`);
  }
  const since = n.lastHeartbeatAt ?? n.enrolledAt;
  if (since === null) return false;
  return now - since > OFFLINE_AFTER_HEARTBEATS * heartbeatSeconds * 1000;
}
