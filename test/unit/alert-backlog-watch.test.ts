import { describe, expect, it } from 'vitest';
import { DEFAULT_BACKLOG_SECONDS, isBacklogged } from '../../src/server/alerts/backlog-watch.js';

// Frozen time: `now` is always passed in.
const SECOND = 1000;
const T = Date.UTC(2026, 10, 25, 4, 0, 0);

describe('queue backlog', () => {
  it('defaults to one hour', () => {
    expect(DEFAULT_BACKLOG_SECONDS).toBe(3600);
  });

  it('only when the oldest queued job waited strictly more than the threshold', () => {
    const threshold = DEFAULT_BACKLOG_SECONDS;
    expect(isBacklogged(T, T + threshold * SECOND - SECOND, threshold)).toBe(false);
    expect(isBacklogged(T, T + threshold * SECOND, threshold)).toBe(false);
    expect(isBacklogged(T, T + threshold * SECOND + SECOND, threshold)).toBe(true);
  });

  it('never for an empty queue', () => {
    expect(isBacklogged(null, T, DEFAULT_BACKLOG_SECONDS)).toBe(false);
  });

  it('a job enqueued "in the future" (clock skew) has not waited', () => {
    expect(isBacklogged(T + 60 * SECOND, T, 0)).toBe(false);
  });

  it('a zero threshold raises on any wait', () => {
    expect(isBacklogged(T, T, 0)).toBe(false);
    expect(isBacklogged(T, T + 1, 0)).toBe(true);
  });

  it('refuses a negative threshold', () => {
    expect(() => isBacklogged(T, T, -1)).toThrow(RangeError);
  });
});
