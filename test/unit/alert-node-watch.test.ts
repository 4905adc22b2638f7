import { describe, expect, it } from 'vitest';
import {
  isNodeOffline,
  type NodeWatch,
  nodePausedReason,
  OFFLINE_AFTER_HEARTBEATS,
  PAUSED_BY_ADMIN,
  PAUSED_BY_RESERVE,
} from '../../src/server/alerts/node-watch.js';

// Frozen time: `now` is always passed in.
const SECOND = 1000;
const T = Date.UTC(2026, 10, 25, 4, 0, 0);
const HEARTBEAT = 5;

function node(fields: Partial<NodeWatch> = {}): NodeWatch {
  return {
    name: 'n1',
    state: 'active',
    pausedByAdmin: false,
    lastHeartbeatAt: T,
    enrolledAt: T - 86_400 * SECOND,
    ...fields,
  };
}

describe('node paused', () => {
  it('names why the node leases nothing', () => {
    expect(nodePausedReason(node())).toBeNull();
    expect(nodePausedReason(node({ state: 'new' }))).toBeNull();
    expect(nodePausedReason(node({ state: 'paused_reserve' }))).toBe('free space under its reserve');
    expect(nodePausedReason(node({ state: 'paused_admin' }))).toBe('paused by an administrator');
    expect(nodePausedReason(node({ pausedByAdmin: true }))).toBe(PAUSED_BY_ADMIN);
  });

  it('an administrator’s pause is named before the reserve', () => {
    expect(nodePausedReason(node({ state: 'paused_reserve', pausedByAdmin: true }))).toBe(PAUSED_BY_ADMIN);
    expect(PAUSED_BY_RESERVE).toBe('free space under its reserve');
  });
});

describe('node offline', () => {
  const limit = OFFLINE_AFTER_HEARTBEATS * HEARTBEAT * SECOND;

  it('after strictly more than 3 heartbeat periods without one', () => {
    expect(OFFLINE_AFTER_HEARTBEATS).toBe(3);
    const n = node({ lastHeartbeatAt: T });
    expect(isNodeOffline(n, T + limit - SECOND, HEARTBEAT)).toBe(false);
    expect(isNodeOffline(n, T + limit, HEARTBEAT)).toBe(false);
    expect(isNodeOffline(n, T + limit + SECOND, HEARTBEAT)).toBe(true);
  });

  it('scales with the heartbeat period', () => {
    const n = node({ lastHeartbeatAt: T });
    expect(isNodeOffline(n, T + 180 * SECOND, 60)).toBe(false);
    expect(isNodeOffline(n, T + 181 * SECOND, 60)).toBe(true);
  });

  it('a node that never sent a heartbeat is measured from its enrollment', () => {
    const n = node({ lastHeartbeatAt: null, enrolledAt: T });
    expect(isNodeOffline(n, T + limit, HEARTBEAT)).toBe(false);
    expect(isNodeOffline(n, T + limit + SECOND, HEARTBEAT)).toBe(true);
  });

  it('a node that never enrolled is not offline', () => {
    const n = node({ state: 'new', lastHeartbeatAt: null, enrolledAt: null });
    expect(isNodeOffline(n, T + 365 * 86_400 * SECOND, HEARTBEAT)).toBe(false);
  });

  it('a paused node still has to send heartbeats', () => {
    const n = node({ state: 'paused_admin', pausedByAdmin: true, lastHeartbeatAt: T });
    expect(isNodeOffline(n, T + limit + SECOND, HEARTBEAT)).toBe(true);
  });

  it('refuses a heartbeat period that is not positive', () => {
    expect(() => isNodeOffline(node(), T, 0)).toThrow(RangeError);
    expect(() => isNodeOffline(node(), T, Number.NaN)).toThrow(RangeError);
  });
});
